"""One-image model call on one LiteRT thread (serving budget: <= 15 ms).

    PYTHONPATH=functions:. python bench/bench_model_call.py
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from screening.inference import GlaucomaModel  # noqa: E402

model = GlaucomaModel(ROOT / "models", num_threads=1)
size = model.card.input_size
image = np.random.default_rng(0).random((1, size, size, 3), dtype=np.float32)
for _ in range(5):
    model.probabilities_and_cams(image)
wall, cpu = [], []
for _ in range(50):
    started_wall, started_cpu = time.perf_counter(), time.thread_time()
    model.probabilities_and_cams(image)
    wall.append((time.perf_counter() - started_wall) * 1000)
    cpu.append((time.thread_time() - started_cpu) * 1000)
print(f"model call, one image, one thread: median {statistics.median(cpu):.2f} ms CPU, "
      f"{statistics.median(wall):.2f} ms wall (min {min(wall):.2f}); files "
      f"{sum(p.stat().st_size for p in (ROOT / 'models').glob('glaucoma.*')) / 1e6:.1f} MB")
