"""How a record's heatmap is stored: one compact field, the same grid back to two decimals."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from screening.records import compact_record, decode_heatmap, encode_heatmap, expand_record


def per_cell(grid: list[list[float]]) -> str:
    """The definition: each cell's value in hundredths, rounded as Python rounds, clamped to 0-100."""
    cells = bytes(min(100, max(0, round(float(v) * 100))) for row in grid for v in row)
    return f"{len(grid)}x{len(grid[0]) if grid else 0}:" + base64.b64encode(cells).decode("ascii")


def test_the_heatmap_field_holds_each_cell_in_hundredths_and_reads_back():
    rng = np.random.default_rng(5)
    grids = [np.round(rng.random((14, 14)), 2).tolist() for _ in range(200)]
    grids += [(np.round(rng.random((14, 14)) * 200) / 200).tolist() for _ in range(200)]  # ties at .xx5
    grids += [(rng.random((3, 5)) * 1.4 - 0.2).tolist(), [[0.125, 0.135, 0.145]], [[1.0]], []]
    for grid in grids:
        assert encode_heatmap(grid) == per_cell(grid)
        back = decode_heatmap(encode_heatmap(grid)) if grid else []
        assert back == [[min(100, max(0, round(v * 100))) / 100 for v in row] for row in grid]
    record = {"id": "a", "heatmap": grids[0]}
    assert expand_record(compact_record(record)) == record
    assert "heatmap" not in expand_record(compact_record(record), include_heatmap=False)


def test_a_heatmap_with_a_missing_value_is_refused_not_stored_as_zero():
    with pytest.raises(ValueError):
        encode_heatmap([[0.1, float("nan")]])
