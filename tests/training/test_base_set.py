"""The base set travels with the project, and its stored features match the current trunk."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training import base_set, data as data_mod
from training.acquisition import REFRAMINGS
from training.sagemaker import Hyperparameters


def test_the_base_set_travels_with_the_project():
    folder = base_set.find("glaucoma")
    assert folder is not None, "training/base_set/glaucoma/ is missing: run `make base-set`"
    summary = json.loads((base_set.BASE_SET_DIR / "glaucoma.json").read_text())
    splits = base_set.eval_splits(folder)
    assert len(splits["val"]) == sum(summary["by_split"]["val"].values())
    assert len(splits["test"]) == sum(summary["by_split"]["test"].values())
    stored = np.load(base_set.features_path("glaucoma"))
    n_train = sum(summary["by_split"]["train"].values())
    # (photograph + its re-acquired copies, photographs, multi-scale trunk channels), float16
    assert stored["train_features"].shape == (summary["augmented_copies"] + 1, n_train, summary["feature_dims"])
    assert stored["train_features"].dtype == np.float16 and int(stored["format"]) == base_set.FORMAT
    assert stored["train_mirror_features"].shape == stored["train_features"].shape  # the same views mirrored
    assert stored["train_labels"].shape == (n_train,)
    # each photograph's reframings (tighter crops, zoom): what the head's reframing penalty reads
    assert stored["train_reframing_features"].shape == (REFRAMINGS, n_train, summary["feature_dims"])
    # each photograph as smaller files (hp.low_pixel_copies) in the same views, and another hospital's
    # normal discs (CSDI's training split, training/other_camera.py): more photographs the head is fitted on
    assert stored["train_low_pixel_features"].shape == stored["train_features"].shape
    assert stored["train_low_pixel_mirror_features"].shape == stored["train_features"].shape
    others = stored["other_camera_features"]
    assert others.shape[0] == summary["augmented_copies"] + 1
    assert others.shape[1] == summary["other_camera_discs"] > 50
    assert stored["other_camera_mirror_features"].shape == others.shape
    assert "CC BY-NC" in summary["licence"]
    # native widths (the head's size balance): ACRIMA's glaucoma photographs are the larger ones
    widths, labels = stored["train_widths"], stored["train_labels"]
    assert widths.shape == (n_train,) and np.median(widths[labels == 1]) > 1.5 * np.median(widths[labels == 0])
    # the smaller files' bank doubles the stored views (card row 76)
    assert base_set.features_path("glaucoma").stat().st_size < 8_000_000
    size = sum(p.stat().st_size for p in base_set.BASE_SET_DIR.rglob("*") if p.is_file())
    assert size < 11_000_000  # small enough for the repository and the training image


def test_stored_features_match_the_trunk_and_stale_ones_say_how_to_regenerate(tmp_path):
    """Fails when the trunk or the preprocessing changed without `make base-set`."""
    hp = Hyperparameters()
    folder = base_set.find("glaucoma")
    _, pooled = base_set._pooled_model(hp)
    stored = np.load(base_set.features_path("glaucoma"))
    base_set.check_probes(pooled, stored, folder, hp.image_size)  # the committed files are current
    stale = dict(stored)
    stale["probe_features"] = stored["probe_features"] + np.float16(0.5)
    np.savez(tmp_path / "stale.npz", **stale)
    with pytest.raises(data_mod.DataLayoutError, match="make base-set"):
        base_set.check_probes(pooled, np.load(tmp_path / "stale.npz"), folder, hp.image_size)
    old_format = {k: v for k, v in stored.items() if k != "format"}  # the pre-invariant-head layout
    np.savez(tmp_path / "old.npz", **old_format)
    with pytest.raises(data_mod.DataLayoutError, match="make base-set"):
        base_set.check_probes(pooled, np.load(tmp_path / "old.npz"), folder, hp.image_size)


def test_the_base_set_trains_the_invariant_head_recipe(tmp_path):
    """Stored train features -> the same head as train.fit_invariant_head: C chosen on val,
    Platt-scaled, written into the dense unit; the threshold pools val and its re-acquired copies."""
    from sklearn.metrics import roc_auc_score

    from training.head import C_GRID
    from training.network import OUTPUT_LAYER

    hp = Hyperparameters(augmented_copies=1, head_c=0.0)
    folder = base_set.find("glaucoma")
    splits = base_set.eval_splits(folder)
    model, loaded, history, extras = base_set.fit_with_base_features(hp, splits, tmp_path, folder)
    assert extras["c"] in C_GRID and history["c"] == list(C_GRID)
    pooled_scores, pooled_labels = extras["val_pooled"]
    assert len(pooled_labels) == 2 * len(loaded["val"].labels)  # val as photographed + 1 copy
    weights, _ = model.get_layer(OUTPUT_LAYER).get_weights()
    assert np.abs(weights).sum() > 0
    test = loaded["test"]
    from screening.inference import mean_over_mirror
    from training.export import keras_probabilities

    # served with mirror test-time augmentation (card row 52): the threshold's val scores are the
    # mean logit over each photograph and its mirror image, as the exported model will serve them
    val = loaded["val"].images
    assert extras["mirror_tta"]
    served_val = mean_over_mirror(keras_probabilities(model, val), keras_probabilities(model, val[:, :, ::-1]))
    assert np.abs(pooled_scores[:len(val)] - served_val).max() < 1e-4
    assert np.abs(pooled_scores[:len(val)] - keras_probabilities(model, val)).max() > 1e-3  # not one view

    scores = keras_probabilities(model, test.images)
    assert roc_auc_score(test.labels, scores) > 0.75  # a trained head, not chance
    assert len(loaded["train"].labels) == 0  # no uploads: the train split is the stored features


def test_the_base_set_penalises_the_logit_spread_across_its_stored_reframings(tmp_path):
    """A job without ACRIMA fits the served recipe, reframing penalty included (card row 71): its
    dense unit's logit moves less across the stored reframings than an unpenalised head's."""
    from training.network import OUTPUT_LAYER

    folder = base_set.find("glaucoma")
    splits = base_set.eval_splits(folder)
    stored = np.load(base_set.features_path("glaucoma"))
    views = np.concatenate([stored["train_features"][:1], stored["train_reframing_features"]]).astype(np.float32)

    def spread(alpha: float) -> float:
        hp = Hyperparameters(augmented_copies=1, reframing_penalty=alpha)
        model, *_ = base_set.fit_with_base_features(hp, splits, tmp_path / str(alpha), folder)
        weights, bias = model.get_layer(OUTPUT_LAYER).get_weights()
        logits = views @ weights[:, 0] + bias[0]
        return float(np.median(logits.std(axis=0)) / np.ptp(logits.mean(axis=0)))

    assert Hyperparameters().reframing_penalty > 0  # the default recipe
    assert spread(0.1) < 0.8 * spread(0.0)


def test_hyperparameters_that_cannot_use_stored_features_are_recognised():
    assert base_set.compatible(Hyperparameters())
    assert not base_set.compatible(Hyperparameters(image_size=96))
    assert not base_set.compatible(Hyperparameters(pretrained=False))
    assert not base_set.compatible(Hyperparameters(fine_tune_from_block=9))
    # another trunk, other pooling or other batch statistics (model card rows 29-33, 44, 61) than the
    # stored features'
    for options in ({"backbone": "lite2"}, {"pool_radius_cells": 5.0}, {"antialias_from_block": -1},
                    {"adapt_batch_norm": True}, {"adapted_trunk": False}, {"standardise_feature_blocks": True}):
        assert not base_set.compatible(Hyperparameters(**options)), options
