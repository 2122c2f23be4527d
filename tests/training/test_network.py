"""The classifier's options (model card rows 29-33 and 61): the Lite1/Lite2 trunks, pooling over the
central cells only, blur-pooled stride-2 steps, batch-norm statistics re-estimated on the data, and
each feature block standardised per photograph."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from training import network  # noqa: E402
from training.data import LabelledFiles, load_images  # noqa: E402
from training.features import pooled_model  # noqa: E402


@pytest.fixture(scope="module")
def real_images(sample_files) -> np.ndarray:
    files = LabelledFiles()
    for p in sample_files["normal"][:2] + sample_files["glaucoma"][:2]:
        files.add(p, 0)
    return load_images(files).images


@pytest.mark.parametrize("backbone, blocks, channels", [("lite0", 11, 40 + 80 + 112),
                                                        ("lite1", 15, 40 + 80 + 112),
                                                        ("lite2", 15, 48 + 88 + 120)])
def test_every_trunk_ends_after_stage_five_and_reads_the_ends_of_stages_three_to_five(backbone, blocks, channels):
    model = network.build_classifier(input_size=224, backbone=backbone, backbone_weights=None)
    assert network.trunk_blocks(backbone) == blocks
    assert f"block{blocks - 1}_project_bn" in {layer.name for layer in model.layers}
    assert f"block{blocks}_project_bn" not in {layer.name for layer in model.layers}
    assert tuple(network.feature_map(model).shape[1:]) == (14, 14, channels)
    trainable = {layer.name for layer in model.layers if layer.trainable and layer.weights}
    assert trainable == {network.OUTPUT_LAYER}  # the whole trunk stays frozen by default


def test_a_trunk_without_its_converted_weights_says_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="convert_backbone --backbone lite2"):
        network.build_classifier(input_size=64, backbone="lite2",
                                 backbone_weights=tmp_path / "efficientnet_lite2_trunk.npz")


def test_central_cells_pool_the_centre_only_and_survive_a_save(tmp_path, real_images):
    model = network.build_classifier(input_size=224, dropout=0.0, pool_radius_cells=5.0)
    grid = keras.Model(model.inputs, model.get_layer("central_cells").input).predict(real_images[:3], verbose=0)
    yy, xx = np.mgrid[0:14, 0:14]
    central = np.hypot(yy - 6.5, xx - 6.5) <= 5.0
    pooled = pooled_model(model).predict(real_images[:3], verbose=0)
    assert np.allclose(pooled, grid[:, central].mean(axis=1), atol=1e-5)
    masked = network.feature_map(model)
    outside = keras.Model(model.inputs, masked).predict(real_images[:1], verbose=0)[0][~central]
    assert not outside.any()  # the heatmap is zero on the rim
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert np.allclose(again.predict(real_images[:3], verbose=0), model.predict(real_images[:3], verbose=0), atol=1e-6)


def test_antialiasing_keeps_the_pretrained_grid_and_steadies_the_features_under_a_shift(real_images):
    """Blur-pooled stride-2 steps (model card row 32): the same weights sampled on the same grid,
    and a one-pixel shift of the photograph moves the pooled features less than in the plain trunk."""
    names = {layer.name for layer in network.build_classifier(input_size=64, antialias_from_block=1,
                                                              backbone_weights=None).layers}
    assert {"block1_blur_pool", "block3_blur_pool", "block5_blur_pool"} <= names and "stem_blur_pool" not in names

    def shift_change(**options) -> float:
        pooled = pooled_model(network.build_classifier(input_size=224, dropout=0.0, **options))
        before = pooled.predict(real_images, verbose=0)
        after = pooled.predict(np.roll(real_images, 1, axis=2), verbose=0)
        spread = np.linalg.norm(before - before.mean(axis=0), axis=1).mean()
        return float(np.median(np.linalg.norm(after - before, axis=1)) / spread)

    plain, antialiased = shift_change(), shift_change(antialias_from_block=1)
    assert antialiased < 0.75 * plain, (plain, antialiased)


def test_adapted_batch_norm_holds_the_mean_of_its_batch_statistics_and_nothing_else_moves(real_images):
    """AdaBN (model card row 33): the stem's normalisation ends with the mean over the batches of the
    stem convolution's per-batch channel means; scales, offsets and the layers' freezing stay."""
    model = network.build_classifier(input_size=224, dropout=0.0)
    norm = model.get_layer("stem_bn")
    gamma, beta, before_mean, _ = (w.copy() for w in norm.get_weights())
    assert network.adapt_batch_norm(model, real_images, batch_size=2) == 33
    stem = keras.Model(model.inputs, model.get_layer("stem_conv").output)
    order = np.random.default_rng(0).permutation(len(real_images))
    batches = [stem.predict(real_images[order[i:i + 2]], verbose=0).mean(axis=(0, 1, 2)) for i in (0, 2)]
    after = norm.get_weights()
    assert np.allclose(after[2], np.mean(batches, axis=0), atol=1e-4)
    assert not np.allclose(after[2], before_mean, atol=1e-3)
    assert np.array_equal(after[0], gamma) and np.array_equal(after[1], beta)
    assert not norm.trainable and norm.momentum == 0.99


def test_adaptation_views_are_the_photographs_then_their_re_acquisitions(sample_files, real_images):
    """--adapt-batch-norm-copies (model card row 34): the statistics' views are each photograph as
    loaded, then `copies` random re-acquisitions of each through the shared preprocessing, the
    same for the same seed."""
    from training.features import adaptation_views

    paths = sample_files["normal"][:2] + sample_files["glaucoma"][:2]
    assert adaptation_views(real_images, paths, 0, seed=1) is real_images
    views = adaptation_views(real_images, paths, 2, seed=1)
    assert views.shape == (12, 224, 224, 3) and views.dtype == real_images.dtype
    assert np.array_equal(views[:4], real_images)
    for copy in (views[4:8], views[8:]):
        assert all(np.abs(copy[i] - real_images[i]).mean() > 1e-3 for i in range(4))
    assert not np.array_equal(views[4:8], views[8:])
    assert np.array_equal(adaptation_views(real_images, paths, 2, seed=1), views)


def test_an_adapted_trunk_file_gives_the_model_adapt_batch_norm_gives_and_moves_only_the_lower_statistics(
        real_images, tmp_path):
    """`make adapted-trunk` (model card row 44): the lower trunk's statistics stored in a trunk file
    load into the same features as adapting in place; every other array is the ImageNet file's."""
    from training.adapt_trunk import adapted_trunk_arrays
    from training.features import pooled_model

    source = network.backbone_weights_path()
    arrays, adapted = adapted_trunk_arrays(source, real_images, below_block=2)
    assert adapted == ["stem_bn", "block0_dw_bn", "block0_project_bn",
                       "block1_expand_bn", "block1_dw_bn", "block1_project_bn"]
    imagenet = np.load(source)
    changed = {key for key in imagenet.files if not np.array_equal(imagenet[key], arrays[key])}
    assert changed == {f"{name}:{i}" for name in adapted for i in (2, 3)}
    np.savez(tmp_path / "efficientnet_lite0_trunk_fundus_bn.npz", **arrays)
    from_file = pooled_model(network.build_classifier(
        input_size=224, dropout=0.0, backbone_weights=tmp_path / "efficientnet_lite0_trunk_fundus_bn.npz"))
    in_place = network.build_classifier(input_size=224, dropout=0.0)
    network.adapt_batch_norm(in_place, real_images, below_block=2)
    assert np.allclose(from_file.predict(real_images, verbose=0),
                       pooled_model(in_place).predict(real_images, verbose=0), atol=1e-5)


