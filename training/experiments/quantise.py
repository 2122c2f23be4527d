"""The committed model quantised three ways (dynamic-range int8 weights, full int8 with 100 training
images as the representative set, float16 weights): model call on one LiteRT thread, test AUC and
|dp| against the float32 file, all through serving's GlaucomaModel.

    ACRIMA_DIR=/path/to/acrima PYTHONPATH=functions:. python training/experiments/quantise.py

Writes the quantised files under runs/quant_<name>/ (not served).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2  # noqa: E402

from screening.inference import GlaucomaModel  # noqa: E402
from training import data as data_mod  # noqa: E402
from training.export import serving_module  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def converters(model: keras.Model, representative: np.ndarray) -> dict[str, bytes]:
    module = serving_module(model)
    frozen = convert_variables_to_constants_v2(module.serving.get_concrete_function())

    def converter(**settings) -> bytes:
        c = tf.lite.TFLiteConverter.from_concrete_functions([frozen], module)
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        for key, value in settings.items():
            setattr(c, key, value)
        return c.convert()

    def samples():
        for i in range(len(representative)):
            yield [representative[i:i + 1]]

    fp16 = tf.lite.TargetSpec(supported_types=[tf.float16])
    return {"dynamic-range int8": converter(), "full int8": converter(representative_dataset=samples),
            "float16": converter(target_spec=fp16)}


def call_ms_and_scores(model_dir: Path, images: np.ndarray) -> tuple[float, np.ndarray]:
    served = GlaucomaModel(model_dir, num_threads=1)
    for _ in range(5):
        served.probabilities_and_cams(images[:1])
    cpu = []
    for _ in range(40):
        started = time.thread_time()
        served.probabilities_and_cams(images[:1])
        cpu.append((time.thread_time() - started) * 1000)
    scores = np.concatenate([served.probabilities_and_cams(images[i:i + 1])[0] for i in range(len(images))])
    return statistics.median(cpu), scores


def main() -> int:
    splits = data_mod.read_splits_csv(Path(os.environ["ACRIMA_DIR"]))
    train, test = data_mod.load_images(splits["train"]), data_mod.load_images(splits["test"])
    representative = train.images[np.random.default_rng(0).choice(len(train.labels), 100, replace=False)]
    base_ms, base = call_ms_and_scores(ROOT / "models", test.images)
    print(f"float32 (served): {base_ms:.2f} ms CPU, test AUC {roc_auc_score(test.labels, base):.4f}")
    for name, flatbuffer in converters(keras.models.load_model(ROOT / "models" / "glaucoma.keras"),
                                       representative).items():
        folder = ROOT / "runs" / f"quant_{name.replace(' ', '_')}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / "glaucoma.tflite").write_bytes(flatbuffer)
        shutil.copy(ROOT / "models" / "model.json", folder)
        ms, scores = call_ms_and_scores(folder, test.images)
        delta = np.abs(scores - base)
        print(f"{name}: {len(flatbuffer) / 1e6:.1f} MB, {ms:.2f} ms CPU ({ms / base_ms:.2f}x float32), "
              f"test AUC {roc_auc_score(test.labels, scores):.4f}, |dp| median {np.median(delta):.4f} "
              f"max {np.max(delta):.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
