"""The trace-completion job against the real engine: critical paths computed once per trace and
stored per operation; bottleneck questions answered from those documents exactly as the raw
recompute answers them; late spans recompute their trace; re-runs write no duplicates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.test_traces_engine import MS, T0, index_docs, ns, span_doc

from logsight import names
from logsight.jobs import stored_traces as S
from logsight.jobs import traces as J
from logsight.jobs.trace_completion import (
    ClusterWriter,
    CompletionRequest,
    StoredTraces,
    complete_traces,
)

pytestmark = pytest.mark.engine


def checkout_trace(i: int, *, api: str, db: str, decoy: str, t0: datetime = T0,
                   db_ms: float = 90.0, version: str = "1.0") -> list[dict[str, Any]]:
    """POST /checkout (api) -> a long *parallel* decoy (recommendations, 95 ms, never the last
    to finish) || inventory.reserve -> db.query (the injected bottleneck, ``db_ms``)."""
    trace = uuid.uuid4().hex
    s = ns(t0) + i * 500 * MS
    db_end = s + 12 * MS + int(db_ms * MS)
    inv_end = db_end + 3 * MS
    root_end = max(inv_end, s + 100 * MS) + 2 * MS
    return [
        span_doc(trace, "r" * 16, None, api, "POST /checkout", s, root_end, version=version,
                 status="error" if i % 10 == 0 else "ok"),
        span_doc(trace, "d" * 16, "r" * 16, decoy, "recommend", s + 5 * MS, s + 100 * MS,
                 version=version),
        span_doc(trace, "i" * 16, "r" * 16, api, "inventory.reserve", s + 5 * MS, inv_end,
                 version=version),
        span_doc(trace, "q" * 16, "i" * 16, db, "db.query", s + 12 * MS, db_end,
                 version=version),
    ]


@pytest.fixture
def svc() -> dict[str, str]:
    uid = uuid.uuid4().hex[:8]
    return {"api": f"api-{uid}", "db": f"db-{uid}", "decoy": f"recs-{uid}"}


def _complete(engine: Any, namespace: str, **kw: Any) -> Any:
    request = CompletionRequest(now=datetime.now(UTC), namespace=namespace, settle=timedelta(0),
                                **kw)
    return complete_traces(request, StoredTraces(engine, namespace), ClusterWriter(engine))


def _ask(engine: Any, namespace: str, **scope: Any) -> tuple[J.BottlenecksResult, Any]:
    request = J.BottlenecksRequest(J.Window(T0, T0 + timedelta(hours=1)),
                                   J.Scope(namespace=namespace, **scope), top=50)
    stored = S.bottlenecks(request, StoredTraces(engine, namespace),
                           J.ClusterSpans(engine, namespace))
    raw = J.bottlenecks(request, J.ClusterSpans(engine, namespace))
    return stored, raw


def _same_answer(stored: J.BottlenecksResult, raw: J.BottlenecksResult) -> None:
    assert stored.answered_from == S.STORED and raw.answered_from == "spans"
    key = [(r["service"], r["operation"]) for r in stored.bottlenecks]
    assert key == [(r["service"], r["operation"]) for r in raw.bottlenecks]
    for a, b in zip(stored.bottlenecks, raw.bottlenecks, strict=True):
        assert a["critical_path_share"] == pytest.approx(b["critical_path_share"], abs=1e-6)
        assert a["critical_path_ms"] == pytest.approx(b["critical_path_ms"], rel=1e-9)
        for k in ("count", "traces", "rank"):
            assert a[k] == b[k], k
        for k in ("on_critical_path_ratio", "error_rate"):
            assert a[k] == pytest.approx(b[k], abs=1e-12), k


def test_injected_bottleneck_behind_a_parallel_decoy_ranks_first_from_stored_documents(
        engine: Any, namespace: str, svc: dict[str, str]) -> None:
    docs = [d for i in range(40) for d in checkout_trace(i, **svc, db_ms=90 + i % 7)]
    index_docs(engine, namespace, docs)
    done = _complete(engine, namespace, since=datetime.now(UTC) - timedelta(minutes=5))
    assert (done.traces, done.spans, done.documents) == (40, 160, 160)

    stored, raw = _ask(engine, namespace)
    _same_answer(stored, raw)
    top = stored.bottlenecks[0]
    assert (top["service"], top["operation"]) == (svc["db"], "db.query")
    decoy = next(r for r in stored.bottlenecks if r["operation"] == "recommend")
    # the decoy is long (95 ms, the largest self time) but never on the critical path
    assert decoy["critical_path_share"] == 0 and decoy["self_time_p50_ms"] == pytest.approx(95)
    assert top["latency_p50_ms"] == pytest.approx(93, abs=1.0)
    assert stored.stats["traces"] == 40 and stored.stats["spans"] == 160
    assert [f.subject for f in stored.findings] == [f.subject for f in raw.findings]

    # an entry-point question: the same traces, the same ranking
    s2, r2 = _ask(engine, namespace, service=svc["api"], operation="POST /checkout")
    _same_answer(s2, r2)


def test_a_late_span_recomputes_its_trace_and_reruns_write_no_duplicates(
        engine: Any, namespace: str, svc: dict[str, str]) -> None:
    traces = [checkout_trace(i, **svc) for i in range(10)]
    index_docs(engine, namespace, [d for t in traces for d in t])
    first = _complete(engine, namespace, since=datetime.now(UTC) - timedelta(minutes=5))
    store = StoredTraces(engine, namespace)
    engine.refresh(names.CRITICAL_PATH_INDEX)
    assert first.documents == store.count() == 40

    # nothing new: a re-run reads and writes nothing; a forced recompute overwrites by id
    again = _complete(engine, namespace)
    assert (again.traces, again.documents) == (0, 0)
    forced = _complete(engine, namespace, since=first.ingested_from)
    engine.refresh(names.CRITICAL_PATH_INDEX)
    assert forced.documents == 40 and store.count() == 40

    # a late span: a retry under the root that finishes after everything else
    root = traces[3][0]
    start, end = root["span.start_unix_nano"], root["span.end_unix_nano"]
    late = span_doc(root["trace.id"], "l" * 16, "r" * 16, svc["api"], "payment.retry",
                    start + 60 * MS, end + 50 * MS)
    index_docs(engine, namespace, [late])
    after = _complete(engine, namespace)
    assert (after.traces, after.late_spans, after.documents) == (1, 4, 5)
    engine.refresh(names.CRITICAL_PATH_INDEX)
    assert store.count() == 41
    docs = {d["span.name"]: d for d in store.documents(root["trace.id"])}
    assert set(docs) == {"POST /checkout", "recommend", "inventory.reserve", "db.query",
                         "payment.retry"}
    # the retry is the root's last child now: it takes the critical path over from db.query
    assert docs["payment.retry"]["critical_path_ms"] > 0
    assert docs["db.query"]["critical_path_ms"] == 0
    stored, raw = _ask(engine, namespace)
    _same_answer(stored, raw)


def test_a_window_the_job_has_not_covered_falls_back_to_raw_spans_and_says_so(
        engine: Any, namespace: str, svc: dict[str, str]) -> None:
    index_docs(engine, namespace, [d for i in range(5) for d in checkout_trace(i, **svc)])
    stored, raw = _ask(engine, namespace)
    assert stored.answered_from == "spans"
    assert "has not run" in stored.notes[0]
    assert stored.bottlenecks == raw.bottlenecks
    # covered later than those spans were ingested: still the raw path, saying why
    _complete(engine, namespace, since=datetime.now(UTC))
    stored, _ = _ask(engine, namespace)
    assert stored.answered_from == "spans" and "before" in stored.notes[0]


def test_spans_not_settled_yet_are_left_out_and_counted(
        engine: Any, namespace: str, svc: dict[str, str]) -> None:
    index_docs(engine, namespace, [d for i in range(5) for d in checkout_trace(i, **svc)])
    _complete(engine, namespace, since=datetime.now(UTC) - timedelta(minutes=5))
    index_docs(engine, namespace, checkout_trace(7, **svc))
    stored, _ = _ask(engine, namespace)
    assert stored.answered_from == S.STORED
    assert stored.stats["traces"] == 5
    assert "4 span(s)" in stored.notes[0] and "not settled" in stored.notes[0]


def test_cli_and_api_answer_from_the_stored_documents(
        engine: Any, namespace: str, svc: dict[str, str]) -> None:
    import json

    from click.testing import CliRunner
    from tests.test_service import make_client

    from logsight.cli import main

    index_docs(engine, namespace, [d for i in range(20) for d in checkout_trace(i, **svc)])
    run = CliRunner().invoke(main, ["traces", "complete", "--settle", "0s", "--since", "10m",
                                    "--namespace", namespace, "--url", engine.url, "--json"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.output)["traces"] == 20
    window = ["--from", T0.isoformat(), "--to", (T0 + timedelta(hours=1)).isoformat()]
    res = CliRunner().invoke(main, ["traces", "bottlenecks", *window, "--namespace", namespace,
                                    "--url", engine.url, "--json", "--no-write"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert body["stats"]["answered_from"] == S.STORED
    assert body["bottlenecks"][0]["operation"] == "db.query"

    with make_client(engine) as client:
        r = client.get("/v1/bottlenecks", params={
            "from": T0.isoformat(), "to": (T0 + timedelta(hours=1)).isoformat(),
            "namespace": namespace})
        assert r.status_code == 200, r.text
        api = r.json()
        assert api["answered_from"] == S.STORED and api["stats"]["traces"] == 20
        assert [(b["service"], b["operation"]) for b in api["bottlenecks"]] == [
            (b["service"], b["operation"]) for b in body["bottlenecks"]]
        # another namespace the job never covered: the raw path, and the answer says so
        other = "t" + uuid.uuid4().hex[:12]
        index_docs(engine, other, checkout_trace(0, **svc))
        r = client.get("/v1/bottlenecks", params={
            "from": T0.isoformat(), "to": (T0 + timedelta(hours=1)).isoformat(),
            "namespace": other})
        assert r.status_code == 200, r.text
        assert r.json()["answered_from"] == "spans" and r.json()["notes"]


def test_a_version_regression_is_found_from_aggregated_histograms(
        engine: Any, namespace: str, svc: dict[str, str]) -> None:
    rng = __import__("numpy").random.default_rng(7)
    docs: list[dict[str, Any]] = []
    for i in range(60):
        version = "1.0" if i % 2 == 0 else "2.0"
        # 2.0 is slow enough to outlast the parallel decoy: on the critical path too
        db_ms = float(rng.normal(30 if version == "1.0" else 120, 3))
        trace = checkout_trace(i, **svc, db_ms=db_ms)
        for d in trace:
            if d["service.name"] == svc["db"]:
                d["service.version"] = version
        docs.extend(trace)
    index_docs(engine, namespace, docs)
    _complete(engine, namespace, since=datetime.now(UTC) - timedelta(minutes=5))
    result = S.version_regressions(
        S.StoredVersionRequest(J.Window(T0, T0 + timedelta(hours=1)), service=svc["db"],
                               baseline_version="1.0", candidate_version="2.0",
                               namespace=namespace),
        StoredTraces(engine, namespace))
    regressed = [(r.operation, r.metric) for r in result.regressions if r.regressed]
    assert set(regressed) == {("db.query", "self_ms"), ("db.query", "critical_path_ms")}
    top = next(r for r in result.regressions if r.metric == "self_ms")
    assert top.baseline_count == top.candidate_count == 30
    assert top.p95_ratio == pytest.approx(120 / 30, rel=0.15)
    # nothing stored for a version nobody ran: no data, saying where it looked
    with pytest.raises(S.NoData, match="has the trace-completion job run"):
        S.version_regressions(S.StoredVersionRequest(
            J.Window(T0, T0 + timedelta(hours=1)), service=svc["db"], baseline_version="8",
            candidate_version="9", namespace=namespace), StoredTraces(engine, namespace))
