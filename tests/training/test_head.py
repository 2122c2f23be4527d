"""The linear head: folding standardisation and calibration into one dense unit,
ECE, and cross-validation folds that keep acquisition groups apart."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.crossval import WIDTH_BIN, acquisition_groups, cross_validate, size_balance_weights
from training.head import (LinearHead, expected_calibration_error, fit_head, platt_scaling,
                           reliability_table)


def synthetic(n=400, d=12, seed=0, shift=1.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    features = rng.normal(size=(n, d)) * rng.uniform(0.5, 5, d) + rng.uniform(-3, 3, d)
    features[:, 0] += shift * labels * 3
    return features, labels


def test_fitted_head_separates_and_is_one_affine_map():
    x, y = synthetic()
    head = fit_head(x, y, c=1.0)
    assert roc_auc_score(y, head.logits(x)) > 0.9
    assert np.allclose(head.logits(x), x @ head.weights + head.bias)


def test_platt_scaling_calibrates_an_overconfident_head():
    x, y = synthetic(seed=1)
    head = fit_head(x, y, c=1.0)
    overconfident = head.calibrated(6.0, 0.0)
    calibrated = platt_scaling(overconfident, *synthetic(seed=2))
    xt, yt = synthetic(seed=3)
    assert expected_calibration_error(yt, calibrated.probabilities(xt)) < 0.6 * expected_calibration_error(
        yt, overconfident.probabilities(xt))


def test_expected_calibration_error_known_values():
    labels = np.array([0, 0, 1, 1])
    assert expected_calibration_error(labels, np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(0.0)
    assert expected_calibration_error(labels, np.array([0.55, 0.55, 0.55, 0.55])) == pytest.approx(0.05)
    table = reliability_table(labels, np.array([0.05, 0.15, 0.85, 0.95]))
    assert [row["n"] for row in table] == [1, 1, 1, 1]


def test_head_written_into_the_model_gives_its_logits(sample_files):
    import keras

    from training.data import LabelledFiles, load_images
    from training.features import pooled_model
    from training.head import write_into
    from training.network import build_classifier

    files = LabelledFiles()
    for p in sample_files["normal"][:2] + sample_files["glaucoma"][:2]:
        files.add(p, 0)
    images = load_images(files, size=96).images
    model = build_classifier(input_size=96, dropout=0.0)
    features = pooled_model(model).predict(images, verbose=0)
    head = LinearHead(np.random.default_rng(0).normal(size=features.shape[1]) * 0.1, -0.3)
    write_into(model, head)
    assert np.allclose(model.predict(images, verbose=0)[:, 0], head.probabilities(features), atol=1e-5)
    keras.backend.clear_session()


def test_mirror_bank_holds_the_same_views_mirrored(sample_files):
    """mirror_views: the head's extra rows are the trunk's features of exactly the views it already
    sees, flipped left to right; the views as taken are unchanged by asking for them."""
    import keras

    from training.data import LabelledFiles, load_images
    from training.features import feature_bank, load_photos, pooled_model, split_mirror
    from training.network import build_classifier

    files = LabelledFiles()
    for p in sample_files["normal"][:2] + sample_files["glaucoma"][:2]:
        files.add(p, 0)
    images = load_images(files, size=96)
    pooled = pooled_model(build_classifier(input_size=96, dropout=0.0))
    photos = load_photos(images.paths)
    plain_only = feature_bank(pooled, photos, images.images, 1, seed=3, log=lambda _: None)
    both = feature_bank(pooled, photos, images.images, 1, seed=3, log=lambda _: None, mirror=True)
    plain, mirrored = split_mirror(both, True)
    assert both.shape == (4, 4, plain_only.shape[-1])
    assert np.allclose(plain, plain_only, atol=1e-5)
    assert np.allclose(mirrored[0], pooled.predict(images.images[:, :, ::-1], verbose=0), atol=1e-5)
    assert not np.allclose(mirrored, plain, atol=1e-3)  # a fundus photograph is not symmetric
    keras.backend.clear_session()


def test_cross_validation_keeps_width_groups_apart():
    x, y = synthetic(n=300, seed=4, shift=3.0)
    rng = np.random.default_rng(5)
    widths = np.where(y == 1, rng.integers(300, 1400, len(y)), rng.integers(250, 650, len(y)))
    bank = np.stack([x, x + rng.normal(scale=0.3, size=x.shape)])
    held_out = []
    result = cross_validate(bank, y, widths, c=1.0,
                            on_fold=lambda k, head, threshold, index: held_out.append((k, head, threshold, index)))
    assert len(result["folds"]) == 5
    # on_fold sees each fold's own head and threshold, and every image is held out exactly once
    assert sorted(np.concatenate([index for *_, index in held_out])) == list(range(len(y)))
    for (k, head, threshold, index), fold in zip(held_out, result["folds"]):
        assert k == fold["fold"] and threshold == fold["threshold"] and len(index) == fold["n_test"]
        assert roc_auc_score(y[index], head.probabilities(x[index])) == pytest.approx(fold["roc_auc"])
    seen = [set(f["width_bins_test"]) for f in result["folds"]]
    for i in range(5):
        for j in range(i + 1, 5):
            assert not seen[i] & seen[j]  # a width bin lies in one test fold only
    assert set().union(*seen) == {int(g) * WIDTH_BIN for g in acquisition_groups(widths)}
    assert result["summary"]["roc_auc"]["mean"] > 0.85 and result["summary"]["roc_auc"]["sd"] >= 0


def test_size_balance_weights_count_rare_size_label_pairs_more():
    widths = np.array([300, 320, 350, 310, 900, 950, 920, 330])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])  # one small glaucoma photograph among big ones
    w = size_balance_weights(widths, labels, power=1.0, bin_px=200)
    assert w.mean() == pytest.approx(1.0)
    assert w[7] == pytest.approx(4 * w[0]) and w[7] == pytest.approx(3 * w[4])
    assert np.allclose(size_balance_weights(widths, labels, power=0.0, bin_px=200), 1.0)


def test_size_balance_makes_the_head_lean_less_on_a_size_cue():
    """A feature that tracks image size (and so, in training, the label) against a weaker true
    signal: balancing label within size bins shrinks the head's weight on the size cue."""
    rng = np.random.default_rng(7)
    n = 2000
    labels = rng.integers(0, 2, n)
    large = np.where(rng.random(n) < 0.85, labels, 1 - labels)  # glaucoma photographs mostly large
    widths = np.where(large == 1, rng.integers(800, 1400, n), rng.integers(250, 650, n))
    signal = labels + rng.normal(scale=1.0, size=n)
    size_cue = large + rng.normal(scale=0.3, size=n)
    x = np.stack([signal, size_cue], axis=1)

    def reliance(power: float) -> float:
        head = fit_head(x, labels, c=1.0, sample_weight=size_balance_weights(widths, labels, power, 200))
        weights = head.weights * x.std(axis=0)
        return abs(weights[1]) / abs(weights[0])

    assert reliance(0.5) < 0.8 * reliance(0.0) and reliance(1.0) < reliance(0.5)


