"""logsight's own rule evaluator, for clusters without Watcher or the Alerting plugin (Basic
license, OpenSearch without plugins) - and the one the service's scheduler calls.

Each rule runs its search (:func:`logsight.alerts.rules.search_body`), each group is judged by
:func:`~logsight.alerts.rules.evaluate_response`, and a group that fires is recorded in
``logsight-alerts`` with what matched. Throttling is read back from that index: a group that
already fired within the rule's throttle period is reported as throttled and neither recorded
again nor sent again, so a restarted scheduler does not repeat itself. A webhook is retried a few times with
a short backoff; an alert whose webhook still failed is recorded with ``delivery: failed`` and
does not count for throttling, so the next pass sends it again instead of losing it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar
from urllib.parse import urlsplit

import httpx

from logsight import names
from logsight.alerts.rules import (
    NO_GROUP,
    OPS,
    GroupResult,
    Rule,
    evaluate_response,
    format_duration,
    search_body,
)
from logsight.engine import EngineError
from logsight.timeutil import as_utc, iso

if TYPE_CHECKING:
    from logsight.engine import Engine

log = logging.getLogger("logsight.alerts")

_STREAM_PATTERN = re.compile(rf"^({'|'.join(names.STREAM_TYPES)})-{names.DATASET}-\*$")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
MAX_SAMPLE_CHARS = 2000
# statuses a later attempt may get past; any other 4xx is the request's fault and stays failed
_RETRY_STATUSES = frozenset({408, 425, 429})

Delivery = Literal["none", "sent", "failed"]


def check_webhook_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host; ValueError saying what is wrong if not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is not a webhook URL: the scheme must be http or https")
    if not parts.hostname:
        raise ValueError(f"{url!r} is not a webhook URL: it has no host")
    return url


def _iso(ts: datetime) -> str:
    return iso(ts, timespec="milliseconds")


def scope(
    rule: Rule, *, namespace: str | None = None, index: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Where the rule reads and the extra filters that keep it to one namespace.

    ``index`` replaces the rule's index outright. ``namespace`` turns a stream pattern
    (``logs-logsight-*``) into that namespace's stream, and adds a ``namespace`` term for plain
    indices (findings, alerts), whose documents carry their namespace as a field."""
    if index:
        return index, []
    if namespace:
        m = _STREAM_PATTERN.match(rule.query.index)
        if m:
            return names.stream(m.group(1), namespace), []
        return rule.query.index, [{"term": {"namespace": names.check_namespace(namespace)}}]
    return rule.query.index, []


@dataclass
class FiredAlert:
    """One group of one rule that met its condition at ``timestamp``."""

    id: str
    rule_id: str
    rule_name: str
    severity: str
    group: str | None
    group_field: str | None
    value: float
    op: str
    threshold: float
    message: str
    runbook: str
    timestamp: str
    index: str
    namespace: str | None
    matched: dict[str, Any]
    throttled: bool = False
    actions: list[str] = field(default_factory=list)
    # "none": no webhook was attempted; "failed": a webhook failed after its retries
    delivery: Delivery = "none"

    def to_document(self) -> dict[str, Any]:
        """The document recorded in ``logsight-alerts`` (fields: assets.mappings.ALERTS)."""
        return {
            "@timestamp": self.timestamp,
            "rule": {"id": self.rule_id, "name": self.rule_name, "severity": self.severity,
                     "runbook": self.runbook},
            "state": "fired",
            "value": self.value,
            "threshold": self.threshold,
            "op": self.op,
            "group": self.group if self.group is not None else NO_GROUP,
            "group_field": self.group_field,
            "namespace": self.namespace,
            "index": self.index,
            "matched": self.matched,
            "message": self.message,
            "throttled": self.throttled,
            "actions": list(self.actions),
            "delivery": self.delivery,
        }

    def payload(self) -> dict[str, Any]:
        """What a webhook receives."""
        return {"source": "logsight", "alert_id": self.id, **asdict(self)}


@dataclass
class RuleEvaluation:
    rule: Rule
    index: str
    results: list[GroupResult] = field(default_factory=list)
    error: str | None = None


