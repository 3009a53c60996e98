"""A fitted log model (templates, detector, feature schema, version) and its I/O; the
baseline split; fitting, scoring and the whole run on a frame (:func:`detect_log_anomalies`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from logsight.analysis.logs.detector import LogAnomalyDetector
from logsight.analysis.logs.features import (
    MODEL_FORMAT,
    MODEL_VERSION,
    _timed,
    _utc,
    assign_windows,
    mine_templates,
    prepare_frame,
    top_templates,
    window_coverage,
    window_features,
)
from logsight.analysis.logs.findings import _finding, _neutral_volume
from logsight.analysis.logs.levelshift import level_shift_findings
from logsight.analysis.templates import TemplateMiner
from logsight.errors import BadRequest, NoData
from logsight.findings import Finding
from logsight.timeutil import parse_window, short_time


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
            raise BadRequest("detector", f"model file not found: {path}") from None
        except Exception as e:  # any unpickling failure means "not our file"
            raise BadRequest("detector", f"{path} is not a logsight log-anomaly model ({e})") from e
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise BadRequest("detector", f"{path} is not a logsight log-anomaly model")
        if data.get("version") != MODEL_VERSION:
            raise BadRequest(
                "detector",
                f"{path}: model version {data.get('version')} cannot be read by this logsight "
                f"(expects {MODEL_VERSION}); train it again"
            )
        detector = data["detector"]
        if list(detector.feature_names_) != list(data["feature_names"]):
            raise BadRequest("detector",
                f"{path}: feature schema does not match the stored detector")
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


class BaselineError(NoData):
    """The baseline split leaves nothing to learn from or nothing to score. The message says
    which period is empty and names no CLI option: callers add their own hint."""

    def __init__(self, message: str) -> None:
        super().__init__(message, parameters=("baseline", "window"))


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
            raise BadRequest("baseline", f"baseline fraction must be in (0, 1), got {baseline}")
        if not timed:
            return int(round(n * frac))
        lo, hi = ts.min(), ts.max()
        cut = lo + (hi - lo) * frac
    elif isinstance(baseline, str) and not _looks_like_time(baseline):
        try:
            length = parse_window(baseline)
        except ValueError:
            raise BadRequest(
                "baseline",
                f"invalid baseline {baseline!r}: use a fraction such as 0.5, a duration from "
                "the start such as 10min, or an ISO-8601 time"
            ) from None
        if not timed:
            raise BadRequest("baseline",
                "a duration baseline needs timestamps; use a fraction such as 0.5")
        start = ts.min().floor(delta) if delta is not None else ts.min()
        cut = start + length
    else:
        try:
            cut = pd.Timestamp(baseline)
        except ValueError as e:
            raise BadRequest("baseline",
                f"invalid baseline {baseline!r}: use 0.5, 10min or a time") from e
        if cut.tzinfo is None:
            cut = cut.tz_localize(UTC)
        if not timed:
            raise BadRequest("baseline",
                "a timestamp baseline needs timestamps; use a fraction such as 0.5")
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
    if _timed(frame):  # a level shift needs a clock: line buckets have no deploy to follow
        shifts, findings = level_shift_findings(model, feats, findings, namespace=namespace)
        findings = shifts + findings
    return LogAnomalyResult(findings, feats, scores, anomalous, model, decision)


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
        raise NoData("no log lines to analyse", parameters=("window",))
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
        period = f"{short_time(start)} to {short_time(cut)}" if cut > start else f"before {short_time(cut)}"
        return (f"the baseline period ({period}) holds no log lines (the first is at "
                f"{short_time(first)}); choose a baseline that ends later or a range that starts "
                f"earlier{note}")
    return (f"no log lines after the baseline period ({short_time(start)} to {short_time(cut)}; the last "
            f"line is at {short_time(last)}); choose a baseline that ends earlier or a range that "
            f"ends later{note}")
