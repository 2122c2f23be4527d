"""What the training job and the functions that start and read it agree on.

Imported by the training image (which installs no AWS SDK) and by the retrain
functions, so it imports nothing but the standard library.
"""

from __future__ import annotations

# The job prints `METRIC <name>=<float>` lines (training/metrics.py); SageMaker reads them with
# these regexes (first group) into CloudWatch and DescribeTrainingJob; the local runner parses the
# same lines from the job's log.
METRIC_NAMES = (
    "epoch", "epochs",
    "train_loss", "train_auc", "val_loss", "val_auc",
    "test_auc", "test_accuracy", "test_sensitivity", "test_specificity",
    "test_precision", "test_f1", "test_sensitivity_at_95_specificity",
    "threshold", "test_auc_grey", "test_auc_colour_shift",
    "gate_challenger_auc", "gate_champion_auc", "gate_challenger_sensitivity", "gate_promote",
)
METRIC_DEFINITIONS = [{"Name": n, "Regex": f"METRIC {n}=([-+0-9.eE]+|nan)"} for n in METRIC_NAMES]

# Input channels beyond train/validation/test: the labelled uploads (`<label>/<site>/<file>`)
# and the serving champion's model folder (TFLite + card) for the gate.
UPLOADS_CHANNEL = "uploads"
CHAMPION_CHANNEL = "champion"
# Written into the model folder, so it travels in model.tar.gz next to the model it judges.
GATE_FILE = "gate.json"
DEFAULT_CONDITION = "glaucoma"
DEFAULT_SITE = "unspecified"
JOB_NAME_PREFIX = "screening-"


def parse_metric_lines(text: str) -> dict[str, float]:
    """The last value of every `METRIC name=value` line, as SageMaker keeps it."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("METRIC ") and "=" in line:
            name, _, raw = line[7:].partition("=")
            try:
                values[name.strip()] = float(raw.strip())
            except ValueError:
                continue
    return values
