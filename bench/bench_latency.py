"""Latency of the serving path, as medians, each beside a baseline taken in the same run.

    python bench/bench_latency.py [--rounds 30] [--no-keras] [--no-cloud]

Prints:
- cold start: LiteRT + model load vs `import tensorflow` in a fresh interpreter, and one
  API worker of the local cloud killed (-9) until its replacement has answered a prediction;
- the serving core on the sample images: decode + preprocess (and a 4000x3000 JPEG), the
  model for one image, a batch of 10 (per image), and the whole serving path (decode +
  preprocess + model) beside the way the replaced systems served, keras.models.load_model(...)
  then model.predict(x) per image, on the same images, as a ratio;
- POST /predict over HTTP on the local cloud, as a ratio to the model call.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples" / "acrima").glob("*/*.jpg"))


def fresh_interpreter_seconds(code: str, rounds: int) -> float:
    times = []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def median_ms(fn, rounds: int) -> float:
    fn()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def paired_ms(baseline, candidate, rounds: int) -> tuple[float, float, float]:
    """Both timed in every round, one right after the other: medians of each and of the rounds'
    ratio candidate/baseline, so that the machine's drift between rounds cancels in the ratio."""
    baseline(), candidate()
    pairs = []
    for _ in range(rounds):
        started = time.perf_counter()
        baseline()
        middle = time.perf_counter()
        candidate()
        pairs.append((middle - started, time.perf_counter() - middle))
    return (statistics.median(a for a, _ in pairs) * 1000, statistics.median(b for _, b in pairs) * 1000,
            statistics.median(b / a for a, b in pairs))


def large_jpeg() -> bytes:
    """A 4000x3000 camera-sized JPEG made from a sample (upscaled, so it holds a real fundus)."""
    from PIL import Image

    out = io.BytesIO()
    Image.open(SAMPLES[0]).convert("RGB").resize((4000, 3000), Image.Resampling.BILINEAR).save(out, "JPEG",
                                                                                               quality=90)
    return out.getvalue()


