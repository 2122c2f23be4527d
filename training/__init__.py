"""SageMaker-style training job for the glaucoma screening model."""

import sys
from pathlib import Path

try:  # the serving package owns preprocessing; training must use the very same code
    import screening  # noqa: F401
except ImportError:  # plain checkout: functions/ is not installed as a package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))
