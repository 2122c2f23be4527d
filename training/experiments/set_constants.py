"""Run a target with some of the project's module constants changed for the run (card, experiment 41).

    PYTHONPATH=functions:. python training/experiments/set_constants.py \
        training.acquisition.BLUR_SHARE=0.9 'training.acquisition.BLUR_SIGMA_RANGE=(0.3, 2.5)' \
        training.train --data <ACRIMA> --augmented-copies 6 --model-dir runs/blur/model ...

Each MODULE.NAME=VALUE imports MODULE, checks that NAME exists, and sets it to VALUE (a Python
literal) before the target runs; the functions that read the constant at call time see the new
value. For a recipe constant that has no command-line option, without editing the file.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys

from training.experiments.run_target import run_target


def set_constant(assignment: str) -> None:
    name, _, value = assignment.partition("=")
    module_name, _, constant = name.rpartition(".")
    module = importlib.import_module(module_name)
    if not hasattr(module, constant):
        raise SystemExit(f"{module_name} has no {constant}")
    setattr(module, constant, ast.literal_eval(value))
    print(f"{name} = {getattr(module, constant)!r}")


def main() -> None:
    args = sys.argv[1:]
    count = next((i for i, a in enumerate(args) if not re.match(r"^[\w.]+\.\w+=", a)), len(args))
    assignments = args[:count]
    if not assignments or count == len(args):
        raise SystemExit(__doc__)
    for assignment in assignments:
        set_constant(assignment)
    target, *rest = args[len(assignments):]
    run_target(target, rest)


if __name__ == "__main__":
    main()
