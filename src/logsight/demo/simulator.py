"""A simulated ML system, instrumented the way a real one would be.

Four services: ``gateway`` -> ``feature-service`` -> ``feature-store`` for the features, then
``gateway`` -> ``model-service`` (which runs ``model.inference``). Every request is a trace
(OpenTelemetry SDK ``TracerProvider`` per service, logsight's span exporter in a
``BatchSpanProcessor``), every service logs through logsight's adapters (stdlib logging for
three of them, structlog for the model service), and the model service records each
prediction; the ground truth arrives hours later (simulated time).

Time is simulated: :func:`plan_requests` decides, with numpy and a seeded generator, what every
request does and when (pure, no I/O); :func:`emit_plan` replays that plan through the real
instrumentation with explicit timestamps (span start/end times, a settable clock for the log
and ML adapters), so a simulated hour takes seconds of wall time and nothing sleeps.
"""

from __future__ import annotations

import logging
import math
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from logsight.demo.incidents import (
    BAD_VERSION,
    ERROR_BURST,
    FEATURE_SERVICE,
    FEATURE_SHIFT,
    FEATURE_STORE,
    FEATURES,
    GATEWAY,
    LATENCY,
    MODEL_NAME,
    MODEL_SERVICE,
    OP_FEATURES,
    OP_GATEWAY,
    OP_INFERENCE,
    OP_SCORE,
    OP_STORE_READ,
    SERVICES,
    Schedule,
)

SERVICE_VERSIONS = {GATEWAY: "2.3.1", FEATURE_SERVICE: "0.9.4", FEATURE_STORE: "1.12.0",
                    MODEL_SERVICE: "3.0.2"}
# typical self time (ms) of each step; lognormal around these
STEP_MS = {"gw_pre": 1.0, "fs_pre": 1.5, "store": 8.0, "fs_post": 1.5, "gw_mid": 0.5,
           "ms_pre": 1.0, "inference": 12.0, "ms_post": 1.0, "gw_post": 1.0}
STEP_SIGMA = 0.25
SESSION_MEAN, SESSION_STD = 12.0, 3.0
LABELS = ("churn", "stay")
# how tightly the model's confidence clusters around its mean (a Beta concentration): ~8 gives
# a realistic spread, from just above 0.5 to nearly 1
CONFIDENCE_CONCENTRATION = 8.0
# Each service logs its own way, as real ones do (with one line per request everywhere, three
# services' log-anomaly curves were identical point for point): the feature store logs one
# read per feature group it touches, the gateway sometimes logs its rate limiter, the feature
# service its local cache, the model service its batch queue and a GPU heartbeat on a timer.
FEATURE_GROUPS = ("profile", "billing", "usage")
P_EXTRA_GROUP = 0.4  # each group beyond the first is read with this probability
P_RATE_LIMIT_LINE = 0.15
P_LOCAL_CACHE_LINE = 0.35
P_QUEUE_LINE = 0.2
GPU_HEARTBEAT_S = 20.0


class SimClock:
    """A settable clock (epoch seconds) handed to the adapters instead of ``time.time``."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = float(t)

    def __call__(self) -> float:
        return self.t


@dataclass
class RequestPlan:
    """Everything every simulated request does, one array element per request (pure data)."""

    t0: datetime
    request_id: np.ndarray  # str
    customer: np.ndarray  # int
    start: np.ndarray  # epoch seconds
    minute: np.ndarray  # simulated minute from t0
    steps_ms: dict[str, np.ndarray]
    failed: np.ndarray  # bool: the model service crashed on this request (error burst)
    cache_miss: np.ndarray  # bool
    version: np.ndarray  # str
    features: dict[str, np.ndarray]
    label: np.ndarray  # bool: churned
    prediction: np.ndarray  # bool: predicted churn
    p_churn: np.ndarray  # the model's probability of churn
    score: np.ndarray  # confidence of the predicted class: max(p_churn, 1 - p_churn)
    feedback_at: np.ndarray  # epoch seconds: when the ground truth arrives
    # per-request log variety (see FEATURE_GROUPS): feature groups read (1..3), and whether the
    # gateway / feature service / model service write their occasional extra line
    store_reads: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    rate_limit_line: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    local_cache_line: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    queue_line: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    duration_minutes: int = 0  # the simulated run's length (timers such as the heartbeat)

    def __len__(self) -> int:
        return len(self.start)

    def end_ms(self) -> np.ndarray:
        """Gateway latency of every request (ms)."""
        s = self.steps_ms
        inference = np.where(self.failed, 0.0, s["inference"])
        return (s["gw_pre"] + s["fs_pre"] + s["store"] + s["fs_post"] + s["gw_mid"]
                + s["ms_pre"] + inference + s["ms_post"] + s["gw_post"])


def start_time(schedule: Schedule, now: datetime, *, margin: timedelta = timedelta(minutes=5)
               ) -> datetime:
    """The simulated run's start: early enough that the last ground truth is in the past."""
    end = now.astimezone(UTC).replace(second=0, microsecond=0) - margin
    return end - schedule.horizon


