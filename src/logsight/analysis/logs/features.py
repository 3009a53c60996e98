"""The log frame and its window features: one row per line (``LOG_COLUMNS``), levels
normalised, templates mined, lines cut into (service, window) rows of counts and rates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from logsight.analysis.templates import TemplateMiner
from logsight.levels import LEVELS, normalize_level  # noqa: F401  # re-exported
from logsight.timeutil import parse_window

MODEL_FORMAT = "logsight-log-anomaly"


MODEL_VERSION = 1


# One row per log line. ``id`` is the log document id (sample links), ``timestamp`` UTC.
LOG_COLUMNS = ("id", "timestamp", "service", "level", "message", "version")


UNKNOWN_SERVICE = "unknown"


def empty_log_frame() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in LOG_COLUMNS})
    frame["timestamp"] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame


def prepare_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every :data:`LOG_COLUMNS` column present and normalised."""
    missing = {"message"} - set(frame.columns)
    if missing:
        raise ValueError(f"log frame lacks column(s) {sorted(missing)}; has {list(frame.columns)}")
    out = frame.copy()
    n = len(out)
    if "id" not in out:
        out["id"] = [str(i) for i in range(n)]
    if "timestamp" not in out:
        out["timestamp"] = pd.NaT
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True, errors="coerce")
    if "service" not in out:
        out["service"] = UNKNOWN_SERVICE
    out["service"] = out["service"].fillna(UNKNOWN_SERVICE).astype(str)
    if "level" not in out:
        out["level"] = "info"
    out["level"] = [normalize_level(v) for v in out["level"].tolist()]
    if "version" not in out:
        out["version"] = None
    out["message"] = out["message"].fillna("").astype(str)
    return out.reset_index(drop=True)


# -- templates -------------------------------------------------------------------------------
def mine_templates(
    messages: Sequence[str], miner: TemplateMiner | None = None
) -> tuple[np.ndarray, TemplateMiner]:
    """Template id of every message (mined in order) and the miner that produced them."""
    miner = miner if miner is not None else TemplateMiner()
    ids = np.asarray(miner.add_many(list(messages)), dtype=np.int64)
    return ids, miner


# -- windows and features --------------------------------------------------------------------
def assign_windows(
    frame: pd.DataFrame, *, window: str | pd.Timedelta = "1min", window_lines: int = 50
) -> pd.Series:
    """Window start of every row: the time bucket of its timestamp, or - when timestamps are
    missing for more than half of the rows - a synthetic timestamp numbering buckets of
    ``window_lines`` consecutive lines per service (epoch + bucket number x window)."""
    delta = parse_window(window)
    ts = frame["timestamp"]
    if len(frame) and ts.notna().mean() > 0.5:
        filled = ts.ffill().bfill()
        return filled.dt.floor(delta)
    if window_lines < 1:
        raise ValueError(f"window_lines must be >= 1, got {window_lines}")
    position = frame.groupby("service").cumcount().to_numpy() // window_lines
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    return pd.Series(epoch + position * delta, index=frame.index)


def top_templates(
    services: Sequence[str], templates: Sequence[int] | np.ndarray, *, k: int = 20,
    weights: np.ndarray | None = None,
) -> list[int]:
    """The ``k`` templates with the largest share within their own service (so a quiet
    service's main templates are not crowded out by a chatty one). ``weights``: lines per row
    (a count frame, see :mod:`~logsight.analysis.logs.counts`); default one per row."""
    w = np.ones(len(services)) if weights is None else np.asarray(weights, dtype=float)
    df = pd.DataFrame({"service": list(services), "template": np.asarray(templates), "w": w})
    if df.empty or k <= 0:
        return []
    counts = df.groupby(["service", "template"])["w"].sum()
    share = counts / counts.groupby(level="service").transform("sum")
    best = share.groupby(level="template").max().sort_values(ascending=False, kind="stable")
    return [int(t) for t in best.index[:k]]


COUNT_PREFIXES = ("level_", "tpl_")


SCORE_TIE = 1e-9


RATIO_FEATURES = ("error_ratio",)