def test_the_committed_adapted_trunk_is_the_imagenet_trunk_with_its_provenance():
    import json

    path = network.backbone_weights_path(adapted=True)
    provenance = json.loads(path.with_suffix(".json").read_text())
    assert provenance["sha256"] == network.trunk_fingerprint(path) != ""
    source = network.backbone_weights_path()
    assert provenance["from_sha256"] == network.trunk_fingerprint(source)
    adapted, imagenet = np.load(path), np.load(source)
    assert sorted(adapted.files) == sorted(imagenet.files)
    changed = {key.rsplit(":", 1)[0] for key in imagenet.files if not np.array_equal(adapted[key], imagenet[key])}
    assert changed == set(provenance["adapted_layers"]) and len(changed) == 6


def test_a_missing_adapted_trunk_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make adapted-trunk"):
        network.build_classifier(input_size=64, backbone_weights=tmp_path / "efficientnet_lite0_trunk_fundus_bn.npz")


def test_standardised_feature_blocks_divide_out_a_gain_on_every_activation(tmp_path, real_images):
    """Each block's pooled vector has mean 0 and spread 1 over its channels, so a photograph whose
    activations all grew by one factor in a block pools to the same vector (card row 61)."""
    model = network.build_classifier(input_size=224, dropout=0.0, standardise_feature_blocks=True)
    layer = model.get_layer("feature_standardisation")
    assert layer.channels == (40, 80, 112)
    maps = keras.Model(model.inputs, layer.input).predict(real_images[:3], verbose=0)
    pooled = pooled_model(model).predict(real_images[:3], verbose=0)
    for start, stop in ((0, 40), (40, 120), (120, 232)):
        part = pooled[:, start:stop]
        assert np.allclose(part.mean(axis=1), 0, atol=1e-4) and np.allclose(part.std(axis=1), 1, atol=1e-3)
    scaled = maps.copy()
    scaled[..., 40:120] *= 1.7
    scaled[..., 120:] = scaled[..., 120:] * 0.6 + 0.3
    after = keras.ops.convert_to_numpy(keras.ops.mean(layer(scaled), axis=(1, 2)))
    assert np.allclose(after, pooled, atol=1e-4)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert np.allclose(again.predict(real_images[:3], verbose=0), model.predict(real_images[:3], verbose=0),
                       atol=1e-6)