def worker_cold_start_s(rounds: int) -> float:
    """kill -9 the only API worker; seconds until a prediction is answered by its replacement."""
    import requests

    from localcloud.cloud import LocalCloud

    image = SAMPLES[0].read_bytes()
    headers = {"Content-Type": "image/jpeg"}
    times = []
    with tempfile.TemporaryDirectory() as state, LocalCloud(api_workers=1, state_dir=Path(state)) as cloud:
        headers["x-api-key"] = cloud.api_key
        requests.post(f"{cloud.api_url}/predict", data=image, headers=headers, timeout=30).raise_for_status()
        for _ in range(rounds):
            [pid] = cloud.api_worker_pids()
            started = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            while True:
                try:
                    response = requests.post(f"{cloud.api_url}/predict", data=image, headers=headers, timeout=30)
                    if response.status_code == 200 and cloud.api_worker_pids() != [pid]:
                        break
                except requests.ConnectionError:
                    pass
                time.sleep(0.005)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--cold-rounds", type=int, default=3)
    parser.add_argument("--no-keras", action="store_true", help="skip the TensorFlow baseline")
    parser.add_argument("--no-cloud", action="store_true", help="skip the local cloud's numbers")
    args = parser.parse_args()

    import numpy as np

    from screening.inference import GlaucomaModel
    from screening.preprocessing import preprocess_bytes

    images = [p.read_bytes() for p in SAMPLES]
    image = (ROOT / "samples/acrima/glaucoma/Im353_g_ACRIMA.jpg").read_bytes()
    print(f"cold start, median of {args.cold_rounds} fresh interpreters:")
    baseline = fresh_interpreter_seconds("pass", args.cold_rounds)
    litert = fresh_interpreter_seconds(
        "from screening.inference import GlaucomaModel; GlaucomaModel('models')", args.cold_rounds)
    print(f"  empty interpreter          {baseline * 1000:8.0f} ms")
    print(f"  LiteRT + model load        {litert * 1000:8.0f} ms")
    if not args.no_keras:
        try:
            tf = fresh_interpreter_seconds("import tensorflow", args.cold_rounds)
            print(f"  import tensorflow alone    {tf * 1000:8.0f} ms  ({tf / litert:.1f}x the LiteRT path)")
        except subprocess.CalledProcessError:
            print("  import tensorflow alone    (TensorFlow not installed)")
    if not args.no_cloud:
        cold = worker_cold_start_s(args.cold_rounds)
        print(f"  API worker kill -9 -> replacement's first prediction {cold * 1000:6.0f} ms  (target <= 300 ms)")

    model = GlaucomaModel(ROOT / "models", num_threads=1)
    tensors = np.stack([preprocess_bytes(data)[0] for data in images])
    one = tensors[:1]
    ten = np.repeat(one, 10, axis=0)
    big = large_jpeg()
    decode_ms = median_ms(lambda: [preprocess_bytes(d) for d in images], args.rounds) / len(images)
    big_ms = median_ms(lambda: preprocess_bytes(big), max(5, args.rounds // 3))
    model_ms, batch_ms, batch_ratio = paired_ms(lambda: model.probabilities_and_cams(one),
                                                lambda: model.probabilities_and_cams(ten), args.rounds)
    batch_ms /= 10
    batch_ratio /= 10
    serving_ms = median_ms(lambda: [model.probabilities_and_cams(preprocess_bytes(d)[0][None])
                                    for d in images], args.rounds) / len(images)
    print(f"serving core, one thread, median of {args.rounds} ({len(images)} sample JPEGs):")
    print(f"  decode + preprocess, samples     {decode_ms:8.2f} ms an image  (target <= 3 ms)")
    print(f"  decode + preprocess, 4000x3000   {big_ms:8.2f} ms  ({len(big)} bytes; target <= 40 ms)")
    print(f"  model call, 1 image              {model_ms:8.2f} ms  (1.0x)")
    print(f"  model call, batch of 10          {batch_ms:8.2f} ms an image  ({batch_ratio:.2f}x one image, "
          f"median of the rounds' ratios)")
    print(f"  serving path (decode + model)    {serving_ms:8.2f} ms an image")
    if not args.no_keras:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            import keras
        except ImportError:
            keras = None
        if keras is not None:
            from PIL import Image

            started = time.perf_counter()
            keras_model = keras.models.load_model(ROOT / "models" / "glaucoma.keras")
            load_s = time.perf_counter() - started
            size = keras_model.input_shape[1]

            def keras_way():  # the replaced services: resize with PIL, scale, model.predict per image
                for data in images:
                    picture = Image.open(io.BytesIO(data)).convert("RGB").resize((size, size))
                    keras_model.predict(np.asarray(picture, np.float32)[None] / 255.0, verbose=0)

            keras_ms = median_ms(keras_way, max(3, args.rounds // 5)) / len(images)
            print(f"  keras load_model + predict/image {keras_ms:8.2f} ms an image  "
                  f"({keras_ms / serving_ms:.1f}x the serving path; load_model {load_s:.1f} s)")
    if args.no_cloud:
        return
    import requests

    from localcloud.cloud import LocalCloud

    with tempfile.TemporaryDirectory() as state, LocalCloud(state_dir=Path(state)) as cloud:
        headers = {"x-api-key": cloud.api_key, "Content-Type": "image/jpeg"}
        session = requests.Session()
        http_ms = median_ms(lambda: session.post(f"{cloud.api_url}/predict", data=image, headers=headers,
                                                 timeout=30).raise_for_status(), args.rounds)
        list_ms = median_ms(lambda: session.get(f"{cloud.api_url}/predictions?limit=20", headers=headers,
                                                timeout=30).raise_for_status(), args.rounds)
    print(f"local cloud over HTTP, median of {args.rounds}:")
    print(f"  POST /predict                    {http_ms:8.1f} ms  ({http_ms / model_ms:.1f}x the model call)")
    print(f"  GET /predictions?limit=20        {list_ms:8.1f} ms")


if __name__ == "__main__":
    main()
