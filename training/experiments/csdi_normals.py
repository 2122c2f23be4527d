"""Another hospital's discs fitted as normals, and ACRIMA's photographs as smaller files, beside the
head's training photographs (card row 76): in the grouped 5-fold CV, out of fold on the invariance
suite, on CSDI's held-out patients and on the test split.

    ACRIMA_DIR=/path/to/acrima CSDI_DIR=/path/to/csdi PYTHONPATH=functions:. \
        python training/experiments/csdi_normals.py [--arms 0,1+w0.25+lowpx,1+w0.25,0+lowpx] \
        [--alpha 0.01] [--rounds 1000] [--by-sharpness]

Why: row 28 found that the served model calls a third of another camera's discs glaucoma (CSDI, a
Chinese hospital's cataract patients; none of its 187 expert descriptions mentions glaucoma), and
row 74 that blur's specificity (0.56 out of fold) is the suite's weakest figure. Every glaucoma
photograph the head is fitted on is ACRIMA's, as is every normal one, so nothing tells it that
another camera's look, or a soft photograph, is not glaucoma. CSDI's discs are that: another
camera, real blur (a cataract), no glaucoma. The risk is the converse shortcut (another camera, or
fewer pixels, means normal: CSDI's crops are small, median 184 px), the direction of the first
model's misses on other hospitals (card row 42), so ACRIMA's glaucoma sensitivity is also counted
out of fold with every photograph saved at 180 and 140 px (beyond_suite.py's variants), and
`lowpx` fits every training photograph as smaller files too, both labels.

An arm is `SHARE[+wW][+lowpx][+lowpxS][+dirW][+ampW][+frameW][+fitframe]`: the share of CSDI's 111
training-split discs fitted as normals (training/other_camera.py's crops and views, as
training.train fits them; 0: the served head until row 76), each counting W photographs (+wW,
default 1); +lowpx: ACRIMA's photographs as smaller files fitted too (features.low_pixel_bank, as
hp.low_pixel_copies); +lowpxS: those files' spread penalised with the reframings' instead; +dirW:
CSDI's mean shift from the fold's ACRIMA normals, per severity group, penalised at weight W
(penalised_head's `directions`) instead of any label; +ampW: every ACRIMA photograph's views under a
CSDI disc's amplitude spectrum (amplitude_mix) fitted too, with their labels, each counting W
photographs (default 1; card row 77); +frameW: the logit's variance across real reframings of CSDI's
training-split discs (framing_features) penalised at weight W beside the reframing penalty (card row
79); +fitframe: the fitted CSDI discs' first 4 re-acquisitions replaced by 4 real reframings of the
disc (card row 82). The first arm is the one the others are compared with (paired bootstrap over the 705
photographs). CSDI's val and test patients (held out) are scored by every fold's head (the mean
share called glaucoma at each fold's threshold, and the AUC of the fold's held-out glaucoma
photographs against them, and the move when reframed from the full field) and by the refitted served
recipe's head. Features are the served trunk's, cached in runs/csdi_normals_*.npz (about 5 minutes
the first time).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from screening.preprocessing import MODEL_INPUT_SIZE  # noqa: E402
from training import data as data_mod  # noqa: E402
from training.acquisition import VARIANTS, encode, resample  # noqa: E402
from training.crossval import summary_line  # noqa: E402
from training.experiments.csdi_discs import GROUPS  # noqa: E402
from training.experiments.erase_sharpness_cv import sharpness_groups, view_sharpness  # noqa: E402
from training.experiments.cv_suite import (all_photographs, headline, out_of_fold,  # noqa: E402
                                           print_paired_bootstrap, variant_table)
from training.experiments.head_suite import (served_head, served_pooled_model, split_indices,  # noqa: E402
                                             suite_summary)
from training.experiments.reframing_penalty import reframing_views  # noqa: E402
from training.experiments.tta_cv import SEED, cache_path  # noqa: E402
from training.features import load_photos, low_pixel_bank  # noqa: E402
from training.other_camera import disc_crops, normals_bank  # noqa: E402
from training.sagemaker import Hyperparameters  # noqa: E402
from training.train import more_photographs  # noqa: E402
from training.robustness import variant_inputs  # noqa: E402

COPIES = 6
LOW_PIXELS = (180, 140)  # the canary variants: ACRIMA saved at these shorter sides
AMP_MIX_MAX = 0.8  # the amplitude mix's largest share (at 1 the swapped spectrum leaves a speckle)


def csdi_features(csdi: Path) -> dict:
    """The served trunk's features of CSDI's disc crops: the training split's as training.train
    fits them (other_camera.normals_bank: (1 + COPIES) views and their mirror images), every disc's
    as served (view, mirror), and the severities and splits."""
    cache = cache_path(6, adapted=True).parent / "csdi_normals_bank.npz"
    if not cache.exists():
        crops, _ = disc_crops(csdi, MODEL_INPUT_SIZE)
        pooled = served_pooled_model()
        tensors = np.stack([c.tensor for c in crops])
        np.savez(cache, fit_bank=normals_bank(pooled, csdi, COPIES, SEED + 100, MODEL_INPUT_SIZE, mirror=True),
                 view=pooled.predict(tensors, verbose=0), mirror=pooled.predict(tensors[:, :, ::-1], verbose=0),
                 split=np.array([c.split for c in crops]),
                 severity=np.array([float(c.row["severity"]) for c in crops]))
    stored = np.load(cache)
    return {key: stored[key] for key in stored.files}


def low_pixel_features(paths: list[Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every ACRIMA photograph saved at LOW_PIXELS px on its shorter side, through serving."""
    cache = cache_path(6, adapted=True).parent / "csdi_normals_lowpx.npz"
    if not cache.exists():
        pooled = served_pooled_model()
        stored = {}
        for side in LOW_PIXELS:
            inputs = variant_inputs(paths, lambda image, s=side: encode(resample(image, s)))
            stored[f"saved_{side}/view"] = pooled.predict(inputs, verbose=0)
            stored[f"saved_{side}/mirror"] = pooled.predict(inputs[:, :, ::-1], verbose=0)
        np.savez(cache, **stored)
    stored = np.load(cache)
    return {f"saved_{side}": (stored[f"saved_{side}/view"], stored[f"saved_{side}/mirror"]) for side in LOW_PIXELS}


