"""The promotion gate: held-out uploads, the decision rule, both models scored by the serving path.

(A second condition trained by the job: tests/training/test_training_image.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from training import data as data_mod
from training import gate

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"


@pytest.fixture(autouse=True)
def restore_class_names():
    saved = data_mod.CLASS_NAMES
    yield
    data_mod.CLASS_NAMES = saved


def test_held_out_uploads_are_fixed_by_name_and_never_trained_on(tmp_path, sample_files):
    for label, files in sample_files.items():
        for site in ("clinic-a", "clinic-b"):
            (tmp_path / label / site).mkdir(parents=True)
            for f in files:
                shutil.copy(f, tmp_path / label / site / f.name)
        shutil.copy(files[0], tmp_path / label / "loose.jpg")  # <label>/<file>: no site given
    uploads = gate.read_uploads(tmp_path, ("normal", "glaucoma"), 0.5)
    train = {(s.label, s.site, s.path.name) for s in uploads.train}
    held = {(s.label, s.site, s.path.name) for s in uploads.held_out}
    assert not train & held and len(train) + len(held) == 2 * (2 * 6 + 1)
    assert {s.site for s in uploads.held_out + uploads.train} == {"clinic-a", "clinic-b", "unspecified"}
    again = gate.read_uploads(tmp_path, ("normal", "glaucoma"), 0.5)
    assert {(s.label, s.site, s.path.name) for s in again.held_out} == held  # the same every job
    # More uploads later never move an old one into training.
    (tmp_path / "normal" / "clinic-a" / "new.jpg").write_bytes(sample_files["normal"][0].read_bytes())
    later = gate.read_uploads(tmp_path, ("normal", "glaucoma"), 0.5)
    assert held <= {(s.label, s.site, s.path.name) for s in later.held_out}
    splits = {"train": data_mod.LabelledFiles()}
    gate.add_training_uploads(splits, uploads)
    assert {p.name for p in splits["train"].paths} <= {n for _, _, n in train}
    assert len(splits["train"]) == len(uploads.train)


def figures(auc, sensitivity):
    return {"overall": {"roc_auc": auc, "sensitivity": sensitivity}}


@pytest.mark.parametrize("challenger,champion,promote", [
    (figures(0.95, 0.9), figures(0.955, 0.9), True),  # within the margin
    (figures(0.93, 0.9), figures(0.955, 0.9), False),  # more than the margin below
    (figures(0.99, 0.80), figures(0.9, 0.9), False),  # sensitivity under the floor
    (figures(0.80, 0.90), None, True),  # no champion: the floor alone
    (figures(None, 0.90), figures(0.9, 0.9), False),  # AUC undefined
])
def test_decision_rule(challenger, champion, promote):
    assert gate.decide(challenger, champion, auc_margin=0.01, min_sensitivity=0.85)[0] is promote


def test_both_models_are_scored_by_the_serving_path_on_the_same_images(tmp_path, sample_files):
    """Champion = the bundled model; challenger = the same network with a stricter card threshold."""
    challenger = tmp_path / "challenger"
    challenger.mkdir()
    shutil.copy(MODELS / "glaucoma.tflite", challenger)
    card = json.loads((MODELS / "model.json").read_text())
    # above the three glaucoma samples' P (0.999 to 0.99995, samples/acrima/README.md): sensitivity < 0.85
    (challenger / "model.json").write_text(json.dumps({**card, "version": "strict", "threshold": 0.99999}))
    test = data_mod.LabelledFiles()
    for label, name in enumerate(("normal", "glaucoma")):
        for f in sample_files[name][:3]:
            test.add(f, label)
    samples = gate.evaluation_samples({"test": test}, gate.Uploads())
    result = gate.run_gate(challenger, MODELS, samples, auc_margin=0.01, min_sensitivity=0.85,
                           condition="glaucoma", class_names=("normal", "glaucoma"))
    assert result["champion"]["overall"]["roc_auc"] == result["challenger"]["overall"]["roc_auc"]  # same scores
    assert result["challenger"]["overall"]["sensitivity"] < 0.85 and result["promote"] is False
    assert set(result["challenger"]["per_site"]) == {"base"} and result["evaluation_set"]["images"] == 6
    written = json.loads((challenger / "gate.json").read_text())
    assert written["reason"] == result["reason"]
    assert json.loads((challenger / "model.json").read_text())["class_names"] == ["normal", "glaucoma"]


def test_the_report_travels_with_the_model_even_when_it_is_written_inside_it(tmp_path, sample_files):
    """A job's report dir is elsewhere (copied into the model folder); `make model` writes it into
    models/report itself, which must not fail the job after the model is written."""
    challenger = tmp_path / "challenger"
    (challenger / "report").mkdir(parents=True)
    shutil.copy(MODELS / "glaucoma.tflite", challenger)
    shutil.copy(MODELS / "model.json", challenger)
    test = data_mod.LabelledFiles()
    for label, name in enumerate(("normal", "glaucoma")):
        test.add(sample_files[name][0], label)
    samples = gate.evaluation_samples({"test": test}, gate.Uploads())
    elsewhere = tmp_path / "output"
    elsewhere.mkdir()
    (elsewhere / "metrics.json").write_text('{"from": "the job"}')
    for report_dir in (elsewhere, challenger / "report"):
        gate.run_gate(challenger, None, samples, auc_margin=0.01, min_sensitivity=0.85, condition="glaucoma",
                      class_names=("normal", "glaucoma"), report_dir=report_dir)
        assert json.loads((challenger / "report" / "metrics.json").read_text()) == {"from": "the job"}
