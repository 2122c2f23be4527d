"""The cataract head: its referable target, its one-dense-unit form, and the committed model on CSDI
test fixtures (the severity it serves follows the expert's order)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from screening import framing
from screening.inference import GlaucomaModel
from screening.preprocessing import preprocess_bytes
from training.cataract import SeverityHead, referable_target

ROOT = Path(__file__).resolve().parent.parent.parent
CSDI = ROOT / "tests" / "fixtures" / "csdi"


def test_referable_leaves_the_boundary_band_out():
    assert referable_target(np.array([0, 2.5, 3.0, 3.5, 4.0, 10])).tolist() == [0, 0, -1, -1, 1, 1]


def test_the_head_is_one_dense_unit_whose_logit_maps_back_to_the_severity():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(120, 8))
    severity = np.clip(5 + 2 * features[:, 0] - features[:, 1] + rng.normal(0, 0.3, 120), 0, 10)
    head = SeverityHead(alpha=1.0).fit(features, severity)
    kernel, bias = head.dense_weights()
    logit = features @ kernel + bias
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), head.probability(features), rtol=1e-4, atol=1e-6)
    mapping = head.severity_from_logit()
    np.testing.assert_allclose(mapping["slope"] * logit + mapping["intercept"], head.severity(features),
                               rtol=1e-3, atol=1e-3)
    assert np.corrcoef(head.severity(features), severity)[0, 1] > 0.9


def test_the_committed_model_orders_the_fixtures_like_the_expert_and_its_card_says_the_licence():
    model = GlaucomaModel(ROOT / "models" / "cataract")
    card = model.card
    assert card.condition == "cataract" and card.class_names == ("normal", "cataract")
    assert card.extras["input_framing"] == "full_field" and "CC BY-NC" in card.extras["data"]
    rows = list(csv.DictReader((CSDI / "annotations.csv").open()))
    batch = np.stack([preprocess_bytes((CSDI / r["file"]).read_bytes())[0] for r in rows])
    estimates = [framing.severity(p.probability, card.extras) for p in model.predict(batch)]
    experts = [float(r["severity"]) for r in rows]
    # the clear lens (2.0) lowest and below the referable ones (4.0, 7.0); every estimate near the expert's
    clear = experts.index(min(experts))
    assert all(estimates[clear] < e for i, e in enumerate(estimates) if i != clear)
    assert all(abs(e - x) <= 2.5 for e, x in zip(estimates, experts))
    report = json.loads((ROOT / "models" / "cataract" / "model.json").read_text())
    assert report["cross_validation"]["roc_auc"]["mean"] >= 0.90
    assert report["cross_validation"]["spearman"]["mean"] >= 0.75


def test_evaluate_cataract_scores_a_folder_with_a_severity_csv(capsys):
    from training.evaluate_cataract import main

    assert main(["--model", str(ROOT / "models" / "cataract"), "--data", str(CSDI)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 3 and report["spearman"] >= 0.5 and report["roc_auc"] == 1.0 and not report["skipped"]