def low_pixel_banks(acrima: Path) -> np.ndarray:
    """(2 * (1 + COPIES), 705, D): every ACRIMA photograph saved as smaller files, as training.train
    fits them (features.low_pixel_bank, its seeds per split), and the mirror images."""
    from training import acquisition

    sides = acquisition.LOW_PIXEL_RANGE  # set_constants.py may change it (card row 80)
    suffix = "" if sides == (130.0, 240.0) else f"_{sides[0]:g}-{sides[1]:g}"
    cache = cache_path(6, adapted=True).parent / f"csdi_normals_lowpx_bank{suffix}.npz"
    if not cache.exists():
        splits, pooled = data_mod.read_splits_csv(acrima), served_pooled_model()
        banks = [low_pixel_bank(pooled, load_photos(splits[name].paths), COPIES, SEED + i, mirror=True)
                 for i, name in enumerate(("train", "val", "test"))]
        np.savez(cache, bank=np.concatenate(banks, axis=1))
    return np.load(cache)["bank"]


def amplitude_mix(x: np.ndarray, source: np.ndarray, lam: float) -> np.ndarray:
    """x's phase under an amplitude spectrum moved `lam` of the way to `source`'s, per channel (FACT's
    amplitude mix, Xu et al. 2021; FedDG's across fundus sites, Liu et al. 2021): the camera's look
    (illumination, contrast, sharpness) from the source, the anatomy from x."""
    from screening.preprocessing import circle_mask

    fx, fs = np.fft.fft2(x, axes=(0, 1)), np.fft.fft2(source, axes=(0, 1))
    amplitude = (1 - lam) * np.abs(fx) + lam * np.abs(fs)
    mixed = np.real(np.fft.ifft2(amplitude * np.exp(1j * np.angle(fx)), axes=(0, 1)))
    return (np.clip(mixed, 0, 1) * circle_mask(x.shape[0])).astype(np.float32)


def amplitude_mix_banks(acrima: Path, csdi: Path) -> np.ndarray:
    """(2 * (1 + COPIES), 705, D): every ACRIMA photograph and COPIES re-acquisitions of it, each under
    the amplitude spectrum of a random CSDI training-split disc (lam uniform in 0-AMP_MIX_MAX), and the mirror
    images: another camera's look on both labels."""
    cache = cache_path(6, adapted=True).parent / "csdi_normals_ampmix_bank.npz"
    if not cache.exists():
        from screening.preprocessing import ImageRejected, canonical_input
        from training.acquisition import random_acquisition

        sources = np.stack([c.tensor for c in disc_crops(csdi, MODEL_INPUT_SIZE, split="train")[0]])
        splits, pooled = data_mod.read_splits_csv(acrima), served_pooled_model()
        photos = [p for name in ("train", "val", "test") for p in load_photos(splits[name].paths)]
        plain, mirrored = [], []
        for c in range(1 + COPIES):
            inputs = []
            for k, photo in enumerate(photos):
                rng = np.random.default_rng([SEED + 300, c, k])
                try:
                    x = canonical_input(photo if c == 0 else random_acquisition(photo, rng))
                except ImageRejected:
                    x = canonical_input(photo)
                inputs.append(amplitude_mix(x, sources[rng.integers(len(sources))], rng.uniform(0, AMP_MIX_MAX)))
            inputs = np.stack(inputs)
            plain.append(pooled.predict(inputs, batch_size=64, verbose=0))
            mirrored.append(pooled.predict(inputs[:, :, ::-1], batch_size=64, verbose=0))
            print(f"  amplitude-mixed view {c} of {len(photos)} photographs", flush=True)
        np.savez(cache, bank=np.stack(plain + mirrored).astype(np.float32))
    return np.load(cache)["bank"]


