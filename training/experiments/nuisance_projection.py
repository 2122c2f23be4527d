"""The head fitted with the acquisition's main directions projected out of the features (card, experiment 50).

    PYTHONPATH=functions:. python training/experiments/nuisance_projection.py --directions K \
        training.train --data <ACRIMA> --augmented-copies 6 --model-dir runs/proj_k/model ...

Row 6 penalised every direction in which a re-acquisition moves the features (a soft penalty over
all of them) and lost accuracy. Here only the K directions along which the re-acquired copies
move the standardised features most (the top eigenvectors of the copy-minus-photograph
differences, from the rows the head is fitted on) are removed before the logistic regression,
wherever the job fits a head (the served head, each grouped-CV fold's). A projection followed by
a linear unit is a linear unit, so a kept head would serve at no cost.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression

from training import crossval, head
from training.experiments.run_target import run_target


def install(directions: int, views: int) -> None:
    def fit_head(features, labels, c, sample_weight=None):
        x = np.asarray(features, np.float64)
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        z = (x - mean) / std
        if len(z) % views:
            raise SystemExit(f"{len(z)} rows are not {views} views of the same photographs")
        stacked = z.reshape(views, -1, z.shape[1])
        moves = (stacked[1:] - stacked[:1]).reshape(-1, z.shape[1])  # every view minus the photograph
        _, _, vt = np.linalg.svd(moves, full_matrices=False)
        basis = vt[:directions].T  # (D, K)
        projected = z - (z @ basis) @ basis.T
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
        model.fit(projected, labels, sample_weight=sample_weight)
        coef = model.coef_[0] - basis @ (basis.T @ model.coef_[0])  # (I - UU^T) w: a unit on z
        weights = coef / std
        return head.LinearHead(weights, float(model.intercept_[0] - weights @ mean))

    head.fit_head = crossval.fit_head = fit_head
    print(f"head: the top {directions} acquisition directions of {views} views projected out", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--directions", type=int, required=True)
    parser.add_argument("--views", type=int, default=14,
                        help="views per photograph in the rows a head is fitted on "
                             "(1 + copies, twice with mirror images)")
    parser.add_argument("target")
    args, rest = parser.parse_known_args()
    install(args.directions, args.views)
    run_target(args.target, rest)


if __name__ == "__main__":
    main()
