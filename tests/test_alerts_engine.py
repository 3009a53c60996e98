"""The shipped alert rules against the real engine: each fires on seeded data of its own kind,
stays silent on clean data, throttles through the alerts index, reaches a webhook, and the
Painless the cluster backends run agrees with the built-in evaluator on the same responses."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner

from logsight import names
from logsight.alerts import (
    builtin_rules_dir,
    evaluate_rule,
    evaluate_rules,
    load_rules,
    run_rules,
    search_body,
)
from logsight.alerts.evaluator import scope
from logsight.alerts.monitors import compile_monitor
from logsight.alerts.rules import Action
from logsight.alerts.watcher import compile_watch
from logsight.cli import main
from logsight.findings import Finding, write_findings

pytestmark = pytest.mark.engine

NOW = datetime.now(UTC).replace(microsecond=0)
RULE_IDS = {
    "high-severity-finding", "log-error-rate-spike", "new-error-template-burst",
    "feature-drift-detected", "model-accuracy-drop", "trace-p95-regression",
    "canary-roll-back", "cost-waste", "container-cpu-throttling",
}
# what each rule must report on the dirty namespace: the groups that fire
EXPECTED = {
    "high-severity-finding": ["canary_verdict", "log_anomaly", "performance_degradation"],
    "log-error-rate-spike": ["svc-err"],
    "new-error-template-burst": ["svc-err"],
    "feature-drift-detected": ["churn"],
    "model-accuracy-drop": ["churn"],
    "trace-p95-regression": ["api"],
    "canary-roll-back": ["api v1->v2"],
    "cost-waste": ["scorer"],
    "container-cpu-throttling": ["svc-cpu"],
}


def _ts(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")


def _log(ns: str, service: str, minutes_ago: float, level: str, template: str) -> tuple:
    # the message's shape differs per template too (no digits: the ingest pipeline masks
    # them), so the ingest-time template id, when the pipeline sets one, tells them apart
    shape = {"T1": "alpha", "T2": "beta", "T3": "gamma", "T4": "delta", "T5": "epsilon"}
    doc = {"@timestamp": _ts(minutes_ago), "message": f"{level} event {shape[template]}",
           "log": {"level": level}, "service": {"name": service},
           "logsight": {"template_id": template}}
    return {"create": {"_index": names.stream("logs", ns), "_id": uuid.uuid4().hex}}, doc


def _span(ns: str, service: str, minutes_ago: float, duration_ms: float) -> tuple:
    start = int((NOW - timedelta(minutes=minutes_ago)).timestamp() * 1e9)
    doc = {"@timestamp": _ts(minutes_ago), "service": {"name": service},
           "trace": {"id": uuid.uuid4().hex}, "span": {
               "id": uuid.uuid4().hex[:16], "name": "GET /predict", "kind": "server",
               "start_unix_nano": start, "end_unix_nano": start + int(duration_ms * 1e6),
               "duration_ms": duration_ms, "status": "ok"}}
    return {"create": {"_index": names.stream("traces", ns), "_id": uuid.uuid4().hex}}, doc


def _metric(ns: str, service: str, minutes_ago: float, throttled: float) -> tuple:
    doc = {"@timestamp": _ts(minutes_ago), "service": {"name": service},
           "container": {"cpu": {"throttled_ratio": throttled, "pct": 95.0}}}
    return {"create": {"_index": names.stream("metrics", ns), "_id": uuid.uuid4().hex}}, doc


def _finding(ns: str, kind: str, severity: str, minutes_ago: float, **kw: Any) -> Finding:
    # the service carries the namespace (unless given): both namespaces are seeded
    return Finding(kind=kind, title=f"{kind} test", summary="seeded", severity=severity,
                   service=kw.pop("service", f"svc-{ns}"), subject=kw.pop("subject", kind),
                   namespace=ns,
                   window_start=NOW - timedelta(minutes=minutes_ago + 30),
                   window_end=NOW - timedelta(minutes=minutes_ago), **kw)


def _seed(engine: Any, ns: str, *, dirty: bool) -> None:
    actions: list[tuple] = []
    # logs: 40 lines per service in the last 5 minutes; svc-err has 25% errors when dirty
    for svc in ("svc-err", "svc-ok"):
        errors = 10 if (dirty and svc == "svc-err") else 1
        for i in range(40):
            level = "error" if i < errors else "info"
            # new templates T3..T5 only in the dirty service's window; baseline knows T1, T2
            tmpl = f"T{3 + i % 3}" if (dirty and svc == "svc-err" and i < errors) else "T1"
            actions.append(_log(ns, svc, 0.1 * i + 0.5, level, tmpl))
        for t in ("T1", "T2"):
            actions.append(_log(ns, svc, 120, "error", t))
    # traces: 60 baseline spans at ~100 ms, 25 window spans (4x slower for api when dirty)
    for svc in ("api", "db"):
        for i in range(60):
            actions.append(_span(ns, svc, 20 + i, 95 + i % 10))
        for i in range(25):
            slow = 4.0 if (dirty and svc == "api") else 1.0
            actions.append(_span(ns, svc, 0.5 * i + 0.5, (95 + i % 10) * slow))
    # metrics: 10 samples per service in the last 5 minutes; svc-cpu throttled when dirty
    for svc in ("svc-cpu", "svc-calm"):
        for i in range(10):
            ratio = 0.5 if (dirty and svc == "svc-cpu") else 0.05
            actions.append(_metric(ns, svc, 0.5 * i + 0.5, ratio))
    res = engine.bulk(actions, refresh="wait_for")
    assert not res.errors, res.errors[:3]
    if dirty:
        findings = [
            _finding(ns, "log_anomaly", "high", 5),
            _finding(ns, "feature_drift", "medium", 10, feature="age", model="churn",
                     subject="age"),
            _finding(ns, "performance_degradation", "high", 12, model="churn",
                     model_version="v2", subject="v2"),
            _finding(ns, "canary_verdict", "high", 3, subject="api v1->v2"),
            _finding(ns, "idle_gpu", "medium", 20, service="scorer", subject="gpu"),
        ]
    else:
        findings = [_finding(ns, "log_anomaly", "low", 5),
                    _finding(ns, "feature_drift", "low", 10, feature="age", model="churn")]
    write_findings(engine, findings)


@pytest.fixture(scope="module")
def seeded(engine: Any) -> Iterator[tuple[str, str]]:
    dirty, clean = "ta" + uuid.uuid4().hex[:10], "tc" + uuid.uuid4().hex[:10]
    _seed(engine, dirty, dirty=True)
    _seed(engine, clean, dirty=False)
    yield dirty, clean
    for ns in (dirty, clean):
        for kind in ("logs", "traces", "metrics"):
            engine.delete_index(names.stream(kind, ns))
        for index in (names.FINDINGS_INDEX, names.ALERTS_INDEX):
            engine.delete_by_query(index, {"term": {"namespace": ns}})


def test_shipped_rules_are_these() -> None:
    assert {r.id for r in load_rules()} == RULE_IDS


@pytest.mark.parametrize("rule_id", sorted(RULE_IDS))
def test_rule_fires_on_seeded_data_and_not_on_clean(engine: Any, seeded: tuple[str, str],
                                                    rule_id: str) -> None:
    dirty, clean = seeded
    (rule,) = load_rules(ids=[rule_id])
    ev = evaluate_rule(engine, rule, now=NOW, namespace=dirty)
    assert ev.error is None
    assert sorted(r.group for r in ev.results if r.fired) == EXPECTED[rule_id]
    quiet = evaluate_rule(engine, rule, now=NOW, namespace=clean)
    assert quiet.error is None
    index, extra = scope(rule, namespace=clean)
    assert engine.count(index, {"bool": {"filter": extra}} if extra else None) > 0, \
        "the clean namespace has data where the rule reads: silence must be a verdict"
    assert not [r.group for r in quiet.results if r.fired]


def _painless_groups(engine: Any, source: str, payload: dict[str, Any]) -> list[str]:
    script = source + ("\ndef keys = []; for (def f : fired) { keys.add(String.valueOf(f.group)); }"
                       "\nCollections.sort(keys); return String.join(',', keys);")
    resp = engine.request("POST", "/_scripts/painless/_execute",
                          body={"script": {"source": script, "params": {"payload": payload}}})
    return [g for g in str(resp["result"]).split(",") if g]


@pytest.mark.parametrize("rule_id", sorted(RULE_IDS))
def test_compiled_painless_agrees_with_builtin_evaluator(engine: Any, seeded: tuple[str, str],
                                                         rule_id: str) -> None:
    (rule,) = load_rules(ids=[rule_id])
    for ns in seeded:
        index, extra = scope(rule, namespace=ns)
        body = search_body(rule, anchor=NOW.isoformat().replace("+00:00", "Z"),
                           extra_filters=extra)
        payload = engine.search(index, body)
        ev = evaluate_rule(engine, rule, now=NOW, namespace=ns)
        python = sorted(str(r.group) for r in ev.results if r.fired)
        watch = compile_watch(rule, env={})["condition"]["script"]["source"]
        watch = watch.replace("ctx.payload", "params.payload").replace(
            "return fired.size() > 0;", "")
        monitor = compile_monitor(rule, env={})["triggers"][0]["condition"]["script"]["source"]
        monitor = monitor.replace("ctx.results[0]", "params.payload").replace(
            "return fired.size() > 0;", "")
        assert _painless_groups(engine, watch, payload) == python
        assert _painless_groups(engine, monitor, payload) == python


def test_watch_transform_builds_one_alert_document_per_fired_group(
        engine: Any, seeded: tuple[str, str]) -> None:
    (rule,) = load_rules(ids=["high-severity-finding"])
    index, extra = scope(rule, namespace=seeded[0])
    payload = engine.search(index, search_body(rule, anchor=NOW.isoformat(), extra_filters=extra))
    source = compile_watch(rule, env={})["transform"]["script"]["source"]
    source = source.replace("ctx.payload", "params.payload").replace(
        "ctx.trigger.scheduled_time", "params.ts")
    source = source.rsplit("return ", 1)[0] + "return docs.size() + '|' + docs[0].rule.id;"
    resp = engine.request("POST", "/_scripts/painless/_execute", body={
        "script": {"source": source, "params": {"payload": payload, "ts": NOW.isoformat()}}})
    assert resp["result"] == f"{len(EXPECTED[rule.id])}|{rule.id}"


class _Recorder(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]]

    def do_POST(self) -> None:  # noqa: N802  # the name http.server dispatches to
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append(  # type: ignore[attr-defined]  # set on our server below
            {"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.requests = []  # type: ignore[attr-defined]  # per-server request log
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", server.requests  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def test_fired_alerts_are_recorded_sent_and_throttled(
        engine: Any, seeded: tuple[str, str], webhook: tuple[str, list[dict[str, Any]]]) -> None:
    dirty = seeded[0]
    url, received = webhook
    rules = load_rules(ids=["log-error-rate-spike", "trace-p95-regression"])
    env = {"LOGSIGHT_ALERT_WEBHOOK_URL": url}
    fired = evaluate_rules(engine, rules, now=NOW, namespace=dirty, env=env)
    assert sorted((a.rule_id, a.group) for a in fired) == [
        ("log-error-rate-spike", "svc-err"), ("trace-p95-regression", "api")]
    assert not any(a.throttled for a in fired)
    # the webhook got one POST per alert, with the runbook link
    assert len(received) == 2
    payloads = [json.loads(r["body"]) for r in received]
    assert {p["rule_id"] for p in payloads} == {"log-error-rate-spike", "trace-p95-regression"}
    for p in payloads:
        assert p["runbook"].endswith(f"docs/runbooks/{p['rule_id']}.md")
        assert p["matched"]["count"] >= 20 and p["matched"]["samples"]
    # recorded in the alerts index with what matched
    docs = engine.search(names.ALERTS_INDEX, {"query": {"term": {"namespace": dirty}},
                                              "size": 10})["hits"]["hits"]
    assert len(docs) == 2
    spike = next(d["_source"] for d in docs if d["_source"]["rule"]["id"] == "log-error-rate-spike")
    assert spike["value"] == pytest.approx(10 / 40)
    assert spike["group"] == "svc-err" and spike["matched"]["count"] == 40
    # a minute later: same groups still breach, but the throttle (read back) holds them
    later = evaluate_rules(engine, rules, now=NOW + timedelta(minutes=1), namespace=dirty,
                           env=env)
    assert later and all(a.throttled for a in later)
    assert len(received) == 2
    assert engine.count(names.ALERTS_INDEX, {"term": {"namespace": dirty}}) == 2
    # after the throttle period the group may fire again (a widened window keeps the data in)
    wide = [replace(r, query=replace(r.query, window_s=4 * 3600)) for r in rules[:1]]
    again = evaluate_rules(engine, wide, now=NOW + timedelta(minutes=31), namespace=dirty,
                           env=env)
    assert [a.throttled for a in again] == [False]
    assert len(received) == 3


def test_webhook_failure_is_reported_not_raised(engine: Any, seeded: tuple[str, str]) -> None:
    rules = load_rules(ids=["model-accuracy-drop"])
    report = run_rules(engine, rules, now=NOW, namespace=seeded[0], record=False,
                       webhook_url="http://127.0.0.1:9/nothing-listens", http_timeout=1.0)
    (alert,) = report.fired
    assert any(a.startswith("webhook failed") for a in alert.actions)


def test_cli_run_test_install(engine: Any, seeded: tuple[str, str]) -> None:
    dirty, clean = seeded
    runner = CliRunner()
    now = NOW.isoformat()
    res = runner.invoke(main, ["alerts", "test", "--namespace", dirty, "--now", now, "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["results"]
    firing = sorted({r["rule"] for r in rows if r["fires"] == "yes"})
    assert firing == sorted(RULE_IDS)
    res = runner.invoke(main, ["alerts", "run", "--namespace", clean, "--now", now,
                               "--no-actions", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["fired"] == []
    res = runner.invoke(main, ["alerts", "run", "model-accuracy-drop", "--namespace", dirty,
                               "--now", now, "--no-actions"])
    assert res.exit_code == 0, res.output
    assert "FIRED" in res.output and "docs/runbooks/model-accuracy-drop.md" in res.output
    # the local engine has neither Watcher nor the Alerting plugin
    res = runner.invoke(main, ["alerts", "install", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["target"] == "builtin"
    res = runner.invoke(main, ["alerts", "install", "--target", "watcher", "--dry-run",
                               "--json", "trace-p95-regression"])
    assert res.exit_code == 0, res.output
    watch = json.loads(res.output)["compiled"]["trace-p95-regression"]
    assert watch["trigger"]["schedule"]["interval"] == "1m"
    res = runner.invoke(main, ["alerts", "test", "no-such-rule"])
    assert res.exit_code == 2 and "unknown rule id" in res.output
    res = runner.invoke(main, ["alerts", "run", "--namespace", "Bad-NS", "--now", now])
    assert res.exit_code == 2 and "invalid namespace" in res.output


def test_cli_test_lists_rules_without_data_and_dry_run_warns(engine: Any) -> None:
    runner = CliRunner()
    empty_ns = "t" + uuid.uuid4().hex[:12]
    res = runner.invoke(main, ["alerts", "test", "--namespace", empty_ns, "--url", engine.url])
    assert res.exit_code == 0, res.output
    rows = [line.split()[0] for line in res.output.splitlines()[2:] if line.strip()]
    assert sorted(rows) == sorted(r.id for r in load_rules())
    assert res.output.count("(no data in window)") == len(rows)
    res = runner.invoke(main, ["alerts", "install", "--target", "watcher", "--dry-run",
                               "--url", engine.url])
    assert res.exit_code == 0
    assert "has no Watcher" in res.output and "would install" in res.output
    res = runner.invoke(main, ["alerts", "install", "--target", "watcher", "--url", engine.url])
    assert res.exit_code == 1 and "has no Watcher" in res.output


# strings the compiled Painless and mustache must carry through unchanged
HOSTILE = [
    'say "hi" to service.name:"api"',
    "back\\slash \\' and it's \\\\u00e9 \\n",
    "Fehlerrate für café ✓ 日本",
    "two\nlines\tand a tab",
    "{{ctx.monitor.name}} <% {{#x}} %> <%% [[y]] %%> {{{y}}} }}",
]


def _run_transform(engine: Any, source: str, payload: dict[str, Any], expr: str) -> Any:
    source = source.replace("ctx.payload", "params.payload").replace(
        "ctx.trigger.scheduled_time", "params.ts")
    source = source.rsplit("return ", 1)[0] + f"return {expr};"
    return engine.request("POST", "/_scripts/painless/_execute", body={
        "script": {"source": source, "params": {"payload": payload, "ts": NOW.isoformat()}}}
    )["result"]


@pytest.mark.parametrize("text", HOSTILE)
def test_watch_painless_carries_hostile_strings_intact(
        engine: Any, seeded: tuple[str, str], text: str) -> None:
    (rule,) = load_rules(ids=["high-severity-finding"])
    index, extra = scope(rule, namespace=seeded[0])
    payload = engine.search(index, search_body(rule, anchor=NOW.isoformat(), extra_filters=extra))
    hostile = replace(rule, name=text, query=replace(rule.query, filter=text, group_by=text))
    watch = compile_watch(hostile, env={}, runbook_base_url=f"https://rb.example.org/{text}")
    source = watch["transform"]["script"]["source"]
    assert _run_transform(engine, source, payload, "docs[0].rule.name") == text
    assert _run_transform(engine, source, payload, "docs[0].matched.query") == text
    assert _run_transform(engine, source, payload, "docs[0].group_field") == text
    assert _run_transform(engine, source, payload, "docs[0].rule.runbook") == \
        f"https://rb.example.org/{text}/{rule.id}.md"
    assert str(_run_transform(engine, source, payload, "docs[0].message")).startswith(text + " ")
    # the condition compiles too, and still finds the groups the evaluator finds
    condition = watch["condition"]["script"]["source"].replace("ctx.payload", "params.payload")
    assert _painless_groups(engine, condition.replace("return fired.size() > 0;", ""),
                            payload) == EXPECTED[rule.id]


@pytest.mark.parametrize("text", HOSTILE)
def test_monitor_templates_render_hostile_rule_names_intact(engine: Any, text: str) -> None:
    (rule,) = load_rules(ids=["log-error-rate-spike"])
    (action,) = compile_monitor(replace(rule, name=text), channel_id="chan-1", env={})[
        "triggers"][0]["actions"]
    ctx = {"monitor": {"name": 'logsight: "m"'}, "periodStart": "2024-05-01T10:00:00Z",
           "periodEnd": "2024-05-01T10:01:00Z"}
    # the engine's own mustache (lang-mustache), as the Alerting plugin renders templates
    body = engine.request("POST", "/_render/template", body={
        "source": action["message_template"]["source"], "params": {"ctx": ctx}})["template_output"]
    assert body["rule_name"] == text and body["rule_id"] == rule.id
    assert body["monitor"] == 'logsight: "m"' and body["period_end"] == ctx["periodEnd"]
    # the subject is plain text: wrapped as a JSON string to read it back (JSON escaping,
    # non-ASCII kept, touches neither braces nor delimiters: mustache sees the same tags)
    subject = action["subject_template"]["source"]
    out = engine.request("POST", "/_render/template", body={
        "source": '{"s": ' + json.dumps(subject, ensure_ascii=False) + "}",
        "params": {"ctx": ctx}})
    assert out["template_output"]["s"] == f"logsight alert: {text}"


def test_failing_index_action_is_reported_and_the_pass_goes_on(
        engine: Any, seeded: tuple[str, str]) -> None:
    dirty = seeded[0]
    tag = uuid.uuid4().hex[:8]
    spike, accuracy = load_rules(ids=["log-error-rate-spike", "model-accuracy-drop"])
    # upper case is not allowed in index names: the cluster rejects the write
    bad = replace(spike, id=f"t-bad-{tag}", actions=(Action(type="index", index="Not_Valid"),))
    good = replace(accuracy, id=f"t-good-{tag}", actions=(Action(type="index"),))
    try:
        report = run_rules(engine, [bad, good], now=NOW, namespace=dirty)
        assert sorted((a.rule_id, a.group) for a in report.fired) == [
            (bad.id, "svc-err"), (good.id, "churn")]
        (err,) = report.errors
        assert err.startswith(f"{bad.id}: group svc-err: index action into 'Not_Valid' failed")
        failed = next(a for a in report.fired if a.rule_id == bad.id)
        assert failed.actions[0].startswith("index:Not_Valid failed")
        # both alerts are recorded, the failed one with what went wrong
        docs = {d["_source"]["rule"]["id"]: d["_source"] for d in engine.search(
            names.ALERTS_INDEX, {"query": {"terms": {"rule.id": [bad.id, good.id]}},
                                 "size": 10})["hits"]["hits"]}
        assert set(docs) == {bad.id, good.id}
        assert docs[bad.id]["actions"][0].startswith("index:Not_Valid failed")
        assert docs[good.id]["actions"] == ["index:logsight-alerts"]
    finally:
        engine.delete_by_query(names.ALERTS_INDEX, {"terms": {"rule.id": [bad.id, good.id]}})


@pytest.fixture(scope="module")
def delivery_ns(engine: Any) -> Iterator[str]:
    """A dirty namespace of its own: the alerts recorded here must not meet other tests'."""
    ns = "td" + uuid.uuid4().hex[:10]
    _seed(engine, ns, dirty=True)
    yield ns
    for kind in ("logs", "traces"):
        engine.delete_index(names.stream(kind, ns))
    for index in (names.FINDINGS_INDEX, names.ALERTS_INDEX):
        engine.delete_by_query(index, {"term": {"namespace": ns}})