def test_the_training_recipe_applies_the_size_balance_only_when_asked():
    """training.train.fit_head_on_features: --size-balance reaches the fitted head (given the
    photographs' widths); 0 (the default) leaves the head as it was."""
    import keras

    from training.network import OUTPUT_LAYER, build_classifier
    from training.sagemaker import Hyperparameters
    from training.train import fit_head_on_features

    model = build_classifier(input_size=96, dropout=0.0)
    dims = model.get_layer(OUTPUT_LAYER).get_weights()[0].shape[0]
    rng = np.random.default_rng(3)
    n = 240
    labels = rng.integers(0, 2, n)
    large = np.where(rng.random(n) < 0.85, labels, 1 - labels)
    widths = np.where(large == 1, rng.integers(800, 1400, n), rng.integers(250, 650, n))
    bank = rng.normal(size=(2, n, dims))
    bank[..., 0] += labels
    bank[..., 1] += 2 * large
    val = rng.normal(size=(2, 60, dims))
    val_y = rng.integers(0, 2, 60)
    val[..., 0] += val_y

    def dense_weights(hp, train_widths):
        fit_head_on_features(model, bank, labels, val, val_y, hp, train_widths)
        return model.get_layer(OUTPUT_LAYER).get_weights()[0][:, 0].copy()

    plain = dense_weights(Hyperparameters(), widths)
    assert np.allclose(dense_weights(Hyperparameters(), None), plain)
    balanced = dense_weights(Hyperparameters(size_balance=1.0), widths)
    assert abs(balanced[1] / balanced[0]) < 0.8 * abs(plain[1] / plain[0])  # less weight on the size cue
    keras.backend.clear_session()


