"""The served model: a TFLite file run by LiteRT, plus its card (model.json).

No TensorFlow here: LiteRT's interpreter starts in ~0.1 s, TensorFlow in
seconds, and Lambda's init phase is capped at 10 s.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # pragma: no cover - training environments have TensorFlow instead
    from tensorflow.lite.python.interpreter import Interpreter  # type: ignore[no-redef]

MODEL_FILE = "glaucoma.tflite"
CARD_FILE = "model.json"
# model.json "test_time_augmentation": "mirror" scores each photograph as the mean logit over it and
# its mirror image (left and right eyes mirror; model card row 51), two passes of the same file
TEST_TIME_AUGMENTATIONS = ("none", "mirror")


def checked_augmentation(name: str, where: str) -> str:
    """A test-time augmentation's name, or ValueError naming where it came from."""
    if name not in TEST_TIME_AUGMENTATIONS:
        raise ValueError(f"{where}: test_time_augmentation {name!r} is not one of {TEST_TIME_AUGMENTATIONS}")
    return name


def mean_over_mirror(p: np.ndarray, p_mirror: np.ndarray) -> np.ndarray:
    """The probability of the mean logit of a view and of its mirror image."""
    def logit(q: np.ndarray) -> np.ndarray:
        q = np.clip(np.asarray(q, np.float64), 1e-6, 1 - 1e-6)
        return np.log(q / (1 - q))

    return 1 / (1 + np.exp(-(logit(p) + logit(p_mirror)) / 2))


@dataclass(frozen=True)
class Prediction:
    probability: float
    label: str
    confidence: float
    cam: np.ndarray  # (h, w) logit contributions, see training/export.py


@dataclass(frozen=True)
class ModelCard:
    version: str
    threshold: float
    input_size: int
    metrics: dict
    # (negative, positive): the labels the model answers; from the card, so another condition's
    # model (normal/cataract) serves with the same code. Cards without them are glaucoma models.
    class_names: tuple[str, str] = ("normal", "glaucoma")
    condition: str = "glaucoma"
    test_time_augmentation: str = "none"  # one of TEST_TIME_AUGMENTATIONS
    # The whole card: fields other conditions add (framing, severity mapping) without changing this class.
    extras: dict = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def read(cls, path: Path) -> "ModelCard":
        card = json.loads(Path(path).read_text())
        class_names = tuple(card.get("class_names") or ("normal", "glaucoma"))
        augmentation = checked_augmentation(str(card.get("test_time_augmentation") or "none"), str(path))
        return cls(version=str(card["version"]), threshold=float(card["threshold"]),
                   input_size=int(card["input_size"]), metrics=card.get("metrics", {}),
                   class_names=class_names,  # type: ignore[arg-type]
                   condition=str(card.get("condition") or class_names[1]),
                   test_time_augmentation=augmentation, extras=card)


def label_for(probability: float, threshold: float,
              class_names: tuple[str, str] = ("normal", "glaucoma")) -> str:
    return class_names[1] if probability >= threshold else class_names[0]


class GlaucomaModel:
    """Loaded once per container; `predict` takes a whole batch in one interpreter call."""

    def __init__(self, model_dir: Path, num_threads: int | None = None,
                 test_time_augmentation: str | None = None) -> None:
        """`test_time_augmentation`: overrides the card's (benches and experiments compare one view)."""
        model_dir = Path(model_dir)
        self.card = ModelCard.read(model_dir / CARD_FILE)
        if test_time_augmentation is not None:
            self.card = replace(self.card, test_time_augmentation=checked_augmentation(
                test_time_augmentation, "GlaucomaModel"))
        self._interpreter = Interpreter(model_path=str(model_dir / MODEL_FILE), num_threads=num_threads)
        signatures = self._interpreter.get_signature_list()
        runner = self._interpreter.get_signature_runner(next(iter(signatures)))
        # Planned once for one image and never resized: LiteRT's signature runner resizes and
        # re-allocates the input on every call, and XNNPACK re-plans whenever the batch size
        # changes, which made a batch of 10 cost about twice as much an image as single calls.
        # A batch is run image by image on the same plan, so it costs what single calls cost.
        [input_details] = runner.get_input_details().values()
        self._input_index = input_details["index"]
        self._output_indices = [d["index"] for d in runner.get_output_details().values()]
        del runner  # it holds views into the interpreter, which allocate_tensors refuses
        size = self.card.input_size
        if list(input_details["shape"]) != [1, size, size, 3]:
            self._interpreter.resize_tensor_input(self._input_index, [1, size, size, 3], strict=False)
        self._interpreter.allocate_tensors()
        self._lock = threading.Lock()  # one interpreter, one call at a time

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def threshold(self) -> float:
        return self.card.threshold

    def probabilities_and_cams(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, S, S, 3) float32 in [0, 1] -> probabilities (N,), CAMs (N, h, w)."""
        batch = np.ascontiguousarray(images, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (self.card.input_size, self.card.input_size, 3):
            raise ValueError(f"expected (N, {self.card.input_size}, {self.card.input_size}, 3), got {batch.shape}")
        probabilities, cams = [], []
        mirror = self.card.test_time_augmentation == "mirror"
        with self._lock:
            for i in range(len(batch)):
                probability, cam = self._invoke(batch[i:i + 1])
                if mirror:  # the mirror image's map is mirrored back onto the photograph's
                    probability_m, cam_m = self._invoke(np.ascontiguousarray(batch[i:i + 1, :, ::-1]))
                    probability = mean_over_mirror(probability, probability_m)
                    cam = (cam + cam_m[:, :, ::-1]) / 2  # mean(cam) + bias stays the (mean) logit
                probabilities.append(probability)
                cams.append(cam)
        if not probabilities:
            return np.zeros(0, np.float64), np.zeros((0, 0, 0), np.float32)
        return np.concatenate(probabilities).astype(np.float64), np.concatenate(cams).astype(np.float32)

    def _invoke(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One (1, S, S, 3) image through the interpreter: probability (1,), CAM (1, h, w)."""
        self._interpreter.set_tensor(self._input_index, image)
        self._interpreter.invoke()
        by_rank = {}
        for index in self._output_indices:
            value = self._interpreter.get_tensor(index)
            by_rank[value.ndim] = value
        return by_rank[1], by_rank[3]

    def predict(self, images: np.ndarray) -> list[Prediction]:
        probabilities, cams = self.probabilities_and_cams(images)
        results = []
        for probability, cam in zip(probabilities, cams):
            p = float(probability)
            label = label_for(p, self.threshold, self.card.class_names)
            results.append(Prediction(probability=p, label=label,
                                      confidence=p if label == self.card.class_names[1] else 1.0 - p, cam=cam))
        return results
