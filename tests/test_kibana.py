"""Kibana saved objects: they parse, every reference resolves, every field they use exists in
our mappings with a type that fits, every saved search returns hits on seeded data in the real
engine, and ``logsight kibana import`` sends the documented multipart request."""

from __future__ import annotations

import email.parser
import email.policy
import json
import runpy
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from logsight import names
from logsight.cli import main
from logsight.findings import Finding, write_findings
from logsight.kibana import (
    FieldUse,
    ImportResult,
    check_dashboards,
    check_references,
    field_problem,
    fields_used,
    import_objects,
    load_objects,
    lucene_fields,
    saved_search_query,
    saved_searches,
)

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = {"logsight: Service health", "logsight: Log anomalies",
              "logsight: Trace bottlenecks", "logsight: Model drift & performance",
              "logsight: Cost & resources"}
# The last migration each type has in Kibana 8.11, the oldest Kibana we target (see
# kibana/README.md, "Format notes"): an object declaring a newer typeMigrationVersion is
# refused, an older one is migrated up. Later 8.x and 9.x only add versions.
LATEST_IN_8_11 = {"index-pattern": (8, 0, 0), "search": (8, 0, 0), "dashboard": (8, 9, 0)}
# Lens' 8.6.0 migration renamed datasourceStates.indexpattern to formBased; a dashboard must
# not claim less, or the Lens migrations up to it run on (and break) our formBased panels.
FORM_BASED_SINCE = (8, 6, 0)


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return load_objects()


def test_ndjson_parses_and_is_what_build_py_writes(objects: list[dict[str, Any]]) -> None:
    rendered = runpy.run_path(str(ROOT / "kibana" / "build.py"))["render"]()
    for name, text in rendered.items():
        assert (ROOT / "kibana" / name).read_text() == text, "re-run python kibana/build.py"
    assert len({(o["type"], o["id"]) for o in objects}) == len(objects)
    for o in objects:
        assert o["coreMigrationVersion"] == "8.8.0"  # core's version, frozen since 8.8
        declared = _version(o["typeMigrationVersion"])
        assert declared <= LATEST_IN_8_11[o["type"]], (o["id"], declared)
        if o["type"] == "dashboard":
            assert declared >= FORM_BASED_SINCE
        for key in ("panelsJSON", "optionsJSON"):
            if key in o["attributes"]:
                json.loads(o["attributes"][key])
        meta = o["attributes"].get("kibanaSavedObjectMeta")
        if meta:
            json.loads(meta["searchSourceJSON"])
    titles = {o["attributes"]["title"] for o in objects if o["type"] == "dashboard"}
    assert titles == DASHBOARDS
    views = {o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    assert {names.stream_pattern(k) for k in ("logs", "traces", "mlevents")} <= views
    assert {names.FINDINGS_INDEX, names.CRITICAL_PATH_INDEX, names.ALERTS_INDEX} <= views


def test_every_reference_resolves(objects: list[dict[str, Any]]) -> None:
    assert check_references(objects) == []
    # and the check does catch a dangling one
    broken = json.loads(json.dumps(objects))
    dash = next(o for o in broken if o["type"] == "dashboard")
    dash["references"] = dash["references"][1:]
    assert check_references(broken)
    gone = [o for o in objects if o["id"] != "logsight-findings"]
    assert any("logsight-findings" in p for p in check_references(gone))


def test_dashboards_use_lens_by_value_only(objects: list[dict[str, Any]]) -> None:
    for d in (o for o in objects if o["type"] == "dashboard"):
        panels = json.loads(d["attributes"]["panelsJSON"])
        assert {p["type"] for p in panels} <= {"lens", "search"}
        for p in panels:
            if p["type"] == "lens":
                assert p["embeddableConfig"]["attributes"]["type"] == "lens"
                assert "panelRefName" not in p


def test_dashboard_panels_are_well_formed(objects: list[dict[str, Any]]) -> None:
    assert check_dashboards(objects) == []


def _dashboard_copy(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Any]]:
    dash = json.loads(json.dumps(next(o for o in objects if o["type"] == "dashboard")))
    return dash, json.loads(dash["attributes"]["panelsJSON"])


