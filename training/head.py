"""The linear head on pooled trunk features: fit, calibrate, and write into the model.

The head stays one dense unit on global-average-pooled features, so the
serving graph's class-activation map still holds (mean(cam) + bias = logit).
Standardisation of the features and the Platt calibration are both affine in
the logit, so they fold into that unit's weights and bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class LinearHead:
    weights: np.ndarray  # (D,)
    bias: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, np.float64) @ self.weights + self.bias

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits(features)))

    def logits_over_mirror(self, features: np.ndarray, mirror_features: np.ndarray) -> np.ndarray:
        """Mirror test-time augmentation: the mean logit over each view and its mirror image's
        (screening.inference.mean_over_mirror, as serving runs it)."""
        return (self.logits(features) + self.logits(mirror_features)) / 2

    def probabilities_over_mirror(self, features: np.ndarray, mirror_features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits_over_mirror(features, mirror_features)))

    def calibrated(self, scale: float, shift: float) -> "LinearHead":
        """The head whose logit is scale * logit + shift."""
        return LinearHead(self.weights * scale, self.bias * scale + shift)


def fit_head(features: np.ndarray, labels: np.ndarray, c: float,
             sample_weight: np.ndarray | None = None) -> LinearHead:
    """L2-regularised logistic regression on standardised features, class-balanced (times
    `sample_weight`, a weight per row: crossval.size_balance_weights)."""
    x = np.asarray(features, np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    model.fit((x - mean) / std, labels, sample_weight=sample_weight)
    weights = model.coef_[0] / std
    return LinearHead(weights, float(model.intercept_[0] - weights @ mean))


def penalised_head(fit_bank: np.ndarray, labels: np.ndarray, c: float, alpha: float,
                   spread_bank: np.ndarray | None = None, directions: np.ndarray | None = None,
                   photo_weights: np.ndarray | None = None) -> LinearHead:
    """fit_head's class-balanced, L2-regularised logistic regression on standardised features, plus
    alpha * rows * w'Sw, S the covariance of a photograph's views (fit_bank: (views, N, D)) about
    their mean, averaged over photographs: the logit's variance across re-acquisitions penalised
    (card rows 6 and 65). alpha 0 is fit_head's problem. `spread_bank` (views, N', D): S from these
    views instead, e.g. only reframings of the photographs (card row 71). `directions` (k, D):
    feature shifts (another camera's mean against ACRIMA's normals', csdi_normals.py) whose logit
    change (w'd)^2 is penalised too, rows * the sum over them, alongside alpha * S. `photo_weights`
    (N,): how much each photograph's rows count (another camera's, csdi_normals.py), the class
    balance taken over the weighted rows."""
    from scipy.optimize import minimize

    views, n, d = fit_bank.shape
    x = fit_bank.reshape(-1, d).astype(np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (fit_bank - mean) / std
    spread_z = z if spread_bank is None else (spread_bank - mean) / std
    centred = spread_z - spread_z.mean(axis=0, keepdims=True)
    spread = alpha * np.einsum("vni,vnj->ij", centred, centred) / (centred.shape[0] * centred.shape[1])
    if directions is not None:
        shifts = np.asarray(directions, np.float64) / std
        spread = spread + shifts.T @ shifts
    x = z.reshape(-1, d)
    y = np.tile(labels, views).astype(float)
    rows = np.ones(len(y)) if photo_weights is None else np.tile(np.asarray(photo_weights, float), views)
    sw = rows * np.where(y == 1, rows.sum() / (2 * rows[y == 1].sum()), rows.sum() / (2 * rows[y == 0].sum()))

    def objective(params):
        w, b = params[:-1], params[-1]
        logit = x @ w + b
        loss = sw * (np.logaddexp(0, -logit) * y + np.logaddexp(0, logit) * (1 - y))
        residual = sw * (1 / (1 + np.exp(-logit)) - y)
        value = 0.5 * w @ w + c * loss.sum() + len(y) * w @ spread @ w
        grad_w = w + c * x.T @ residual + 2 * len(y) * spread @ w
        return value, np.append(grad_w, c * residual.sum())

    params = minimize(objective, np.zeros(d + 1), jac=True, method="L-BFGS-B",
                      options={"maxiter": 5000, "gtol": 1e-8}).x
    weights = params[:-1] / std
    return LinearHead(weights, float(params[-1] - weights @ mean))


def with_more_photographs(fit_bank: np.ndarray, labels: np.ndarray, more: tuple | None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """penalised_head's fit_bank, labels and photo_weights: the photographs' own views (views, N, D),
    then `more` ((views, M, D), (M,) labels[, (M,) weights]: crossval's more_fit_bank,
    train.more_photographs); the weights None (all 1) where `more` gives none."""
    if more is None:
        return fit_bank, labels, None
    weights = np.concatenate([np.ones(len(labels)), more[2]]) if len(more) > 2 else None
    return np.concatenate([fit_bank, more[0]], axis=1), np.concatenate([labels, more[1]]), weights


def select_c(train_x: np.ndarray, train_y: np.ndarray, val_sets: list[tuple[np.ndarray, np.ndarray]],
             grid=C_GRID, sample_weight: np.ndarray | None = None) -> tuple[float, dict[float, float]]:
    """The C whose head has the best mean AUC over the validation sets (clean and re-acquired)."""
    scores = {}
    for c in grid:
        head = fit_head(train_x, train_y, c, sample_weight)
        scores[c] = float(np.mean([roc_auc_score(y, head.logits(x)) for x, y in val_sets]))
    return max(scores, key=scores.get), scores


def platt_scaling(head: LinearHead, features: np.ndarray, labels: np.ndarray,
                  mirror_features: np.ndarray | None = None) -> LinearHead:
    """Calibrate on held-out images: logistic regression of the labels on the logit (with
    `mirror_features`, on the mean logit over each image and its mirror image, the logit that
    mirror test-time augmentation serves)."""
    logits = (head.logits(features) if mirror_features is None
              else head.logits_over_mirror(features, mirror_features))[:, None]
    model = LogisticRegression(C=1e4, max_iter=1000).fit(logits, labels)
    return head.calibrated(float(model.coef_[0, 0]), float(model.intercept_[0]))


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean probability| over equal-width bins, weighted by their counts."""
    labels = np.asarray(labels, float)
    probabilities = np.asarray(probabilities, float)
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(labels[inside].mean() - probabilities[inside].mean())
    return float(error)


def reliability_table(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> list[dict]:
    labels = np.asarray(labels, float)
    probabilities = np.asarray(probabilities, float)
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    return [{"bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}", "n": int((which == b).sum()),
             "mean_probability": float(probabilities[which == b].mean()),
             "observed_rate": float(labels[which == b].mean())}
            for b in range(bins) if (which == b).any()]


def write_into(model, head: LinearHead) -> None:
    """Set the classifier's dense unit to this head."""
    from training.network import OUTPUT_LAYER

    dense = model.get_layer(OUTPUT_LAYER)
    dense.set_weights([head.weights.astype(np.float32)[:, None], np.array([head.bias], np.float32)])