@dataclass
class EvaluationReport:
    """What one pass did. ``alert_errors`` are failures while throttling, acting on or
    recording one alert (``"<rule id>: <what failed>"``); the pass went on past them."""

    evaluations: list[RuleEvaluation] = field(default_factory=list)
    fired: list[FiredAlert] = field(default_factory=list)
    alert_errors: list[str] = field(default_factory=list)

    @property
    def delivery_failed(self) -> list[FiredAlert]:
        """Alerts whose webhook still failed after its retries (recorded, not throttling)."""
        return [a for a in self.fired if a.delivery == "failed"]

    @property
    def errors(self) -> list[str]:
        return ([f"{e.rule.id}: {e.error}" for e in self.evaluations if e.error]
                + self.alert_errors)


def evaluate_rule(
    engine: Engine,
    rule: Rule,
    *,
    now: datetime,
    namespace: str | None = None,
    index: str | None = None,
) -> RuleEvaluation:
    """Run one rule's search with its windows ending at ``now`` and judge every group (nothing
    is recorded or sent)."""
    target, extra = scope(rule, namespace=namespace, index=index)
    ev = RuleEvaluation(rule=rule, index=target)
    body = search_body(rule, anchor=_iso(now), extra_filters=extra)
    try:
        resp = engine.search(target, body, ignore_unavailable="true", allow_no_indices="true")
    except EngineError as e:
        ev.error = e.message
        return ev
    ev.results = evaluate_response(rule, resp)
    return ev


def _alert_id(rule: Rule, group: str | None, namespace: str | None, ts: str) -> str:
    key = "|".join([rule.id, group or NO_GROUP, namespace or "", ts])
    return hashlib.sha1(key.encode()).hexdigest()[:24]


def _trim(sample: Mapping[str, Any]) -> dict[str, Any]:
    """Samples go into an unindexed field and into webhooks: keep each one small."""
    out: dict[str, Any] = {}
    for k, v in sample.items():
        text = json.dumps(v, default=str)
        out[k] = v if len(text) <= 500 else text[:500] + "..."
        if len(json.dumps(out, default=str)) > MAX_SAMPLE_CHARS:
            out.pop(k)
            break
    return out


def _message(rule: Rule, r: GroupResult, value: float) -> str:
    where = f" for {rule.query.group_by}={r.group}" if rule.grouped else ""
    detail = ""
    if r.new_terms:
        shown = ", ".join(r.new_terms[:5]) + (" ..." if len(r.new_terms) > 5 else "")
        detail = f" ({shown})"
    elif r.baseline_value is not None:
        detail = f" (now {r.current_value:.4g}, baseline {r.baseline_value:.4g})"
    return (f"{rule.name}{where}: {rule.metric.describe()} = {value:.4g} "
            f"{OPS[rule.condition.op]} {rule.condition.threshold:g}{detail}; "
            f"{r.count} document(s) in the last {format_duration(rule.query.window_s)}")


def _throttled(
    engine: Engine, rule: Rule, group: str | None, namespace: str | None, now: datetime
) -> bool:
    filters: list[dict[str, Any]] = [
        {"term": {"rule.id": rule.id}},
        {"term": {"group": group if group is not None else NO_GROUP}},
        {"term": {"state": "fired"}},
        {"range": {"@timestamp": {"gt": _iso(now - timedelta(seconds=rule.throttle_s)),
                                  "lte": _iso(now)}}},
    ]
    # an alert nobody received must not hold back the next attempt
    must_not: list[dict[str, Any]] = [{"term": {"delivery": "failed"}}]
    body: dict[str, Any] = {"size": 0,
                            "query": {"bool": {"filter": filters, "must_not": must_not}}}
    if namespace:
        filters.append({"term": {"namespace": namespace}})
    else:
        must_not.append({"exists": {"field": "namespace"}})
    resp = engine.search(names.ALERTS_INDEX, body, ignore_unavailable="true")
    total = resp["hits"]["total"]
    return int(total["value"] if isinstance(total, dict) else total) > 0


