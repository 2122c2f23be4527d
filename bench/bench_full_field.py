"""Full-field serving budget: disc location + crop + glaucoma screening of a 2592x1728 JPEG, and the
cataract model, on one core after decode (issue 13 targets: <= 25 ms and <= 15 ms).

    PYTHONPATH=functions:. python bench/bench_full_field.py [--repeats 30]

Prints medians in ms, and each as a ratio to the glaucoma model call alone (same run, same core).
The photograph is a CSDI test fixture upscaled to 2592x1728 (a fundus camera's frame size).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core: no BLAS threads (set before numpy loads)

import argparse
import io
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from screening import disc
from screening.inference import GlaucomaModel
from screening.preprocessing import decode_image, to_model_input

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "csdi" / "cataract_019.jpg"


def median_ms(fn, repeats: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    buffer = io.BytesIO()
    Image.open(FIXTURE).convert("RGB").resize((2592, 1728), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=92)
    image, _ = decode_image(buffer.getvalue())
    glaucoma = GlaucomaModel(ROOT / "models", num_threads=1)
    cataract = GlaucomaModel(ROOT / "models" / "cataract", num_threads=1)
    locator = disc.Locator.load()
    tensor = to_model_input(image, 224)[np.newaxis]

    def locate_crop_screen():
        found = locator.locate(image)
        crop = disc.crop(image, found.crop_box(locator.disc_to_crop))
        glaucoma.predict(to_model_input(crop, 224)[np.newaxis])

    baseline = median_ms(lambda: glaucoma.predict(tensor), args.repeats)
    located = median_ms(lambda: locator.locate(image), args.repeats)
    full = median_ms(locate_crop_screen, args.repeats)
    cataract_ms = median_ms(lambda: cataract.predict(tensor), args.repeats)
    whole_field = median_ms(lambda: cataract.predict(to_model_input(image, 224)[np.newaxis]), args.repeats)
    print(f"image 2592x1728, one core, medians of {args.repeats}")
    print(f"glaucoma model call (baseline)          {baseline:7.2f} ms  1.00x")
    print(f"disc location                           {located:7.2f} ms  {located / baseline:.2f}x")
    print(f"location + crop + glaucoma screening    {full:7.2f} ms  {full / baseline:.2f}x   target <= 25 ms")
    print(f"cataract model call                     {cataract_ms:7.2f} ms  {cataract_ms / baseline:.2f}x   target <= 15 ms")
    print(f"cataract: resize whole field + call     {whole_field:7.2f} ms  {whole_field / baseline:.2f}x")


if __name__ == "__main__":
    main()
