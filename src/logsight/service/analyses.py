"""The analyses the API and the scheduler can run, behind one calling convention.

Each analysis lives in ``logsight.sources.<stream>`` as a ``run_*`` function taking the engine
and keyword arguments. Their signatures differ a little (drift takes reference/current
windows, traces a baseline); :func:`run_analysis` builds the arguments per kind, passes only
those the function accepts, and normalises what comes back to ``(rows, findings)``."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from logsight.findings import Finding, _jsonable
from logsight.timeutil import iso

if TYPE_CHECKING:
    from logsight.engine import Engine


@dataclass(frozen=True)
class Params:
    """What a caller asked for, already validated (windows ordered, within limits)."""

    start: datetime
    end: datetime
    baseline_start: datetime | None = None
    baseline_end: datetime | None = None
    service: str | None = None
    operation: str | None = None
    model: str | None = None
    version: str | None = None
    namespace: str | None = None
    top: int = 10
    write: bool = True


@dataclass(frozen=True)
class AnalysisSpec:
    kind: str
    module: str
    function: str
    finding_kinds: tuple[str, ...]
    needs_model: bool = False
    uses_baseline: bool = False
    per_model: bool = False  # the scheduler runs it once per model seen in the window
    description: str = ""

    @property
    def stream(self) -> str:
        """The stream it reads: its module is ``logsight.sources.<stream>``."""
        return self.module.rsplit(".", 1)[-1]


ANALYSES: dict[str, AnalysisSpec] = {
    s.kind: s
    for s in (
        AnalysisSpec(
            "bottlenecks", "logsight.sources.traces", "run_bottlenecks", ("trace_bottleneck",),
            description="Operations ranked by the critical-path time they contribute",
        ),
        AnalysisSpec(
            "trace_regressions", "logsight.sources.traces", "run_trace_regressions",
            ("trace_regression",), uses_baseline=True,
            description="Operations whose latency or critical-path share grew vs a baseline",
        ),
        AnalysisSpec(
            "log_anomalies", "logsight.sources.logs", "run_log_anomalies",
            ("log_anomaly", "template_drift"), uses_baseline=True,
            description="Anomalous log windows (templates, levels, rates) vs a baseline",
        ),
        AnalysisSpec(
            "drift", "logsight.sources.mlevents", "run_drift",
            ("feature_drift", "prediction_drift"), needs_model=True, uses_baseline=True,
            per_model=True,
            description="Feature and prediction drift of a model: reference vs current window",
        ),
        AnalysisSpec(
            "performance", "logsight.sources.mlevents", "run_performance",
            ("performance_degradation", "version_regression", "kpi_change"), needs_model=True,
            uses_baseline=True, per_model=True,
            description="Model quality from feedback, per version, and KPI changes",
        ),
    )
}


class AnalysisUnavailable(RuntimeError):
    """The analysis is not part of this build (its module or entry point is missing)."""


def load(kind: str) -> Callable[..., Any]:
    spec = ANALYSES[kind]
    # only a missing module (or a dependency it imports) or a missing entry point means "not
    # in this build"; any other exception on import is a bug and must surface as one
    try:
        module = importlib.import_module(spec.module)
    except ImportError as e:
        raise AnalysisUnavailable(
            f"analysis {kind!r} is not available in this build "
            f"({spec.module}: {type(e).__name__} of {e.name or spec.module})"  # no file paths
        ) from e
    try:
        fn = getattr(module, spec.function)
    except AttributeError as e:
        raise AnalysisUnavailable(
            f"analysis {kind!r} is not available in this build "
            f"({spec.module} has no {spec.function})"
        ) from e
    if not callable(fn):
        raise AnalysisUnavailable(f"{spec.module}.{spec.function} is not callable")
    return fn


def availability() -> dict[str, bool]:
    out: dict[str, bool] = {}
    for kind in ANALYSES:
        try:
            load(kind)
            out[kind] = True
        except AnalysisUnavailable:
            out[kind] = False
    return out


def _arguments(kind: str, p: Params) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "start": p.start, "end": p.end, "service": p.service, "operation": p.operation,
        "namespace": p.namespace, "top": p.top, "write": p.write, "model": p.model,
        "version": p.version,
    }
    has_base = p.baseline_start is not None and p.baseline_end is not None
    if kind == "log_anomalies":
        # ``model`` names an ML model elsewhere; log analysis has none, and a log-model path
        # would be unpickled, so no API field may ever reach one
        kw.pop("model", None)
        # run_log_anomalies learns its baseline from the start of the range it reads, up to
        # the ``baseline`` timestamp: read [baseline_start, end) and split at the window start
        if has_base:
            if p.baseline_end != p.start:
                raise ValueError(
                    "log anomalies need a baseline that ends where the window starts "
                    "(baseline_to = from)"
                )
            kw.update(start=p.baseline_start, baseline=p.start)
        return kw
    if has_base:
        kw.update(
            baseline_start=p.baseline_start, baseline_end=p.baseline_end,
            reference=(p.baseline_start, p.baseline_end),
        )
    if kind == "drift":
        kw["current"] = (p.start, p.end)
    return kw


def call_with_accepted(fn: Callable[..., Any], engine: Engine, kw: Mapping[str, Any]) -> Any:
    """Call ``fn(engine, **kw)`` with only the keywords ``fn`` declares. A None of ours never
    overrides a non-None default the analysis chose for itself."""
    params = list(inspect.signature(fn).parameters.values())[1:]  # the first is the engine
    by_name = {p.name: p for p in params if p.kind in (
        inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)}
    accepted: dict[str, Any] = {}
    for name, value in kw.items():
        p = by_name.get(name)
        if p is None:
            continue
        if value is None and p.default is not inspect.Parameter.empty and p.default is not None:
            continue
        accepted[name] = value
    missing = [
        name for name, p in by_name.items()
        if p.default is inspect.Parameter.empty and accepted.get(name) is None
    ]
    if missing:
        raise ValueError(f"missing required parameter(s): {', '.join(missing)}")
    return fn(engine, **accepted)


def plain_rows(items: Any) -> list[dict[str, Any]]:
    """Result rows as JSON-safe dicts (dataclasses, mappings, or objects with ``__dict__``)."""
    if items is None:
        return []
    if isinstance(items, Mapping) or dataclasses.is_dataclass(items):
        items = [items]
    rows: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, Finding):
            continue
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            d: Any = dataclasses.asdict(item)
        elif isinstance(item, Mapping):
            d = dict(item)
        elif hasattr(item, "__dict__"):
            d = dict(vars(item))
        else:
            d = {"value": item}
        rows.append(_jsonable(d))
    return rows


def normalise(result: Any) -> tuple[list[dict[str, Any]], list[Finding]]:
    """``(rows, findings)`` from any of: a list of findings; ``(rows, findings)``; an object
    with a ``findings`` attribute (a report dataclass)."""
    if isinstance(result, tuple) and len(result) == 2 and _is_findings(result[1]):
        return plain_rows(result[0]), list(result[1])
    if _is_findings(result):
        return [], list(result)
    findings = getattr(result, "findings", None)
    if findings is not None and _is_findings(findings):
        if dataclasses.is_dataclass(result) and not isinstance(result, type):
            body = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)
                    if f.name != "findings"}
        else:
            body = {k: v for k, v in vars(result).items() if k != "findings"}
        return plain_rows([body]), list(findings)
    return plain_rows(result), []


def _is_findings(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and all(
        isinstance(f, Finding) for f in value
    )


def run_analysis(
    engine: Engine, kind: str, params: Params
) -> tuple[list[dict[str, Any]], list[Finding]]:
    """Run analysis ``kind``; raises KeyError (unknown kind), AnalysisUnavailable, ValueError
    (bad parameters, from us or from the analysis), or the engine's errors."""
    spec = ANALYSES[kind]
    if spec.needs_model and not params.model:
        raise ValueError(f"analysis {kind!r} needs a model")
    fn = load(kind)
    return normalise(call_with_accepted(fn, engine, _arguments(kind, params)))


