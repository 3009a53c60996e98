"""The drift job: feature and prediction drift of a current sample against a reference.

Two sources, one job: a model's windows in the cluster (:class:`ClusterEvents`; computed from
aggregations only, never raw rows: a reference profile from ``percentiles`` / ``terms``
aggregations, the current window from one ``range`` aggregation on the profile's edges), or
two sample files (:class:`SampleFiles`; the exact statistics of the raw rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from logsight.analysis import drift as D
from logsight.analysis.drift import (  # the request's option types, for the faces
    DEFAULT_BINS,
    DRIFT_TESTS,
    DriftConfig,
    DriftThresholds,
    FeatureDrift,
)
from logsight.analysis.outlier_scale import robust_scale
from logsight.errors import BadRequest
from logsight.findings import Finding
from logsight.jobs.base import Scope, Window, plain_rows
from logsight.sources import mlevents as M
from logsight.sources.mlevents import SampleFiles
from logsight.timeutil import iso
from logsight.writer import ClusterWriter, Writer

if TYPE_CHECKING:
    from logsight.engine import Engine

__all__ = ["DEFAULT_BINS", "DRIFT_TESTS", "ClusterEvents", "ClusterWriter", "DriftConfig",
           "DriftRequest", "DriftResult", "DriftThresholds", "FeatureDrift", "SampleFiles",
           "Scope", "Window", "drift", "drift_raw"]


class ClusterEvents:
    """The mlevents streams of ``namespace`` (None: every namespace)."""

    def __init__(self, engine: Engine, namespace: str | None = None) -> None:
        self.engine = engine
        self.namespace = namespace
        self.notes: list[str] = []  # what a reader tells about how it read (files have some)

    def events(self, event_type: str, *, model: str | None = None,
               start: datetime | str | None = None, end: datetime | str | None = None,
               version: str | None = None) -> pd.DataFrame:
        """Raw events of one type (see :func:`logsight.sources.mlevents.read_events`)."""
        return M.read_events(self.engine, event_type, model=model, start=start, end=end,
                             version=version, namespace=self.namespace)

    def joined(self, *, model: str, start: datetime | str, end: datetime | str,
               version: str | None = None) -> pd.DataFrame:
        """Predictions of [start, end) joined with their feedback (however late)."""
        return M.read_joined(self.engine, model=model, start=start, end=end, version=version,
                             namespace=self.namespace)

    def require_predictions(self, *, model: str, start: datetime | str, end: datetime | str,
                            version: str | None = None) -> None:
        """:class:`~logsight.sources.mlevents.NoPredictions` (saying what exists) when none."""
        M.require_predictions(self.engine, model=model, start=start, end=end, version=version,
                              namespace=self.namespace)

    def service_of(self, model: str) -> str | None:
        return M.service_of(self.engine, model, self.namespace)


@dataclass(frozen=True)
class DriftRequest:
    current: Window = Window()
    # a window, a stored profile's id, or a profile (cluster); None with files
    reference: Window | str | D.ReferenceProfile | M.StoredProfile | None = None
    scope: Scope = Scope()
    config: D.DriftConfig | None = None
    columns: tuple[str, ...] = ()  # files: only these columns
    save_profile: str | None = None  # cluster: store the reference window's profile so
    outliers: bool = True
    outlier_threshold: float = 6.0
    require_current: bool = False  # cluster: NoPredictions when the window has none


@dataclass
class DriftResult:
    features: list[D.FeatureDrift]
    findings: list[Finding]
    profile_id: str | None = None
    warnings: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return plain_rows(self.features)


def drift(request: DriftRequest, source: ClusterEvents | SampleFiles,
          writer: Writer | None = None) -> DriftResult:
    """Drift of the current sample against the reference; ``feature_drift`` /
    ``prediction_drift`` findings (cluster; and, with ``outliers``, ``outlier_inputs`` from a
    robust-z scan of the current window's rows outside the reference's range: only those rows
    are read). With a writer (cluster) the findings are stored."""
    if isinstance(source, SampleFiles):
        return _drift_files(request, source)
    return _drift_cluster(request, source, writer)


def _drift_files(request: DriftRequest, source: SampleFiles) -> DriftResult:
    sc = request.scope
    ref, cur = source.frames()
    paths = {"reference": source.reference, "current": source.current}
    for col in request.columns:
        for frame, path in ((ref, source.reference), (cur, source.current)):
            if col not in frame:
                raise BadRequest("columns", f"column {col!r} is not in {path}; its columns: "
                                 f"{list(frame.columns)}")
    warnings: list[str] = list(source.notes)  # how the files were read (invalid UTF-8)
    if not request.columns:
        only_ref = [str(c) for c in ref.columns if c not in cur]
        only_cur = [str(c) for c in cur.columns if c not in ref]
        if only_ref:
            warnings.append(f"{source.current} lacks column(s) {only_ref} of "
                            f"{source.reference}: not compared")
        if only_cur:
            warnings.append(f"{source.current} has column(s) {only_cur} that "
                            f"{source.reference} lacks: not compared")
    try:
        results = D.compare(ref, cur, columns=list(request.columns) or None,
                            config=request.config, unmatched="report")
    except D.ColumnTypeError as e:
        why = (f"it is numeric in {source.reference}" if e.side == "current"
               else "it is numeric")
        raise BadRequest(e.side, f"{paths[e.side]}: column {e.column!r} has non-numeric values "
                         f"({e.detail}), but {why}") from None
    # the same conclusions as on a cluster: drift and prediction-drift findings, and rows of
    # the current sample whose inputs lie far outside the reference (skew-aware robust z)
    findings = D.drift_findings(results, model=sc.model, window_start=None, window_end=None,
                                service=sc.service, model_version=sc.version)
    inputs = [c for c in ref.columns if c not in D.PREDICTION_SUBJECTS]
    outliers = D.robust_outliers(ref[inputs], cur[[c for c in inputs if c in cur]])
    if outliers.n_outliers:
        findings += D.outlier_findings(outliers, model=sc.model, window_start=None,
                                       window_end=None, service=sc.service,
                                       sample_ids=[str(i) for i in outliers.row_index])
    return DriftResult(results, findings, warnings=warnings)


def _drift_cluster(request: DriftRequest, source: ClusterEvents, writer: Writer | None
                   ) -> DriftResult:
    engine, ns, sc = source.engine, source.namespace, request.scope
    if sc.model is None:
        raise BadRequest("model", "drift against the cluster needs a model")
    model, version = sc.model, sc.version
    cs, ce = request.current.closed
    if request.require_current:
        M.require_predictions(engine, model=model, start=cs, end=ce, version=version,
                              namespace=ns, what="current ")
    reference = request.reference
    config = request.config
    profile_id = None
    fields: Mapping[str, str]
    ref_info: dict[str, Any]
    if reference is None:
        raise BadRequest("reference", "drift needs a reference window or profile")
    if isinstance(reference, str):
        reference = M.load_profile(engine, reference)
    if isinstance(reference, Window) and request.save_profile:
        rs, re_ = reference.closed
        prof, fields_ = M.profile_from_cluster(engine, model=model, start=rs, end=re_,
                                               version=version, namespace=ns, config=config)
        if writer is None:
            raise BadRequest("save_profile", "storing a profile needs a writer")
        profile_id = writer.profile(prof, model=model, version=version,
                                    name=request.save_profile, fields=fields_,
                                    window=(rs, re_), namespace=ns)
        reference = M.StoredProfile(profile_id, model, version, prof, fields_, "window")
    if isinstance(reference, M.StoredProfile):
        profile, fields = reference.profile, reference.fields
        ref_info = {"profile_id": reference.id, "window_start": reference.window_start,
                    "window_end": reference.window_end}
    elif isinstance(reference, D.ReferenceProfile):
        profile, fields = reference, {}
        ref_info = {"profile": "given"}
    else:
        rs, re_ = reference.closed
        profile, fields = M.profile_from_cluster(engine, model=model, start=rs, end=re_,
                                                 version=version, namespace=ns, config=config)
        ref_info = {"window_start": iso(rs), "window_end": iso(re_)}
    cfg = config or D.DriftConfig(bins=profile.bins, fine_bins=profile.fine_bins)
    summary = M.summarize_window(engine, profile, fields, model=model, start=cs, end=ce,
                                 version=version, namespace=ns,
                                 max_categories=cfg.max_categories)
    results = D.compare_profile(profile, summary, config=cfg)
    service = M.service_of(engine, model, ns)
    findings = D.drift_findings(results, model=model, window_start=cs, window_end=ce,
                                service=service, model_version=version, namespace=ns,
                                reference=ref_info)
    if request.outliers:
        findings += _outlier_scan(source, profile, fields, model=model, start=cs, end=ce,
                                  version=version, threshold=request.outlier_threshold,
                                  service=service)
    if writer is not None and findings:
        writer.findings(findings)
    return DriftResult(results, findings, profile_id=profile_id)


def _outlier_scan(
    source: ClusterEvents, profile: D.ReferenceProfile, fields: Mapping[str, str], *,
    model: str, start: datetime, end: datetime, version: str | None, threshold: float,
    service: str | None,
) -> list[Finding]:
    """The skew-aware robust z (:mod:`logsight.analysis.outlier_scale`) needs only the
    reference's min, quartiles and max, which the profile's quantile histogram gives, so the
    file and cluster checks share one rule. Only rows outside the fences are read, with a range
    query, so a clean window reads nothing."""
    should = []
    scales: dict[str, Any] = {}
    for name, fp in profile.features.items():
        if not isinstance(fp, D.NumericProfile) or name in M.PREDICTION_FIELDS:
            continue
        q1, med, q3 = D.profile_quantiles(fp, (0.25, 0.5, 0.75))
        sc = robust_scale(float(fp.min), q1, med, q3, float(fp.max), n=fp.n)
        lo, hi = sc.fences(threshold)
        scales[name] = sc
        fld = fields.get(name) or M.FEATURE_PREFIX + name
        should += [{"range": {fld: {"lt": lo}}}, {"range": {fld: {"gt": hi}}}]
    if not should:
        return []
    engine, namespace = source.engine, source.namespace
    q = M.event_query("prediction", model=model, start=start, end=end, version=version)
    total = engine.count(M.index_for(namespace), q)
    q["bool"]["should"] = should
    q["bool"]["minimum_should_match"] = 1
    rows = M.read_events_query(engine, q, namespace)
    if rows.empty:
        return []
    by_feature: dict[str, int] = {}
    max_z: dict[str, float] = {}
    for name, sc in scales.items():
        col = "feature." + name
        if col not in rows:
            continue
        z = pd.Series(sc.z(rows[col].astype(float).to_numpy()), index=rows.index)
        if (z > threshold).any():
            by_feature[name] = int((z > threshold).sum())
        max_z[name] = float(np.nanmax(z)) if z.notna().any() else 0.0
    rep = D.OutlierReport(n_rows=total, n_outliers=len(rows), threshold=threshold,
                          by_feature=by_feature, max_z=max_z, row_index=[],
                          scale={n: sc.scale for n, sc in scales.items()})
    ids = rows["request_id"].dropna().astype(str).tolist() if "request_id" in rows else []
    return D.outlier_findings(rep, model=model, window_start=start, window_end=end,
                              service=service, namespace=namespace, sample_ids=ids)


def drift_raw(request: DriftRequest, source: ClusterEvents) -> list[D.FeatureDrift]:
    """The same comparison from the raw rows of both windows (exact statistics; for small
    windows and tests)."""
    engine, namespace, config = source.engine, source.namespace, request.config
    model, version = request.scope.model, request.scope.version
    if not isinstance(request.reference, Window):
        raise BadRequest("reference", "a raw comparison needs a reference window")
    fields = M.discover_fields(engine, namespace)
    frames = []
    for rs, re_ in (request.reference.closed, request.current.closed):
        raw = M.read_events(engine, "prediction", model=model, start=rs, end=re_,
                            version=version, namespace=namespace)
        cols = {}
        for name, (fld, _) in fields.items():
            col = M.COLUMN_NAMES.get(fld, "feature." + name)
            if col in raw:
                cols[name] = raw[col]
        frames.append(pd.DataFrame(cols))
    ref, cur = frames
    kinds = {n: k for n, (_, k) in fields.items()}
    shared = [c for c in ref if c in cur and ref[c].notna().any()]
    kinds = {c: (D.feature_kind(ref[c].astype(float), categorical_max_unique=(
        config or D.DriftConfig()).categorical_max_unique) if kinds[c] == D.NUMERIC
        else D.CATEGORICAL) for c in shared}
    return D.compare(ref, cur, columns=shared, config=config, kinds=kinds)


