"""One-image model call on one LiteRT thread (serving budget: <= 15 ms).

    PYTHONPATH=functions:. python bench/bench_model_call.py [MODEL_DIR ...] [--rounds N] [--one-view]

With several model folders (say, a candidate trunk beside the served one), they are timed in
alternating rounds in one process, so the shared machine's slow spells fall on all of them;
each line gives the per-round medians, their median and the ratio to the first folder's. A call
is what serving runs: with the card's mirror test-time augmentation, two passes (the photograph and
its mirror image; card, experiments 51-52). With --one-view each folder is also timed with the
augmentation off, one pass, in the same rounds.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from screening.inference import GlaucomaModel  # noqa: E402


def one_round(model: GlaucomaModel, image: np.ndarray, calls: int = 50) -> tuple[float, float, float]:
    """(median CPU ms, median wall ms, min wall ms) of `calls` one-image calls."""
    for _ in range(5):
        model.probabilities_and_cams(image)
    wall, cpu = [], []
    for _ in range(calls):
        started_wall, started_cpu = time.perf_counter(), time.thread_time()
        model.probabilities_and_cams(image)
        wall.append((time.perf_counter() - started_wall) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
    return statistics.median(cpu), statistics.median(wall), min(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dirs", nargs="*", type=Path, default=[ROOT / "models"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--one-view", action="store_true",
                        help="also time each model with test-time augmentation off (one pass)")
    args = parser.parse_args()
    models = [GlaucomaModel(d, num_threads=1) for d in args.model_dirs]
    size = models[0].card.input_size
    if any(m.card.input_size != size for m in models):
        raise SystemExit("the models' input sizes differ")
    image = np.random.default_rng(0).random((1, size, size, 3), dtype=np.float32)
    arms = list(zip(args.model_dirs, models))
    if args.one_view:
        arms += [(d, GlaucomaModel(d, num_threads=1, test_time_augmentation="none")) for d in args.model_dirs]
    rounds: list[list[tuple[float, float, float]]] = [[] for _ in arms]
    for _ in range(args.rounds):
        for i, (_, model) in enumerate(arms):
            rounds[i].append(one_round(model, image))
    baseline = statistics.median(r[0] for r in rounds[0])
    for (directory, model), timings in zip(arms, rounds):
        cpu = statistics.median(t[0] for t in timings)
        files = sum(p.stat().st_size for p in Path(directory).glob("glaucoma.*")) / 1e6
        what = "one image" + (", mirror TTA (two passes)" if model.card.test_time_augmentation == "mirror" else "")
        print(f"model call, {what}, one thread ({model.version}): median {cpu:.2f} ms CPU "
              f"(rounds {', '.join(f'{t[0]:.2f}' for t in timings)}), "
              f"{statistics.median(t[1] for t in timings):.2f} ms wall (min {min(t[2] for t in timings):.2f}); "
              f"{cpu / baseline:.2f}x the first; files {files:.1f} MB")


if __name__ == "__main__":
    main()