@dataclass(frozen=True)
class WebhookPolicy:
    """How hard a webhook is tried: ``attempts`` posts, ``backoff_s`` before the second and
    doubling after, each post given ``timeout_s``. ``sleep`` is the wait between attempts
    (tests pass one that records instead of sleeping)."""

    attempts: int = 3
    backoff_s: float = 0.5
    timeout_s: float = 5.0
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"webhook attempts must be at least 1, got {self.attempts}")
        if self.backoff_s < 0 or self.timeout_s <= 0:
            raise ValueError("webhook backoff must be >= 0 and timeout > 0")


def post_webhook(
    url: str, payload: Mapping[str, Any], headers: Mapping[str, str], policy: WebhookPolicy
) -> tuple[bool, str, int]:
    """POST ``payload`` to ``url`` until it succeeds or ``policy.attempts`` are used up;
    returns (delivered, the last error or "", attempts made). Transport errors, 5xx, 408 and
    429 are retried; any other 4xx is not (repeating the same request cannot fix it)."""
    try:
        check_webhook_url(url)
    except ValueError as e:
        return False, str(e), 0
    error = ""
    for attempt in range(1, policy.attempts + 1):
        if attempt > 1:
            policy.sleep(policy.backoff_s * 2 ** (attempt - 2))
        try:
            resp = httpx.post(url, json=dict(payload), headers=dict(headers),
                              timeout=policy.timeout_s)
        except httpx.HTTPError as e:
            error = str(e) or type(e).__name__
            continue
        if resp.is_success:
            return True, "", attempt
        error = f"HTTP {resp.status_code} {resp.reason_phrase}".rstrip()
        if resp.status_code < 500 and resp.status_code not in _RETRY_STATUSES:
            return False, error, attempt
    return False, error, policy.attempts


def _run_actions(
    engine: Engine,
    rule: Rule,
    alert: FiredAlert,
    *,
    env: Mapping[str, str],
    webhook_url: str | None,
    policy: WebhookPolicy,
) -> list[str]:
    """Run the rule's actions for ``alert``, noting each outcome in ``alert.actions`` and the
    webhooks' in ``alert.delivery``; returns what failed in the cluster (a failed webhook is
    reported through ``delivery``: the receiver's problem, retried on the next pass)."""
    errors: list[str] = []
    for action in rule.actions:
        if action.type == "log":
            log.log(_LEVELS[action.level], "%s [runbook: %s]", alert.message, alert.runbook)
            alert.actions.append("log")
        elif action.type == "webhook":
            url = webhook_url or action.resolved_url(env)
            if not url:
                alert.actions.append(f"webhook skipped: {action.url} is not set")
                continue
            # the receiver learns the delivery from getting it; "none" would mislead
            body = {k: v for k, v in alert.payload().items() if k != "delivery"}
            ok, error, tries = post_webhook(url, body, action.headers, policy)
            if ok:
                alert.actions.append("webhook")
                if alert.delivery == "none":
                    alert.delivery = "sent"
            else:
                log.warning("alert %s: webhook %s failed after %d attempt(s): %s", rule.id,
                            url, tries, error)
                alert.actions.append(f"webhook failed after {tries} attempt(s): {error}")
                alert.delivery = "failed"
        elif action.type == "index":
            if action.index != names.ALERTS_INDEX:  # the alerts index is written for every alert
                try:
                    engine.index(action.index, alert.to_document(), id=alert.id)
                except EngineError as e:
                    log.warning("alert %s: index action into %s failed: %s", rule.id,
                                action.index, e.message)
                    alert.actions.append(f"index:{action.index} failed: {e.message}")
                    errors.append(f"index action into {action.index!r} failed: {e.message}")
                    continue
            alert.actions.append(f"index:{action.index}")
    return errors


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _parameters_of(source: Callable[_P, Any]) -> Callable[[Callable[..., _R]], Callable[_P, _R]]:
    """Give a forwarding wrapper ``source``'s parameters, so they are declared once: mypy
    checks every call against them and ``inspect.signature`` / ``help`` show them."""
    def give(wrapper: Callable[..., _R]) -> Callable[_P, _R]:
        wrapper.__signature__ = inspect.signature(source).replace(  # type: ignore[attr-defined]  # functions take any attribute; mypy's Callable has none
            return_annotation=inspect.signature(wrapper).return_annotation)
        return wrapper
    return give