def viewed(n=300, views=4, seed=5):
    """(views, N, D) features: a label signal, and a nuisance that moves between a photograph's views
    and, in these photographs, happens to go with the label."""
    x, y = synthetic(n=n, d=8, seed=seed, shift=0.4)
    rng = np.random.default_rng(seed + 1)
    bank = np.repeat(x[None], views, axis=0) + rng.normal(scale=0.1, size=(views, n, 8))
    bank[:, :, 1] += rng.normal(scale=2.0, size=(views, n)) + 1.5 * y
    return bank, y


def test_the_penalised_head_without_a_penalty_is_fit_head():
    from training.head import penalised_head

    bank, y = viewed()
    plain = fit_head(bank.reshape(-1, bank.shape[-1]), np.tile(y, len(bank)), c=0.3)
    same = penalised_head(bank, y, c=0.3, alpha=0.0)
    x = bank.reshape(-1, bank.shape[-1])
    assert np.abs(plain.logits(x) - same.logits(x)).max() < 1e-3 * np.abs(plain.logits(x)).max()


def test_the_invariance_penalty_steadies_the_logit_across_a_photographs_views():
    from training.head import penalised_head

    bank, y = viewed()

    def spread(head):  # the logit's standard deviation across views, per photograph, over its range
        logits = np.stack([head.logits(view) for view in bank])
        return np.median(logits.std(axis=0)) / np.ptp(logits.mean(axis=0))

    plain, steady = penalised_head(bank, y, 0.3, 0.0), penalised_head(bank, y, 0.3, 1.0)
    assert spread(steady) < 0.5 * spread(plain)
    assert abs(steady.weights[1]) < 0.2 * abs(plain.weights[1])  # the nuisance is what it gave up


def test_the_penalty_reads_its_spread_from_the_views_it_is_given():
    """With spread_bank, S comes from those views (reframings, card row 71), not the fitted ones: a
    nuisance that moves only in the spread bank is dropped, one that moves only in the fitted rows kept."""
    from training.head import penalised_head

    bank, y = viewed()
    still = np.repeat(bank[:1], len(bank), axis=0)  # the fitted rows: the first view four times
    reframed = still.copy()
    reframed[:, :, 1] += np.random.default_rng(3).normal(scale=2.0, size=reframed.shape[:2])
    plain = penalised_head(still, y, 0.3, 0.0)
    given = penalised_head(still, y, 0.3, 1.0, spread_bank=reframed)
    own = penalised_head(still, y, 0.3, 1.0)  # the fitted rows do not move: nothing to penalise
    assert abs(given.weights[1]) < 0.2 * abs(plain.weights[1])
    assert own.weights[1] == pytest.approx(plain.weights[1], rel=0.05)


def test_cross_validation_penalises_the_spread_of_each_folds_own_photographs():
    bank, y = viewed(n=400)
    widths = np.random.default_rng(9).integers(200, 1400, len(y))
    still = np.repeat(bank[:1], 2, axis=0)
    reframed = np.repeat(bank[:1], 3, axis=0)
    reframed[:, :, 1] += np.random.default_rng(4).normal(scale=2.0, size=reframed.shape[:2])
    plain = cross_validate(still, y, widths, c=0.3)
    penalised = cross_validate(still, y, widths, c=0.3, invariance_penalty=1.0, penalty_bank=reframed)
    # the nuisance (which goes with the label here) is dropped, so its AUC on these images falls
    assert penalised["summary"]["roc_auc"]["mean"] < plain["summary"]["roc_auc"]["mean"] - 0.01
    with pytest.raises(IndexError):
        cross_validate(still, y, widths, c=0.3, invariance_penalty=1.0, penalty_bank=reframed[:, :10])


