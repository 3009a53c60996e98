"""Rules compiled to OpenSearch Alerting query-level monitors
(``POST _plugins/_alerting/monitors``), for clusters with the Alerting plugin
(:meth:`Engine.has_alerting_plugin`).

The monitor runs the rule's search (windows anchored at ``{{period_end}}``, epoch millis), its
trigger condition is the rule's Painless with ``ctx.results[0]`` as the response, and a webhook
goes through a Notifications channel (``_plugins/_notifications/configs``) created by
:func:`install_monitors`. OpenSearch keeps fired alerts in its own alert history index; log and
index actions have no monitor equivalent and are named in the monitor's ``ui_metadata``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from logsight.alerts.evaluator import scope
from logsight.alerts.painless import condition_core
from logsight.alerts.rules import Rule, format_duration, search_body

if TYPE_CHECKING:
    from logsight.engine import Engine

ANCHOR = "{{period_end}}"
CHANNEL_ID = "logsight-alerts-webhook"
MONITOR_PREFIX = "logsight: "
# OpenSearch trigger severities: "1" is the highest
TRIGGER_SEVERITY = {"critical": "1", "high": "2", "medium": "3", "low": "4"}


def monitor_name(rule: Rule) -> str:
    return f"{MONITOR_PREFIX}{rule.id}"


# the only period units the Alerting plugin accepts (IntervalSchedule in common-utils), largest
# first so the schedule reads as written in the rule
_PERIOD_UNITS = (("DAYS", 86400), ("HOURS", 3600), ("MINUTES", 60))


def _schedule(rule: Rule) -> dict[str, Any]:
    """The monitor's ``period``; raises ValueError when the rule's schedule is not whole minutes
    (monitors have no SECONDS unit, and rounding would silently change how often it runs)."""
    seconds = rule.schedule_s
    if seconds % 60:
        raise ValueError(f"rule {rule.id!r}: schedule {format_duration(seconds)} cannot be a "
                         "monitor schedule: OpenSearch monitors run in whole minutes, hours or "
                         "days (use e.g. 1m)")
    unit, size = next((u, n) for u, n in _PERIOD_UNITS if seconds % n == 0)
    return {"period": {"interval": seconds // size, "unit": unit}}


def _throttle(rule: Rule) -> dict[str, Any]:
    # the Alerting plugin only takes MINUTES for action throttles
    if rule.throttle_s % 60:
        raise ValueError(f"rule {rule.id!r}: throttle {format_duration(rule.throttle_s)} cannot "
                         "be a monitor action throttle: OpenSearch throttles in whole minutes "
                         "(use e.g. 1m)")
    return {"value": rule.throttle_s // 60, "unit": "MINUTES"}


def _mustache_json(value: str) -> str:
    """``value`` as a JSON string that a mustache template renders unchanged: braces are
    written as JSON escapes, so no ``{{`` reaches mustache and the receiver decodes them back."""
    return json.dumps(value).replace("{", "\\u007b").replace("}", "\\u007d")


def _mustache_text(value: str) -> str:
    """Plain ``value`` that a mustache template renders unchanged: when it holds ``{{``, a
    set-delimiter tag first switches to delimiters made of private-use characters that
    ``value`` does not contain, so no tag can start in it. (Tested against the engine's
    mustache: it matches delimiters loosely, so ``<%%`` would still open at ``<%``; a first
    character that never occurs is what makes it safe.)"""
    if "{{" not in value:
        return value
    free = (chr(c) for c in range(0xE000, 0xF900) if chr(c) not in value)
    opening, closing = next(free) * 2, next(free) * 2
    return "{{=" + opening + " " + closing + "=}}" + value


def _message_template(rule: Rule, runbook: str) -> str:
    """The webhook body: a JSON object whose rule fields are literal and whose monitor fields
    are filled in by the Alerting plugin (mustache JSON-escapes what it substitutes)."""
    fields = [(k, _mustache_json(v)) for k, v in (
        ("source", "logsight"), ("rule_id", rule.id), ("rule_name", rule.name),
        ("severity", rule.severity), ("runbook", runbook))]
    fields += [("monitor", '"{{ctx.monitor.name}}"'),
               ("period_start", '"{{ctx.periodStart}}"'),
               ("period_end", '"{{ctx.periodEnd}}"')]
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in fields) + "}"


def compile_monitor(
    rule: Rule,
    *,
    channel_id: str | None = None,
    env: Mapping[str, str] | None = None,
    runbook_base_url: str | None = None,
    namespace: str | None = None,
    index: str | None = None,
) -> dict[str, Any]:
    """The monitor body for ``rule``; webhook actions go to ``channel_id`` (left out when
    None). Raises ValueError when the rule's schedule or throttle is not whole minutes."""
    env = os.environ if env is None else env
    schedule = _schedule(rule)
    target, extra = scope(rule, namespace=namespace, index=index)
    runbook = rule.runbook_url(runbook_base_url or env.get("LOGSIGHT_RUNBOOK_BASE_URL"))
    condition = ("def payload = ctx.results[0];\n" + condition_core(rule)
                 + "\nreturn fired.size() > 0;")
    actions: list[dict[str, Any]] = []
    unsupported: list[str] = []
    for i, action in enumerate(rule.actions):
        if action.type != "webhook":
            unsupported.append(f"{action.type}_{i}")
            continue
        if channel_id is None:
            unsupported.append(f"webhook_{i} (no notification channel)")
            continue
        actions.append({
            "name": f"webhook_{i}",
            "destination_id": channel_id,
            "subject_template": {"source": _mustache_text(f"logsight alert: {rule.name}"),
                                 "lang": "mustache"},
            "message_template": {"source": _message_template(rule, runbook), "lang": "mustache"},
            "throttle_enabled": True,
            "throttle": _throttle(rule),
        })
    return {
        "type": "monitor",
        "monitor_type": "query_level_monitor",
        "name": monitor_name(rule),
        "enabled": True,
        "schedule": schedule,
        "inputs": [{"search": {
            "indices": [target],
            "query": search_body(rule, anchor=ANCHOR, date_format="epoch_millis",
                                 extra_filters=extra),
        }}],
        "triggers": [{
            "name": rule.id,
            "severity": TRIGGER_SEVERITY[rule.severity],
            "condition": {"script": {"source": condition, "lang": "painless"}},
            "actions": actions,
        }],
        "ui_metadata": {"logsight": {"rule": rule.id, "runbook": runbook,
                                     "not_compiled_actions": unsupported}},
    }


def ensure_channel(engine: Engine, webhook_url: str) -> str:
    """Create or update the Notifications webhook channel; returns its id."""
    config = {"config_id": CHANNEL_ID, "config": {
        "name": "logsight alerts webhook",
        "description": "Created by logsight alerts install",
        "config_type": "webhook",
        "is_enabled": True,
        "webhook": {"url": webhook_url, "method": "POST",
                    "header_params": {"Content-Type": "application/json"}},
    }}
    path = f"/_plugins/_notifications/configs/{CHANNEL_ID}"
    if engine.request("GET", path, ok_missing=True):
        engine.request("PUT", path, body={"config": config["config"]})
    else:
        engine.request("POST", "/_plugins/_notifications/configs", body=config)
    return CHANNEL_ID


def install_monitors(
    engine: Engine,
    rules: Sequence[Rule],
    *,
    webhook_url: str | None = None,
    dry_run: bool = False,
    **compile_kw: Any,
) -> list[tuple[str, str]]:
    """Create or update one monitor per rule (matched by name: idempotent)."""
    channel = None
    if webhook_url and not dry_run:
        channel = ensure_channel(engine, webhook_url)
    elif webhook_url:
        channel = CHANNEL_ID
    out: list[tuple[str, str]] = []
    for rule in rules:
        body = compile_monitor(rule, channel_id=channel, **compile_kw)
        name = monitor_name(rule)
        if dry_run:
            out.append((name, "would install"))
            continue
        found = engine.request(
            "POST", "/_plugins/_alerting/monitors/_search",
            body={"query": {"match_phrase": {"monitor.name": name}}, "size": 10},
        )
        ids = [h["_id"] for h in found.get("hits", {}).get("hits", [])
               if h.get("_source", {}).get("name") == name]
        if ids:
            engine.request("PUT", f"/_plugins/_alerting/monitors/{ids[0]}", body=body)
            out.append((name, "updated"))
        else:
            engine.request("POST", "/_plugins/_alerting/monitors", body=body)
            out.append((name, "created"))
    return out