def window_features(
    frame: pd.DataFrame,
    templates: np.ndarray,
    windows: pd.Series,
    *,
    top: Sequence[int],
    known: set[int] | frozenset[int],
    window_seconds: float,
    complete: bool = True,
    weights: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per (service, window_start): ``total``, ``level_<l>`` counts, ``error_ratio``
    (error + fatal share), ``rate`` (lines/s), ``tpl_<id>`` for each id in ``top``,
    ``tpl_other`` (known templates outside ``top``), ``new_templates`` (distinct templates not
    in ``known``), ``new_lines`` (lines of such templates), ``new_error_lines`` (those at error
    or fatal level) and ``distinct_templates``. With ``complete`` silent windows
    between a service's first and last window are rows of zeros (a service going quiet is a
    deviation too). ``weights``: lines per row when ``frame`` is a count frame (one row per
    (service, window, template key, level), see :mod:`~logsight.analysis.logs.counts`); the
    features are then the same as those of the lines the counts stand for."""
    df = pd.DataFrame(
        {
            "service": frame["service"].to_numpy(),
            "window": windows.to_numpy(),
            "level": frame["level"].to_numpy(),
            "template": np.asarray(templates, dtype=np.int64),
            "w": np.ones(len(frame)) if weights is None else np.asarray(weights, dtype=float),
        }
    )
    keys = ["service", "window"]
    top_set = list(dict.fromkeys(int(t) for t in top))
    columns = (
        ["total"]
        + [f"level_{lv}" for lv in LEVELS]
        + ["error_ratio", "rate"]
        + [f"tpl_{t}" for t in top_set]
        + ["tpl_other", "new_templates", "new_lines", "new_error_lines", "distinct_templates"]
    )
    if df.empty:
        return pd.DataFrame(
            columns=columns,
            index=pd.MultiIndex.from_tuples([], names=keys),
            dtype=float,
        )
    levels = df.groupby(["service", "window", "level"])["w"].sum().unstack(fill_value=0)
    levels = levels.reindex(columns=list(LEVELS), fill_value=0)
    levels.columns = [f"level_{c}" for c in levels.columns]
    is_new = ~np.isin(df["template"], list(known))
    # never-seen templates are counted by the new_* features, not as "other"
    tpl_col = np.where(np.isin(df["template"], top_set), df["template"], np.where(is_new, -2, -1))
    tpl = df.assign(_t=tpl_col).groupby(["service", "window", "_t"])["w"].sum()
    tpl = tpl.unstack(fill_value=0).reindex(columns=top_set + [-1], fill_value=0)
    tpl.columns = [f"tpl_{t}" if t != -1 else "tpl_other" for t in tpl.columns]
    grouped = df.groupby(keys)
    new_df = df[is_new]
    new_err = new_df[new_df["level"].isin(["error", "fatal"])]
    feats = pd.concat([levels, tpl], axis=1)
    feats.index.names = keys
    feats["total"] = grouped["w"].sum()
    feats["distinct_templates"] = grouped["template"].nunique()
    feats["new_templates"] = new_df.groupby(keys)["template"].nunique()
    feats["new_lines"] = new_df.groupby(keys)["w"].sum()
    feats["new_error_lines"] = new_err.groupby(keys)["w"].sum()
    feats = feats.fillna(0.0)
    if complete:
        feats = _complete_windows(feats, pd.Timedelta(seconds=window_seconds))
    feats["error_ratio"] = (feats["level_error"] + feats["level_fatal"]) / feats["total"].clip(
        lower=1
    )
    feats["rate"] = feats["total"] / window_seconds
    return feats[columns].astype(float)


# Volume features: a window the read range covers only partly holds fewer lines for no reason
# of its own, so these cannot be judged on it
VOLUME_PREFIXES = ("total", "rate", "level_", "tpl_", "distinct_templates")


def _is_volume(feature: str) -> bool:
    return feature.startswith(VOLUME_PREFIXES)


def window_coverage(
    windows: pd.Index,
    delta: pd.Timedelta,
    *,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    first: pd.Timestamp | None,
    last: pd.Timestamp | None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(partial, edge)`` masks over window starts. ``partial``: the explicit read range
    [``start``, ``end``) does not cover the whole window (such windows are dropped). ``edge``:
    without an explicit bound on that side, the window holding the data's own ``first`` /
    ``last`` timestamp - it may be cut off too, but nothing says by how much, so its volume
    features are not judged on a drop."""
    w = pd.DatetimeIndex(windows)
    partial = np.zeros(len(w), dtype=bool)
    edge = np.zeros(len(w), dtype=bool)
    if start is not None:
        partial |= np.asarray(w < start)
    elif first is not None:
        edge |= np.asarray(w == first.floor(delta))
    if end is not None:
        partial |= np.asarray(w + delta > end)
    elif last is not None:
        edge |= np.asarray(w == last.floor(delta))
    return partial, edge & ~partial


def _utc(t: datetime | pd.Timestamp | None) -> pd.Timestamp | None:
    if t is None:
        return None
    ts = pd.Timestamp(t)
    return ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)


def _timed(frame: pd.DataFrame) -> bool:
    return len(frame) > 0 and bool(frame["timestamp"].notna().mean() > 0.5)


def _complete_windows(feats: pd.DataFrame, delta: pd.Timedelta) -> pd.DataFrame:
    parts = []
    for service, part in feats.groupby(level="service", sort=True):
        starts = part.index.get_level_values("window")
        grid = pd.date_range(starts.min(), starts.max(), freq=delta)
        idx = pd.MultiIndex.from_product([[service], grid], names=["service", "window"])
        parts.append(part.reindex(idx, fill_value=0.0))
    return pd.concat(parts) if parts else feats
