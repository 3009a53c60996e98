"""Sustained level shifts in per-window series: one finding for a change that stays, instead of
the few windows that happen to cross a per-window cut-off.

After a deploy that changes a template's rate for good, every window after it is shifted by
the same amount; a per-window z test flags only the noisiest few (measured: 2 of 30), and the
reader sees scattered anomalies where there is one change. Here each feature's series is
compared with its baseline (centre and scale, e.g. the log detector's robust ones) and the
single change point that best explains it is found: for every candidate start k the windows
from k to the end give the standardised segment mean ``S_k = sum(z_t) / sqrt(m)`` (m windows).
The change point is the k with the largest ``|S_k|`` among those where the shift is sustained:
both halves of the segment from k on sit, on average, more than ``sustain`` scales out on the
same side (a change that fades is no level shift), at least ``min_share`` of its windows sit
more than ``beyond`` scales out, and the windows before k do not on
average. It is reported when ``|S_k| >= min_z`` and the segment spans ``min_windows`` or more.
Each window's z is clipped at ``clip`` in the sum, so a burst of a few windows is no shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class LevelShift:
    """A sustained change of one feature from ``start`` (a window start) to the series' end."""

    feature: str
    start: pd.Timestamp
    last: pd.Timestamp  # start of the last window in the shift
    windows: int
    baseline: float
    after: float  # the mean of the feature over the shifted windows
    z: float  # standardised segment mean S_k
    share: float  # share of the shifted windows beyond ``beyond`` scales on the shift's side

    @property
    def direction(self) -> str:
        return "up" if self.after >= self.baseline else "down"

    def as_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "start": self.start.isoformat(),
                "last_window": self.last.isoformat(), "windows": self.windows,
                "baseline": round(self.baseline, 4), "after": round(self.after, 4),
                "z": round(self.z, 2), "share": round(self.share, 3),
                "direction": self.direction}


def level_shift(
    values: np.ndarray, center: float, scale: float, *, min_windows: int = 3,
    min_z: float = 6.0, min_share: float = 0.6, beyond: float = 1.0, sustain: float = 1.5, clip: float = 5.0,
) -> tuple[int, float, float] | None:
    """(k, S_k, share) of the sustained shift of ``values`` against (center, scale), or None.
    ``values`` in window order; NaN windows count as no deviation. Each window's z is clipped
    to ``+-clip`` in the segment sum, so one burst cannot pass for a shift."""
    if min_windows < 1:
        raise ValueError(f"min_windows must be at least 1, got {min_windows}")
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n < min_windows or not scale > 0:
        return None
    z = np.clip(np.nan_to_num((x - center) / scale, nan=0.0), -clip, clip)
    # suffix sums give every candidate's segment mean in one pass
    suffix = np.cumsum(z[::-1])[::-1]
    up = np.cumsum((z > beyond)[::-1])[::-1]
    down = np.cumsum((z < -beyond)[::-1])[::-1]
    prefix = np.concatenate([[0.0], np.cumsum(z)[:-1]])
    best: tuple[int, float, float] | None = None
    for k in range(0, n - min_windows + 1):
        m = n - k
        s = float(suffix[k] / math.sqrt(m))
        sign = 1 if s >= 0 else -1
        share = float((up[k] if sign > 0 else down[k]) / m)
        half = k + m // 2
        # sustained: both halves of the segment sit beyond ``sustain`` on the same side, and
        # the windows before it do not (else the change started earlier)
        first = (suffix[k] - suffix[half]) / max(half - k, 1)
        second = suffix[half] / (n - half)
        halves_ok = first * sign > sustain and second * sign > sustain
        before_ok = k == 0 or abs(prefix[k] / k) < beyond
        if share < min_share or not halves_ok or not before_ok:
            continue
        if best is None or abs(s) > abs(best[1]):
            best = (k, s, share)
    if best is None or abs(best[1]) < min_z:
        return None
    return best


def level_shifts(
    series: pd.DataFrame, center: pd.Series, scale: pd.Series, *, min_windows: int = 3,
    min_z: float = 6.0, min_share: float = 0.6, beyond: float = 1.0, sustain: float = 1.5,
) -> list[LevelShift]:
    """The sustained shift of every column of ``series`` (rows: windows in time order, index:
    window starts) against ``center`` / ``scale`` (per column), strongest first."""
    out: list[LevelShift] = []
    idx = pd.DatetimeIndex(series.index)
    for col in series.columns:
        if col not in center.index or col not in scale.index:
            continue
        c, s = float(center[col]), float(scale[col])
        x = series[col].to_numpy(dtype=float)
        found = level_shift(x, c, s, min_windows=min_windows, min_z=min_z,
                            min_share=min_share, beyond=beyond, sustain=sustain)
        if found is None:
            continue
        k, z, share = found
        out.append(LevelShift(str(col), idx[k], idx[-1], len(x) - k, c,
                              float(np.nanmean(x[k:])), z, share))
    out.sort(key=lambda sh: -abs(sh.z))
    return out


__all__ = ["LevelShift", "level_shift", "level_shifts"]
