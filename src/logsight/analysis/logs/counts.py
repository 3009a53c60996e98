"""Log anomalies from counts, not lines: the same model, features and decision as
:func:`~logsight.analysis.logs.detect_log_anomalies`, fed by a *count frame* (one row per
(service, window, template key, level, version) with the number of lines) and one
representative message per template key.

The template key is the ingest-time fingerprint (``logsight.template_id``, a keyword the
cluster aggregates on). Several keys can be one template (the fingerprint masks tokens with
digits; the miner also merges differing words), so the miner runs on the distinct keys'
representative messages, in order of first appearance, and maps every key to its template:
its cost grows with keys, not lines. The detector then sees the same window features the
lines would give (``window_features`` with the counts as weights).

Findings need a few lines a person can read: :class:`CountScore` lists the flagged windows
(with the keys of never-seen templates and the stored spellings of error levels), the caller
reads a bounded number of examples and sample ids for just those windows
(:class:`WindowSamples`), and :func:`count_findings` builds the findings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from logsight.analysis.logs.detector import LogAnomalyDetector
from logsight.analysis.logs.features import (
    UNKNOWN_SERVICE,
    _utc,
    normalize_level,
    top_templates,
    window_coverage,
    window_features,
)
from logsight.analysis.logs.findings import _neutral_volume, build_finding
from logsight.analysis.logs.model import (
    BaselineError,
    LogAnomalyModel,
    _empty_split_message,
    baseline_cut,
)
from logsight.analysis.templates import TemplateMiner
from logsight.errors import NoData
from logsight.findings import Finding
from logsight.timeutil import parse_window

# One row per (service, window start, template key, stored level, version): ``count`` lines.
COUNT_COLUMNS = ("service", "window", "key", "raw_level", "version", "count")
ERROR_LEVELS = ("error", "fatal")


def empty_count_frame() -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype=object) for c in COUNT_COLUMNS})
    out["window"] = pd.Series(dtype="datetime64[ns, UTC]")
    out["count"] = pd.Series(dtype=np.int64)
    return out


def prepare_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a count frame with the normalised ``level`` next to the stored one; rows in
    window order (the miner sees keys in order of first appearance, as it sees lines)."""
    out = frame.copy()
    out["service"] = out["service"].fillna(UNKNOWN_SERVICE).astype(str)
    out["window"] = pd.to_datetime(out["window"], utc=True)
    out["key"] = out["key"].astype(str)
    # normalise each distinct spelling once, not each row
    spellings = {v: normalize_level(v) for v in pd.unique(out["raw_level"].astype(object))}
    out["level"] = out["raw_level"].astype(object).map(spellings)
    out["count"] = out["count"].astype(np.int64)
    return out.sort_values("window", kind="stable").reset_index(drop=True)


@dataclass
class LogCounts:
    """What a count source read: the count frame, the representative (earliest) message of
    every key, and the first / last line time (for fractional baselines and edge windows)."""

    counts: pd.DataFrame
    messages: Mapping[str, str]
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    # (service, version) -> time of its first line: template drift keys findings on it
    version_first: Mapping[tuple[str, str], pd.Timestamp] = field(default_factory=dict)

    @property
    def lines(self) -> int:
        return int(self.counts["count"].sum()) if len(self.counts) else 0


def key_templates(
    keys: Sequence[str], messages: Mapping[str, str], miner: TemplateMiner
) -> dict[str, int]:
    """Template id of every key: its representative message mined in ``keys`` order."""
    ids = miner.add_many([messages.get(k, k) for k in keys])
    return {k: int(c) for k, c in zip(keys, ids, strict=True)}


def _ordered_keys(counts: pd.DataFrame) -> list[str]:
    return [str(k) for k in pd.unique(counts["key"])]


def _coverage(
    feats: pd.DataFrame, delta: pd.Timedelta, start: datetime | pd.Timestamp | None,
    end: datetime | pd.Timestamp | None, first: pd.Timestamp | None, last: pd.Timestamp | None,
) -> tuple[np.ndarray, np.ndarray]:
    return window_coverage(feats.index.get_level_values("window"), delta, start=_utc(start),
                           end=_utc(end), first=first, last=last)


