"""Which colour channels make the model's grey level, measured with the project's own scripts
(card, experiment 40).

    PYTHONPATH=functions:. python training/experiments/channel_mix.py --weights 0,1,0 \
        training.train --data <ACRIMA> --augmented-copies 6 --model-dir runs/green/model ...
    PYTHONPATH=functions:. python training/experiments/channel_mix.py --per-channel \
        training.train ...
    CSDI_DIR=... PYTHONPATH=functions:. python training/experiments/channel_mix.py --weights 0,1,0 \
        training/experiments/csdi_discs.py --model-dir runs/green/model

Why: the served model turns RGB into BT.601 luma in its graph, then standardises it per image.
That removes global brightness and contrast, but not white balance: a camera whose red is
stronger or clipped on the disc gives a different luma picture of the same disc (the suite's
`colour_shift`), and cameras differ most in colour. Two ways to remove it:
- `--weights 0,1,0`: the green channel alone, the red-free image of fundus analysis (vessels
  and the cup's pallor show best in it); any gain on it is removed by the standardisation;
- `--per-channel`: each channel standardised over the image first, then mixed by the luma
  weights: exactly invariant to a gain on any channel, and all three channels still used.
The grey conversion is a layer of the model, so the saved model carries the change and
serving runs it as it is.
"""

from __future__ import annotations

import argparse

import keras
import numpy as np
from keras import layers

from training import network
from training.experiments.run_target import run_target


def install(weights: tuple[float, float, float], per_channel: bool) -> None:
    network.LUMA_WEIGHTS = tuple(weights)
    if not per_channel:
        return
    original = network.photometric_normalisation

    def per_channel_first(x: keras.KerasTensor, *args, **kwargs) -> keras.KerasTensor:
        x = layers.LayerNormalization(axis=[1, 2], center=False, scale=False, epsilon=1e-4,
                                      name="per_channel_standardisation")(x)
        return original(x, *args, **kwargs)

    network.photometric_normalisation = per_channel_first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=",".join(str(w) for w in network.LUMA_WEIGHTS),
                        help="R,G,B weights of the grey level (default: BT.601 luma)")
    parser.add_argument("--per-channel", action="store_true",
                        help="standardise each channel over the image before mixing")
    parser.add_argument("target", help="a module (training.train) or a script path")
    args, rest = parser.parse_known_args()
    weights = tuple(float(w) for w in args.weights.split(","))
    if len(weights) != 3 or not np.isclose(sum(weights), 1.0):
        parser.error("--weights: three numbers that sum to 1")
    install(weights, args.per_channel)
    run_target(args.target, rest)


if __name__ == "__main__":
    main()
