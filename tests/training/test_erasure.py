"""Within-class erasure of the acquisition (training/erasure.py): it removes what the features say
about the set-up inside each class, keeps what tells the classes apart, folds into one dense unit,
and the grouped CV applies it per fold."""

import numpy as np
from sklearn.metrics import roc_auc_score

from training.crossval import cross_validate
from training.erasure import width_bins, within_class_erasure
from training.head import fit_head


def acquisition_confounded(n: int = 1200, seed: int = 0):
    """A true signal, a set-up cue (the native width's bin) that the label shares, and noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    large = np.where(rng.random(n) < 0.85, labels, 1 - labels)  # glaucoma photographs mostly large
    widths = np.where(large == 1, rng.integers(800, 1400, n), rng.integers(250, 650, n))
    features = rng.normal(size=(n, 40))  # more dimensions than width bins, as the trunk's features
    features[:, 0] += 1.5 * labels  # the disc
    features[:, 1] += widths / 150.0  # the camera
    features[:, 2] += 0.5 * labels + widths / 600.0  # both
    return features, labels, widths


def test_erased_features_hold_no_within_class_information_about_the_set_up():
    x, y, widths = acquisition_confounded()
    concept = width_bins(widths, 200)
    erased = within_class_erasure(x, concept, y).apply(x)
    xc, zc = erased.copy(), concept.copy()
    for label in (0, 1):
        xc[y == label] -= xc[y == label].mean(axis=0)
        zc[y == label] -= zc[y == label].mean(axis=0)
    assert np.abs(xc.T @ zc).max() / len(x) < 1e-10
    before = np.abs(np.corrcoef(x[:, 1], widths)[0, 1])
    after = np.abs(np.corrcoef(erased[y == 0, 1], widths[y == 0])[0, 1])
    assert before > 0.8 and after < 0.05


def test_the_label_survives_and_the_set_up_no_longer_predicts_it():
    x, y, widths = acquisition_confounded()
    erasure = within_class_erasure(x, width_bins(widths, 200), y)
    head = fit_head(erasure.apply(x), y, c=1.0)
    xt, yt, wt = acquisition_confounded(seed=1)
    # a test camera where the set-up says nothing about the label
    flipped = np.random.default_rng(2).permutation(len(yt))
    xt[:, 1] = xt[flipped, 1]
    erased_auc = roc_auc_score(yt, head.logits(erasure.apply(xt)))
    assert erased_auc > 0.8
    assert erased_auc > roc_auc_score(yt, fit_head(x, y, 1.0).logits(xt))


def test_the_erasure_folds_into_the_dense_unit():
    x, y, widths = acquisition_confounded()
    erasure = within_class_erasure(x, width_bins(widths, 100), y)
    head = fit_head(erasure.apply(x), y, c=0.1)
    folded = erasure.fold_into(head)
    assert np.allclose(folded.logits(x), head.logits(erasure.apply(x)), atol=1e-9)


def test_cross_validation_erases_per_fold():
    x, y, widths = acquisition_confounded(n=600, seed=3)
    bank = np.stack([x, x + np.random.default_rng(4).normal(scale=0.2, size=x.shape)])
    plain = cross_validate(bank, y, widths, c=1.0)
    erased = cross_validate(bank, y, widths, c=1.0, erase_concept=width_bins(widths, 200))
    assert [f["n_test"] for f in plain["folds"]] == [f["n_test"] for f in erased["folds"]]
    assert erased["summary"]["roc_auc"]["mean"] != plain["summary"]["roc_auc"]["mean"]
    assert erased["summary"]["roc_auc"]["mean"] > 0.75


def test_the_training_job_writes_an_erased_head_into_the_model():
    """fit_head_on_features with --erase-acquisition-bin-px: the dense unit written into the model
    reads raw features, and its logit holds no within-class information about the width bins."""
    from training.network import OUTPUT_LAYER, build_classifier
    from training.sagemaker import Hyperparameters
    from training.train import fit_head_on_features

    model = build_classifier(input_size=96, dropout=0.0, backbone_weights=None)
    dims = model.get_layer(OUTPUT_LAYER).get_weights()[0].shape[0]
    rng = np.random.default_rng(8)

    def bank(n: int):
        labels = rng.integers(0, 2, n)
        widths = np.where(rng.random(n) < 0.85, labels, 1 - labels) * 600 + rng.integers(250, 650, n)
        views = rng.normal(size=(2, n, dims))
        views[:, :, 0] += 1.5 * labels
        views[:, :, 1] += widths / 150.0
        return views, labels, widths

    (train, y, widths), (val, val_y, _) = bank(400), bank(120)

    def within_class_cov(erase_px: int) -> float:
        hp = Hyperparameters(erase_acquisition_bin_px=erase_px, head_c=0.1, mirror_tta=False)
        fit_head_on_features(model, train, y, val, val_y, hp, widths)
        weights, bias = model.get_layer(OUTPUT_LAYER).get_weights()
        logits = (train.reshape(-1, dims) @ weights[:, 0] + bias[0]).astype(np.float64)
        labels, concept = np.tile(y, 2), np.tile(width_bins(widths, 100), (2, 1))
        for label in (0, 1):
            logits[labels == label] -= logits[labels == label].mean()
            concept[labels == label] -= concept[labels == label].mean(axis=0)
        return float(np.abs(logits @ concept).max() / len(logits))

    erased_cov, plain_cov = within_class_cov(100), within_class_cov(0)
    assert erased_cov < 1e-4 and plain_cov > 0.02  # seeded: about 1e-9 against 0.09


def test_max_directions_erases_only_the_strongest():
    x, y, widths = acquisition_confounded()
    concept = width_bins(widths, 200)
    every = within_class_erasure(x, concept, y)
    strongest = within_class_erasure(x, concept, y, max_directions=1)

    def removed(erasure) -> int:
        return int(np.linalg.matrix_rank(np.eye(x.shape[1]) - erasure.matrix, tol=1e-8))

    assert removed(strongest) == 1 < removed(every) <= concept.shape[1]
    # the camera's own feature carries the strongest within-class width signal: it goes first
    assert np.abs(np.corrcoef(strongest.apply(x)[y == 0, 1], widths[y == 0])[0, 1]) < 0.05


def test_a_per_view_concept_follows_the_fitted_rows_order():
    """erase_concept (views, N, k): each fitted row gets its own view's value (sharpness differs
    between a photograph and its blurred copy), in the order cross_validate stacks the rows."""
    from training.crossval import _fit_concept

    views, n = 3, 5
    concept = np.arange(views * n, dtype=float).reshape(views, n, 1)  # value = view * n + image
    fit_idx = np.array([4, 1, 2])
    rows = np.arange(views * n).reshape(views, n)[:, fit_idx].reshape(-1)  # the bank's row order
    assert np.array_equal(_fit_concept(concept, fit_idx, views)[:, 0], rows)
    per_image = np.arange(n, dtype=float)[:, None]
    assert np.array_equal(_fit_concept(per_image, fit_idx, views)[:, 0], np.tile(fit_idx, views))


def test_cross_validation_refuses_a_per_view_concept_of_another_bank():
    x, y, widths = acquisition_confounded(n=200, seed=5)
    bank = np.stack([x, x])
    try:
        cross_validate(bank, y, widths, c=1.0, erase_concept=np.zeros((3, len(y), 1)))
    except ValueError as error:
        assert "3 views" in str(error)
    else:
        raise AssertionError("a concept for 3 views was taken for a 2-view bank")