# Real reframings of another camera's discs (card row 79): the crop side times these factors about
# the annotated disc, from the full-field photograph (real retina where ACRIMA's zoom out leaves
# black). Scored at FRAMINGS on the held-out patients; penalised at FRAMING_DRAWS random factors
# (log-uniform in FRAMING_RANGE, the centre moved up to FRAMING_SHIFT of the side) on the training ones.
FRAMINGS = (0.6, 0.8, 1.25, 1.6, 2.0)
FRAMING_RANGE, FRAMING_DRAWS, FRAMING_SHIFT = (0.55, 2.2), 4, 0.1


def framing_features(csdi: Path) -> dict:
    """The served trunk's features of every CSDI disc cropped from its full-field photograph at
    FRAMINGS (view and mirror image, the held-out patients' proxy) and, for all, at 1 and
    FRAMING_DRAWS random framings (the penalty's views), and the splits."""
    cache = cache_path(6, adapted=True).parent / "csdi_normals_framing.npz"
    if not cache.exists():
        from dataclasses import replace

        from screening import disc, framing
        from training.other_camera import LOCATOR_DIR, annotated_disc, annotated_photographs

        disc_to_crop = disc.Locator.load(LOCATOR_DIR).disc_to_crop
        fixed, drawn, splits = [], [], []
        for k, row, image, info, split in annotated_photographs(csdi):
            found, rng = annotated_disc(row, image, info), np.random.default_rng([SEED + 400, k])

            def view(factor, shift=(0.0, 0.0), found=found, image=image, info=info):
                side = found.diameter / disc_to_crop * factor
                moved = replace(found, x=found.x + shift[0] * side, y=found.y + shift[1] * side)
                return framing.disc_crop_input(image, info, moved, disc_to_crop / factor, MODEL_INPUT_SIZE)[1]

            fixed.append([view(f) for f in FRAMINGS])
            drawn.append([view(1.0)] + [view(float(np.exp(rng.uniform(*np.log(FRAMING_RANGE)))),
                                             tuple(rng.uniform(-FRAMING_SHIFT, FRAMING_SHIFT, 2)))
                                        for _ in range(FRAMING_DRAWS)])
            splits.append(split)
        pooled = served_pooled_model()
        fixed, drawn = np.stack(fixed, axis=1), np.stack(drawn, axis=1)  # (views, M, H, W, 3)
        np.savez(cache, view=np.stack([pooled.predict(v, verbose=0) for v in fixed]),
                 mirror=np.stack([pooled.predict(v[:, :, ::-1], verbose=0) for v in fixed]),
                 drawn=np.stack([pooled.predict(v, verbose=0) for v in drawn]), split=np.array(splits))
    stored = np.load(cache)
    return {key: stored[key] for key in stored.files}


def arm_option(options: list[str], prefix: str, absent: float, bare: float | None = None) -> float:
    """An arm's +PREFIXW option: W, `bare` when it has no number, `absent` without the option."""
    for option in options:
        if option.startswith(prefix):
            return float(option.removeprefix(prefix) or bare)
    return absent


