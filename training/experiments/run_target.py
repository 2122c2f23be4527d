"""Run a module (`training.train`) or a script (`training/experiments/csdi_discs.py`) as __main__,
for the experiments that change something for one run and then hand over (clahe.py,
distil_antialiased.py)."""

from __future__ import annotations

import runpy
import sys


def run_target(target: str, args: list[str]) -> None:
    sys.argv = [target, *args]
    if target.endswith(".py"):
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
