"""Log anomaly detection: per-window features, an isolation forest, and explanations.

Input is a log frame (one row per log line) with the columns of :data:`LOG_COLUMNS`; the
cluster and file readers in :mod:`logsight.sources.logs` produce it.

Pipeline
--------
1. Every message gets a template id from :class:`~logsight.analysis.templates.TemplateMiner`.
   The miner learns on the baseline, is then frozen (a later line that does not fit a baseline
   template exactly gets a template of its own, i.e. a *never-seen* template) and keeps mining
   the scored period online.
2. :func:`window_features` turns lines into one row per (service, window): counts per level,
   error ratio, message rate, counts of the top-K baseline templates plus ``tpl_other``, number of
   never-seen templates, number of distinct templates. Windows are time buckets (default 1 min)
   or, when the frame has no usable timestamps, buckets of ``window_lines`` consecutive lines.
3. :class:`LogAnomalyDetector` (scikit-learn estimator contract) learns, per service, a robust
   baseline (median and a floored robust scale per feature), turns every window into robust
   z-scores and fits an :class:`sklearn.ensemble.IsolationForest` on the baseline z-scores of
   all services pooled (so a service with few windows still gets a model).

Decision rule (keeps false positives low)
-----------------------------------------
A window is anomalous when **both** of these hold:

* the isolation forest calls it an outlier (score below the offset set by ``contamination``);
* at least one feature deviates meaningfully from the service's baseline: a level count, the
  line total or a template count with ``|z| >= min_z`` and an absolute change of at least
  ``min_change`` lines, or the error ratio with ``|z| >= min_z`` and a change of at least
  ``min_ratio_change``; or ``min_new_error_lines`` or more error/fatal lines of never-seen
  templates;

**or** when the error evidence is overwhelming on its own, whatever the forest says:

* ``overwhelming_new_error_lines`` or more error/fatal lines of never-seen templates, or
* the error or fatal line count rises with ``z >= overwhelming_z`` and by at least
  ``min_change`` lines, or
* the error ratio rises with ``z >= overwhelming_z`` and by at least ``min_ratio_change``, with
  at least ``min_change`` error/fatal lines in the window (a two-line window with one error is
  a ratio of 0.5, not a burst).

Why the second path: a forest only isolates what varied in its training data. A perfectly
regular baseline (a heartbeat service, a quiet batch job) gives every window the same robust
z-scores of zero, the forest cannot split on a constant and scores every later window alike,
so a burst of never-seen errors sat just under the cutoff (the demo's 23 new ERROR lines, error
ratio 0.96, scored -0.013). The z-scores themselves stay finite and meaningful against such a
baseline because each feature's spread is floored (counts: the Poisson sd
``sqrt(max(median, count_floor))``; ratios: ``ratio_floor``), so (with the defaults) "z >= 10
and at least five more error lines" is a statement about the data, not a division by zero. Only rises of error
evidence take this path: more info lines or a quiet service still need the forest to agree.

Never-seen templates at info/debug level are reported in the explanation and feed the forest,
but are not enough on their own: new code paths and rare-but-normal messages appear all the
time (in Loghub's BGL sample most never-seen templates of the later half are normal), a
never-seen error is what a person wants to hear about.

Each anomalous window becomes a :class:`~logsight.findings.Finding` (``kind="log_anomaly"``)
whose evidence lists the features that deviated most (baseline vs observed), the never-seen
templates with an example line, and the ids of sample log documents.

Template drift per deploy (:func:`template_drift`) compares the template distribution of a
service before and after a ``service.version`` change with the population stability index and
the Jensen-Shannon distance, the registered tests shared with feature drift
(:data:`logsight.analysis.drift.DRIFT_TESTS`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.utils.validation import check_is_fitted

from logsight.analysis import drift as _drift
from logsight.analysis.drift import DRIFT_TESTS
from logsight.analysis.templates import TemplateMiner
from logsight.findings import Finding

MODEL_FORMAT = "logsight-log-anomaly"
MODEL_VERSION = 1

# One row per log line. ``id`` is the log document id (sample links), ``timestamp`` UTC.
LOG_COLUMNS = ("id", "timestamp", "service", "level", "message", "version")
LEVELS = ("debug", "info", "warn", "error", "fatal")
_LEVEL_ALIASES = {
    "trace": "debug",
    "debug": "debug",
    "fine": "debug",
    "finer": "debug",
    "finest": "debug",
    "info": "info",
    "information": "info",
    "notice": "info",
    "warn": "warn",
    "warning": "warn",
    "error": "error",
    "err": "error",
    "severe": "error",
    "fatal": "fatal",
    "critical": "fatal",
    "crit": "fatal",
    "alert": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
    "panic": "fatal",
}
UNKNOWN_SERVICE = "unknown"


def normalize_level(level: Any) -> str:
    """Canonical level name (``warning`` -> ``warn``, ``critical`` -> ``fatal``); ``info`` when
    unknown or missing."""
    if not isinstance(level, str) or not level:
        return "info"
    return _LEVEL_ALIASES.get(level.strip().lower(), "info")


def parse_window(window: str | pd.Timedelta) -> pd.Timedelta:
    """``"1min"``, ``"30s"``, ``"5m"`` ... as a positive Timedelta; ValueError otherwise."""
    try:
        text = window.strip() if isinstance(window, str) else window
        if isinstance(text, str) and re.fullmatch(r"\d+m", text):
            text = text + "in"  # "5m" means minutes here, as in Kibana/ES intervals
        delta = pd.Timedelta(text)
    except (ValueError, TypeError) as e:
        raise ValueError(f"invalid window {window!r}: use e.g. '1min', '30s', '5min'") from e
    if pd.isna(delta) or delta <= pd.Timedelta(0):
        raise ValueError(f"window must be positive, got {window!r}")
    return delta


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
    services: Sequence[str], templates: Sequence[int] | np.ndarray, *, k: int = 20
) -> list[int]:
    """The ``k`` templates with the largest share within their own service (so a quiet
    service's main templates are not crowded out by a chatty one)."""
    df = pd.DataFrame({"service": list(services), "template": np.asarray(templates)})
    if df.empty or k <= 0:
        return []
    counts = df.groupby(["service", "template"]).size()
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
) -> pd.DataFrame:
    """One row per (service, window_start): ``total``, ``level_<l>`` counts, ``error_ratio``
    (error + fatal share), ``rate`` (lines/s), ``tpl_<id>`` for each id in ``top``,
    ``tpl_other`` (known templates outside ``top``), ``new_templates`` (distinct templates not
    in ``known``), ``new_lines`` (lines of such templates), ``new_error_lines`` (those at error
    or fatal level) and ``distinct_templates``. With ``complete`` silent windows
    between a service's first and last window are rows of zeros (a service going quiet is a
    deviation too)."""
    df = pd.DataFrame(
        {
            "service": frame["service"].to_numpy(),
            "window": windows.to_numpy(),
            "level": frame["level"].to_numpy(),
            "template": np.asarray(templates, dtype=np.int64),
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
    levels = pd.crosstab([df["service"], df["window"]], df["level"])
    levels = levels.reindex(columns=list(LEVELS), fill_value=0)
    levels.columns = [f"level_{c}" for c in levels.columns]
    is_new = ~np.isin(df["template"], list(known))
    # never-seen templates are counted by the new_* features, not as "other"
    tpl_col = np.where(np.isin(df["template"], top_set), df["template"], np.where(is_new, -2, -1))
    tpl = pd.crosstab([df["service"], df["window"]], tpl_col)
    tpl = tpl.reindex(columns=top_set + [-1], fill_value=0)
    tpl.columns = [f"tpl_{t}" if t != -1 else "tpl_other" for t in tpl.columns]
    grouped = df.groupby(keys)
    new_df = df[is_new]
    new_err = new_df[new_df["level"].isin(["error", "fatal"])]
    feats = pd.concat([levels, tpl], axis=1)
    feats.index.names = keys
    feats["total"] = grouped.size()
    feats["distinct_templates"] = grouped["template"].nunique()
    feats["new_templates"] = new_df.groupby(keys)["template"].nunique()
    feats["new_lines"] = new_df.groupby(keys).size()
    feats["new_error_lines"] = new_err.groupby(keys).size()
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


# -- the detector ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Deviation:
    """One feature of one window against its service's baseline."""

    feature: str
    baseline: float
    observed: float
    z: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "baseline": round(self.baseline, 4),
            "observed": round(self.observed, 4),
            "z": round(self.z, 2),
        }


class LogAnomalyDetector(BaseEstimator):
    """Isolation forest over per-service robust z-scores of window features.

    Parameters
    ----------
    contamination:
        ``"auto"`` (default, scikit-learn's and the original paper's rule: a window whose
        isolation score exceeds 0.5 is an outlier) or the expected share of anomalous baseline
        windows, which puts the offset at that quantile of the baseline scores. ``"auto"`` is
        the better default here: the baseline is usually clean, and a forest cannot isolate a
        window beyond the baseline's range faster than the baseline's own extreme windows, so a
        quantile offset misses bursts (measured: 11 of 20 injected bursts at 0.05 vs 20 of 20
        with "auto", no false positive either way thanks to the deviation rule).
    n_estimators, max_samples:
        Passed to :class:`sklearn.ensemble.IsolationForest`.
    min_z:
        A feature deviates meaningfully when its robust z-score reaches this (either sign)...
    min_change:
        ...and its count changed by at least this many lines.
    min_ratio_change:
        Minimum absolute change of ``error_ratio`` to count as meaningful.
    min_new_error_lines:
        Error/fatal lines of never-seen templates in a window that count as a meaningful
        deviation on their own.
    overwhelming_z:
        A rise of the error/fatal count or of the error ratio with at least this z (and the
        ``min_change`` / ``min_ratio_change`` changes) flags a window without the forest.
    overwhelming_new_error_lines:
        Error/fatal lines of never-seen templates that flag a window without the forest.
    count_floor:
        Smoothing for the robust scale of count features: the scale is at least
        ``sqrt(max(median, count_floor))`` (Poisson noise), so a feature that never moved in the
        baseline does not produce infinite z-scores.
    ratio_floor:
        Smallest robust scale of ratio features.
    random_state:
        Seed of the forest.
    """

    def __init__(
        self,
        *,
        contamination: float | str = "auto",
        n_estimators: int = 200,
        max_samples: int | str = "auto",
        min_z: float = 4.0,
        min_change: float = 5.0,
        min_ratio_change: float = 0.1,
        min_new_error_lines: int = 1,
        overwhelming_z: float = 10.0,
        overwhelming_new_error_lines: int = 10,
        count_floor: float = 1.0,
        ratio_floor: float = 0.02,
        random_state: int | None = 0,
    ) -> None:
        self.contamination = contamination
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.min_z = min_z
        self.min_change = min_change
        self.min_ratio_change = min_ratio_change
        self.min_new_error_lines = min_new_error_lines
        self.overwhelming_z = overwhelming_z
        self.overwhelming_new_error_lines = overwhelming_new_error_lines
        self.count_floor = count_floor
        self.ratio_floor = ratio_floor
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.contamination != "auto" and not 0.0 < float(self.contamination) <= 0.5:
            raise ValueError(f"contamination must be in (0, 0.5], got {self.contamination}")
        if self.min_z <= 0:
            raise ValueError(f"min_z must be > 0, got {self.min_z}")
        if self.overwhelming_z < self.min_z:
            raise ValueError(
                f"overwhelming_z must be >= min_z ({self.min_z}), got {self.overwhelming_z}"
            )
        if self.overwhelming_new_error_lines < 1:
            raise ValueError(
                "overwhelming_new_error_lines must be >= 1, "
                f"got {self.overwhelming_new_error_lines}"
            )

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a detector saved before a hyperparameter existed gets that parameter's default, so
        # saved models keep loading (the feature schema, which does matter, is checked on load)
        defaults = {
            name: p.default
            for name, p in inspect.signature(type(self).__init__).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        super().__setstate__({**defaults, **state})

    def fit(self, X: pd.DataFrame, y: None = None) -> LogAnomalyDetector:
        """Learn per-service baselines and the forest from baseline windows ``X`` (index
        (service, window), one column per feature)."""
        self._check_params()
        if len(X) == 0:
            raise ValueError("no baseline windows to learn from (is the baseline period empty?)")
        self.feature_names_ = [str(c) for c in X.columns]
        services = X.index.get_level_values("service")
        center = X.groupby(services).median()
        mad = (X - center.reindex(services).to_numpy()).abs().groupby(services).median()
        # The larger of the MAD-based scale and the standard deviation: on bursty baselines the
        # MAD alone is too small and flags ordinary bursts (measured on BGL_2k: F1 0.756 with MAD
        # alone vs 0.829 with this rule). The Poisson / ratio floors below keep a zero scale
        # finite.
        std = X.groupby(services).std(ddof=0).reindex(mad.index)
        scale = np.maximum(1.4826 * mad, std.fillna(0.0))
        floors = self._floors(center)
        self.center_ = center
        self.scale_ = np.maximum(scale, floors)
        # services never seen in the baseline are compared with the median service
        self.default_center_ = center.median()
        self.default_scale_ = self.scale_.median()
        Z = self._forest_input(self._z(X))
        self.estimator_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            contamination=self.contamination,
            random_state=self.random_state,
        ).fit(Z)
        self.n_baseline_windows_ = len(X)
        return self

    def _floors(self, center: pd.DataFrame) -> pd.DataFrame:
        floors = np.sqrt(np.maximum(center, self.count_floor))
        for col in center.columns:
            if col in RATIO_FEATURES:
                floors[col] = self.ratio_floor
            elif col == "rate":
                # a rate is a count per second: Poisson noise of the count, per second
                per_line = center["rate"] / center["total"].clip(lower=1)
                floors[col] = np.sqrt(np.maximum(center["total"], self.count_floor)) * np.where(
                    per_line > 0, per_line, 1.0
                )
        return floors

    def _baseline_for(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        services = X.index.get_level_values("service")
        center = self.center_.reindex(services)
        scale = self.scale_.reindex(services)
        center = center.fillna(self.default_center_)
        scale = scale.fillna(self.default_scale_)
        return center.to_numpy(dtype=float), scale.to_numpy(dtype=float)

    def _aligned(self, X: pd.DataFrame) -> pd.DataFrame:
        # columns seen only now (no baseline) are dropped; missing ones count zero
        return X.reindex(columns=self.feature_names_, fill_value=0.0).astype(float)

    def _z(self, X: pd.DataFrame) -> pd.DataFrame:
        X = self._aligned(X)
        center, scale = self._baseline_for(X)
        return pd.DataFrame((X.to_numpy() - center) / scale, index=X.index, columns=X.columns)

    def _prepared(self, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
        """``(aligned X, baseline centre, z)``: computed once per decision."""
        Xa = self._aligned(X)
        center, scale = self._baseline_for(Xa)
        z = pd.DataFrame((Xa.to_numpy() - center) / scale, index=Xa.index, columns=Xa.columns)
        return Xa, center, z

    def z_scores(self, X: pd.DataFrame) -> pd.DataFrame:
        """Robust z-score of every feature of every window against its service's baseline."""
        check_is_fitted(self, "estimator_")
        return self._z(X)

    def score_samples(self, X: pd.DataFrame) -> np.ndarray:
        """Anomaly score per window: higher is more anomalous (0 = the forest's offset)."""
        check_is_fitted(self, "estimator_")
        if len(X) == 0:
            return np.zeros(0)
        return self._forest_scores(self._z(X))

    def _forest_scores(self, z: pd.DataFrame) -> np.ndarray:
        return -np.asarray(self.estimator_.decision_function(self._forest_input(z)))

    @staticmethod
    def _forest_input(z: pd.DataFrame) -> np.ndarray:
        """What the forest sees: the signed log of the z-scores of the window-level features
        plus, for the template counts, two summaries (largest |z| and root mean square z), and
        the same two summaries over every feature.

        Per-template columns are summarised rather than fed one by one: with twenty of them
        the forest would mostly split on template noise. A feature that never moved in the
        baseline is constant there, and a forest cannot split on a constant: the summaries
        carry such a feature's deviation to the forest. The log keeps one huge z from
        flattening every other split."""
        cols = [str(c) for c in z.columns]
        is_tpl = np.array([c.startswith("tpl_") for c in cols], dtype=bool)
        values = z.to_numpy(dtype=float)
        core = values[:, ~is_tpl]
        tpl = values[:, is_tpl] if is_tpl.any() else np.zeros((len(z), 1))
        allz = values if values.shape[1] else np.zeros((len(z), 1))

        def summary(v: np.ndarray) -> np.ndarray:
            return np.column_stack([np.abs(v).max(axis=1), np.sqrt((v**2).mean(axis=1))])

        out = np.hstack([core, summary(tpl), summary(allz)])
        return np.asarray(np.sign(out) * np.log1p(np.abs(out)))

    def meaningful(self, X: pd.DataFrame) -> np.ndarray:
        """Per window: does at least one feature deviate meaningfully (see module docstring)?"""
        check_is_fitted(self, "estimator_")
        if len(X) == 0:
            return np.zeros(0, dtype=bool)
        return self._meaningful(X, *self._prepared(X))

    def _meaningful(
        self, X: pd.DataFrame, Xa: pd.DataFrame, center: np.ndarray, zf: pd.DataFrame
    ) -> np.ndarray:
        z = zf.to_numpy()
        change = np.abs(Xa.to_numpy() - center)
        cols = np.asarray(Xa.columns)
        is_ratio = np.isin(cols, RATIO_FEATURES)
        is_count = np.array([c.startswith(COUNT_PREFIXES) or c == "total" for c in cols])
        big_z = np.abs(z) >= self.min_z
        big_change = np.where(
            is_ratio,
            change >= self.min_ratio_change,
            np.where(is_count, change >= self.min_change, False),
        )
        ok = (big_z & big_change).any(axis=1)
        if "new_error_lines" in X.columns:
            ok |= X["new_error_lines"].to_numpy(dtype=float) >= self.min_new_error_lines
        return np.asarray(ok)

    def overwhelming(self, X: pd.DataFrame) -> np.ndarray:
        """Per window: is the rise of error evidence enough on its own (module docstring)?"""
        check_is_fitted(self, "estimator_")
        if len(X) == 0:
            return np.zeros(0, dtype=bool)
        return self._overwhelming(X, *self._prepared(X))

    def _overwhelming(
        self, X: pd.DataFrame, Xa: pd.DataFrame, center: np.ndarray, z: pd.DataFrame
    ) -> np.ndarray:
        rise = pd.DataFrame(Xa.to_numpy() - center, index=Xa.index, columns=Xa.columns)
        n = len(Xa)
        ok = np.zeros(n, dtype=bool)
        for col in ("level_error", "level_fatal"):
            if col in Xa.columns:
                ok |= (z[col].to_numpy() >= self.overwhelming_z) & (
                    rise[col].to_numpy() >= self.min_change
                )
        if "error_ratio" in Xa.columns:
            errors = np.zeros(n)
            for col in ("level_error", "level_fatal"):
                if col in Xa.columns:
                    errors = errors + Xa[col].to_numpy()
            ok |= (
                (z["error_ratio"].to_numpy() >= self.overwhelming_z)
                & (rise["error_ratio"].to_numpy() >= self.min_ratio_change)
                & (errors >= self.min_change)
            )
        if "new_error_lines" in X.columns:
            ok |= X["new_error_lines"].to_numpy(dtype=float) >= self.overwhelming_new_error_lines
        return ok

    def decide(self, X: pd.DataFrame) -> pd.DataFrame:
        """Every part of the decision rule per window (index of ``X``): ``score`` (forest,
        > 0 = outlier), ``outlier``, ``meaningful``, ``overwhelming`` and ``anomalous``
        (``outlier & meaningful | overwhelming``)."""
        check_is_fitted(self, "estimator_")
        if len(X) == 0:
            scores = np.zeros(0)
            meaningful = overwhelming = np.zeros(0, dtype=bool)
        else:
            prep = self._prepared(X)
            scores = self._forest_scores(prep[2])
            meaningful = self._meaningful(X, *prep)
            overwhelming = self._overwhelming(X, *prep)
        # identical windows (a zero-spread baseline) score the offset give or take float
        # rounding; such a tie is no outlier
        outlier = scores > SCORE_TIE
        return pd.DataFrame(
            {
                "score": scores,
                "outlier": outlier,
                "meaningful": meaningful,
                "overwhelming": overwhelming,
                "anomalous": (outlier & meaningful) | overwhelming,
            },
            index=X.index,
        )

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """True for anomalous windows: a forest outlier AND a meaningful deviation, or
        overwhelming error evidence on its own."""
        check_is_fitted(self, "estimator_")
        if len(X) == 0:
            return np.zeros(0, dtype=bool)
        return self.decide(X)["anomalous"].to_numpy(dtype=bool)

    def explain(self, X: pd.DataFrame, *, top: int = 5) -> list[list[Deviation]]:
        """The ``top`` features of each window ordered by |z| (only those that moved)."""
        z = self.z_scores(X)
        Xa = self._aligned(X)
        center, _ = self._baseline_for(Xa)
        out: list[list[Deviation]] = []
        for i in range(len(Xa)):
            row = z.iloc[i].to_numpy()
            order = np.argsort(-np.abs(row), kind="stable")[:top]
            out.append(
                [
                    Deviation(
                        feature=str(Xa.columns[j]),
                        baseline=float(center[i, j]),
                        observed=float(Xa.iat[i, j]),
                        z=float(row[j]),
                    )
                    for j in order
                    if abs(row[j]) > 0
                ]
            )
        return out


# -- the whole run on a frame ----------------------------------------------------------------
@dataclass
class LogAnomalyModel:
    """Everything needed to score new windows: persisted together with its feature schema."""

    miner: TemplateMiner
    detector: LogAnomalyDetector
    top: list[int]
    known: frozenset[int]
    window: str
    window_lines: int
    feature_names: list[str] = field(default_factory=list)
    version: int = MODEL_VERSION

    def save(self, path: str | Path) -> None:
        import joblib
        import sklearn

        joblib.dump(
            {
                "format": MODEL_FORMAT,
                "version": self.version,
                "sklearn_version": sklearn.__version__,
                "feature_names": list(self.feature_names),
                "window": self.window,
                "window_lines": self.window_lines,
                "top": list(self.top),
                "known": sorted(self.known),
                "miner": self.miner.to_dict(),
                "detector": self.detector,
            },
            Path(path),
        )

    @classmethod
    def load(cls, path: str | Path) -> LogAnomalyModel:
        import joblib

        # joblib is pickle: load only model files you wrote yourself
        try:
            data = joblib.load(Path(path))
        except FileNotFoundError:
            raise ValueError(f"model file not found: {path}") from None
        except Exception as e:  # any unpickling failure means "not our file"
            raise ValueError(f"{path} is not a logsight log-anomaly model ({e})") from e
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path} is not a logsight log-anomaly model")
        if data.get("version") != MODEL_VERSION:
            raise ValueError(
                f"{path}: model version {data.get('version')} cannot be read by this logsight "
                f"(expects {MODEL_VERSION}); train it again"
            )
        detector = data["detector"]
        if list(detector.feature_names_) != list(data["feature_names"]):
            raise ValueError(f"{path}: feature schema does not match the stored detector")
        return cls(
            miner=TemplateMiner.from_dict(data["miner"]),
            detector=detector,
            top=[int(t) for t in data["top"]],
            known=frozenset(int(t) for t in data["known"]),
            window=str(data["window"]),
            window_lines=int(data["window_lines"]),
            feature_names=list(data["feature_names"]),
        )


WINDOW_COLUMNS = (
    "service", "window", "window_end", "score", "anomalous", "outlier", "meaningful",
    "overwhelming",
)


@dataclass
class LogAnomalyResult:
    findings: list[Finding]
    features: pd.DataFrame  # scored windows (index service, window)
    scores: np.ndarray
    anomalous: np.ndarray
    model: LogAnomalyModel
    # per window, every part of the decision rule (LogAnomalyDetector.decide), features' index
    decision: pd.DataFrame

    def windows(self) -> pd.DataFrame:
        """One row per scored (service, window), in time order: the columns of
        :data:`WINDOW_COLUMNS` (``score`` > 0 is a forest outlier; ``anomalous`` is the final
        decision) followed by the window's features."""
        return window_table(self.features, self.decision, self.model.window)


@dataclass
class LogAnalysisResult:
    """A whole log analysis: every scored window (:meth:`LogAnomalyResult.windows`, for plots
    and tables) and the findings (log anomalies plus template drift)."""

    windows: pd.DataFrame
    findings: list[Finding]
    # log lines read (baseline included); ``len(windows)`` is the number of windows scored
    lines: int = 0


def empty_window_table() -> pd.DataFrame:
    """The per-window frame of a run that scored nothing."""
    out = pd.DataFrame({c: pd.Series(dtype=bool) for c in WINDOW_COLUMNS})
    out["service"] = pd.Series(dtype=object)
    out["window"] = pd.Series(dtype="datetime64[ns, UTC]")
    out["window_end"] = pd.Series(dtype="datetime64[ns, UTC]")
    out["score"] = pd.Series(dtype=float)
    return out


def window_table(features: pd.DataFrame, decision: pd.DataFrame, window: str) -> pd.DataFrame:
    """Flat per-window frame of :meth:`LogAnomalyResult.windows`."""
    n = len(features)
    if n == 0:
        return empty_window_table()
    starts = pd.to_datetime(features.index.get_level_values("window"), utc=True)
    head = pd.DataFrame(
        {
            "service": features.index.get_level_values("service").astype(str),
            "window": starts,
            "window_end": starts + parse_window(window),
            "score": decision["score"].to_numpy(dtype=float),
            **{c: decision[c].to_numpy(dtype=bool)
               for c in ("anomalous", "outlier", "meaningful", "overwhelming")},
        }
    )
    body = features.reset_index(drop=True).astype(float)
    out = pd.concat([head, body], axis=1)
    return out.sort_values(["window", "service"], kind="stable").reset_index(drop=True)


class BaselineError(ValueError):
    """The baseline split leaves nothing to learn from or nothing to score. The message says
    which period is empty and names no CLI option: callers add their own hint."""


def baseline_cut(
    frame: pd.DataFrame,
    baseline: float | str | datetime | pd.Timestamp | None,
    *,
    window: str | pd.Timedelta | None = None,
) -> pd.Timestamp | int:
    """Where the baseline ends: a UTC timestamp when the rows have timestamps, else a row
    count. See :func:`split_baseline` for the forms of ``baseline``."""
    n = len(frame)
    if baseline is None:
        baseline = 0.5
    ts = frame["timestamp"]
    timed = n > 0 and ts.notna().mean() > 0.5
    delta = parse_window(window) if window is not None else None
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        frac = float(baseline)
        if not 0.0 < frac < 1.0:
            raise ValueError(f"baseline fraction must be in (0, 1), got {baseline}")
        if not timed:
            return int(round(n * frac))
        lo, hi = ts.min(), ts.max()
        cut = lo + (hi - lo) * frac
    elif isinstance(baseline, str) and not _looks_like_time(baseline):
        try:
            length = parse_window(baseline)
        except ValueError:
            raise ValueError(
                f"invalid baseline {baseline!r}: use a fraction such as 0.5, a duration from "
                "the start such as 10min, or an ISO-8601 time"
            ) from None
        if not timed:
            raise ValueError("a duration baseline needs timestamps; use a fraction such as 0.5")
        start = ts.min().floor(delta) if delta is not None else ts.min()
        cut = start + length
    else:
        try:
            cut = pd.Timestamp(baseline)
        except ValueError as e:
            raise ValueError(f"invalid baseline {baseline!r}: use 0.5, 10min or a time") from e
        if cut.tzinfo is None:
            cut = cut.tz_localize(UTC)
        if not timed:
            raise ValueError("a timestamp baseline needs timestamps; use a fraction such as 0.5")
    if delta is not None:
        cut = cut.floor(delta)
    return pd.Timestamp(cut)


def split_baseline(
    frame: pd.DataFrame,
    baseline: float | str | datetime | pd.Timestamp | None,
    *,
    window: str | pd.Timedelta | None = None,
) -> np.ndarray:
    """Boolean mask of baseline rows. ``baseline`` is a fraction of the rows' time span (or of
    the rows, without timestamps), an end timestamp, or a duration from the first row's window
    (``"10min"``). ``None`` means 0.5. With ``window`` the cut is moved down to a window
    boundary, so no window is split between the baseline and the scored part."""
    cut = baseline_cut(frame, baseline, window=window)
    if isinstance(cut, int):
        return np.arange(len(frame)) < cut
    # a row without a timestamp belongs where assign_windows puts it: with the row before it
    # (after the first row, with the one after it). Leaving it out of the baseline instead
    # counted every baseline-period traceback line in the first scored window: a false anomaly.
    filled = frame["timestamp"].ffill().bfill()
    return np.asarray(filled < cut)


def _looks_like_time(text: str) -> bool:
    return bool(re.match(r"^\d{4}-\d{2}-\d{2}", text.strip()))


def fit_log_model(
    frame: pd.DataFrame,
    *,
    window: str = "1min",
    window_lines: int = 50,
    top_k: int = 20,
    detector: LogAnomalyDetector | None = None,
    miner: TemplateMiner | None = None,
    start: datetime | pd.Timestamp | None = None,
    end: datetime | pd.Timestamp | None = None,
) -> tuple[LogAnomalyModel, np.ndarray]:
    """Learn templates and the detector from a baseline frame; returns the model and the
    baseline rows' template ids. ``start`` / ``end``: the range the frame was read from;
    windows it covers only partly (and, without a bound, the data's own first / last window)
    are left out of the baseline, so a cut-off window does not lower the expected volume."""
    frame = prepare_frame(frame)
    delta = parse_window(window)
    templates, miner = mine_templates(frame["message"].tolist(), miner)
    windows = assign_windows(frame, window=delta, window_lines=window_lines)
    top = top_templates(frame["service"].tolist(), templates, k=top_k)
    # "never seen" in the baseline, leave-one-window-out: a template that occurs in one window
    # only would have been new there; this gives the forest the natural rate of novelty
    pairs = pd.DataFrame({"s": frame["service"], "w": windows, "t": templates}).drop_duplicates()
    per_template = pairs.groupby("t").size()
    singletons = set(per_template[per_template <= 1].index.astype(int))
    known_for_baseline = set(miner.clusters) - singletons
    feats = window_features(
        frame, templates, windows, top=top, known=known_for_baseline,
        window_seconds=delta.total_seconds(),
    )
    if _timed(frame):
        ts = frame["timestamp"]
        partial, edge = window_coverage(
            feats.index.get_level_values("window"), delta, start=_utc(start), end=_utc(end),
            first=ts.min(), last=ts.max(),
        )
        drop = partial | edge
        if not drop.all():  # a baseline of one cut-off window is better than none
            feats = feats[~drop]
    det = detector if detector is not None else LogAnomalyDetector()
    det.fit(feats)
    miner.freeze()
    model = LogAnomalyModel(
        miner=miner,
        detector=det,
        top=top,
        known=frozenset(miner.clusters),
        window=str(window),
        window_lines=window_lines,
        feature_names=list(det.feature_names_),
    )
    return model, templates


def score_logs(
    model: LogAnomalyModel,
    frame: pd.DataFrame,
    *,
    namespace: str | None = None,
    max_samples: int = 10,
    max_deviations: int = 5,
    start: datetime | pd.Timestamp | None = None,
    end: datetime | pd.Timestamp | None = None,
) -> LogAnomalyResult:
    """Score ``frame`` (lines after the baseline) window by window; one finding per anomalous
    (service, window). The model's miner keeps learning templates online. ``start`` / ``end``:
    the range the frame was read from; windows it covers only partly are not scored, and
    without a bound the data's own first / last window is not judged on volume features
    (lines, levels, templates, rate), which a cut-off lowers for no reason of its own."""
    frame = prepare_frame(frame)
    delta = parse_window(model.window)
    templates, _ = mine_templates(frame["message"].tolist(), model.miner)
    windows = assign_windows(frame, window=delta, window_lines=model.window_lines)
    feats = window_features(
        frame, templates, windows, top=model.top, known=model.known,
        window_seconds=delta.total_seconds(),
    )
    det = model.detector
    judged = feats
    if _timed(frame):
        ts = frame["timestamp"]
        partial, edge = window_coverage(
            feats.index.get_level_values("window"), delta, start=_utc(start), end=_utc(end),
            first=ts.min(), last=ts.max(),
        )
        feats = feats[~partial]
        judged = _neutral_volume(det, feats, edge[~partial])
    decision = det.decide(judged)
    scores = decision["score"].to_numpy(dtype=float)
    anomalous = decision["anomalous"].to_numpy(dtype=bool)
    findings: list[Finding] = []
    if anomalous.any():
        flagged = feats[anomalous]
        explanations = det.explain(judged[anomalous], top=max_deviations)
        lines = pd.DataFrame(
            {
                "service": frame["service"].to_numpy(),
                "window": windows.to_numpy(),
                "template": templates,
                "id": frame["id"].astype(str).to_numpy(),
                "message": frame["message"].to_numpy(),
                "level": frame["level"].to_numpy(),
            }
        )
        groups = dict(tuple(lines.groupby(["service", "window"], sort=False)))
        flagged_decision = decision[anomalous]
        for (service, wstart), score, devs in zip(
            flagged.index, scores[anomalous], explanations, strict=True
        ):
            rows = groups.get((service, wstart), lines.iloc[0:0])
            findings.append(
                _finding(
                    model, service, wstart, delta, float(score), devs, rows,
                    flagged.loc[(service, wstart)], flagged_decision.loc[(service, wstart)],
                    namespace=namespace, max_samples=max_samples,
                )
            )
    return LogAnomalyResult(findings, feats, scores, anomalous, model, decision)


def _neutral_volume(
    det: LogAnomalyDetector, feats: pd.DataFrame, rows: np.ndarray
) -> pd.DataFrame:
    """``feats`` with the volume features of ``rows`` raised to at least the baseline centre:
    a cut-off can only lower counts, so a drop there says nothing, while a rise (a burst in
    the last minute read) is still evidence."""
    if not rows.any():
        return feats
    check_is_fitted(det, "estimator_")
    out = feats.copy()
    cols = [c for c in det.feature_names_ if _is_volume(c) and c in out.columns]
    center, _ = det._baseline_for(out.iloc[np.flatnonzero(rows)])
    idx = [det.feature_names_.index(c) for c in cols]
    sel = out.index[rows]
    out.loc[sel, cols] = np.maximum(out.loc[sel, cols].to_numpy(dtype=float), center[:, idx])
    return out


FEATURE_LABELS = {
    "total": "lines",
    "error_ratio": "share of error/fatal lines",
    "rate": "lines per second",
    "tpl_other": "lines of other known templates",
    "new_templates": "never-seen templates",
    "new_lines": "lines of never-seen templates",
    "new_error_lines": "error lines of never-seen templates",
    "distinct_templates": "distinct templates",
    **{f"level_{lv}": f"{lv} lines" for lv in LEVELS},
}


def _label(model: LogAnomalyModel, feature: str) -> str:
    if feature.startswith("tpl_") and feature != "tpl_other":
        cid = int(feature[4:])
        cluster = model.miner.clusters.get(cid)
        return f"lines of template {cid} '{cluster.template if cluster else '?'}'"
    return FEATURE_LABELS.get(feature, feature)


def _finding(
    model: LogAnomalyModel,
    service: str,
    wstart: pd.Timestamp,
    delta: pd.Timedelta,
    score: float,
    devs: list[Deviation],
    rows: pd.DataFrame,
    observed: pd.Series,
    decision: pd.Series,
    *,
    namespace: str | None,
    max_samples: int,
) -> Finding:
    new_rows = rows[~rows["template"].isin(list(model.known))]
    new_templates: list[dict[str, Any]] = []
    for cid, part in new_rows.groupby("template", sort=False):
        cluster = model.miner.clusters.get(int(cid))
        new_templates.append(
            {
                "template_id": int(cid),
                "template": cluster.template if cluster else "",
                "count": len(part),
                "example": str(part["message"].iloc[0])[:500],
                "example_id": str(part["id"].iloc[0]),
            }
        )
    new_templates.sort(key=lambda d: -int(d["count"]))
    # samples: lines of new templates first, then errors, then the rest
    priority = np.where(
        ~rows["template"].isin(list(model.known)),
        0,
        np.where(rows["level"].isin(["error", "fatal"]), 1, 2),
    )
    samples = rows.assign(_p=priority).sort_values("_p", kind="stable")["id"].head(max_samples)
    deviations = [dict(d.as_dict(), label=_label(model, d.feature)) for d in devs]
    errors = int(observed.get("level_error", 0) + observed.get("level_fatal", 0))
    parts = []
    if deviations:
        d0 = deviations[0]
        parts.append(
            f"{d0['label']} was {d0['observed']:g} (baseline {d0['baseline']:g}, z={d0['z']:+.1f})"
        )
    if new_templates:
        parts.append(
            f"{len(new_templates)} never-seen template(s), e.g. {new_templates[0]['template']!r}"
        )
    summary = "; ".join(parts) or "unusual mix of log features"
    overwhelming = bool(decision["overwhelming"])
    forest = bool(decision["outlier"] and decision["meaningful"])
    severity = "high" if errors and (new_templates or score > 0.1 or overwhelming) else "medium"
    if observed.get("level_fatal", 0) > 0:
        severity = "critical"
    wend = wstart + delta
    return Finding(
        kind="log_anomaly",
        title=f"Anomalous logs in {service} at {wstart.isoformat()}",
        summary=summary,
        severity=severity,
        score=score,
        service=service,
        window_start=wstart.to_pydatetime(),
        window_end=wend.to_pydatetime(),
        evidence={
            "deviations": deviations,
            "new_templates": new_templates[:10],
            "lines": int(observed.get("total", 0)),
            "errors": errors,
            "window": model.window,
            # which half of the decision rule fired (see the module docstring)
            "rule": "isolation_forest" if forest else "overwhelming_error_evidence",
            "forest_outlier": bool(decision["outlier"]),
            "overwhelming": overwhelming,
            # without timestamps windows are line buckets on a synthetic clock: say which lines
            "line_range": [str(rows["id"].iloc[0]), str(rows["id"].iloc[-1])]
            if len(rows) else None,
        },
        sample_ids=[str(s) for s in samples],
        namespace=namespace,
    )


def detect_log_anomalies(
    frame: pd.DataFrame,
    *,
    baseline: float | str | datetime | pd.Timestamp | None = 0.5,
    window: str = "1min",
    window_lines: int = 50,
    top_k: int = 20,
    contamination: float | str = "auto",
    random_state: int | None = 0,
    namespace: str | None = None,
    detector: LogAnomalyDetector | None = None,
    start: datetime | pd.Timestamp | None = None,
    end: datetime | pd.Timestamp | None = None,
) -> LogAnomalyResult:
    """Fit on the baseline part of ``frame`` and score the rest (see :func:`split_baseline`).
    ``start`` / ``end``: the range ``frame`` was read from (see :func:`score_logs`)."""
    frame = prepare_frame(frame)
    if frame.empty:
        raise ValueError("no log lines to analyse")
    order = np.argsort(frame["timestamp"].to_numpy(), kind="stable")
    if frame["timestamp"].notna().all():
        frame = frame.iloc[order].reset_index(drop=True)
    if len(frame) < 2:
        raise BaselineError(
            "only 1 log line to analyse: the baseline and the period after it each need lines"
        )
    cut = baseline_cut(frame, baseline, window=window)
    mask = split_baseline(frame, baseline, window=window)
    if not mask.any() or mask.all():
        raise BaselineError(_empty_split_message(frame, cut, window, baseline_empty=not mask.any()))
    det = detector or LogAnomalyDetector(contamination=contamination, random_state=random_state)
    # the cut is a window boundary: the baseline ends and the scored part starts there
    split = cut if isinstance(cut, pd.Timestamp) else None
    model, _ = fit_log_model(
        frame[mask], window=window, window_lines=window_lines, top_k=top_k, detector=det,
        start=start, end=split if split is not None else end,
    )
    return score_logs(model, frame[~mask], namespace=namespace,
                      start=split if split is not None else start, end=end)


def _empty_split_message(
    frame: pd.DataFrame, cut: pd.Timestamp | int, window: str, *, baseline_empty: bool
) -> str:
    n = len(frame)
    if isinstance(cut, int):  # no timestamps: the baseline is the first ``cut`` lines
        if baseline_empty:
            return (f"the baseline period (the first {cut} of {n} lines) holds no log lines; "
                    "choose a larger baseline fraction")
        return (f"no log lines after the baseline period (the first {cut} of {n} lines); "
                "choose a smaller baseline fraction")
    ts = frame["timestamp"].dropna()
    first, last = ts.min(), ts.max()
    start = first.floor(parse_window(window))
    note = ""
    if start == last.floor(parse_window(window)):
        note = f" (all {n} lines fall within one {window} window; a shorter window splits them)"
    if baseline_empty:
        period = f"{_short(start)} to {_short(cut)}" if cut > start else f"before {_short(cut)}"
        return (f"the baseline period ({period}) holds no log lines (the first is at "
                f"{_short(first)}); choose a baseline that ends later or a range that starts "
                f"earlier{note}")
    return (f"no log lines after the baseline period ({_short(start)} to {_short(cut)}; the last "
            f"line is at {_short(last)}); choose a baseline that ends earlier or a range that "
            f"ends later{note}")


# -- template drift per deploy -----------------------------------------------------------------
# The drift tests are the shared registered ones (logsight.analysis.drift), so a template PSI
# means the same as a feature PSI. These aliases keep ``from logsight.analysis.logs import
# psi_test, js_test`` working.
psi_test = _drift.psi_test
js_test = _drift.jensenshannon_test

def _template_tests() -> list[str]:
    """Registered tests on category counts that drift *above* their threshold: the severity
    rule of :func:`template_drift` ("high" beyond twice the threshold) needs a distance."""
    return sorted(
        name for name, t in DRIFT_TESTS.items()
        if t.inputs == "counts" and _drift.CATEGORICAL in t.kinds and t.direction == "above"
    )


def _contributions(test: str, before: np.ndarray, after: np.ndarray, epsilon: float
                   ) -> tuple[str, np.ndarray]:
    """Per-template terms of the score, smoothed exactly as the test smooths: PSI terms (sum
    = PSI, empty templates at frequency ``epsilon``, no renormalisation) for ``psi`` and any
    other test; for ``jensenshannon`` the JS divergence terms (sum = distance squared, base 2,
    no smoothing needed). Every term is >= 0, so the largest are the most shifted templates."""
    p = before / before.sum()
    q = after / after.sum()
    if test == "jensenshannon":
        m = (p + q) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            # 0 * log(0 / m) is 0 by convention
            tp = np.where(p > 0, p * np.log2(p / m), 0.0)
            tq = np.where(q > 0, q * np.log2(q / m), 0.0)
        return "jensenshannon_divergence", (tp + tq) / 2
    p, q = np.maximum(p, epsilon), np.maximum(q, epsilon)
    return "psi", (q - p) * np.log(q / p)


def template_drift(
    frame: pd.DataFrame,
    templates: np.ndarray,
    *,
    miner: TemplateMiner | None = None,
    test: str = "psi",
    threshold: float | None = None,
    epsilon: float = _drift.PSI_EPSILON,
    min_lines: int = 20,
    top: int = 10,
    namespace: str | None = None,
) -> list[Finding]:
    """A ``template_drift`` finding for every change of ``version`` within a service whose
    template distribution before vs after drifts according to ``test`` (a registered test of
    :data:`logsight.analysis.drift.DRIFT_TESTS` on category counts: ``"psi"`` or
    ``"jensenshannon"``) at ``threshold`` (default: the test's registered default).
    ``epsilon`` is the PSI frequency of a template absent on one side, used both by the test
    and by the per-template contributions in the evidence. Rows need ``timestamp``,
    ``service`` and ``version``; sides with fewer than ``min_lines`` are skipped.

    The finding is keyed on (service, ``"prev->next"``, time of the first line of the new
    version): ``window_start`` and ``window_end`` are both that instant, so every run over a
    range that contains the deploy rewrites the same finding instead of adding one."""
    allowed = _template_tests()
    if test not in allowed:
        raise ValueError(f"unknown drift test {test!r} for templates; choose one of {allowed}")
    spec = DRIFT_TESTS[test]
    if threshold is None:
        threshold = spec.threshold
    if not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive number, got {threshold}")
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    if min_lines < 1:
        raise ValueError(f"min_lines must be at least 1, got {min_lines}")
    kw: dict[str, Any] = {"threshold": threshold}
    if "epsilon" in spec.config_params:  # only smoothed tests take it (JS needs none)
        kw["epsilon"] = epsilon
    frame = prepare_frame(frame)
    df = frame.assign(template=np.asarray(templates, dtype=np.int64))
    df = df[df["version"].notna() & (df["version"].astype(str) != "")]
    findings: list[Finding] = []
    for service, part in df.groupby("service", sort=True):
        part = part.sort_values("timestamp", kind="stable")
        firsts = part.groupby("version", sort=False)["timestamp"].min().sort_values()
        versions = [str(v) for v in firsts.index]
        for prev, nxt in zip(versions, versions[1:], strict=False):
            before = part[part["version"].astype(str) == prev]
            after = part[part["version"].astype(str) == nxt]
            if len(before) < min_lines or len(after) < min_lines:
                continue
            cats = sorted(set(before["template"]) | set(after["template"]))
            b = before["template"].value_counts().reindex(cats, fill_value=0).to_numpy(float)
            a = after["template"].value_counts().reindex(cats, fill_value=0).to_numpy(float)
            result = spec.fn(b, a, **kw)
            if not result.drifted:
                continue
            measure, contrib = _contributions(test, b, a, epsilon)
            order = np.argsort(-contrib, kind="stable")[:top]
            shifted = []
            for j in order:
                cid = int(cats[j])
                cluster = miner.clusters.get(cid) if miner else None
                shifted.append(
                    {
                        "template_id": cid,
                        "template": cluster.template if cluster else "",
                        "share_before": round(float(b[j] / b.sum()), 4),
                        "share_after": round(float(a[j] / a.sum()), 4),
                        "contribution": round(float(contrib[j]), 4),
                    }
                )
            deployed = _pydt(after["timestamp"].min())
            findings.append(
                Finding(
                    kind="template_drift",
                    title=f"Log templates of {service} shifted after deploy {prev} -> {nxt}",
                    summary=(
                        f"{result.test}={result.score:.3f} (threshold {result.threshold}); "
                        f"most shifted: {shifted[0]['template']!r} "
                        f"{shifted[0]['share_before']:.1%} -> {shifted[0]['share_after']:.1%}"
                    ),
                    severity="medium" if result.score < 2 * result.threshold else "high",
                    score=result.score,
                    service=str(service),
                    subject=f"{prev}->{nxt}",
                    model_version=nxt,
                    window_start=deployed,
                    window_end=deployed,
                    evidence={
                        "test": result.test,
                        "score": result.score,
                        "threshold": result.threshold,
                        "direction": result.direction,
                        "epsilon": kw.get("epsilon"),
                        "version_before": prev,
                        "version_after": nxt,
                        "first_line_after": _short(deployed),
                        "lines_before": len(before),
                        "lines_after": len(after),
                        "contribution_measure": measure,
                        "shifted_templates": shifted,
                    },
                    sample_ids=[str(i) for i in after["id"].head(5)],
                    namespace=namespace,
                )
            )
    return findings


def _pydt(ts: Any) -> datetime | None:
    if ts is None or pd.isna(ts):
        return None
    return pd.Timestamp(ts).to_pydatetime()


def findings_table(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    """Rows for a readable table (CLI)."""
    rows = []
    for f in findings:
        ev: Mapping[str, Any] = f.evidence
        new = ev.get("new_templates") or []
        rows.append(
            {
                "kind": f.kind,
                "service": f.service,
                "window_start": _window_text(f),
                "severity": f.severity,
                "score": float(f.score),
                "summary": f.summary,
                "new_templates": len(new),
            }
        )
    return rows


def _window_text(f: Finding) -> str:
    start = _short(f.window_start)
    lines = f.evidence.get("line_range")
    if start.startswith("1970-") and lines:  # a line-count window (see assign_windows)
        return f"{lines[0]}..{lines[1]}"
    return start


def _short(ts: datetime | str | None) -> str:
    if ts is None:
        return ""
    if isinstance(ts, str):
        return ts
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
