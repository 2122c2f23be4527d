"""The CDK app that deploys the glaucoma screening service."""

import sys
from pathlib import Path

try:  # resource names and settings are shared with the functions and the local cloud
    import screening  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))