def test_cross_validation_takes_a_weight_per_fitted_row():
    """fit_weights may answer per image (tiled over the views) or per fitted row: zero weight on
    every view but the first is the head fitted on the first view alone."""
    bank, y = viewed(n=400)
    widths = np.random.default_rng(9).integers(200, 1400, len(y))
    first_only = cross_validate(bank, y, widths, c=0.3,
                                fit_weights=lambda index: np.concatenate([np.ones(len(index)),
                                                                          np.zeros(3 * len(index))]))
    one_view = cross_validate(bank, y, widths, c=0.3, fit_bank=bank[:1])
    assert (first_only["summary"]["roc_auc"]["mean"]
            == pytest.approx(one_view["summary"]["roc_auc"]["mean"], abs=2e-3))
    with pytest.raises(ValueError, match="weights for"):
        cross_validate(bank, y, widths, c=0.3, fit_weights=lambda index: np.ones(len(index) + 1))


def test_a_photographs_weight_counts_as_that_many_copies_of_it():
    """photo_weights (another camera's photographs counting less, card row 76): weight 2 is the
    photograph fitted twice, weight 0 the photograph left out."""
    from training.head import penalised_head

    bank, y = viewed(n=120)
    weights = np.ones(len(y))
    weights[:30], weights[30:60] = 2.0, 0.0
    weighted = penalised_head(bank, y, 0.3, 0.1, photo_weights=weights)
    index = np.r_[np.arange(30), np.arange(30), np.arange(60, 120)]
    copied = penalised_head(bank[:, index], y[index], 0.3, 0.1, spread_bank=bank)
    left_out = penalised_head(bank[:, index], y[index], 0.3, 0.1, spread_bank=bank,
                              photo_weights=np.r_[np.zeros(30), np.ones(90)])
    x = bank.reshape(-1, bank.shape[-1])
    scale = np.abs(copied.logits(x)).max()  # the same head but for the features' standardisation
    assert np.abs(weighted.logits(x) - copied.logits(x)).max() < 0.02 * scale
    assert np.abs(left_out.logits(x) - copied.logits(x)).max() > 0.05 * scale


def test_a_penalised_direction_no_longer_moves_the_logit():
    """directions (another camera's mean shift, card row 76): the head's logit stops changing along
    them, whatever else it reads."""
    from training.head import penalised_head

    bank, y = viewed()
    shift = np.zeros(bank.shape[-1])
    shift[[0, 1]] = 1.0, 2.0
    plain = penalised_head(bank, y, 0.3, 0.01)
    held = penalised_head(bank, y, 0.3, 0.01, directions=shift[None])
    assert abs(plain.weights @ shift) > 0.3
    assert abs(held.weights @ shift) < 0.05 * abs(plain.weights @ shift)


def test_cross_validation_fits_each_fold_on_the_photographs_it_is_given_besides_its_own():
    """more_fit_bank: photographs from outside the folds (another camera's normals, card row 76)
    join every fold's fitting rows, and their weights count with the penalty."""
    bank, y = viewed(n=400)
    widths = np.random.default_rng(9).integers(200, 1400, len(y))
    outside = bank[:, y == 0][:, :100].copy()
    outside[:, :, 1] += 3.0  # feature 1 goes with glaucoma; these normals have much of it
    seen, heads = [], {}

    def more(fit_idx, weight=1.0):
        seen.append(len(fit_idx))
        return outside, np.zeros(100, int), np.full(100, weight)

    def first_head(name):
        return lambda k, head, threshold, index: heads.setdefault(name, head)

    cross_validate(bank, y, widths, c=0.3, invariance_penalty=0.01, on_fold=first_head("plain"))
    for weight in (1.0, 0.0):
        cross_validate(bank, y, widths, c=0.3, invariance_penalty=0.01, on_fold=first_head(weight),
                       more_fit_bank=lambda index, w=weight: more(index, w))
    assert len(seen) == 10 and all(250 < n < 320 for n in seen)  # each fold's own fitting images

    def reliance(head):  # on feature 1 against the label's own feature (Platt scaling aside)
        return head.weights[1] / head.weights[0]

    assert reliance(heads[1.0]) < 0.5 * reliance(heads["plain"])  # the outside normals were fitted
    assert reliance(heads[0.0]) == pytest.approx(reliance(heads["plain"]), rel=0.1)
    with pytest.raises(ValueError, match="invariance_penalty"):
        cross_validate(bank, y, widths, c=0.3, more_fit_bank=more)