def run_rules(
    engine: Engine,
    rules: Sequence[Rule],
    *,
    now: datetime,
    namespace: str | None = None,
    index: str | None = None,
    record: bool = True,
    run_actions: bool = True,
    webhook_url: str | None = None,
    env: Mapping[str, str] | None = None,
    runbook_base_url: str | None = None,
    http_timeout: float = 5.0,
    webhook_attempts: int = 3,
    webhook_backoff_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> EvaluationReport:
    """Evaluate ``rules`` once at ``now``: judge, throttle, act, record. A rule whose search
    fails, and an alert whose throttle check, index action or record fails, is reported in
    ``EvaluationReport.errors``; the other alerts and rules still run. Each webhook gets
    ``webhook_attempts`` tries, ``webhook_backoff_s`` apart and doubling (``sleep`` waits);
    one that still fails leaves the alert in ``EvaluationReport.delivery_failed``."""
    env = os.environ if env is None else env
    policy = WebhookPolicy(attempts=webhook_attempts, backoff_s=webhook_backoff_s,
                           timeout_s=http_timeout, sleep=sleep)
    base_url = runbook_base_url or env.get("LOGSIGHT_RUNBOOK_BASE_URL") or None
    now = as_utc(now)
    ts = _iso(now)
    report = EvaluationReport()
    for rule in rules:
        ev = evaluate_rule(engine, rule, now=now, namespace=namespace, index=index)
        report.evaluations.append(ev)
        for r in ev.results:
            if not r.fired or r.value is None:
                continue
            alert = FiredAlert(
                id=_alert_id(rule, r.group, namespace, ts),
                rule_id=rule.id,
                rule_name=rule.name,
                severity=rule.severity,
                group=r.group,
                group_field=rule.query.group_by,
                value=r.value,
                op=rule.condition.op,
                threshold=rule.condition.threshold,
                message=_message(rule, r, r.value),
                runbook=rule.runbook_url(base_url),
                timestamp=ts,
                index=ev.index,
                namespace=namespace,
                matched={
                    "query": rule.query.filter,
                    "window_start": _iso(now - timedelta(seconds=rule.query.window_s)),
                    "window_end": ts,
                    "count": r.count,
                    "current_value": r.current_value,
                    "baseline_value": r.baseline_value,
                    "baseline_count": r.baseline_count,
                    "new_terms": r.new_terms,
                    "samples": [_trim(s) for s in r.samples],
                },
            )
            where = f"{rule.id}: group {alert.group}" if rule.grouped else rule.id
            try:
                throttled = record and _throttled(engine, rule, r.group, namespace, now)
            except EngineError as e:
                # unknown throttle state: acting could repeat a sent alert, so skip this one
                report.alert_errors.append(f"{where}: throttle check failed: {e.message}")
                continue
            if throttled:
                alert.throttled = True
                report.fired.append(alert)
                continue
            if run_actions:
                report.alert_errors.extend(
                    f"{where}: {err}" for err in _run_actions(
                        engine, rule, alert, env=env, webhook_url=webhook_url,
                        policy=policy))
            report.fired.append(alert)
            if record:
                try:
                    # wait_for: the next evaluation must see this alert to throttle the group
                    engine.index(names.ALERTS_INDEX, alert.to_document(), id=alert.id,
                                 refresh="wait_for")
                except EngineError as e:
                    report.alert_errors.append(f"{where}: recording the alert failed: "
                                               f"{e.message}")
    return report


@_parameters_of(run_rules)
def evaluate_rules(*args: Any, **kwargs: Any) -> list[FiredAlert]:
    """Evaluate ``rules`` once at ``now`` and return the alerts that fired (throttled ones are
    included with ``throttled=True``; they were neither recorded nor sent; ones whose webhook
    failed have ``delivery="failed"``). Search errors are
    logged and skipped so one broken rule does not stop the others; use :func:`run_rules` to
    see them. Takes exactly the parameters of :func:`run_rules`."""
    report = run_rules(*args, **kwargs)
    for err in report.errors:
        log.warning("alert rule failed: %s", err)
    for a in report.delivery_failed:
        log.warning("alert %s not delivered, will retry next pass: %s", a.id, a.message)
    return report.fired
