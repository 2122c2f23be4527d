"""PNG figures for the evaluation report (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def roc_plot(labels: np.ndarray, scores: np.ndarray, auc: float, threshold: float, path: Path) -> Path:
    fpr, tpr, thr = roc_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"ROC (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
    i = int(np.argmin(np.abs(thr - threshold)))
    ax.plot(fpr[i], tpr[i], "o", color="crimson", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC, test split")
    ax.legend(loc="lower right")
    return _save(fig, path)


def pr_plot(labels: np.ndarray, scores: np.ndarray, path: Path) -> Path:
    precision, recall, _ = precision_recall_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(recall, precision)
    ax.set(xlabel="recall (sensitivity)", ylabel="precision", title="Precision-recall, test split",
           ylim=(0, 1.02))
    return _save(fig, path)


def history_plot(history: dict[str, list[float]], path: Path) -> Path:
    if "c" in history:  # the frozen-trunk head: regularisation strength against val AUC
        fig, ax = plt.subplots(figsize=(4.5, 3.6))
        ax.semilogx(history["c"], history["val_auc"], "o-")
        ax.set(xlabel="C (inverse L2 strength)", ylabel="mean val AUC (clean, re-acquired)",
               title="Head regularisation")
        return _save(fig, path)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for key, ax in (("loss", axes[0]), ("auc", axes[1])):
        for prefix in ("", "val_"):
            if prefix + key in history:
                ax.plot(history[prefix + key], label=(prefix or "train_") + key)
        ax.set(xlabel="epoch", title=key)
        ax.legend()
    return _save(fig, path)


def confusion_plot(matrix: dict[str, int], path: Path) -> Path:
    grid = np.array([[matrix["tn"], matrix["fp"]], [matrix["fn"], matrix["tp"]]])
    fig, ax = plt.subplots(figsize=(3.8, 3.4))
    ax.imshow(grid, cmap="Blues")
    for (r, c), value in np.ndenumerate(grid):
        ax.text(c, r, str(value), ha="center", va="center",
                color="white" if value > grid.max() / 2 else "black", fontsize=14)
    ax.set_xticks([0, 1], ["normal", "glaucoma"])
    ax.set_yticks([0, 1], ["normal", "glaucoma"])
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix, test")
    return _save(fig, path)


def reliability_plot(labels: np.ndarray, probabilities: np.ndarray, ece: float, path: Path,
                     bins: int = 10) -> Path:
    """Observed glaucoma rate against mean predicted probability, per probability bin."""
    labels = np.asarray(labels, float)
    probabilities = np.asarray(probabilities, float)
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    used = [b for b in range(bins) if (which == b).any()]
    mean_p = [probabilities[which == b].mean() for b in used]
    rate = [labels[which == b].mean() for b in used]
    counts = [int((which == b).sum()) for b in used]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8, label="perfect calibration")
    ax.plot(mean_p, rate, "o-", label=f"model (ECE {ece:.3f})")
    for x, y, n in zip(mean_p, rate, counts):
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set(xlabel="mean predicted probability", ylabel="observed glaucoma rate",
           title="Reliability, test split", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper left")
    return _save(fig, path)


def invariance_plot(report: dict[str, dict], path: Path) -> Path:
    """95th percentile of |dp| per variant, with the 0.1 target."""
    names = list(report)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.bar(range(len(names)), [report[n]["delta_p_p95"] for n in names], color="steelblue", label="p95 |dp|")
    ax.plot(range(len(names)), [report[n]["delta_p_median"] for n in names], "o", color="black",
            label="median |dp|")
    ax.axhline(0.1, color="crimson", linestyle="--", linewidth=0.8, label="target 0.1")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="|p(variant) - p(photograph)|", title="Invariance suite, test split")
    ax.legend(fontsize=8)
    return _save(fig, path)
