"""Decode + preprocess cost on one core: the sample images and a 4000x3000 JPEG.

    PYTHONPATH=functions:. python bench/bench_preprocessing.py [--decode-side 224]

Prints medians for `preprocess_bytes` beside the previous way (full-size
decode, pad to square, resize), measured in the same run, and their ratio.
Times are the thread's CPU time (`time.thread_time`), i.e. the cost on one core,
so a machine shared with other jobs does not inflate them much (wall-clock
medians are printed beside them).
`--decode-side N` adds a row: the same canonical input from a decode at N px
(`decode_image`'s `min_side`) instead of DECODE_SIDE, to see what a smaller
decode would buy, and for how many images it changes the model input.
Targets (issues 7 and 11): <= 3 ms median on the samples, <= 40 ms on a
4000x3000 JPEG.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from screening.preprocessing import (  # noqa: E402
    DECODE_SIDE, MODEL_INPUT_SIZE, canonical_input, decode_image, preprocess_bytes)


def full_size_baseline(data: bytes) -> np.ndarray:
    """The replaced path: decode everything, pad to a square, then resize."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    side = max(image.size)
    canvas = Image.new("RGB", (side, side))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return np.asarray(canvas.resize((MODEL_INPUT_SIZE, MODEL_INPUT_SIZE), Image.Resampling.BILINEAR),
                      np.float32) / 255.0


def median_ms(function, payloads: list[bytes], repeats: int) -> tuple[float, float]:
    """(median CPU ms, median wall ms) per call."""
    for data in payloads:  # warm-up
        function(data)
    cpu, wall = [], []
    for _ in range(repeats):
        for data in payloads:
            started_cpu, started_wall = time.thread_time(), time.perf_counter()
            function(data)
            cpu.append((time.thread_time() - started_cpu) * 1000)
            wall.append((time.perf_counter() - started_wall) * 1000)
    return statistics.median(cpu), statistics.median(wall)


def camera_frame(sample: Path) -> bytes:
    """A disc photograph as a 4000x3000 camera frame (scaled up, black sides), JPEG q90."""
    photo = Image.open(sample).convert("RGB").resize((3000, 3000), Image.Resampling.BILINEAR)
    frame = Image.new("RGB", (4000, 3000))
    frame.paste(photo, (500, 0))
    buffer = io.BytesIO()
    frame.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decode-side", type=int, default=0,
                        help=f"also time a decode at this many px (the product decodes at {DECODE_SIDE})")
    args = parser.parse_args()
    samples = sorted((ROOT / "samples" / "acrima").glob("*/*.jpg"))
    sample_bytes = [p.read_bytes() for p in samples]
    frame = [camera_frame(samples[0])]
    print(f"decode + preprocess, median CPU ms on one core ({len(samples)} samples x 20, 4000x3000 x 15);"
          " wall-clock medians in brackets")
    print(f"{'input':16s} {'preprocess_bytes':>24s} {'full-size baseline':>26s} {'ratio':>7s}")
    for name, payloads, repeats, target in (("sample images", sample_bytes, 20, 3.0),
                                            ("4000x3000 JPEG", frame, 15, 40.0)):
        ours, ours_wall = median_ms(lambda d: preprocess_bytes(d), payloads, repeats)
        baseline, baseline_wall = median_ms(full_size_baseline, payloads, repeats)
        verdict = "meets" if ours <= target else "MISSES"
        print(f"{name:16s} {ours:10.2f} ms ({ours_wall:7.2f} ms) {baseline:10.2f} ms ({baseline_wall:8.2f} ms) "
              f"{baseline / ours:6.1f}x  ({verdict} the {target:g} ms target)")
        if args.decode_side:
            side = args.decode_side
            other, other_wall = median_ms(lambda d: canonical_input(decode_image(d, min_side=side)[0]),
                                          payloads, repeats)
            changed = [float(np.abs(canonical_input(decode_image(d, min_side=side)[0])
                                    - preprocess_bytes(d)[0]).mean()) for d in payloads]
            moved = [c for c in changed if c > 0]
            print(f"{'  decoded at ' + str(side):16s} {other:10.2f} ms ({other_wall:7.2f} ms)   "
                  f"model input differs for {len(moved)} of {len(payloads)}"
                  + (f" (mean |dx| {statistics.mean(moved):.4f} on [0, 1])" if moved else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
