"""Fine-tune the whole trunk, stem included, with labels (card, experiments 38-39).

    ACRIMA_DIR=... PYTHONPATH=functions:. python training/experiments/finetune_whole.py \
        [--trunk NPZ --antialias] TARGET ARGS...
    # TARGET: training.train ... --fine-tune-top-epochs N   (the fixed split, the suite)
    #         training/experiments/finetune_cv.py COPIES EPOCHS C CONSISTENCY LR   (grouped CV)

Rows 10-13 fine-tuned blocks 5-10 on cached block-4 activations: a small gain on the test split,
none across acquisition groups, and the tail (crops, blur, JPEG) unmoved, which may sit in the
frozen blocks 0-4, where blur and JPEG act first. Here the cut is the image itself: the "cache"
holds each photograph and its re-acquisitions (training/acquisition.py) as model inputs, and
training/finetune.py's recipe (head fitted on the frozen trunk first, class-balanced
cross-entropy on a random pair of copies + consistency between them, batch norm frozen, Adam,
epoch chosen on val) trains every convolution from the stem up. About 2 min an epoch on 2 cores.

With --trunk and --antialias, the trunk is row 32's blur-pooled one with row 37's filters
(retrained without labels to reproduce the plain trunk's maps), so the labels finish what the
label-free distillation started: Zhang's recipe on the only labelled set here.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import keras

from training import finetune, network
from training.experiments import finetune_top
from training.experiments.distil_antialiased import use_trunk
from training.experiments.run_target import run_target

WHOLE_TRUNK = -1  # network._trunk_block of the stem: every trunk layer from there up is trained


def _image_input(model: keras.Model, cut: int = WHOLE_TRUNK) -> keras.Model:
    """The "lower trunk" is nothing: the bank holds the model inputs themselves."""
    inputs = keras.Input(model.inputs[0].shape[1:])
    return keras.Model(inputs, keras.layers.Identity()(inputs))


def _whole_model(model: keras.Model, cut: int = WHOLE_TRUNK) -> keras.Model:
    """Image -> pooled features, sharing the classifier's layers."""
    return keras.Model(model.inputs, model.get_layer(network.POOL_LAYER).output)


def patch(trunk: Path | None, antialias: bool) -> None:
    finetune.lower_model = _image_input
    finetune.upper_model = _whole_model
    finetune.fine_tune = functools.partial(finetune.fine_tune, from_block=WHOLE_TRUNK)
    finetune_top.CACHE = Path("runs/act_cache_inputs")  # not the block-4 banks of rows 10-13
    if trunk is not None:
        use_trunk(trunk)
    if antialias:  # stride 1 before each low-pass: 4x the activations of a stride-2 step, so smaller batches
        network.build_classifier = functools.partial(network.build_classifier, antialias_from_block=WHOLE_TRUNK)
        finetune.fine_tune = functools.partial(finetune.fine_tune, batch_size=16)
        finetune.pooled_from_activations = functools.partial(finetune.pooled_from_activations, batch_size=32)


if __name__ == "__main__":
    args = sys.argv[1:]
    trunk = None
    if args[0] == "--trunk":
        trunk, args = Path(args[1]), args[2:]
    antialias = args[0] == "--antialias"
    patch(trunk, antialias)
    run_target(args[1] if antialias else args[0], args[2:] if antialias else args[1:])
