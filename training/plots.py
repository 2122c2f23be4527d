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
