"""The promotion gate, run inside the training job, after the challenger is exported.

Champion (the serving model, given as the `champion` channel) and challenger
(this job's model) are scored by the same code (the serving path: LiteRT on
the TFLite file, each at its own input size, each at its own card's
threshold) on the same fixed evaluation images:

- the base test split (site "base");
- a held-out share of each site's labelled uploads. Which upload is held out
  depends only on a hash of its site and file name, so an image once held out
  is held out in every later job and never enters training.

Promote only when the challenger's AUC is not lower than the champion's by
more than `gate_auc_margin` and its sensitivity at its own threshold is at
least `gate_min_sensitivity`. The verdict and both models' figures, overall
and per site, go to gate.json in the model folder (so it travels in
model.tar.gz with the model it judges).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from screening.inference import CARD_FILE, GlaucomaModel
from screening.training_contract import DEFAULT_SITE, GATE_FILE
from training import data as data_mod
from training import metrics as metrics_mod

BASE_SITE = "base"
FIGURES = ("n", "roc_auc", "sensitivity", "specificity", "accuracy", "threshold")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    site: str


@dataclass
class Uploads:
    """Labelled uploads (`<label>/<site>/<file>` or `<label>/<file>`), split once and for all."""

    train: list[Sample] = field(default_factory=list)
    held_out: list[Sample] = field(default_factory=list)
    only_data: bool = False  # no base data in this job: val is carved from the uploads
    base_set: Path | None = None  # train on the base set's stored features (training/base_set.py)


def configure_classes(condition: str, positive_class: str) -> tuple[str, str]:
    """The job's class names, (negative, positive): `normal` and the condition's positive class."""
    names = ("normal", positive_class or condition)
    data_mod.CLASS_NAMES = names  # data.py reads its folders by these names
    return names


def is_held_out(site: str, name: str, fraction: float) -> bool:
    digest = hashlib.sha256(f"{site}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def read_uploads(root: Path | None, class_names: tuple[str, str], holdout_fraction: float) -> Uploads:
    uploads = Uploads()
    if root is None or not Path(root).is_dir():
        return uploads
    for label, name in enumerate(class_names):
        folder = Path(root) / name
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.suffix.lower() not in data_mod.IMAGE_SUFFIXES:
                continue
            relative = path.relative_to(folder).parts
            site = relative[0] if len(relative) > 1 else DEFAULT_SITE
            sample = Sample(path, label, site)
            (uploads.held_out if is_held_out(site, path.name, holdout_fraction) else uploads.train).append(sample)
    return uploads


def add_training_uploads(splits: dict[str, data_mod.LabelledFiles], uploads: Uploads) -> None:
    """The uploads' training share joins the train split (never the held-out share)."""
    train = splits.setdefault("train", data_mod.LabelledFiles())
    for sample in uploads.train:
        train.add(sample.path, sample.label)


def job_splits(resolve, args, hp, uploads: Uploads) -> dict[str, data_mod.LabelledFiles]:
    """The job's splits (train.resolve_splits) plus the uploads' training share. Without a data
    channel: the bundled base set (val and test images; train as stored features when the
    hyperparameters fit them) plus the uploads; with no base set either, the uploads alone."""
    from training import base_set

    base = base_set.find(hp.condition) if args.data is None and args.train is None else None
    if base is not None:
        splits = base_set.eval_splits(base)
        add_training_uploads(splits, uploads)
        if base_set.compatible(hp):
            uploads.base_set = base
        elif not uploads.train:
            raise data_mod.DataLayoutError(
                "these hyperparameters cannot use the base set's stored features (frozen pretrained trunk "
                "at its image size only) and there are no uploads to train on")
        return splits
    if args.data is None and args.train is None and uploads.train:
        splits = {"train": data_mod.LabelledFiles()}
        add_training_uploads(splits, uploads)
        splits["train"], splits["val"] = data_mod.stratified_split(splits["train"], hp.val_fraction, hp.seed)
        uploads.only_data = True
        return splits
    splits = resolve(args, hp)
    add_training_uploads(splits, uploads)
    return splits


def fit(train, hp, splits: dict, checkpoint_dir: Path, uploads: Uploads, other_camera: Path | None = None):
    """train.train, or the base set's stored features plus the uploads when the job uses them
    (`other_camera`: the folder of another hospital's normal discs, training/other_camera.py)."""
    if uploads.base_set is not None:
        from training import base_set

        return base_set.fit_with_base_features(hp, splits, checkpoint_dir, uploads.base_set, other_camera)
    return train(hp, splits, checkpoint_dir, other_camera)


def evaluation_samples(splits: dict[str, data_mod.LabelledFiles], uploads: Uploads) -> list[Sample]:
    """The base test split (its val when it has no test split) and the held-out uploads."""
    test = splits.get("test") or (None if uploads.only_data else splits.get("val"))
    base = [Sample(p, label, BASE_SITE) for p, label in zip(test.paths, test.labels)] if test else []
    return base + uploads.held_out


