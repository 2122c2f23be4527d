"""The local cloud: the deployed architecture on 127.0.0.1, with moto's server."""

import sys
from pathlib import Path

try:  # the handlers and the serving package live in functions/, as in the Lambda image
    import screening  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))