def fit_count_model(
    counts: pd.DataFrame,
    messages: Mapping[str, str],
    *,
    window: str = "1min",
    top_k: int = 20,
    detector: LogAnomalyDetector | None = None,
    miner: TemplateMiner | None = None,
    start: datetime | pd.Timestamp | None = None,
    end: datetime | pd.Timestamp | None = None,
    first: pd.Timestamp | None = None,
    last: pd.Timestamp | None = None,
) -> tuple[LogAnomalyModel, dict[str, int]]:
    """:func:`~logsight.analysis.logs.fit_log_model` on baseline counts: the model and the
    template id of every baseline key."""
    delta = parse_window(window)
    miner = miner if miner is not None else TemplateMiner()
    key_map = key_templates(_ordered_keys(counts), messages, miner)
    templates = counts["key"].map(key_map).to_numpy(dtype=np.int64)
    weights = counts["count"].to_numpy(dtype=float)
    windows = counts["window"]
    top = top_templates(counts["service"].tolist(), templates, k=top_k, weights=weights)
    # leave-one-window-out novelty, as on lines (see fit_log_model)
    pairs = pd.DataFrame({"s": counts["service"], "w": windows, "t": templates}).drop_duplicates()
    per_template = pairs.groupby("t").size()
    singletons = set(per_template[per_template <= 1].index.astype(int))
    feats = window_features(
        counts, templates, windows, top=top, known=set(miner.clusters) - singletons,
        window_seconds=delta.total_seconds(), weights=weights,
    )
    partial, edge = _coverage(feats, delta, start, end, first, last)
    drop = partial | edge
    if not drop.all():
        feats = feats[~drop]
    det = detector if detector is not None else LogAnomalyDetector()
    det.fit(feats)
    miner.freeze()
    model = LogAnomalyModel(miner=miner, detector=det, top=top, known=frozenset(miner.clusters),
                            window=str(window), window_lines=0,
                            feature_names=list(det.feature_names_))
    return model, key_map


@dataclass(frozen=True)
class FlaggedWindow:
    """An anomalous window and what its examples must show."""

    service: str
    start: pd.Timestamp
    end: pd.Timestamp
    new_keys: tuple[str, ...]  # keys of never-seen templates in the window
    error_levels: tuple[str, ...]  # stored spellings that count as error/fatal


@dataclass
class WindowSamples:
    """A bounded read of one flagged window: the earliest line of each asked key and the
    sample ids (lines of never-seen templates first, then errors, then the rest)."""

    examples: Mapping[str, tuple[str, str]]  # key -> (document id, message)
    sample_ids: list[str]


@dataclass
class CountScore:
    """Scored windows of a count frame (the same as :class:`LogAnomalyResult` has)."""

    model: LogAnomalyModel
    features: pd.DataFrame
    judged: pd.DataFrame
    decision: pd.DataFrame
    counts: pd.DataFrame  # scored rows with their ``template``
    flagged: list[FlaggedWindow]


def score_counts(
    model: LogAnomalyModel,
    counts: pd.DataFrame,
    messages: Mapping[str, str],
    key_map: Mapping[str, int],
    *,
    start: datetime | pd.Timestamp | None = None,
    end: datetime | pd.Timestamp | None = None,
    first: pd.Timestamp | None = None,
    last: pd.Timestamp | None = None,
) -> CountScore:
    """:func:`~logsight.analysis.logs.score_logs` on counts. Keys the baseline had keep their
    template; the others are mined with the (frozen) model miner."""
    delta = parse_window(model.window)
    ids = dict(key_map)
    fresh = [k for k in _ordered_keys(counts) if k not in ids]
    ids.update(key_templates(fresh, messages, model.miner))
    templates = counts["key"].map(ids).to_numpy(dtype=np.int64)
    feats = window_features(
        counts, templates, counts["window"], top=model.top, known=model.known,
        window_seconds=delta.total_seconds(), weights=counts["count"].to_numpy(dtype=float),
    )
    det = model.detector
    partial, edge = _coverage(feats, delta, start, end, first, last)
    feats = feats[~partial]
    judged = _neutral_volume(det, feats, edge[~partial])
    decision = det.decide(judged)
    rows = counts.assign(template=templates)
    flagged: list[FlaggedWindow] = []
    anomalous = decision["anomalous"].to_numpy(dtype=bool)
    if anomalous.any():
        errors = tuple(sorted({str(v) for v, n in zip(rows["raw_level"], rows["level"],
                                                       strict=True)
                               if n in ERROR_LEVELS and v is not None}))
        groups = dict(tuple(rows.groupby(["service", "window"], sort=False)))
        for service, wstart in feats.index[anomalous]:
            part = groups.get((service, wstart), rows.iloc[0:0])
            new = part[~part["template"].isin(list(model.known))]
            flagged.append(FlaggedWindow(str(service), pd.Timestamp(wstart),
                                         pd.Timestamp(wstart) + delta,
                                         tuple(_ordered_keys(new)), errors))
    return CountScore(model, feats, judged, decision, rows, flagged)