def plan_requests(
    schedule: Schedule, t0: datetime, *, random_state: int | None = 0, run_id: str = "r"
) -> RequestPlan:
    """Decide every request of the run (vectorised; deterministic for a seed)."""
    rng = np.random.default_rng(random_state)
    # a Poisson process: request counts per minute vary as real traffic does (a perfectly
    # regular baseline would make every window identical and every detector brittle)
    n = int(rng.poisson(schedule.duration_minutes * schedule.requests_per_minute))
    minute = np.sort(rng.uniform(0.0, float(schedule.duration_minutes), n))
    start = t0.timestamp() + minute * 60.0
    steps = {k: v * rng.lognormal(0.0, STEP_SIGMA, n) for k, v in STEP_MS.items()}

    failed = np.zeros(n, dtype=bool)
    version = np.full(n, schedule.old_version, dtype=object)
    session = rng.normal(SESSION_MEAN, SESSION_STD, n)
    for inc in schedule.incidents:
        on = (minute >= inc.start_minute) & (minute < inc.end_minute)
        if inc.kind == LATENCY:
            steps["store"] = np.where(on, steps["store"] * inc.magnitude, steps["store"])
        elif inc.kind == ERROR_BURST:
            p = min(1.0, inc.magnitude / schedule.requests_per_minute)
            failed |= on & (rng.uniform(0.0, 1.0, n) < p)
        elif inc.kind == FEATURE_SHIFT:
            session = np.where(on, session + inc.magnitude * SESSION_STD, session)
        elif inc.kind == BAD_VERSION:
            version = np.where(on, inc.target, version)

    tenure = rng.integers(1, 73, n).astype(float)
    charges = np.round(rng.normal(70.0, 20.0, n).clip(15.0, 150.0), 2)
    # Poisson(4), not a rarer count: with a median of 1 a ticket count of 6 already sits
    # "6 MADs" out, and the outlier scan would flag ordinary customers
    tickets = rng.poisson(4.0, n).astype(float)
    features = {"tenure_months": tenure, "monthly_charges": charges,
                "support_tickets": tickets, "session_minutes": np.round(session, 2)}
    # churn depends on tenure, charges and tickets; session_minutes is informative of nothing,
    # so its shift changes the inputs but not the right answers
    logit = -0.06 * (tenure - 36.0) + 0.03 * (charges - 70.0) + 0.35 * (tickets - 4.0)
    label = rng.uniform(0.0, 1.0, n) < 1.0 / (1.0 + np.exp(-logit))
    accuracy = np.where(version == schedule.new_version, schedule.new_accuracy,
                        schedule.old_accuracy)
    confidence, correct = _model_outputs(rng, accuracy, schedule.old_accuracy,
                                         concentration=CONFIDENCE_CONCENTRATION)
    prediction = np.where(correct, label, ~label)
    p_churn = np.round(np.where(prediction, confidence, 1.0 - confidence), 4)
    lo, hi = schedule.feedback_delay_hours
    feedback_at = start + rng.uniform(lo, hi, n) * 3600.0
    # drawn last, so the draws above (and the incidents they carry) do not move
    store_reads = 1 + rng.binomial(len(FEATURE_GROUPS) - 1, P_EXTRA_GROUP, n)
    rate_limit_line = rng.uniform(0.0, 1.0, n) < P_RATE_LIMIT_LINE
    local_cache_line = rng.uniform(0.0, 1.0, n) < P_LOCAL_CACHE_LINE
    queue_line = rng.uniform(0.0, 1.0, n) < P_QUEUE_LINE
    return RequestPlan(
        t0=t0,
        request_id=np.array([f"{run_id}-{i:06d}" for i in range(n)], dtype=object),
        customer=rng.integers(10_000, 99_999, n),
        start=start,
        minute=minute,
        steps_ms=steps,
        failed=failed,
        cache_miss=rng.uniform(0.0, 1.0, n) < 0.03,
        version=version,
        features=features,
        label=label,
        prediction=prediction,
        p_churn=p_churn,
        score=confidence,
        feedback_at=feedback_at,
        store_reads=store_reads,
        rate_limit_line=rate_limit_line,
        local_cache_line=local_cache_line,
        queue_line=queue_line,
        duration_minutes=schedule.duration_minutes,
    )


