"""AdaBN on the lower trunk only (card, experiment 44).

    PYTHONPATH=functions:. python training/experiments/adabn_partial.py --below-block K \
        training.train --data <ACRIMA> --augmented-copies 6 --adapt-batch-norm true \
        --adapt-batch-norm-copies 3 --head-c 0.1 --model-dir runs/adabn_k/model ...
    ACRIMA_DIR=... PYTHONPATH=functions:. python training/experiments/adabn_partial.py --below-block K \
        training/experiments/adabn_fold_cv.py fold      # row 35's check: each fold's statistics without it

Rows 33-35 re-estimated every batch-norm layer's statistics on ACRIMA's photographs: the best
grouped CV on the card, but a longer |dp| tail, more of CSDI's discs called glaucoma and the
largest losses on tight crops and small files (row 42). The lower layers see pixel statistics
(contrast, colour, texture: what a camera changes), the upper ones the disc's shapes. Here only
the stem's and blocks 0..K-1's statistics are re-estimated; the upper blocks keep ImageNet's.
"""

from __future__ import annotations

import argparse
import functools

from training import network
from training.experiments.run_target import run_target


def install(below_block: int) -> None:
    network.adapt_batch_norm = functools.partial(network.adapt_batch_norm, below_block=below_block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--below-block", type=int, required=True,
                        help="re-estimate the stem's and blocks 0..K-1's statistics only")
    parser.add_argument("target", help="a module (training.train) or a script path")
    args, rest = parser.parse_known_args()
    install(args.below_block)
    run_target(args.target, rest)


if __name__ == "__main__":
    main()