def count_findings(
    score: CountScore,
    samples: Mapping[tuple[str, pd.Timestamp], WindowSamples],
    *,
    namespace: str | None = None,
    max_deviations: int = 5,
) -> list[Finding]:
    """One ``log_anomaly`` finding per flagged window of ``score``, its examples and sample ids
    from ``samples`` (keyed by (service, window start))."""
    if not score.flagged:
        return []
    model, det = score.model, score.model.detector
    delta = parse_window(model.window)
    anomalous = score.decision["anomalous"].to_numpy(dtype=bool)
    flagged_feats = score.features[anomalous]
    explanations = det.explain(score.judged[anomalous], top=max_deviations)
    scores = score.decision["score"].to_numpy(dtype=float)[anomalous]
    decision = score.decision[anomalous]
    rows = score.counts
    findings: list[Finding] = []
    for fw, sc, devs in zip(score.flagged, scores, explanations, strict=True):
        got = samples.get((fw.service, fw.start), WindowSamples({}, []))
        part = rows[(rows["service"] == fw.service) & (rows["window"] == fw.start)]
        new = part[~part["template"].isin(list(model.known))]
        new_templates: list[dict[str, Any]] = []
        for cid, grp in new.groupby("template", sort=False):
            cluster = model.miner.clusters.get(int(cid))
            example = next((got.examples[k] for k in _ordered_keys(grp) if k in got.examples),
                           ("", ""))
            new_templates.append({
                "template_id": int(cid),
                "template": cluster.template if cluster else "",
                "count": int(grp["count"].sum()),
                "example": example[1][:500],
                "example_id": example[0],
            })
        new_templates.sort(key=lambda d: -int(d["count"]))
        key = (fw.service, fw.start)
        findings.append(build_finding(
            model, fw.service, fw.start, delta, float(sc), devs, new_templates,
            list(got.sample_ids), flagged_feats.loc[key], decision.loc[key],
            namespace=namespace,
        ))
    return findings


def split_counts(
    data: LogCounts, baseline: float | str | datetime | pd.Timestamp | None, *, window: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """(baseline rows, scored rows, cut) of a count frame; the cut is a window boundary, as
    :func:`~logsight.analysis.logs.split_baseline` puts it for lines."""
    counts = data.counts
    if counts.empty or data.first is None or data.last is None:
        raise NoData("no log lines to analyse", parameters=("window",))
    if data.lines < 2:
        raise BaselineError(
            "only 1 log line to analyse: the baseline and the period after it each need lines"
        )
    ends = pd.DataFrame({"timestamp": [data.first, data.last]})
    cut = baseline_cut(ends, baseline, window=window)
    assert isinstance(cut, pd.Timestamp)  # timed frames always cut on a time
    mask = (counts["window"] < cut).to_numpy()
    if not mask.any() or mask.all():
        frame = pd.DataFrame({"timestamp": [data.first, data.last]})
        message = _empty_split_message(frame, cut, window, baseline_empty=not mask.any())
        raise BaselineError(message.replace("all 2 lines", f"all {data.lines} lines"))
    return counts[mask], counts[~mask], cut