def log_lines(plan: RequestPlan) -> np.ndarray:
    """Log lines each request makes the services write (what :func:`emit_plan` logs; the GPU
    heartbeat, written on a timer, is not a request's)."""
    return (2 + plan.rate_limit_line.astype(int)  # gateway
            + plan.store_reads  # feature store
            + 1 + plan.cache_miss.astype(int) + plan.local_cache_line.astype(int)
            + 1 + plan.queue_line.astype(int))  # model service: scored or the CUDA error


def heartbeats(plan: RequestPlan) -> np.ndarray:
    """Epoch seconds of the model service's GPU heartbeat lines over the run."""
    t0 = plan.t0.timestamp()
    return t0 + np.arange(GPU_HEARTBEAT_S, plan.duration_minutes * 60.0, GPU_HEARTBEAT_S)


def _model_outputs(
    rng: np.random.Generator, accuracy: np.ndarray, calibrated_accuracy: float, *,
    concentration: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(confidence of the predicted class, whether the prediction is right) per request.

    The confidence is a Beta on [0.5, 1] whose mean is ``calibrated_accuracy``, the same for
    every version, so the score distribution does not move when a version is swapped (score
    drift is not what the bad-version incident is about). A request is right with probability
    its confidence shifted by ``accuracy - calibrated_accuracy``: the version whose accuracy is
    ``calibrated_accuracy`` is calibrated (ECE ~ 0, ROC-AUC well above 0.5), a less accurate
    one is over-confident by the difference, as a bad model that still sounds sure is.
    Rounded to 4 decimals (what a service would log); correctness is drawn from the rounded
    value."""
    n = len(accuracy)
    mean = min(max(calibrated_accuracy, 0.5 + 1e-3), 1.0 - 1e-3)
    mu = (mean - 0.5) / 0.5
    confidence = np.round(0.5 + 0.5 * rng.beta(concentration * mu, concentration * (1.0 - mu),
                                               n), 4)
    p_correct = np.clip(confidence + (accuracy - mean), 0.0, 1.0)
    correct = rng.uniform(0.0, 1.0, n) < p_correct
    return confidence, correct


# -- instrumentation ---------------------------------------------------------------------------
@dataclass
class Instrumented:
    """One service's instrumentation: a logsight handle, its logger and its tracer."""

    name: str
    handle: Any  # logsight.Logsight
    provider: Any  # opentelemetry.sdk.trace.TracerProvider
    tracer: Any
    log: Any  # stdlib Logger or structlog BoundLogger
    structured: bool


@dataclass
class EmitStats:
    requests: int = 0
    spans: int = 0
    logs: int = 0
    predictions: int = 0
    feedback: int = 0
    counters: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def documents(self) -> int:
        return self.spans + self.logs + self.predictions + self.feedback


def instrument(
    url: str | None,
    namespace: str,
    clock: SimClock,
    *,
    spool_dir: Path,
    engine: Any = None,
) -> dict[str, Instrumented]:
    """``logsight.configure`` once per service, with an OTel tracer whose spans go through
    logsight's exporter. The model service logs with structlog, the others with stdlib
    logging (the two adapters applications use)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import logsight

    out: dict[str, Instrumented] = {}
    for svc in SERVICES:
        handle = logsight.configure(
            service_name=svc, url=url, namespace=namespace, service_version=SERVICE_VERSIONS[svc],
            environment="demo", clock=clock, engine=engine, spool_dir=spool_dir / svc,
            level="info", batch_size=2000, flush_interval=0.2, max_queue=200_000,
        )
        provider = TracerProvider(resource=Resource.create(
            {"service.name": svc, "service.version": SERVICE_VERSIONS[svc]}))
        # the simulation produces spans far faster than real traffic: a queue that holds the
        # whole run keeps the processor from dropping any
        provider.add_span_processor(BatchSpanProcessor(
            handle.span_exporter(), max_queue_size=200_000, max_export_batch_size=2000,
            schedule_delay_millis=200))
        tracer = provider.get_tracer("logsight.demo")
        log: Any
        if svc == MODEL_SERVICE:
            log = handle.logger(f"{svc}.server")
        else:
            std = logging.getLogger(f"logsight_demo.{svc}.{namespace}")
            std.setLevel(logging.INFO)
            std.propagate = False  # the demo's lines go to the cluster, not the console
            for h in list(std.handlers):
                std.removeHandler(h)
            std.addHandler(handle.handler)
            log = std
        out[svc] = Instrumented(svc, handle, provider, tracer, log, svc == MODEL_SERVICE)
    return out


def _ns(epoch_s: float) -> int:
    return int(round(epoch_s * 1e9))


@contextmanager
def _span(inst: Instrumented, name: str, kind: Any, start_s: float, parent: Any,
          attributes: dict[str, Any]) -> Iterator[Any]:
    from opentelemetry import trace

    ctx = trace.set_span_in_context(parent) if parent is not None else None
    span = inst.tracer.start_span(name, context=ctx, kind=kind, start_time=_ns(start_s),
                                  attributes=attributes)
    with trace.use_span(span, end_on_exit=False):
        yield span


def _info(inst: Instrumented, clock: SimClock, at: float, level: str, message: str,
          **fields: Any) -> None:
    clock.t = at
    if inst.structured:
        getattr(inst.log, level)(message, **fields)
    else:
        inst.log.log(getattr(logging, level.upper()), message, extra=fields or None)


def emit_plan(
    plan: RequestPlan,
    services: dict[str, Instrumented],
    clock: SimClock,
    *,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
    flush_every: int = 600,
) -> EmitStats:
    """Replay ``plan`` through the instrumentation (spans, logs, predictions, then the
    delayed feedback in arrival order) and flush everything."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    gw, fs, st, ms = (services[s] for s in (GATEWAY, FEATURE_SERVICE, FEATURE_STORE,
                                             MODEL_SERVICE))
    stats = EmitStats()
    s = plan.steps_ms
    rows: Iterable[int] = range(len(plan))
    if progress is not None:
        rows = progress(rows)
    for i in rows:
        rid = str(plan.request_id[i])
        t = float(plan.start[i])
        ms_of = {k: float(v[i]) for k, v in s.items()}
        failed = bool(plan.failed[i])
        version = str(plan.version[i])
        total_ms = sum(ms_of.values()) - (ms_of["inference"] if failed else 0.0)
        end_s = t + total_ms / 1000.0
        customer = plan.customer[i]
        with _span(gw, OP_GATEWAY, SpanKind.SERVER, t, None,
                   {"http.method": "POST", "http.route": "/predict",
                    "request.id": rid}) as root:
            _info(gw, clock, t, "info", f"request {rid} received route=/predict "
                  f"client=c{customer % 97}")
            if plan.rate_limit_line[i]:
                _info(gw, clock, t, "info", f"rate limiter: client c{customer % 97} at "
                      f"{20 + customer % 60}% of its quota")
            # feature service -> feature store
            fs_start = t + ms_of["gw_pre"] / 1000.0
            store_start = fs_start + ms_of["fs_pre"] / 1000.0
            store_end = store_start + ms_of["store"] / 1000.0
            fs_end = store_end + ms_of["fs_post"] / 1000.0
            with _span(fs, OP_FEATURES, SpanKind.SERVER, fs_start, root,
                       {"http.route": "/features"}) as fspan:
                with _span(st, OP_STORE_READ, SpanKind.SERVER, store_start, fspan,
                           {"db.system": "redis", "feature.count": len(FEATURES)}) as sspan:
                    for group in FEATURE_GROUPS[:int(plan.store_reads[i])]:
                        _info(st, clock, store_end, "info",
                              f"online read key=customer:{customer} group={group} hit=true")
                    sspan.end(end_time=_ns(store_end))
                if plan.local_cache_line[i]:
                    _info(fs, clock, store_end, "info",
                          f"served tenure_months for customer {customer} from the local cache")
                if plan.cache_miss[i]:
                    _info(fs, clock, store_end, "warning",
                          f"cache miss for customer {plan.customer[i]}, "
                          "falling back to the offline store")
                _info(fs, clock, fs_end, "info",
                      f"assembled {len(FEATURES)} features for customer {plan.customer[i]} "
                      f"in {(fs_end - fs_start) * 1000:.1f} ms")
                fspan.end(end_time=_ns(fs_end))
            # model service
            sc_start = fs_end + ms_of["gw_mid"] / 1000.0
            with _span(ms, OP_SCORE, SpanKind.SERVER, sc_start, root,
                       {"http.route": "/score", "model.version": version}) as mspan:
                inf_start = sc_start + ms_of["ms_pre"] / 1000.0
                if plan.queue_line[i]:
                    _info(ms, clock, sc_start, "info",
                          f"batch queue depth={1 + i % 7} waiting for {MODEL_NAME}")
                if failed:
                    at = inf_start
                    _info(ms, clock, at, "error",
                          f"CUDA error: out of memory while allocating "
                          f"{256 * (1 + i % 4)} MiB on cuda:{i % 2}; request {rid} aborted",
                          request_id=rid)
                    mspan.set_status(Status(StatusCode.ERROR, "CUDA out of memory"))
                    sc_end = at + ms_of["ms_post"] / 1000.0
                else:
                    inf_end = inf_start + ms_of["inference"] / 1000.0
                    with _span(ms, OP_INFERENCE, SpanKind.INTERNAL, inf_start, mspan,
                               {"model.name": MODEL_NAME, "model.version": version}) as ispan:
                        ispan.end(end_time=_ns(inf_end))
                    sc_end = inf_end + ms_of["ms_post"] / 1000.0
                    clock.t = inf_end
                    feats = {k: float(v[i]) for k, v in plan.features.items()}
                    pred = LABELS[0] if plan.prediction[i] else LABELS[1]
                    p = float(plan.p_churn[i])
                    # score = confidence of the predicted class (what the performance and
                    # drift analyses read ml.score as); the class probabilities as well, so
                    # ROC-AUC and calibration use the full distribution
                    ms.handle.log_prediction(
                        MODEL_NAME, version, feats, pred, score=float(plan.score[i]),
                        probabilities={LABELS[0]: p, LABELS[1]: round(1.0 - p, 4)},
                        latency_ms=ms_of["inference"], request_id=rid, timestamp=inf_end)
                    stats.predictions += 1
                    _info(ms, clock, inf_end, "info",
                          f"scored request {rid} with {MODEL_NAME} version {version} "
                          f"score={plan.score[i]:.3f}", request_id=rid)
                mspan.end(end_time=_ns(sc_end))
            status = 503 if failed else 200
            if failed:
                root.set_status(Status(StatusCode.ERROR, "model service unavailable"))
            _info(gw, clock, end_s, "info",
                  f"request {rid} answered status={status} in {total_ms:.1f} ms")
            root.end(end_time=_ns(end_s))
        stats.requests += 1
        stats.spans += 4 if failed else 5
        if flush_every and (i + 1) % flush_every == 0:
            _drain(services, timeout=60.0)
    stats.logs += int(log_lines(plan).sum())
    # the model service's GPU heartbeat, on a timer whatever the traffic
    beats = heartbeats(plan)
    for k, at in enumerate(beats):
        _info(ms, clock, float(at), "info",
              f"gpu heartbeat cuda:{k % 2} memory used {9000 + (k * 37) % 800} MiB of 16384")
    stats.logs += len(beats)
    # ground truth, "hours later", in the order it arrives
    ok = np.flatnonzero(~plan.failed)
    for i in ok[np.argsort(plan.feedback_at[ok], kind="stable")]:
        at = float(plan.feedback_at[i])
        clock.t = at
        ms.handle.log_feedback(str(plan.request_id[i]),
                               LABELS[0] if plan.label[i] else LABELS[1],
                               model=MODEL_NAME, version=str(plan.version[i]), timestamp=at)
        stats.feedback += 1
    _drain(services, timeout=120.0)
    stats.counters = {name: inst.handle.counters.as_dict() for name, inst in services.items()}
    return stats


def _drain(services: dict[str, Instrumented], *, timeout: float) -> None:
    for inst in services.values():
        inst.provider.force_flush(int(timeout * 1000))
    for inst in services.values():
        if not inst.handle.flush(timeout):
            raise RuntimeError(
                f"{inst.name}: the shipper did not deliver its events within {timeout:.0f} s "
                f"(counters: {inst.handle.counters.as_dict()})"
            )


def shutdown(services: dict[str, Instrumented]) -> None:
    for inst in services.values():
        inst.provider.shutdown()
        if not inst.structured:
            inst.log.removeHandler(inst.handle.handler)
        inst.handle.close(timeout=30.0)


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def default_spool_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="logsight-demo-spool-"))


def plan_summary(plan: RequestPlan) -> dict[str, Any]:
    """Counts a person can check against the schedule."""
    lat = plan.end_ms()
    return {
        "requests": len(plan),
        "failed": int(plan.failed.sum()),
        "versions": {str(v): int((plan.version == v).sum()) for v in np.unique(plan.version)},
        "p50_latency_ms": float(np.percentile(lat, 50)) if len(lat) else math.nan,
    }