# CLI flags an analysis's message may name, as the API parameters that play their part
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)")
_FLAG_PARAMS = {"baseline": "{bf}/{bt}", "reference": "{bf}/{bt}", "since": "from",
                "until": "to", "start": "from", "end": "to"}


def api_message(
    kind: str, params: Params, message: str,
    baseline_names: tuple[str, str] = ("baseline_from", "baseline_to"),
) -> str:
    """An analysis's ValueError in the API's words: the analyses are shared with the CLI and
    may say "move --baseline later", which an API caller cannot do. Known log-anomaly
    messages ("no log lines" in the baseline or the window, worded the CLI's way or neutrally)
    become one naming the API parameters and the windows as resolved; any other ``--flag``
    is renamed to the matching parameter."""
    bf, bt = baseline_names
    low = message.lower()
    scope = "".join([
        f" of service {params.service!r}" if params.service else "",
        f" in namespace {params.namespace!r}" if params.namespace else "",
    ])
    window = f"from={iso(params.start)} to={iso(params.end)}"
    has_base = params.baseline_start is not None and params.baseline_end is not None
    base = f"{bf}={iso(params.baseline_start)} {bt}={iso(params.baseline_end)}"
    no_lines = "no log lines" in low or "holds no" in low or "empty" in low or \
        "no baseline windows" in low
    if kind == "log_anomalies" and no_lines:
        if "after the baseline" in low or "after baseline" in low:
            return (f"no log lines{scope} in the window {window} (the baseline window "
                    f"{base} has some); move from/to to a period with logs")
        if "baseline" in low and has_base:
            return (f"the baseline window {base} holds no log lines{scope}; set {bf} earlier "
                    f"(the baseline ends where the window starts: {bt} = from) or move "
                    f"from/to later")
        if "to analyse" in low:
            start = params.baseline_start if has_base else params.start
            return (f"no log lines{scope} between {iso(start)} and {iso(params.end)} (the "
                    f"baseline window and the window {window}); widen the windows or check "
                    f"the namespace and service")

    def rename(m: re.Match[str]) -> str:
        flag = m.group(1)
        return _FLAG_PARAMS.get(flag, flag.replace("-", "_")).format(bf=bf, bt=bt)

    if "--" not in message:
        return message
    text = _FLAG.sub(rename, message)
    return f"{text} (window {window}" + (f", baseline window {base})" if has_base else ")")
