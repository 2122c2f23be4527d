"""Class weights of the end-to-end path: balanced, and none when the training share lacks a class."""

import numpy as np

from training.train import _class_weight


def test_balanced_weights_and_none_when_a_class_is_missing():
    weights = _class_weight(np.array([1, 0, 0, 0]))
    assert weights == {0: 0.5 / 0.75, 1: 0.5 / 0.25}
    assert _class_weight(np.array([1, 1, 1])) is None  # only glaucoma uploads in the training share
    assert _class_weight(np.array([0, 0])) is None
    assert _class_weight(np.array([], dtype=int)) is None
