"""Latency of the serving path, as medians, each beside a baseline taken in the same run.

    python bench/bench_latency.py [--rounds 30]

Prints:
- cold start: importing the handler and loading the model (LiteRT) vs `import tensorflow`
  in a fresh interpreter (what a TensorFlow-based image would pay at init);
- warm: model call alone, the service (decode + model + record to DynamoDB), and
  POST /predict over HTTP on the local cloud; each also as a ratio to the model call.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]


def fresh_interpreter_seconds(code: str, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                       env={"PYTHONPATH": f"{ROOT / 'functions'}:{ROOT}", "TF_CPP_MIN_LOG_LEVEL": "3",
                            "PATH": "/usr/bin:/bin"})
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--cold-rounds", type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    import requests

    from localcloud.cloud import LocalCloud
    from screening.inference import GlaucomaModel
    from screening.preprocessing import preprocess_bytes

    image = (ROOT / "samples/acrima/glaucoma/Im353_g_ACRIMA.jpg").read_bytes()
    print(f"cold start, median of {args.cold_rounds} fresh interpreters:")
    baseline = fresh_interpreter_seconds("pass", args.cold_rounds)
    litert = fresh_interpreter_seconds(
        "from screening.inference import GlaucomaModel; GlaucomaModel('models')", args.cold_rounds)
    try:
        tf = fresh_interpreter_seconds("import tensorflow", args.cold_rounds)
    except subprocess.CalledProcessError:
        tf = float("nan")
    print(f"  empty interpreter          {baseline * 1000:8.0f} ms")
    print(f"  LiteRT + model load        {litert * 1000:8.0f} ms")
    print(f"  import tensorflow alone    {tf * 1000:8.0f} ms  ({tf / litert:.1f}x the LiteRT path)")

    model = GlaucomaModel(ROOT / "models")
    tensor = preprocess_bytes(image)[0][None]

    def median_ms(fn) -> float:
        fn()
        samples = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    model_ms = median_ms(lambda: model.probabilities_and_cams(tensor))
    decode_ms = median_ms(lambda: preprocess_bytes(image))
    batch = np.repeat(tensor, 10, axis=0)
    batch_ms = median_ms(lambda: model.probabilities_and_cams(batch))
    with LocalCloud() as cloud:
        headers = {"x-api-key": cloud.api_key, "Content-Type": "image/jpeg"}
        session = requests.Session()
        http_ms = median_ms(lambda: session.post(f"{cloud.api_url}/predict", data=image, headers=headers,
                                                 timeout=30).raise_for_status())
    print(f"warm, median of {args.rounds} ({len(image)} byte JPEG):")
    print(f"  model call, 1 image        {model_ms:8.1f} ms  (1.0x)")
    print(f"  model call, batch of 10    {batch_ms:8.1f} ms  ({batch_ms / model_ms:.1f}x, "
          f"{batch_ms / 10:.1f} ms an image)")
    print(f"  decode + preprocess        {decode_ms:8.1f} ms  ({decode_ms / model_ms:.1f}x)")
    print(f"  POST /predict over HTTP    {http_ms:8.1f} ms  ({http_ms / model_ms:.1f}x; target < 1000 ms)")


if __name__ == "__main__":
    main()
