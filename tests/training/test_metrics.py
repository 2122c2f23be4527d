import math

import numpy as np
import pytest

from training.metrics import (METRIC_DEFINITIONS, choose_threshold, classification_report,
                              print_metric, sensitivity_at_specificity)


def test_report_matches_hand_computed_values():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.35, 0.8, 0.3, 0.6, 0.7, 0.9])
    r = classification_report(labels, scores, threshold=0.5)
    # predicted positive: 0.8 (FP), 0.6, 0.7, 0.9 (TP); 0.3 is a FN
    assert r["confusion_matrix"] == {"tn": 3, "fp": 1, "fn": 1, "tp": 3}
    assert r["accuracy"] == pytest.approx(6 / 8)
    assert r["sensitivity"] == pytest.approx(3 / 4)
    assert r["specificity"] == pytest.approx(3 / 4)
    assert r["precision"] == pytest.approx(3 / 4)
    assert r["f1"] == pytest.approx(3 / 4)
    # AUC by pair counting: 0.3 beats 2 negatives, 0.6 and 0.7 beat 3, 0.9 beats 4
    assert r["roc_auc"] == pytest.approx(12 / 16)
    # with specificity >= 0.95 no negative may score above the cut: 0.8 must be
    # below, so only 0.9 is caught -> sensitivity 1/4
    assert r["sensitivity_at_95_specificity"] == pytest.approx(1 / 4)


def test_single_class_set_reports_nan_auc_not_a_crash():
    r = classification_report(np.array([1, 1, 1]), np.array([0.2, 0.7, 0.9]), 0.5)
    assert math.isnan(r["roc_auc"]) and r["sensitivity"] == pytest.approx(2 / 3)


def test_threshold_keeps_required_sensitivity_on_val():
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    scores = np.array([0.05, 0.1, 0.2, 0.45, 0.55, 0.4, 0.6, 0.7, 0.8, 0.9])
    t = choose_threshold(labels, scores, min_sensitivity=0.9)
    predicted = scores >= t
    assert predicted[labels == 1].mean() >= 0.9
    # the best such cut lies between 0.2 and 0.4 (catches the 0.4 positive, spares three negatives)
    assert 0.2 < t <= 0.4
    assert sensitivity_at_specificity(labels, scores, 0.95) == pytest.approx(0.8)


def test_metric_lines_match_their_sagemaker_regexes(capsys):
    import re

    print_metric("val_auc", 0.98765)
    line = capsys.readouterr().out.strip()
    regex = next(d["Regex"] for d in METRIC_DEFINITIONS if d["Name"] == "val_auc")
    assert float(re.search(regex, line).group(1)) == pytest.approx(0.98765)
    assert all(1 <= len(d["Regex"]) <= 500 and 1 <= len(d["Name"]) <= 255 for d in METRIC_DEFINITIONS)
