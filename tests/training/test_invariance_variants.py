"""A job's `invariance_variants`: which variants its report's invariance suite runs."""

import pytest

from training import robustness
from training.acquisition import EXTRA_VARIANTS, VARIANTS


def test_empty_or_all_runs_every_variant():
    assert robustness.selected_variants("") is None and robustness.selected_variants("all") is None


def test_a_subset_always_keeps_grey_and_colour_shift():
    chosen = robustness.selected_variants("blur_1.5, jpeg_q30")
    assert set(chosen) == {"grey", "colour_shift", "blur_1.5", "jpeg_q30"}
    assert all(chosen[name] is {**VARIANTS, **EXTRA_VARIANTS}[name] for name in chosen)


def test_an_unknown_variant_fails_the_job_with_the_known_names():
    with pytest.raises(ValueError, match="unknown invariance variants \\['blurry'\\]"):
        robustness.selected_variants("grey,blurry")