def test_dashboard_check_catches_broken_panels(objects: list[dict[str, Any]]) -> None:
    def problems_after(edit: Any) -> list[str]:
        dash, panels = _dashboard_copy(objects)
        edit(panels)
        dash["attributes"]["panelsJSON"] = json.dumps(panels)
        return check_dashboards([dash])

    def overlap(panels: list[Any]) -> None:
        panels[1]["gridData"].update(x=panels[0]["gridData"]["x"], y=panels[0]["gridData"]["y"])

    def lens_state(panels: list[Any]) -> dict[str, Any]:
        lens = next(p for p in panels if p["type"] == "lens")
        return dict(lens["embeddableConfig"]["attributes"]["state"])

    def bad_accessor(panels: list[Any]) -> None:
        lens_state(panels)["visualization"]["layers"][0]["accessors"] = ["nope"]

    def metric_first(panels: list[Any]) -> None:
        layer = lens_state(panels)["datasourceStates"]["formBased"]["layers"]["layer1"]
        layer["columnOrder"] = list(reversed(layer["columnOrder"]))

    def no_version(panels: list[Any]) -> None:
        del panels[0]["version"]

    def too_wide(panels: list[Any]) -> None:
        panels[0]["gridData"]["w"] = 60

    assert any("overlap" in p for p in problems_after(overlap))
    assert any("no column nope" in p for p in problems_after(bad_accessor))
    assert any("metric comes before a bucket" in p for p in problems_after(metric_first))
    assert any("no version" in p for p in problems_after(no_version))
    assert any("outside the 48-column grid" in p for p in problems_after(too_wide))


def test_lens_panels_match_kibana_export_shape(objects: list[dict[str, Any]]) -> None:
    for d in (o for o in objects if o["type"] == "dashboard"):
        names_ = {r["name"] for r in d["references"]}
        for p in json.loads(d["attributes"]["panelsJSON"]):
            assert p["gridData"]["i"] == p["panelIndex"]
            if p["type"] == "search":
                # by reference: panel_<index>, resolved through "<index>:panel_<index>"
                assert p["panelRefName"] == f"panel_{p['panelIndex']}"
                assert f"{p['panelIndex']}:{p['panelRefName']}" in names_
                continue
            attrs = p["embeddableConfig"]["attributes"]
            state = attrs["state"]
            assert set(state["datasourceStates"]) == {"formBased"}
            assert {"visualization", "query", "filters", "datasourceStates",
                    "internalReferences", "adHocDataViews"} <= set(state)
            assert attrs["visualizationType"] in {"lnsXY", "lnsDatatable"}


def test_every_field_exists_with_a_fitting_type(objects: list[dict[str, Any]]) -> None:
    uses = fields_used(objects)
    problems = [f"{u.object_id} {u.where}: {field_problem(u)}" for u in uses if field_problem(u)]
    assert problems == []
    used = {(u.field, u.use) for u in uses}
    # the panels the issue asks for read what they should
    assert ("span.duration_ms", "percentile") in used
    assert ("critical_path_share", "average") in used
    assert ("feature", "terms") in used and ("ml.model.version", "terms") in used
    assert ("service.name", "terms") in used and ("log.level", "query") in used


def test_field_check_rejects_misfits() -> None:
    def use(field: str, how: str, pattern: str = "logs-logsight-*") -> FieldUse:
        return FieldUse("dashboard", "d", "p", pattern, field, how)

    assert "not mapped" in str(field_problem(use("no.such.field", "terms")))
    assert "needs" in str(field_problem(use("message", "terms")))  # text
    assert "needs" in str(field_problem(use("service.name", "percentile")))
    assert "not indexed" in str(field_problem(use("event.original", "query")))
    assert "unindexed" in str(field_problem(use("evidence", "column", "logsight-findings")))
    assert "not one of" in str(field_problem(use("x", "terms", "other-*")))
    assert field_problem(use("span.duration_ms", "percentile", "traces-logsight-*")) is None