def called_by_severity(p: np.ndarray, threshold: float, severity: np.ndarray) -> dict[str, float]:
    shares = {"all": float((p >= threshold).mean())}
    for name, low, high in GROUPS:
        inside = (severity >= low) & (severity <= high)
        shares[name] = float((p[inside] >= threshold).mean()) if inside.any() else float("nan")
    return shares


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", default="0,0.5,1",
                        help="the share of CSDI's training split fitted as normals, then +lowpx: ACRIMA's low-pixel "
                             "copies fitted too, +lowpxS: their spread penalised with the reframings', "
                             "+dirW: CSDI's shifts from ACRIMA's normals penalised at weight W, +wW: each CSDI "
                             "disc counts W photographs, +ampW: ACRIMA's views under CSDI's amplitude spectra fitted (weight W), "
                             "+frameW: CSDI's real reframings' spread penalised at weight W, +fitframe: "
                             "CSDI's fitted views include 4 real reframings")
    parser.add_argument("--alpha", type=float, default=0.01, help="the reframing penalty (served: 0.01)")
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--by-sharpness", action="store_true", help="the folds grouped by sharpness (card row 57)")
    args = parser.parse_args()
    acrima, csdi = Path(os.environ["ACRIMA_DIR"]), Path(os.environ["CSDI_DIR"])
    bank, mirror, labels, widths, paths, variants = all_photographs(acrima, VARIANTS)
    low_pixels = low_pixel_features(paths)
    reframed = reframing_views(acrima, bank[0])
    train, val, test = split_indices(data_mod.read_splits_csv(acrima), labels)
    test_variants = {name: (view[test], mirrored[test]) for name, (view, mirrored) in variants.items()}
    other = csdi_features(csdi)
    held_out = other["split"] != "train"
    order = np.random.default_rng(0).permutation(other["fit_bank"].shape[1])
    print(f"CSDI: {other['fit_bank'].shape[1]} training-split discs, {held_out.sum()} held out", flush=True)
    arms = {}
    fit_low_pixels = low_pixel_banks(acrima)
    amp_bank = amplitude_mix_banks(acrima, csdi) if "amp" in args.arms else None
    framed = framing_features(csdi)
    framed_out = framed["split"] != "train"
    fit_views = np.concatenate([bank, mirror])
    groups = sharpness_groups(np.log(view_sharpness(acrima)[0])) if args.by_sharpness else widths
    for arm in args.arms.split(","):
        share, *options = arm.split("+")
        chosen = order[:round(float(share) * len(order))]
        low = "lowpx" in options
        csdi_bank = other["fit_bank"]
        if "fitframe" in options:  # slots 1-4 (re-acquisitions) hold the disc's real reframings instead
            csdi_bank = csdi_bank.copy()
            csdi_bank[1:1 + FRAMING_DRAWS] = framed["drawn"][1:, framed["split"] == "train"]
        frame_weight, amp_weight = arm_option(options, "frame", 0.0), arm_option(options, "amp", 0.0, bare=1.0)
        direction_weight, csdi_weight = arm_option(options, "dir", 0.0), arm_option(options, "w", 1.0)
        spread = np.concatenate([reframed, fit_low_pixels[:1 + COPIES]]) if "lowpxS" in options else reframed

        def more_fit_bank(fit_idx, chosen=chosen, low=low, hp=Hyperparameters(other_camera_weight=csdi_weight),
                          amp_weight=amp_weight, csdi_bank=csdi_bank):
            """training.train's rows: the fold's smaller files, then the chosen CSDI discs (then the fold's
            amplitude-mixed views)."""
            rows = more_photographs(fit_low_pixels[:, fit_idx] if low else None, labels[fit_idx],
                                    csdi_bank[:, chosen] if len(chosen) else None, hp)
            if not amp_weight:
                return rows
            amp = (amp_bank[:, fit_idx], labels[fit_idx], np.full(len(fit_idx), amp_weight))
            return amp if rows is None else tuple(np.concatenate([r, a], axis=1 if r.ndim == 3 else 0)
                                                  for r, a in zip(rows, amp))

        def camera_directions(fit_idx, weight=direction_weight, frame_weight=frame_weight):
            """CSDI's training-split discs' mean per severity group against the fold's ACRIMA normals'
            (+dirW), and the spread of their real reframings about each disc's mean (+frameW: rows whose
            outer product is frame_weight times their covariance, as penalised_head's alpha * S)."""
            parts = []
            if weight:
                normal = fit_views[:, fit_idx[labels[fit_idx] == 0]].mean(axis=(0, 1))
                severity = other["severity"][other["split"] == "train"]
                parts.append(np.sqrt(weight) * np.stack([
                    other["fit_bank"][:, (severity >= lo) & (severity <= hi)].mean(axis=(0, 1)) - normal
                    for _, lo, hi in GROUPS]))
            if frame_weight:
                drawn = framed["drawn"][:, framed["split"] == "train"]
                centred = (drawn - drawn.mean(axis=0, keepdims=True)).reshape(-1, drawn.shape[-1])
                parts.append(np.sqrt(frame_weight / len(centred)) * centred)
            return np.concatenate(parts) if parts else None

        csdi_called, framing_moves = [], []

        def framing_figures(head, threshold):
            """CSDI's held-out discs reframed from the full field: p95 |dp| against the served
            framing and the share called glaucoma, per factor."""
            base = head.probabilities_over_mirror(other["view"][held_out], other["mirror"][held_out])
            figures = {}
            for j, factor in enumerate(FRAMINGS):
                p = head.probabilities_over_mirror(framed["view"][j, framed_out], framed["mirror"][j, framed_out])
                figures[f"x{factor} p95"] = float(np.quantile(np.abs(p - base), 0.95))
                figures[f"x{factor} called"] = float((p >= threshold).mean())
            return figures


        def score_csdi(fold, head, threshold, index):
            p = head.probabilities_over_mirror(other["view"][held_out], other["mirror"][held_out])
            csdi_called.append(called_by_severity(p, threshold, other["severity"][held_out]))
            # threshold-free: the fold's held-out glaucoma photographs against CSDI's held-out discs
            glaucoma = bank[0, index][labels[index] == 1], mirror[0, index][labels[index] == 1]
            csdi_called[-1]["cross-camera AUC"] = float(roc_auc_score(
                np.r_[np.zeros(len(p)), np.ones(len(glaucoma[0]))],
                np.r_[p, head.probabilities_over_mirror(*glaucoma)]))
            for name, (view, mirrored) in low_pixels.items():
                oof[name][index] = head.probabilities_over_mirror(view[index], mirrored[index])
            framing_moves.append(framing_figures(head, threshold))

        oof = {name: np.zeros(len(labels)) for name in low_pixels}
        result, suite = out_of_fold(bank, mirror, labels, groups, variants, args.alpha, spread,
                                    more_fit_bank=more_fit_bank, on_fold=score_csdi,
                                    penalty_directions=camera_directions)
        suite.update(oof)
        arms[arm] = suite
        glaucoma = labels == 1
        low_line = ", ".join(f"{name} sens {(suite[name][glaucoma] >= suite['threshold'][glaucoma]).mean():.3f} "
                        f"spec {(suite[name][~glaucoma] < suite['threshold'][~glaucoma]).mean():.3f}"
                        for name in low_pixels)
        called = {key: np.mean([c[key] for c in csdi_called]) for key in csdi_called[0]}
        print(f"arm {arm} ({len(chosen)} CSDI discs): CV {summary_line(result)}", flush=True)
        print(f"arm {arm}, out of fold: " + ", ".join(f"{k} {v:.3f}" for k, v in headline(labels, suite).items())
              + f"; {low_line}", flush=True)
        print(f"arm {arm}, CSDI held out called glaucoma (mean over folds): "
              + ", ".join(f"{k} {v:.0%}" for k, v in called.items() if "AUC" not in k)
              + f"; CSDI against ACRIMA's glaucoma, AUC {called['cross-camera AUC']:.3f}", flush=True)
        moves = {key: np.mean([m[key] for m in framing_moves]) for key in framing_moves[0]}
        print(f"arm {arm}, CSDI held out reframed (mean over folds): median p95 |dp| "
              f"{np.median([v for k, v in moves.items() if k.endswith('p95')]):.3f}; "
              + ", ".join(f"{k} {v:.3f}" if k.endswith("p95") else f"{k} {v:.0%}" for k, v in moves.items()),
              flush=True)
        print("\n".join(variant_table(labels, suite, (*VARIANTS, *low_pixels))), flush=True)
        head, threshold = served_head(bank, mirror, labels, train, val, alpha=args.alpha, spread_bank=spread,
                                      more_fit_bank=more_fit_bank(train), directions=camera_directions(train))
        summary = suite_summary(head, threshold, (bank[0, test], mirror[0, test]), labels[test], test_variants)
        p = head.probabilities_over_mirror(other["view"][held_out], other["mirror"][held_out])
        moves = framing_figures(head, threshold)
        print(f"arm {arm}, served recipe: {summary}; CSDI held out called glaucoma "
              + ", ".join(f"{k} {v:.0%}" for k, v in called_by_severity(
                  p, threshold, other["severity"][held_out]).items())
              + f"; reframed median p95 |dp| {np.median([v for k, v in moves.items() if k.endswith('p95')]):.3f}, "
              + ", ".join(f"{k} {v:.3f}" if k.endswith("p95") else f"{k} {v:.0%}" for k, v in moves.items()),
              flush=True)
    def figures(suite, pick):
        glaucoma = pick[labels[pick] == 1]
        return {**headline(labels, suite, pick),
                **{f"{name} sens": float((suite[name][glaucoma] >= suite["threshold"][glaucoma]).mean())
                   for name in low_pixels}}

    print_paired_bootstrap(labels, arms, args.rounds, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
