"""Instance style normalisation inside the served trunk (IBN-Net's idea, Pan et al. 2018, "Two at
once: enhancing learning and generalization capacities via IBN-Net"), in the grouped 5-fold CV.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/style_norm_cv.py \
        [--cut 1] [--strength 1] [--c 0.1]

Why: row 53's MixStyle only taught the head that early feature statistics (each channel's mean and
spread over the image) say nothing; serving still saw them. Here every photograph's block-`cut`
feature maps are re-normalised, at serving too, to one fixed style: per channel, the map minus its
own mean over the image, over its own spread, times the training photographs' mean spread, plus
their mean mean. What a camera changes globally at that depth (colour balance, exposure, contrast,
and how much fine detail a blur or JPEG leaves, which is an early channel's spread) is then the
same for every photograph; the spatial pattern (where the cup and rim are) is kept. `--strength s`
moves each statistic only the share s of the way to the fixed one.

The target style is taken from the train split's 495 clean photographs (label-free, shared by all
folds, as rows 33-34's statistics were). Same folds, re-acquisition draws, heads and scoring as
`tta_cv.py 6 0.1 mirror-head adapted` (row 52's served recipe); its cached features are the
baseline arm. The normalised features are cached in runs/style_norm_banks_cut<CUT>_s<S>.npz.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training import data as data_mod  # noqa: E402
from training.crossval import cross_validate, fold_line, mirror_view_scores, summary_line  # noqa: E402
from training.experiments.tta_cv import SEED, cached_banks, served_banks  # noqa: E402
from training.finetune import lower_model, upper_model  # noqa: E402
from training.network import backbone_weights_path, build_classifier  # noqa: E402


def style_statistics(acts: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Per image and channel: the mean and spread of the maps over the image."""
    return acts.mean(axis=(1, 2)), np.sqrt(acts.var(axis=(1, 2)) + eps)


def style_normalised_model(model, cut: int, mu: np.ndarray, sigma: np.ndarray, strength: float):
    """Photographs -> pooled features, block `cut`'s maps moved to the fixed style (mu, sigma)."""
    import keras
    from keras import ops

    lower, upper = lower_model(model, cut), upper_model(model, cut)

    class StyleNorm(keras.layers.Layer):
        def call(self, x):
            m = ops.mean(x, axis=(1, 2), keepdims=True)
            s = ops.sqrt(ops.var(x, axis=(1, 2), keepdims=True) + 1e-5)
            target_s = strength * sigma + (1 - strength) * s
            target_m = strength * mu + (1 - strength) * m
            return (x - m) / s * target_s + target_m

    inputs = keras.Input(model.input_shape[1:])
    return keras.Model(inputs, upper(StyleNorm()(lower(inputs))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cut", type=int, default=1, help="the block whose output is normalised")
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--c", type=float, default=0.1)
    args = parser.parse_args()
    served, served_mirror, labels, widths = served_banks()

    def make_pooled():
        train = data_mod.load_images(data_mod.read_splits_csv(Path(os.environ["ACRIMA_DIR"]))["train"])
        model = build_classifier(backbone_weights=backbone_weights_path(adapted=True))
        train_acts = lower_model(model, args.cut).predict(train.images, batch_size=32, verbose=0)
        mu, sigma = (v.mean(axis=0).astype(np.float32) for v in style_statistics(train_acts))
        return style_normalised_model(model, args.cut, mu, sigma, args.strength)

    bank, mirror = cached_banks(f"style_norm_banks_cut{args.cut}_s{args.strength:g}", make_pooled)
    arms = {"served": (served, served_mirror), "style-normalised": (bank, mirror)}
    for name, (b, m) in arms.items():
        result = cross_validate(b, labels, widths, args.c, seed=SEED, fit_bank=np.concatenate([b, m]),
                                view_scores=mirror_view_scores(b, m))
        for r in result["folds"]:
            print(f"{name:17s} {fold_line(r)}", flush=True)
        print(f"{name} (cut {args.cut}, strength {args.strength:g}, C {args.c:g}): {summary_line(result)}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
