"""Rule format, loader errors, runbooks, and the structure of compiled watches and monitors
(no cluster needed)."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from logsight.alerts import WebhookPolicy, check_webhook_url, post_webhook
from logsight.alerts.evaluator import _message
from logsight.alerts.monitors import compile_monitor
from logsight.alerts.painless import _lit
from logsight.alerts.rules import (
    GroupResult,
    RuleError,
    evaluate_response,
    format_duration,
    load_rules,
    parse_duration,
    rule_from_dict,
)
from logsight.alerts.watcher import compile_watch, watch_id
from logsight.cli import main

ROOT = Path(__file__).resolve().parents[1]
TIME_VALUE = re.compile(r"^\d+(ms|s|m|h|d|w)$")

# Watcher's documented watch schema (Create or update watch API): these top-level keys only
WATCH_KEYS = {"trigger", "input", "condition", "transform", "actions", "metadata",
              "throttle_period", "throttle_period_in_millis"}
SCHEDULE_TYPES = {"interval", "hourly", "daily", "weekly", "monthly", "yearly", "cron"}
CONDITION_TYPES = {"always", "never", "compare", "array_compare", "script"}
ACTION_TYPES = {"email", "webhook", "index", "logging", "slack", "pagerduty", "jira"}
ACTION_KEYS = ACTION_TYPES | {"transform", "condition", "throttle_period",
                              "throttle_period_in_millis", "foreach", "max_iterations"}
WEBHOOK_KEYS = {"scheme", "host", "port", "method", "path", "params", "headers", "auth", "body",
                "url", "proxy", "connection_timeout", "read_timeout"}


def _base(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"id": "r1", "name": "R", "query": {"stream": "logs"},
                         "condition": {"op": "gt", "threshold": 1}}
    d.update(over)
    return d


def test_shipped_rules_load_and_each_has_a_runbook() -> None:
    rules = load_rules()
    assert len(rules) == 9
    for rule in rules:
        path = ROOT / rule.runbook
        assert path == ROOT / "docs" / "runbooks" / f"{rule.id}.md"
        text = path.read_text()
        for section in ("## What it means", "## First checks", "## Likely causes",
                        "## How to silence"):
            assert section in text, f"{path.name} lacks {section!r}"
        assert rule.runbook_url("https://example.org/rb/") == f"https://example.org/rb/{rule.id}.md"


@pytest.mark.parametrize(("change", "message"), [
    ({"id": "Bad Id"}, "must be lower-case"),
    ({"severity": "urgent"}, "severity must be one of"),
    ({"bogus": 1}, "unknown key"),
    ({"query": {"stream": "nope"}}, "unknown stream kind"),
    ({"query": {"stream": "logs", "window": "5 minutes"}}, "positive duration"),
    ({"metric": {"type": "percentile"}}, "needs a 'field'"),
    ({"metric": {"type": "ratio"}}, "needs a 'numerator'"),
    ({"metric": {"type": "avg", "field": "x", "compare": "baseline"}}, "needs query.baseline"),
    ({"metric": {"type": "median", "field": "x"}}, "type must be one of"),
    ({"condition": {"op": "eq", "threshold": 1}}, "op must be one of"),
    ({"condition": {"op": "gt"}}, "missing required key 'threshold'"),
    ({"actions": [{"type": "webhook"}]}, "needs a 'url'"),
    ({"actions": [{"type": "email"}]}, "type must be one of"),
    ({"throttle": True}, "must be str/int, got bool"),
])
def test_bad_rules_get_clear_errors(change: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError, match=re.escape(message)):
        rule_from_dict(_base(**change), source="x.yaml")


def test_unknown_rule_id_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="unknown rule id"):
        load_rules(ids=["nope"])
    with pytest.raises(RuleError, match="no such rule file"):
        load_rules([tmp_path / "missing.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed\n")
    with pytest.raises(RuleError, match="not valid YAML"):
        load_rules([bad])


@given(st.integers(min_value=1, max_value=10**7))
def test_duration_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def _bucket(key: str, cur: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    b = {"key": key, "current": cur}
    if base is not None:
        b["baseline"] = base
    return b


def test_evaluate_response_known_values() -> None:
    (p95,) = load_rules(ids=["trace-p95-regression"])
    resp = {"aggregations": {"groups": {"buckets": [
        _bucket("slow", {"doc_count": 30, "m": {"values": {"95.0": 300.0}}},
                {"doc_count": 80, "m": {"values": {"95.0": 100.0}}}),
        _bucket("same", {"doc_count": 30, "m": {"values": {"95.0": 120.0}}},
                {"doc_count": 80, "m": {"values": {"95.0": 100.0}}}),
        _bucket("few", {"doc_count": 5, "m": {"values": {"95.0": 900.0}}},
                {"doc_count": 80, "m": {"values": {"95.0": 100.0}}}),
        _bucket("nobase", {"doc_count": 30, "m": {"values": {"95.0": 900.0}}},
                {"doc_count": 10, "m": {"values": {"95.0": 100.0}}}),
    ]}}}
    res = {r.group: r for r in evaluate_response(p95, resp)}
    assert res["slow"].value == pytest.approx(3.0) and res["slow"].fired
    assert res["same"].value == pytest.approx(1.2) and not res["same"].fired
    assert res["few"].value is None and not res["few"].fired  # below min_docs
    assert res["nobase"].value is None and not res["nobase"].fired  # baseline too small

    (burst,) = load_rules(ids=["new-error-template-burst"])
    terms = lambda *ks: {"buckets": [{"key": k, "doc_count": 1} for k in ks]}  # noqa: E731  # short table helper
    resp = {"aggregations": {"groups": {"buckets": [
        _bucket("a", {"doc_count": 9, "terms": terms("t1", "t3", "t4", "t5")},
                {"doc_count": 5, "terms": terms("t1", "t2")}),
        _bucket("b", {"doc_count": 9, "terms": terms("t1", "t3")},
                {"doc_count": 5, "terms": terms("t1")}),
    ]}}}
    res = {r.group: r for r in evaluate_response(burst, resp)}
    assert res["a"].new_terms == ["t3", "t4", "t5"] and res["a"].fired
    assert res["b"].value == 1.0 and not res["b"].fired


@pytest.mark.parametrize("rule", load_rules(), ids=lambda r: r.id)
def test_compiled_watch_follows_the_watcher_schema(rule: Any) -> None:
    env = {"LOGSIGHT_ALERT_WEBHOOK_URL": "https://hooks.example.org:8443/alert?team=ml"}
    watch = compile_watch(rule, env=env)
    assert set(watch) <= WATCH_KEYS and {"trigger", "input", "condition", "actions"} <= set(watch)
    (schedule,) = watch["trigger"]["schedule"].items()
    assert schedule[0] in SCHEDULE_TYPES and TIME_VALUE.match(schedule[1])
    (input_type, inp) = next(iter(watch["input"].items()))
    assert input_type == "search" and set(inp) == {"request"}
    req = inp["request"]
    assert req["indices"] == [rule.query.index] and isinstance(req["body"]["query"], dict)
    rng = req["body"]["query"]["bool"]["filter"][0]["range"][rule.query.time_field]
    assert rng["lt"] == "{{ctx.trigger.scheduled_time}}"
    assert rng["gte"] == f"{{{{ctx.trigger.scheduled_time}}}}||-{rule.query.window_s + (rule.query.baseline_s if rule.needs_baseline else 0)}s"
    (cond_type,) = watch["condition"]
    assert cond_type in CONDITION_TYPES
    assert watch["condition"]["script"]["lang"] == "painless"
    assert watch["condition"]["script"]["source"].rstrip().endswith("return fired.size() > 0;")
    assert set(watch["transform"]) == {"script"}
    assert TIME_VALUE.match(watch["throttle_period"])
    assert watch["actions"]
    for name, action in watch["actions"].items():
        assert re.match(r"^[a-z_0-9]+$", name)
        assert set(action) <= ACTION_KEYS
        (atype,) = set(action) & ACTION_TYPES
        if atype == "webhook":
            hook = action["webhook"]
            assert set(hook) <= WEBHOOK_KEYS
            assert (hook["scheme"], hook["host"], hook["port"], hook["path"]) == (
                "https", "hooks.example.org", 8443, "/alert")
            assert hook["params"] == {"team": "ml"} and hook["method"] == "post"
        elif atype == "index":
            assert action["index"]["index"] == "logsight-alerts"
        elif atype == "logging":
            assert action["logging"]["level"] in {"error", "warn", "info", "debug", "trace"}
    assert watch["metadata"]["runbook"].endswith(f"docs/runbooks/{rule.id}.md")
    assert watch_id(rule) == f"logsight-{rule.id}"


def test_watch_without_webhook_url_skips_the_webhook() -> None:
    (rule,) = load_rules(ids=["log-error-rate-spike"])
    watch = compile_watch(rule, env={})
    assert not any("webhook" in a for a in watch["actions"].values())
    assert watch["metadata"]["skipped_actions"]
    with pytest.raises(ValueError, match="not an http"):
        compile_watch(rule, webhook_url="ftp://x")


@pytest.mark.parametrize("rule", load_rules(), ids=lambda r: r.id)
def test_compiled_monitor_structure(rule: Any) -> None:
    mon = compile_monitor(rule, channel_id="chan-1", env={})
    assert mon["type"] == "monitor" and mon["monitor_type"] == "query_level_monitor"
    assert mon["name"] == f"logsight: {rule.id}" and mon["enabled"] is True
    period = mon["schedule"]["period"]
    assert period["unit"] == "MINUTES" and period["interval"] * 60 == rule.schedule_s
    (inp,) = mon["inputs"]
    assert inp["search"]["indices"] == [rule.query.index]
    rng = inp["search"]["query"]["query"]["bool"]["filter"][0]["range"][rule.query.time_field]
    assert rng["lt"] == "{{period_end}}" and rng["format"] == "epoch_millis"
    (trigger,) = mon["triggers"]
    assert trigger["severity"] in {"1", "2", "3", "4", "5"}
    assert trigger["condition"]["script"]["source"].startswith("def payload = ctx.results[0];")
    (action,) = trigger["actions"]
    assert action["destination_id"] == "chan-1" and action["throttle_enabled"] is True
    assert action["throttle"] == {"value": rule.throttle_s // 60, "unit": "MINUTES"}
    assert rule.id in action["message_template"]["source"]
    assert "docs/runbooks/" in action["message_template"]["source"]
    # without a channel there is no action, and the monitor says which it left out
    assert compile_monitor(rule, env={})["triggers"][0]["actions"] == []


def test_namespace_scoping() -> None:
    from logsight.alerts import scope

    logs, findings = load_rules(ids=["log-error-rate-spike", "model-accuracy-drop"])
    assert scope(logs, namespace="ns1") == ("logs-logsight-ns1", [])
    assert scope(findings, namespace="ns1") == ("logsight-findings",
                                                [{"term": {"namespace": "ns1"}}])
    assert scope(logs, index="other-*") == ("other-*", [])
    with pytest.raises(ValueError, match="invalid namespace"):
        scope(findings, namespace="Bad-NS")


@pytest.mark.parametrize(("text", "seconds"), [
    ("15m", 900), (" 2 h ", 7200), ("1.5h", 5400), ("0.1h", 360), ("1w", 604800), (30, 30)])
def test_parse_duration_known_values(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["now-15m", "0.5s", "0m", "-1m", "5 minutes", "15", ""])
def test_parse_duration_rejects_what_is_not_a_whole_positive_length(text: str) -> None:
    with pytest.raises(RuleError, match="positive duration in whole seconds"):
        parse_duration(text, what="r.yaml schedule")


def _painless_unquote(literal: str) -> str:
    """The string a Painless single-quoted literal denotes: only \\' and \\\\ are escapes,
    and a lone backslash or quote would not compile."""
    assert literal[0] == literal[-1] == "'"
    out, i, body = [], 0, literal[1:-1]
    while i < len(body):
        ch = body[i]
        assert ch != "'", f"unescaped quote in {literal!r}"
        if ch == "\\":
            assert body[i + 1] in "'\\", f"escape Painless does not know in {literal!r}"
            out.append(body[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@given(st.text())
def test_painless_literal_round_trips(value: str) -> None:
    assert _painless_unquote(_lit(value)) == value


def test_painless_literal_keeps_non_ascii_and_newlines_as_characters() -> None:
    assert _lit('é\n"x"') == "'é\n\"x\"'"
    assert _lit("a'b\\c") == "'a\\'b\\\\c'"


def _rule_with(**over: Any) -> Any:
    (rule,) = load_rules(ids=["log-error-rate-spike"])
    return replace(rule, **over)


@pytest.mark.parametrize(("seconds", "period"), [
    (60, {"interval": 1, "unit": "MINUTES"}),
    (5400, {"interval": 90, "unit": "MINUTES"}),
    (7200, {"interval": 2, "unit": "HOURS"}),
    (2 * 86400, {"interval": 2, "unit": "DAYS"}),
    (604800, {"interval": 7, "unit": "DAYS"}),
])
def test_monitor_schedule_uses_the_largest_exact_unit(seconds: int,
                                                      period: dict[str, Any]) -> None:
    assert compile_monitor(_rule_with(schedule_s=seconds), env={})["schedule"] == {
        "period": period}


def test_monitor_rejects_schedules_and_throttles_that_are_not_whole_minutes() -> None:
    with pytest.raises(ValueError, match=r"schedule 90s cannot be a monitor schedule.*whole"):
        compile_monitor(_rule_with(schedule_s=90), env={})
    with pytest.raises(ValueError, match=r"throttle 45s cannot .*whole minutes"):
        compile_monitor(_rule_with(throttle_s=45), channel_id="chan-1", env={})


@given(st.text(min_size=1))
def test_monitor_webhook_body_is_json_whatever_the_rule_name(name: str) -> None:
    rule = _rule_with(name=name)
    (action,) = compile_monitor(rule, channel_id="chan-1", env={},
                                runbook_base_url="https://rb.example.org/{{x}}\"")[
        "triggers"][0]["actions"]
    source = action["message_template"]["source"]
    # the only mustache tags are the monitor's own placeholders
    assert source.count("{{") == 3
    assert re.findall(r"\{\{.*?\}\}", source) == [
        "{{ctx.monitor.name}}", "{{ctx.periodStart}}", "{{ctx.periodEnd}}"]
    body = json.loads(source.replace("{{ctx.monitor.name}}", "m").replace(
        "{{ctx.periodStart}}", "s").replace("{{ctx.periodEnd}}", "e"))
    assert body["rule_name"] == name and body["rule_id"] == rule.id
    assert body["runbook"] == 'https://rb.example.org/{{x}}"/log-error-rate-spike.md'
    assert (body["monitor"], body["period_start"], body["period_end"]) == ("m", "s", "e")


def test_groups_that_cannot_be_judged_say_why() -> None:
    (p95,) = load_rules(ids=["trace-p95-regression"])
    cond = p95.condition
    resp = {"aggregations": {"groups": {"buckets": [
        _bucket("few", {"doc_count": cond.min_docs - 1, "m": {"values": {"95.0": 900.0}}},
                {"doc_count": 80, "m": {"values": {"95.0": 100.0}}}),
        _bucket("nobase", {"doc_count": 30, "m": {"values": {"95.0": 900.0}}},
                {"doc_count": 10, "m": {"values": {"95.0": 100.0}}}),
        _bucket("ok", {"doc_count": 30, "m": {"values": {"95.0": 300.0}}},
                {"doc_count": 80, "m": {"values": {"95.0": 100.0}}}),
    ]}}}
    res = {r.group: r for r in evaluate_response(p95, resp)}
    assert res["few"].note == f"below min_docs {cond.min_docs}"
    assert res["nobase"].note == f"baseline below min_baseline_docs {cond.min_baseline_docs}"
    assert res["ok"].note == "" and res["ok"].fired


def test_alert_message_gives_the_window_as_a_duration() -> None:
    (spike,) = load_rules(ids=["log-error-rate-spike"])
    msg = _message(spike, GroupResult(group="api", value=0.25, fired=True, count=40), 0.25)
    assert msg.endswith("40 document(s) in the last 5m")
    assert "0:05:00" not in msg


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "https://hooks.example.com/x"])
def test_webhook_url_accepts_http_and_https(url: str) -> None:
    assert check_webhook_url(url) == url


@pytest.mark.parametrize(("url", "why"), [
    ("not-a-url", "scheme must be http or https"),
    ("ftp://example.com/x", "scheme must be http or https"),
    ("http:///path-only", "no host"),
])
def test_webhook_url_rejects_what_is_not_an_http_url(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_webhook_url(url)


class _Flaky(BaseHTTPRequestHandler):
    """Answers ``server.fail_status`` to the first ``server.failures`` POSTs, then 200."""

    def do_POST(self) -> None:  # noqa: N802  # the name http.server dispatches to
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        srv: Any = self.server
        srv.seen += 1
        status = srv.fail_status if srv.seen <= srv.failures else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass


@pytest.fixture
def flaky() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    server.seen, server.failures, server.fail_status = 0, 0, 503
    server.url = f"http://127.0.0.1:{server.server_port}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _dead_url() -> str:
    # a port that was just free: nothing listens there, so the connection is refused
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/dead"


@pytest.mark.parametrize("failures", [0, 1, 2])
def test_webhook_is_retried_with_backoff_until_it_gets_through(flaky: Any, failures: int) -> None:
    flaky.failures = failures
    waits: list[float] = []
    policy = WebhookPolicy(attempts=3, backoff_s=0.5, timeout_s=2.0, sleep=waits.append)
    ok, error, tries = post_webhook(flaky.url, {"a": 1}, {}, policy)
    assert (ok, error, tries) == (True, "", failures + 1)
    assert flaky.seen == failures + 1
    assert waits == [0.5, 1.0][:failures]


def test_webhook_gives_up_after_its_attempts(flaky: Any) -> None:
    flaky.failures = 5
    waits: list[float] = []
    policy = WebhookPolicy(attempts=3, backoff_s=0.5, timeout_s=2.0, sleep=waits.append)
    ok, error, tries = post_webhook(flaky.url, {}, {}, policy)
    assert not ok and tries == 3 and flaky.seen == 3
    assert error.startswith("HTTP 503")
    assert waits == [0.5, 1.0]


def test_webhook_client_errors_are_not_retried(flaky: Any) -> None:
    flaky.failures, flaky.fail_status = 5, 404
    policy = WebhookPolicy(sleep=lambda s: None)
    ok, error, tries = post_webhook(flaky.url, {}, {}, policy)
    assert not ok and tries == 1 and flaky.seen == 1 and error.startswith("HTTP 404")


def test_webhook_to_a_dead_port_fails_after_every_attempt() -> None:
    waits: list[float] = []
    policy = WebhookPolicy(attempts=3, backoff_s=0.25, timeout_s=2.0, sleep=waits.append)
    ok, error, tries = post_webhook(_dead_url(), {}, {}, policy)
    assert not ok and tries == 3 and error
    assert waits == [0.25, 0.5]


def test_webhook_policy_rejects_no_attempts() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WebhookPolicy(attempts=0)


def test_cli_rejects_a_bad_webhook_url_and_a_bad_now_up_front() -> None:
    runner = CliRunner()
    # the url is checked before any cluster is contacted: this one could not be reached
    base = ["alerts", "run", "--url", "http://127.0.0.1:1"]
    res = runner.invoke(main, [*base, "--webhook-url", "not-a-url"])
    assert res.exit_code == 2 and "scheme must be http or https" in res.output
    res = runner.invoke(main, [*base, "--now", "yesterday-ish"])
    assert res.exit_code == 2
    assert "'yesterday-ish' is neither" in res.output and "now-2h" in res.output
    res = runner.invoke(main, ["alerts", "test", "--help"])
    assert "an age such as 15m, 6h, now-2h" in " ".join(res.output.split())  # help wraps
