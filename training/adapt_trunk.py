"""Write the adapted trunk: the ImageNet trunk with its stem's and blocks 0-1's batch-norm statistics
re-estimated on fundus photographs (AdaBN on the lower trunk; model card row 44).

    make adapted-trunk      # = python -m training.adapt_trunk --data $(ACRIMA_DIR)

Why a file and not a step of every job: the lower layers see what a camera changes (contrast,
texture, the grey level's spread) and ImageNet's statistics describe photographs of objects. Taken
once, the statistics are constants of the trunk, so the base set's stored features, every retraining
job and the served model share them, and a model call costs the same. The views are ACRIMA's training
photographs and `copies` random re-acquisitions of each (blur, JPEG, framing and colour inside the
statistics); the upper blocks keep ImageNet's, which held the invariance suite's tail and another
camera's clear-lens discs better (card rows 33-34, 44). After it: `make base-set`, then `make model`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training import data as data_mod  # noqa: E402

BELOW_BLOCK = 2  # the stem and blocks 0-1: 6 batch-norm layers (card row 44; blocks < 5 lost CSDI)
COPIES = 3  # re-acquisitions of each training photograph (card row 34)
MOVING_STATISTICS = (2, 3)  # a batch-norm layer's weights: gamma, beta, moving mean, moving variance


def adapted_trunk_arrays(source: Path, images: np.ndarray, below_block: float = BELOW_BLOCK,
                         image_size: int = 224, backbone: str = "lite0"
                         ) -> tuple[dict[str, np.ndarray], list[str]]:
    """The trunk file's arrays with the adapted layers' moving statistics replaced; and those layers.
    `below_block` counts `backbone`'s own blocks."""
    from keras import layers

    from training.network import adapt_batch_norm, build_classifier

    model = build_classifier(input_size=image_size, dropout=0.0, backbone_weights=source, backbone=backbone)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers
              if isinstance(layer, layers.BatchNormalization)}
    adapt_batch_norm(model, images, below_block=below_block)
    arrays = dict(np.load(source))
    adapted = []
    for name, old in before.items():
        new = model.get_layer(name).get_weights()
        if all(np.array_equal(a, b) for a, b in zip(old, new)):
            continue
        adapted.append(name)
        for index in MOVING_STATISTICS:
            key = f"{name}:{index}"
            arrays[key] = new[index].astype(arrays[key].dtype)
    return arrays, adapted


def write(data: Path, below_block: int, copies: int, seed: int) -> dict:
    """The default (Lite0) trunk's adapted file and its provenance beside it; the only one measured."""
    from training.features import adaptation_views
    from training.network import backbone_weights_path, trunk_fingerprint

    source, out = backbone_weights_path(), backbone_weights_path(adapted=True)
    train = data_mod.load_images(data_mod.discover_splits(data)["train"], size=224)
    images = adaptation_views(train.images, train.paths, copies, seed)
    arrays, adapted = adapted_trunk_arrays(source, images, below_block)
    np.savez_compressed(out, **arrays)
    provenance = {
        "trunk": out.name, "from": source.name,
        "from_sha256": trunk_fingerprint(source), "sha256": trunk_fingerprint(out),
        "statistics_from": f"{data.name} train split: {len(train.labels)} photographs and {copies} "
                           f"re-acquisitions of each ({len(images)} views), seed {seed}",
        "licence": "ACRIMA, CC BY 4.0 (derived: batch-norm statistics)",
        "adapted_layers": adapted, "below_block": below_block,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "make adapted-trunk (python -m training.adapt_trunk --data <ACRIMA_DIR>)"}
    out.with_suffix(".json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a data set with a train split (ACRIMA)")
    parser.add_argument("--below-block", type=int, default=BELOW_BLOCK)
    parser.add_argument("--copies", type=int, default=COPIES)
    parser.add_argument("--seed", type=int, default=42, help="the training job's default seed")
    args = parser.parse_args(argv)
    print(json.dumps(write(args.data, args.below_block, args.copies, args.seed), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