class _FailFirst(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802  # the name http.server dispatches to
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        srv: Any = self.server
        srv.seen += 1
        self.send_response(503 if srv.seen <= srv.failures else 200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass


def _dead_url() -> str:
    with socket.socket() as s:  # a port that was just free: the connection is refused
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/dead"


def _alert_docs(engine: Any, ns: str, rule_id: str) -> list[dict[str, Any]]:
    body = {"query": {"bool": {"filter": [{"term": {"namespace": ns}},
                                          {"term": {"rule.id": rule_id}}]}},
            "sort": [{"@timestamp": "asc"}], "size": 10}
    return [h["_source"] for h in engine.search(names.ALERTS_INDEX, body)["hits"]["hits"]]


def test_undelivered_alert_is_recorded_as_failed_and_retried_next_pass(
        engine: Any, delivery_ns: str) -> None:
    rules = load_rules(ids=["log-error-rate-spike"])
    waits: list[float] = []
    report = run_rules(engine, rules, now=NOW, namespace=delivery_ns, webhook_url=_dead_url(),
                       http_timeout=1.0, sleep=waits.append)
    (alert,) = report.fired
    assert alert.delivery == "failed" and report.delivery_failed == [alert]
    assert report.errors == []  # the cluster side went fine
    assert waits == [0.5, 1.0]  # three attempts, backing off
    assert any(a.startswith("webhook failed after 3 attempt(s)") for a in alert.actions)
    (doc,) = _alert_docs(engine, delivery_ns, "log-error-rate-spike")
    assert doc["delivery"] == "failed" and doc["state"] == "fired"

    # next pass: the failed delivery does not throttle; the receiver is back after one 503
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _FailFirst)
    server.seen, server.failures = 0, 1
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        waits.clear()
        again = run_rules(engine, rules, now=NOW + timedelta(minutes=1), namespace=delivery_ns,
                          webhook_url=url, sleep=waits.append)
        (sent,) = again.fired
        assert not sent.throttled and sent.delivery == "sent" and not again.delivery_failed
        assert server.seen == 2 and waits == [0.5]
        # delivered now, so this one throttles the group
        later = run_rules(engine, rules, now=NOW + timedelta(minutes=2), namespace=delivery_ns,
                          webhook_url=url, sleep=waits.append)
        assert [a.throttled for a in later.fired] == [True] and server.seen == 2
    finally:
        server.shutdown()
        server.server_close()
    docs = _alert_docs(engine, delivery_ns, "log-error-rate-spike")
    assert [d["delivery"] for d in docs] == ["failed", "sent"]


def test_cli_run_exits_1_and_says_so_when_a_delivery_failed(
        engine: Any, delivery_ns: str) -> None:
    res = CliRunner().invoke(main, [
        "alerts", "run", "model-accuracy-drop", "--namespace", delivery_ns, "--url", engine.url,
        "--now", NOW.isoformat(), "--webhook-url", _dead_url()])
    assert res.exit_code == 1, res.output
    assert "0 alert(s) fired, 1 delivery failed" in res.output
    assert "UNSENT" in res.output and "alert not delivered" in res.output
    (doc,) = _alert_docs(engine, delivery_ns, "model-accuracy-drop")
    assert doc["delivery"] == "failed"


def test_cli_test_takes_an_age_for_now_and_notes_groups_below_min_docs(
        engine: Any, delivery_ns: str, tmp_path: Any) -> None:
    src = (builtin_rules_dir() / "log-error-rate-spike.yaml").read_text()
    assert "min_docs: 20" in src
    (tmp_path / "strict.yaml").write_text(src.replace("min_docs: 20", "min_docs: 1000"))
    runner = CliRunner()
    res = runner.invoke(main, ["alerts", "test", "--namespace", delivery_ns, "--url", engine.url,
                               "--rules", str(tmp_path), "--now", "now-1m", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["results"]
    assert {r["group"] for r in rows} == {"svc-err", "svc-ok"}
    assert all(r["value"] is None and r["note"] == "below min_docs 1000" for r in rows)
    res = runner.invoke(main, ["alerts", "test", "--namespace", delivery_ns, "--url", engine.url,
                               "--rules", str(tmp_path), "--now", "0m"])
    assert res.exit_code == 0, res.output
    assert "note" in res.output.splitlines()[0] and "below min_docs 1000" in res.output
