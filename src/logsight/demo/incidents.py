"""The demo's schedule: the simulated system's shape, its timeline, and the incidents injected
at known (simulated) minutes, plus the rule that matches findings to incidents.

Everything here is pure: the simulator reads the schedule to decide what each request does,
and :func:`match_findings` grades what the analyses concluded against what was injected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from logsight.findings import Finding

# The simulated ML system: gateway -> feature-service -> feature-store, gateway -> model-service
GATEWAY = "gateway"
FEATURE_SERVICE = "feature-service"
FEATURE_STORE = "feature-store"
MODEL_SERVICE = "model-service"
SERVICES = (GATEWAY, FEATURE_SERVICE, FEATURE_STORE, MODEL_SERVICE)

OP_GATEWAY = "POST /predict"
OP_FEATURES = "GET /features"
OP_STORE_READ = "read_online_features"
OP_SCORE = "POST /score"
OP_INFERENCE = "model.inference"

MODEL_NAME = "churn-classifier"
FEATURES = ("tenure_months", "monthly_charges", "support_tickets", "session_minutes")

# incident kinds (what was injected) and the finding kinds that count as having found them
ERROR_BURST = "error_burst"
LATENCY = "latency_bottleneck"
FEATURE_SHIFT = "feature_shift"
BAD_VERSION = "bad_model_version"
INCIDENT_KINDS: Mapping[str, tuple[str, ...]] = {
    ERROR_BURST: ("log_anomaly",),
    LATENCY: ("trace_bottleneck", "trace_regression"),
    # a shifted feature also pushes a few rows past the outlier scan's robust-z limit
    FEATURE_SHIFT: ("feature_drift", "outlier_inputs"),
    BAD_VERSION: ("performance_degradation", "version_regression"),
}


@dataclass(frozen=True)
class Incident:
    """One injected problem, active from ``start_minute`` (inclusive) to ``end_minute``
    (exclusive) of simulated time. ``target`` is what a correct finding names: the service for
    an error burst, the operation for a latency bottleneck, the feature for a shift, the model
    version for a bad version."""

    kind: str
    service: str
    target: str
    start_minute: float
    end_minute: float
    description: str
    magnitude: float = 1.0  # latency factor, shift in reference std units, lines/minute, ...

    def __post_init__(self) -> None:
        if self.kind not in INCIDENT_KINDS:
            raise ValueError(f"unknown incident kind {self.kind!r}; expected {list(INCIDENT_KINDS)}")
        if not self.end_minute > self.start_minute >= 0:
            raise ValueError(
                f"incident {self.kind}: need 0 <= start_minute < end_minute, got "
                f"{self.start_minute}..{self.end_minute}"
            )

    def active(self, minute: float) -> bool:
        return self.start_minute <= minute < self.end_minute

    def window(self, t0: datetime) -> tuple[datetime, datetime]:
        return (t0 + timedelta(minutes=self.start_minute), t0 + timedelta(minutes=self.end_minute))


@dataclass(frozen=True)
class Schedule:
    """Timeline of one demo run (all times in simulated minutes from the run's start).

    The first ``baseline_minutes`` are incident-free: every analysis learns "normal" there.
    Ground truth for a prediction arrives ``feedback_delay_hours`` later (uniform in the
    range), i.e. hours after the predictions in simulated time."""

    duration_minutes: int = 60
    requests_per_minute: int = 30
    baseline_minutes: int = 20
    analysis_window_minutes: int = 10
    feedback_delay_hours: tuple[float, float] = (2.0, 4.0)
    old_version: str = "1.4.0"
    new_version: str = "1.5.0"
    old_accuracy: float = 0.92
    new_accuracy: float = 0.70
    incidents: tuple[Incident, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.duration_minutes <= self.baseline_minutes or self.baseline_minutes < 1:
            raise ValueError(
                f"need 1 <= baseline_minutes < duration_minutes, got {self.baseline_minutes} "
                f"and {self.duration_minutes}"
            )
        if self.requests_per_minute < 1:
            raise ValueError(f"requests_per_minute must be >= 1, got {self.requests_per_minute}")
        if self.analysis_window_minutes < 1:
            raise ValueError("analysis_window_minutes must be >= 1")
        lo, hi = self.feedback_delay_hours
        if not 0 <= lo <= hi:
            raise ValueError(f"feedback_delay_hours must be 0 <= lo <= hi, got {lo}, {hi}")
        for inc in self.incidents:
            if inc.start_minute < self.baseline_minutes:
                raise ValueError(
                    f"incident {inc.kind} starts at minute {inc.start_minute}, inside the "
                    f"baseline (first {self.baseline_minutes} minutes)"
                )
            if inc.end_minute > self.duration_minutes:
                raise ValueError(
                    f"incident {inc.kind} ends at minute {inc.end_minute}, after the run "
                    f"({self.duration_minutes} minutes)"
                )

    def incident(self, kind: str) -> Incident | None:
        for inc in self.incidents:
            if inc.kind == kind:
                return inc
        return None

    @property
    def horizon(self) -> timedelta:
        """Simulated time from the first request to the last possible ground truth."""
        return timedelta(minutes=self.duration_minutes, hours=self.feedback_delay_hours[1])

    def analysis_windows(self, t0: datetime) -> list[tuple[datetime, datetime]]:
        """Consecutive windows after the baseline, as a scheduler would analyse them."""
        step = self.analysis_window_minutes
        out = []
        m = self.baseline_minutes
        while m < self.duration_minutes:
            end = min(m + step, self.duration_minutes)
            out.append((t0 + timedelta(minutes=m), t0 + timedelta(minutes=end)))
            m = end
        return out


def default_schedule() -> Schedule:
    """A simulated hour: 20 quiet minutes, then four incidents."""
    return Schedule(
        incidents=(
            Incident(ERROR_BURST, MODEL_SERVICE, MODEL_SERVICE, 31, 34,
                     "GPU out-of-memory errors (a log template never seen before)", 20.0),
            Incident(LATENCY, FEATURE_STORE, OP_STORE_READ, 40, 60,
                     "online feature store reads become ~15x slower", 15.0),
            Incident(FEATURE_SHIFT, MODEL_SERVICE, "session_minutes", 25, 60,
                     "the session_minutes input shifts up by ~2.5 standard deviations", 2.5),
            Incident(BAD_VERSION, MODEL_SERVICE, "1.5.0", 45, 60,
                     "model 1.5.0 replaces 1.4.0 and is less accurate", 1.0),
        )
    )


def short_schedule() -> Schedule:
    """The same story in 30 simulated minutes (tests)."""
    base = default_schedule()
    return replace(
        base,
        duration_minutes=30,
        requests_per_minute=24,
        baseline_minutes=12,
        analysis_window_minutes=6,
        incidents=(
            Incident(ERROR_BURST, MODEL_SERVICE, MODEL_SERVICE, 16, 18,
                     "GPU out-of-memory errors (a log template never seen before)", 20.0),
            Incident(LATENCY, FEATURE_STORE, OP_STORE_READ, 20, 30,
                     "online feature store reads become ~15x slower", 15.0),
            Incident(FEATURE_SHIFT, MODEL_SERVICE, "session_minutes", 14, 30,
                     "the session_minutes input shifts up by ~2.5 standard deviations", 2.5),
            Incident(BAD_VERSION, MODEL_SERVICE, "1.5.0", 21, 30,
                     "model 1.5.0 replaces 1.4.0 and is less accurate", 1.0),
        ),
    )


# -- grading -----------------------------------------------------------------------------------
def _field(f: Finding | Mapping[str, Any], name: str) -> Any:
    return f.get(name) if isinstance(f, Mapping) else getattr(f, name, None)


def finding_matches(incident: Incident, finding: Finding | Mapping[str, Any]) -> bool:
    """Whether ``finding`` names this incident: a kind that detects it and the right
    attribution (service for an error burst; operation for latency; feature for a shift;
    model version for a bad version)."""
    kind = _field(finding, "kind")
    if kind not in INCIDENT_KINDS[incident.kind]:
        return False
    service = _field(finding, "service")
    subject = _field(finding, "subject")
    if incident.kind == ERROR_BURST:
        return bool(service == incident.service)
    if incident.kind == LATENCY:
        op = _field(finding, "operation") or subject
        return bool(service == incident.service and op == incident.target)
    if incident.kind == FEATURE_SHIFT:
        if kind == "outlier_inputs":
            # attributed through its evidence: the feature with the most outlying rows
            by_feature = (_field(finding, "evidence") or {}).get("by_feature") or {}
            top = max(by_feature.items(), key=lambda kv: kv[1])[0] if by_feature else None
            return bool(top == incident.target)
        return bool((_field(finding, "feature") or subject) == incident.target)
    version = _field(finding, "model_version") or subject
    return bool(version == incident.target)


@dataclass
class MatchReport:
    """Which findings explain which incident, and which findings explain none."""

    found: dict[str, list[Any]]  # incident kind -> matching findings
    missed: list[str]
    others: list[Any]

    @property
    def all_found(self) -> bool:
        return not self.missed


def match_findings(
    schedule: Schedule, findings: Sequence[Finding | Mapping[str, Any]]
) -> MatchReport:
    """Grade ``findings`` against the schedule's incidents."""
    found: dict[str, list[Any]] = {inc.kind: [] for inc in schedule.incidents}
    others: list[Any] = []
    for f in findings:
        hit = False
        for inc in schedule.incidents:
            if finding_matches(inc, f):
                found[inc.kind].append(f)
                hit = True
        if not hit:
            others.append(f)
    missed = [k for k, v in found.items() if not v]
    return MatchReport(found=found, missed=missed, others=others)
