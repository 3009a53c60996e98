"""Rules compiled to Elasticsearch Watcher watches (``PUT _watcher/watch/<id>``), for clusters
whose license has Watcher (:meth:`Engine.has_watcher`).

A watch runs the rule's search (:func:`logsight.alerts.rules.search_body`, windows anchored at
``{{ctx.trigger.scheduled_time}}``), its condition is the rule's Painless
(:mod:`logsight.alerts.painless`), a watch-level transform turns the groups that fired into
alert documents shaped like the built-in evaluator's, and the actions index them into
``logsight-alerts`` (``_doc`` array: one document per group), log, and POST them to the
webhook. Watcher throttles per watch (``throttle_period``), not per group.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from logsight.alerts.evaluator import scope
from logsight.alerts.painless import _lit, condition_core
from logsight.alerts.rules import NO_GROUP, Rule, format_duration, search_body

if TYPE_CHECKING:
    from logsight.engine import Engine

WATCH_PREFIX = "logsight-"
ANCHOR = "{{ctx.trigger.scheduled_time}}"
_LOG_LEVELS = {"debug": "debug", "info": "info", "warning": "warn", "error": "error"}


def watch_id(rule: Rule) -> str:
    return WATCH_PREFIX + rule.id


def _transform_source(rule: Rule, index: str, runbook: str) -> str:
    r, c = rule, rule.condition
    group_field = _lit(r.query.group_by) if r.query.group_by else "null"
    return "\n".join([
        "def payload = ctx.payload;",
        condition_core(rule),
        "def ts = String.valueOf(ctx.trigger.scheduled_time);",
        "def docs = [];",
        "for (def f : fired) {",
        "  def g = f.group == null ? " + _lit(NO_GROUP) + " : f.group;",
        "  docs.add(['@timestamp': ts,",
        f"    'rule': ['id': {_lit(r.id)}, 'name': {_lit(r.name)}, "
        f"'severity': {_lit(r.severity)}, 'runbook': {_lit(runbook)}],",
        f"    'state': 'fired', 'value': f.value, 'threshold': {float(c.threshold)!r}, "
        f"'op': {_lit(c.op)},",
        f"    'group': g, 'group_field': {group_field}, 'index': {_lit(index)},",
        f"    'matched': ['count': f.count, 'query': {_lit(r.query.filter)}],",
        f"    'message': {_lit(r.name + ' ')} + (f.group == null ? '' : 'for ' + g + ' ') + "
        f"{_lit(r.metric.describe() + ' = ')} + f.value,",
        "    'throttled': false, 'actions': ['watcher'], 'source': 'watcher']);",
        "}",
        f"return ['rule_id': {_lit(r.id)}, 'rule_name': {_lit(r.name)}, "
        f"'severity': {_lit(r.severity)}, 'runbook': {_lit(runbook)}, "
        "'count': fired.size(), 'fired': fired, '_doc': docs];",
    ])


def _webhook(url: str, headers: Mapping[str, str]) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook url {url!r} is not an http(s) URL")
    hook: dict[str, Any] = {
        "scheme": parts.scheme,
        "host": parts.hostname,
        "port": parts.port or (443 if parts.scheme == "https" else 80),
        "method": "post",
        "path": parts.path or "/",
        "headers": {"Content-Type": "application/json", **dict(headers)},
        "body": "{{#toJson}}ctx.payload{{/toJson}}",
    }
    if parts.query:
        hook["params"] = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    return hook


def compile_watch(
    rule: Rule,
    *,
    webhook_url: str | None = None,
    env: Mapping[str, str] | None = None,
    runbook_base_url: str | None = None,
    namespace: str | None = None,
    index: str | None = None,
) -> dict[str, Any]:
    """The watch body for ``rule``. A webhook whose ``${VAR}`` is unset (and no
    ``webhook_url``) is left out and named in ``metadata.skipped_actions``."""
    env = os.environ if env is None else env
    target, extra = scope(rule, namespace=namespace, index=index)
    runbook = rule.runbook_url(runbook_base_url or env.get("LOGSIGHT_RUNBOOK_BASE_URL"))
    actions: dict[str, Any] = {}
    skipped: list[str] = []
    for i, action in enumerate(rule.actions):
        name = f"{action.type}_{i}"
        if action.type == "index":
            actions[name] = {"index": {"index": action.index}}
        elif action.type == "log":
            actions[name] = {"logging": {
                "level": _LOG_LEVELS[action.level],
                "text": "logsight alert {{ctx.payload.rule_name}}: {{ctx.payload.count}} "
                        "group(s) fired; runbook {{ctx.payload.runbook}}",
            }}
        else:
            url = webhook_url or action.resolved_url(env)
            if not url:
                skipped.append(f"{name}: {action.url} is not set")
                continue
            actions[name] = {"webhook": _webhook(url, action.headers)}
    condition = "def payload = ctx.payload;\n" + condition_core(rule) + "\nreturn fired.size() > 0;"
    return {
        "metadata": {
            "managed_by": "logsight",
            "logsight_rule": rule.id,
            "name": rule.name,
            "severity": rule.severity,
            "runbook": runbook,
            "skipped_actions": skipped,
        },
        "trigger": {"schedule": {"interval": format_duration(rule.schedule_s)}},
        "input": {"search": {"request": {
            "indices": [target],
            "indices_options": {"ignore_unavailable": True, "allow_no_indices": True},
            "body": search_body(rule, anchor=ANCHOR, extra_filters=extra),
        }}},
        "condition": {"script": {"source": condition, "lang": "painless"}},
        "transform": {"script": {"source": _transform_source(rule, target, runbook),
                                 "lang": "painless"}},
        "actions": actions,
        "throttle_period": format_duration(rule.throttle_s),
    }


def install_watches(
    engine: Engine, rules: Sequence[Rule], *, dry_run: bool = False, **compile_kw: Any
) -> list[tuple[str, str]]:
    """``PUT _watcher/watch/logsight-<id>`` for each rule (overwrites: idempotent); returns
    (watch id, "created" | "updated" | "would install")."""
    out: list[tuple[str, str]] = []
    for rule in rules:
        body = compile_watch(rule, **compile_kw)
        wid = watch_id(rule)
        if dry_run:
            out.append((wid, "would install"))
            continue
        resp = engine.request("PUT", f"/_watcher/watch/{wid}", body=json.loads(json.dumps(body)))
        out.append((wid, "created" if resp.get("created") else "updated"))
    return out


def uninstall_watches(engine: Engine, rules: Sequence[Rule]) -> int:
    gone = 0
    for rule in rules:
        if engine.request("DELETE", f"/_watcher/watch/{watch_id(rule)}", ok_missing=True):
            gone += 1
    return gone


__all__ = ["ANCHOR", "compile_watch", "install_watches", "uninstall_watches", "watch_id"]
