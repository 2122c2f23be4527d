"""Erase what the pooled features say about the acquisition set-up within each class, before the
head is fitted (LEACE-style least-squares concept erasure; Belrose et al. 2023).

Why: ACRIMA's acquisition set-ups show in a photograph's native width, and width is tied to the label
(glaucoma files about twice as wide), so a head can key on the set-up, which another hospital does
not share. Only the within-class part is erased: the class means of the features and of the
concept are removed before their cross-covariance is taken, so a direction that separates the
classes stays unless it also varies with the set-up inside a class. The map is linear, so it folds
into the served dense unit (`fold_into`): serving runs the same graph at the same cost. Card row 55
measures it: the best grouped CV on the card, and a longer tail on the other proxies, so it is off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.head import LinearHead


def width_bins(widths: np.ndarray, bin_px: int) -> np.ndarray:
    """(N, bins) one-hot native-width bins: the acquisition set-up as the concept to erase."""
    bins = np.asarray(widths) // bin_px
    return (bins[:, None] == np.unique(bins)[None, :]).astype(np.float64)


@dataclass(frozen=True)
class Erasure:
    mean: np.ndarray  # (D,)
    matrix: np.ndarray  # (D, D): x -> mean + (x - mean) @ matrix

    def apply(self, features: np.ndarray) -> np.ndarray:
        return self.mean + (np.asarray(features, np.float64) - self.mean) @ self.matrix

    def fold_into(self, head: LinearHead) -> LinearHead:
        """The head on raw features whose logits equal `head`'s on erased ones."""
        weights = self.matrix @ head.weights
        return LinearHead(weights, float(head.bias + self.mean @ head.weights - self.mean @ weights))


def within_class_erasure(features: np.ndarray, concept: np.ndarray, labels: np.ndarray,
                         ridge: float = 1e-3, max_directions: int = 0) -> Erasure:
    """The least-squares erasure of the within-class linear information about `concept` (N, k) from
    `features` (N, D): in whitened coordinates, the directions of the within-class cross-covariance
    are projected out (with `max_directions`, only that many, the strongest first); `ridge` keeps the
    whitening defined for nearly constant features."""
    x = np.asarray(features, np.float64)
    z = np.asarray(concept, np.float64).reshape(len(x), -1)
    labels = np.asarray(labels)
    mean = x.mean(axis=0)
    xc, zc = x.copy(), z.copy()
    for label in np.unique(labels):
        rows = labels == label
        xc[rows] -= xc[rows].mean(axis=0)
        zc[rows] -= zc[rows].mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov((x - mean).T) + ridge * np.eye(x.shape[1]))
    whiten = (vectors * values ** -0.5) @ vectors.T
    unwhiten = (vectors * values ** 0.5) @ vectors.T
    u, s, _ = np.linalg.svd(whiten @ (xc.T @ zc) / len(x), full_matrices=False)
    u = u[:, s > 1e-8 * max(s.max(), 1e-300)]
    if max_directions:
        u = u[:, :max_directions]
    return Erasure(mean, whiten @ (np.eye(x.shape[1]) - u @ u.T) @ unwhiten)
