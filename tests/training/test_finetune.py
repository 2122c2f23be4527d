"""Fine-tuning the top of the trunk on cached lower-trunk activations (training/finetune.py)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from screening.preprocessing import preprocess_bytes  # noqa: E402
from training import finetune  # noqa: E402
from training.network import build_classifier  # noqa: E402


@pytest.fixture(scope="module")
def small_set(sample_files):
    from PIL import Image

    paths = sample_files["normal"][:3] + sample_files["glaucoma"][:3]
    images = np.stack([preprocess_bytes(p.read_bytes(), size=64)[0] for p in paths])
    photos = [Image.open(p).convert("RGB") for p in paths]
    return photos, images, np.array([0, 0, 0, 1, 1, 1])


def test_cut_model_reproduces_the_classifier_and_fine_tuning_moves_only_the_top(small_set):
    photos, images, labels = small_set
    keras.utils.set_random_seed(0)
    model = build_classifier(input_size=64)
    lower, upper = finetune.lower_model(model), finetune.upper_model(model)
    bank = finetune.activation_bank(lower, photos, images, copies=2, seed=1, log=lambda *_: None)
    assert bank.shape[:2] == (3, 6) and bank.dtype == np.float16
    # lower then upper = the classifier's own pooled features (float16 cache aside)
    pooled = finetune.pooled_from_activations(upper, bank)[0]
    whole = keras.Model(model.inputs, model.get_layer("gap").output).predict(images, verbose=0)
    np.testing.assert_allclose(pooled, whole, rtol=0.02, atol=0.02)
    # a re-acquired copy is not the photograph
    assert np.abs(bank[1].astype(np.float32) - bank[0]).mean() > 1e-3

    before = {w.path: w.numpy().copy() for w in model.weights}
    history = finetune.fine_tune(model, bank, labels, bank, labels, epochs=1, learning_rate=1e-3,
                                 batch_size=4, keep_best=False, log=lambda *_: None)
    assert history["epoch"] == [0, 1] and history["best_epoch"] == 1
    after = {w.path: w.numpy() for w in model.weights}
    changed = {path for path, value in before.items() if not np.array_equal(value, after[path])}
    assert any(p.startswith("block9_") for p in changed) and any("glaucoma_probability" in p for p in changed)
    # the cached part, and every batch norm, stay as they were
    assert not [p for p in changed if p.startswith(("stem_", "block0_", "block3_", "block4_"))]
    assert not [p for p in changed if "_bn/" in p]


def test_training_job_fine_tunes_the_top_when_asked(tmp_path, sample_files):
    """--fine-tune-top-epochs takes the cached-activation path and still writes a served model."""
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for label, files in sample_files.items():
        (tmp_path / "data" / label).mkdir(parents=True)
        for f in files[:4]:
            shutil.copy(f, tmp_path / "data" / label / f.name)
    result = subprocess.run(
        [sys.executable, "-m", "training.train", "--data", str(tmp_path / "data"), "--image-size", "64",
         "--augmented-copies", "1", "--fine-tune-top-epochs", "1", "--val-fraction", "0.25",
         "--model-dir", str(tmp_path / "model"), "--output-data-dir", str(tmp_path / "report"),
         "--checkpoint-dir", str(tmp_path / "ckpt")],
        cwd=root, env={**os.environ, "OPT_ML_ROOT": str(tmp_path / "opt_ml"), "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lower-trunk activations" in result.stdout and "fine-tune epoch 1" in result.stdout
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["history"]["fine_tune"]["epoch"] == [0, 1]
    assert (tmp_path / "model" / "glaucoma.tflite").stat().st_size > 1e6


def test_fine_tuning_a_blur_pooled_trunk_keeps_its_low_pass_fixed(small_set):
    """The binomial low-pass of an antialiased trunk (card rows 32, 37-39) is not a weight to learn."""
    photos, images, labels = small_set
    keras.utils.set_random_seed(0)
    model = build_classifier(input_size=64, antialias_from_block=-1)
    lower, upper = finetune.lower_model(model), finetune.upper_model(model)
    bank = finetune.activation_bank(lower, photos, images, copies=1, seed=1, log=lambda *_: None)
    before = {w.path: w.numpy().copy() for w in model.weights}
    finetune.fine_tune(model, bank, labels, bank, labels, epochs=1, learning_rate=1e-3,
                       batch_size=4, keep_best=False, log=lambda *_: None)
    after = {w.path: w.numpy() for w in model.weights}
    changed = {path for path, value in before.items() if not np.array_equal(value, after[path])}
    assert any(p.startswith("block5_") for p in changed)
    assert any(p.startswith("block5_blur_pool") for p in before)
    assert not [p for p in changed if "blur_pool" in p or "_bn/" in p]


def test_anchored_consistency_pulls_copies_to_the_starting_models_clean_probability(small_set):
    """With `anchor`, the consistency target is fixed (the start's p on the clean photograph): the
    copies end nearer it than under the pairwise term, which only asks two copies to agree (card row 70)."""
    photos, images, labels = small_set
    keras.utils.set_random_seed(0)
    model = build_classifier(input_size=64)
    lower, upper = finetune.lower_model(model), finetune.upper_model(model)
    bank = finetune.activation_bank(lower, photos, images, copies=2, seed=1, log=lambda *_: None)
    dense = model.get_layer("glaucoma_probability")
    pooled = finetune.pooled_from_activations(upper, bank)
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(pooled.shape[-1], 1)).astype(np.float32)
    kernel *= 1.5 / np.std(pooled[0] @ kernel)  # starting logits spread about 0: p away from 0 and 1
    bias = -np.mean(pooled[0] @ kernel, keepdims=True)[0]
    start_weights = [w.copy() for w in model.get_weights()]

    def distance_to_start(anchor: bool) -> float:
        model.set_weights(start_weights)
        dense.set_weights([kernel, bias])
        start = finetune.pooled_from_activations(upper, bank) @ kernel[:, 0] + bias[0]
        finetune.fine_tune(model, bank, labels, bank, labels, epochs=3, learning_rate=3e-5,
                           consistency=100.0, batch_size=6, keep_best=False, anchor=anchor, seed=0,
                           log=lambda *_: None)
        k, b = dense.get_weights()
        after = 1 / (1 + np.exp(-(finetune.pooled_from_activations(upper, bank) @ k[:, 0] + b[0])))
        return float(np.abs(after - 1 / (1 + np.exp(-start[0]))).mean())

    # measured: about 0.08 anchored; pairwise, every p drifts together towards 1 (about 0.4)
    assert distance_to_start(anchor=True) < 0.5 * distance_to_start(anchor=False)
