"""Sustained level shifts: one change point for a change that stays (issue 19 item 10)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logsight.analysis.changepoint import level_shift, level_shifts


def _series(rng: np.random.Generator, n: int, at: int | None, before: float, after: float,
            sd: float = 2.0) -> np.ndarray:
    x = rng.normal(before, sd, n)
    if at is not None:
        x[at:] = rng.normal(after, sd, n - at)
    return x


def test_a_shift_that_stays_is_one_change_point_at_its_start() -> None:
    rng = np.random.default_rng(0)
    x = _series(rng, 30, 12, 10.0, 17.0)
    k, z, share = level_shift(x, 10.0, 2.0)  # type: ignore[misc]
    assert k == 12 and z > 6 and share >= 0.6
    # per-window, only a few windows cross a z of 4: the cut-off view scatters the change
    assert ((x[12:] - 10.0) / 2.0 > 4).sum() < 18


def test_spikes_and_noise_are_no_level_shift() -> None:
    rng = np.random.default_rng(1)
    noise = _series(rng, 40, None, 10.0, 10.0)
    assert level_shift(noise, 10.0, 2.0) is None
    spikes = noise.copy()
    spikes[[10, 25]] = 40.0  # two bursts, gone again
    assert level_shift(spikes, 10.0, 2.0) is None
    # a shift that ends is not sustained to the end either
    gone = _series(rng, 40, 10, 10.0, 20.0)
    gone[20:] = rng.normal(10.0, 2.0, 20)
    assert level_shift(gone, 10.0, 2.0) is None


def test_downward_shift_and_frame_wrapper() -> None:
    rng = np.random.default_rng(2)
    idx = pd.date_range("2026-12-04T09:00Z", periods=30, freq="1min")
    frame = pd.DataFrame({"tpl_7": _series(rng, 30, 5, 30.0, 12.0, 3.0),
                          "lines": _series(rng, 30, None, 100.0, 100.0, 5.0)}, index=idx)
    shifts = level_shifts(frame, pd.Series({"tpl_7": 30.0, "lines": 100.0}),
                          pd.Series({"tpl_7": 3.0, "lines": 5.0}))
    [sh] = shifts
    assert sh.feature == "tpl_7" and sh.direction == "down" and sh.windows == 25
    assert sh.start == idx[5] and sh.last == idx[-1]
    assert sh.after == pytest.approx(frame["tpl_7"].iloc[5:].mean())
    assert sh.as_dict()["direction"] == "down"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="min_windows"):
        level_shift(np.ones(5), 0.0, 1.0, min_windows=0)
    assert level_shift(np.ones(2), 0.0, 1.0) is None  # shorter than min_windows
    assert level_shift(np.ones(5), 0.0, 0.0) is None  # no scale to judge with


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=40), st.floats(0.5, 10.0))
def test_a_found_shift_is_sustained_and_strong(values: list[float], scale: float) -> None:
    x = np.asarray(values)
    found = level_shift(x, 0.0, scale)
    if found is None:
        return
    k, z, share = found
    seg = x[k:] / scale
    sign = np.sign(z)
    assert len(seg) >= 3 and abs(z) >= 6.0
    assert share == pytest.approx(np.mean(seg * sign > 1.0)) and share >= 0.6
    half = len(seg) // 2
    assert np.clip(seg[:half], -5, 5).mean() * sign > 1.5
    assert np.clip(seg[half:], -5, 5).mean() * sign > 1.5