def score(model_dir: Path, samples: list[Sample], batch_size: int = 32) -> tuple[np.ndarray, np.ndarray, list]:
    """The serving model's probabilities for the samples it can read: (scores, labels, sites)."""
    model = GlaucomaModel(model_dir)
    files = data_mod.LabelledFiles()
    for s in samples:
        files.add(s.path, s.label)
    loaded = data_mod.load_images(files, size=model.card.input_size)
    site_of = {s.path: s.site for s in samples}
    scores = np.concatenate([model.probabilities_and_cams(loaded.images[i:i + batch_size])[0]
                             for i in range(0, len(loaded.images), batch_size)])
    return scores, loaded.labels, [site_of[p] for p in loaded.paths]


def _clean(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def figures(scores: np.ndarray, labels: np.ndarray, sites: list[str], threshold: float) -> dict:
    """Overall and per-site figures at the model's own threshold."""

    def subset(mask: np.ndarray) -> dict:
        report = metrics_mod.classification_report(labels[mask], scores[mask], threshold)
        return {k: _clean(report[k]) for k in FIGURES}

    site_array = np.asarray(sites)
    return {"overall": subset(np.ones(len(labels), bool)),
            "per_site": {site: subset(site_array == site) for site in sorted(set(sites))}}


def decide(challenger: dict, champion: dict | None, auc_margin: float, min_sensitivity: float) -> tuple[bool, str]:
    new = challenger["overall"]
    sensitivity = new["sensitivity"]
    if sensitivity is None or sensitivity < min_sensitivity:
        return False, f"challenger sensitivity {sensitivity} is below the floor {min_sensitivity}"
    if champion is None:
        return True, "no champion to compare with; the sensitivity floor is met"
    new_auc, old_auc = new["roc_auc"], champion["overall"]["roc_auc"]
    if new_auc is None:
        return False, "the evaluation set lacks one of the classes; AUC undefined"
    if old_auc is not None and new_auc < old_auc - auc_margin:
        return False, f"challenger AUC {new_auc:.4f} is more than {auc_margin} below the champion's {old_auc:.4f}"
    return True, (f"challenger AUC {new_auc:.4f} vs champion {old_auc if old_auc is None else round(old_auc, 4)} "
                  f"(margin {auc_margin}); sensitivity {sensitivity:.3f} >= {min_sensitivity}")


def run_gate(model_dir: Path, champion_dir: Path | None, samples: list[Sample], auc_margin: float,
             min_sensitivity: float, condition: str, class_names: tuple[str, str],
             report_dir: Path | None = None) -> dict:
    """Score both models, decide, and write gate.json (and the card's condition) into model_dir."""
    model_dir = Path(model_dir)
    card_path = model_dir / CARD_FILE
    card = json.loads(card_path.read_text())
    card.update(condition=condition, class_names=list(class_names), positive_class=class_names[1])
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    if not samples:
        raise data_mod.DataLayoutError("the gate has no evaluation images (no test split, no held-out uploads)")

    challenger_scores, labels, sites = score(model_dir, samples)
    challenger = {"version": card["version"], **figures(challenger_scores, labels, sites, card["threshold"])}
    champion = None
    if champion_dir is not None and (Path(champion_dir) / CARD_FILE).is_file():
        champion_card = json.loads((Path(champion_dir) / CARD_FILE).read_text())
        champion_classes = tuple(champion_card.get("class_names") or ("normal", "glaucoma"))
        if champion_classes != tuple(class_names):
            raise data_mod.DataLayoutError(
                f"the champion answers {champion_classes}, this job trains {tuple(class_names)}")
        scores, champion_labels, champion_sites = score(Path(champion_dir), samples)
        champion = {"version": champion_card["version"],
                    **figures(scores, champion_labels, champion_sites, champion_card["threshold"])}
    promote, reason = decide(challenger, champion, auc_margin, min_sensitivity)
    site_counts: dict[str, int] = {}
    for site in sites:
        site_counts[site] = site_counts.get(site, 0) + 1
    gate = {"promote": promote, "reason": reason, "condition": condition,
            "rule": {"auc_margin": auc_margin, "min_sensitivity": min_sensitivity},
            "evaluation_set": {"images": len(labels), "per_site": site_counts,
                               "fingerprint": hashlib.sha256("\n".join(sorted(
                                   f"{s.site}/{s.path.name}" for s in samples)).encode()).hexdigest()[:16]},
            "challenger": challenger, "champion": champion}
    (model_dir / GATE_FILE).write_text(json.dumps(gate, indent=2) + "\n")
    report = model_dir / "report" / "metrics.json"
    if report_dir is not None and (Path(report_dir) / "metrics.json").is_file():
        report.parent.mkdir(exist_ok=True)
        if (Path(report_dir) / "metrics.json").resolve() != report.resolve():  # `make model`: the same file
            shutil.copy(Path(report_dir) / "metrics.json", report)

    def number(value) -> float:
        return float("nan") if value is None else float(value)

    metrics_mod.print_metric("gate_challenger_auc", number(challenger["overall"]["roc_auc"]))
    metrics_mod.print_metric("gate_champion_auc", number((champion or {}).get("overall", {}).get("roc_auc")))
    metrics_mod.print_metric("gate_challenger_sensitivity", number(challenger["overall"]["sensitivity"]))
    metrics_mod.print_metric("gate_promote", 1.0 if promote else 0.0)
    print(f"gate: {'promote' if promote else 'reject'}: {reason}", flush=True)
    return gate