def test_lucene_fields() -> None:
    assert lucene_fields("log.level:(error OR critical) AND NOT _exists_:parent.id") == {
        "log.level", "parent.id"}
    assert lucene_fields("kind:a OR (-severity:low)") == {"kind", "severity"}


def _ts(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()


@pytest.mark.engine
def test_every_saved_search_returns_hits_on_seeded_data(engine: Any, namespace: str,
                                                       objects: list[dict[str, Any]]) -> None:
    ns = namespace
    svc = f"svc-{ns}"
    logs = [({"create": {"_index": names.stream("logs", ns)}},
             {"@timestamp": _ts(i), "message": "boom", "log": {"level": lvl},
              "service": {"name": svc}, "logsight": {"template_id": "T1"}})
            for i, lvl in enumerate(["error", "critical", "info"])]
    spans = [({"create": {"_index": names.stream("traces", ns)}},
              {"@timestamp": _ts(1), "service": {"name": svc}, "trace": {"id": "t1"},
               "span": {"id": f"s{i}", "name": "op", "kind": kind, "status": status,
                        "start_unix_nano": 10**18, "end_unix_nano": 10**18 + 5 * 10**6,
                        "duration_ms": 5.0}})
             for i, (kind, status) in enumerate([("server", "error"), ("internal", "error")])]
    res = engine.bulk(logs + spans, refresh="wait_for")
    assert not res.errors, res.errors[:2]
    now = datetime.now(UTC)
    write_findings(engine, [
        Finding(kind=k, title=k, summary="seeded", severity=sev, service=svc, subject=k,
                namespace=ns, window_start=now - timedelta(hours=1), window_end=now)
        for k, sev in [("log_anomaly", "high"), ("trace_bottleneck", "medium"),
                       ("feature_drift", "low"), ("idle_gpu", "medium")]])
    alert_id = uuid.uuid4().hex
    engine.index(names.ALERTS_INDEX, {"@timestamp": now.isoformat(), "state": "fired",
                                      "rule": {"id": "r", "severity": "high"}, "message": "m",
                                      "namespace": ns}, id=alert_id, refresh="wait_for")
    try:
        searches = saved_searches(objects)
        assert len(searches) == 8
        for s in searches:
            q = saved_search_query(s)
            # our seeded slice of the search's data view: this namespace's stream, or our docs
            m = s.index_pattern.split("-logsight-")
            if len(m) == 2 and m[1] == "*":
                index, scoped = names.stream(m[0], ns), q
            else:
                index = s.index_pattern
                scoped = {"bool": {"filter": [q, {"term": {"namespace": ns}}]}}
            hits = engine.count(index, scoped)
            assert hits > 0, f"saved search {s.title!r} finds nothing in {index}"
        # the filters take part: the failed-spans search drops the internal span
        failed = next(s for s in searches if s.id == "logsight-search-failed-spans")
        assert engine.count(names.stream("traces", ns), saved_search_query(failed)) == 1
        errors = next(s for s in searches if s.id == "logsight-search-error-logs")
        assert engine.count(names.stream("logs", ns), saved_search_query(errors)) == 2
    finally:
        for kind in ("logs", "traces"):
            engine.delete_index(names.stream(kind, ns))
        engine.delete_by_query(names.FINDINGS_INDEX, {"term": {"namespace": ns}})
        engine.delete(names.ALERTS_INDEX, alert_id, refresh=True)


# -- import against a local HTTP server -------------------------------------------------------
class _Kibana(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802  # the name http.server dispatches to
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        srv: Any = self.server
        srv.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        status, answer = srv.answer
        if status == 200 and "count" in answer:
            answer = {"success": True, "successCount": body.count(b'"coreMigrationVersion"')}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass


@pytest.fixture
def kibana_server() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Kibana)
    server.requests = []
    server.answer = (200, {"count": True})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _multipart(req: dict[str, Any]) -> list[Any]:
    raw = f"Content-Type: {req['headers']['Content-Type']}\r\n\r\n".encode() + req["body"]
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    return list(msg.iter_parts())


def test_import_sends_one_multipart_overwrite_request(kibana_server: Any,
                                                      objects: list[dict[str, Any]]) -> None:
    result = import_objects(kibana_server.url, objects, api_key="abc123", space="ml")
    assert result.success and result.success_count == len(objects)
    (req,) = kibana_server.requests
    assert req["path"] == "/s/ml/api/saved_objects/_import?overwrite=true"
    assert req["headers"]["kbn-xsrf"] == "true"
    assert req["headers"]["Authorization"] == "ApiKey abc123"
    (part,) = _multipart(req)
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename().endswith(".ndjson")
    lines = part.get_payload(decode=True).decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [o["id"] for o in objects]


def test_cli_import_is_idempotent_with_basic_auth(kibana_server: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIBANA_URL", kibana_server.url)
    runner = CliRunner()
    for _ in range(2):
        res = runner.invoke(main, ["kibana", "import", "--username", "elastic", "--password",
                                   "s3cret", "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.output)["successCount"] == len(load_objects())
    first, second = kibana_server.requests
    # the same objects each time, and overwrite=true: Kibana replaces them in place
    (a,), (b,) = _multipart(first), _multipart(second)
    assert a.get_payload(decode=True) == b.get_payload(decode=True)
    assert first["path"] == "/api/saved_objects/_import?overwrite=true"
    assert first["headers"]["Authorization"].startswith("Basic ")


def test_cli_import_reports_kibana_errors(kibana_server: Any) -> None:
    runner = CliRunner()
    # the 8.x failure shape: title under meta, the reason in error.type
    kibana_server.answer = (200, {"success": False, "successCount": 17, "errors": [
        {"id": "logsight-dashboard-model", "type": "dashboard",
         "meta": {"title": "logsight: Model drift & performance", "icon": "dashboardApp"},
         "error": {"type": "missing_references",
                   "references": [{"type": "index-pattern", "id": "logsight-mlevents"}]}}]})
    res = runner.invoke(main, ["kibana", "import", "--kibana-url", kibana_server.url])
    assert res.exit_code == 1
    assert "missing_references: index-pattern logsight-mlevents" in res.output
    assert "logsight: Model drift & performance" in res.output
    kibana_server.answer = (401, {"message": "unauthorized"})
    res = runner.invoke(main, ["kibana", "import", "--url", kibana_server.url])
    assert res.exit_code == 1 and "401" in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["kibana", "import", "--kibana-url", "localhost:5601"])
    assert res.exit_code == 2 and "must start with http" in res.output
    # --url (the old name, the cluster's name everywhere else) is still accepted
    res = runner.invoke(main, ["kibana", "import", "--url", "localhost:5601"])
    assert res.exit_code == 2 and "must start with http" in res.output
    res = runner.invoke(main, ["kibana", "import"], env={"KIBANA_URL": ""})
    assert res.exit_code == 2 and "--kibana-url" in res.output
    res = runner.invoke(main, ["kibana", "import", "--kibana-url", kibana_server.url,
                               "--space", "ML Team"])
    assert res.exit_code == 2 and "space id 'ML Team'" in res.output
    res = runner.invoke(main, ["kibana", "import", "--kibana-url", "http://127.0.0.1:9",
                               "--password", "x"])
    assert res.exit_code == 2 and "--password needs --username" in res.output


def test_error_lines_read_both_failure_shapes() -> None:
    result = ImportResult(success=False, success_count=0, status=200, errors=[
        {"id": "a", "type": "search", "title": "old", "error": {"type": "conflict"}},
        {"id": "b", "type": "dashboard", "meta": {"title": "new"},
         "error": {"type": "unknown", "message": "boom", "statusCode": 500}}])
    assert result.error_lines() == ["search a (old): conflict",
                                    "dashboard b (new): unknown: boom"]
