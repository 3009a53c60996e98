"""The log job by counts against the real engine: the injected incidents (a burst of a
never-seen template, a service that goes silent, a spike of a known template, a rise in error
share) are found by counts as by lines, with the same finding ids and no extra findings; an
index whose documents lack the template key falls back to lines with a warning."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from logsight import names
from logsight.errors import BadRequest
from logsight.jobs import logs as L
from logsight.jobs.base import Scope, Window

pytestmark = pytest.mark.engine

T0 = pd.Timestamp("2024-06-03T08:00:00Z")
MINUTES = 30
NORMAL = {
    "api": ["GET /orders/{} answered 200 in {} ms", "cache hit for user {} after {} ms",
            "session {} refreshed by node {}"],
    "worker": ["job {} finished in {} ms", "queue depth is {} on shard {}"],
    "billing": ["invoice {} rendered in {} ms", "charged account {} amount {}"],
}


def _doc(svc: str, minute: int, rng: np.random.Generator, message: str,
         level: str = "INFO") -> dict[str, Any]:
    ts = T0 + pd.Timedelta(minutes=minute, seconds=float(rng.uniform(0, 59.9)))
    return {"@timestamp": ts.isoformat(), "log": {"level": level},
            "service": {"name": svc}, "message": message}


def _incidents(prefix: str, seed: int = 3) -> list[tuple[str, dict[str, Any]]]:
    """30 minutes of three services (~40 lines/min each) and four incidents after the
    baseline half: minute 20 a burst of never-seen errors in api, minutes 22-24 worker is
    silent, minute 26 a tenfold spike of a known billing template, minute 28 a rise in api's
    error share (a known warning template logged at error level)."""
    rng = np.random.default_rng(seed)
    docs = []
    for minute in range(MINUTES):
        for base, tpls in NORMAL.items():
            svc = f"{prefix}-{base}"
            if base == "worker" and 22 <= minute <= 24:
                continue
            for _ in range(rng.poisson(40)):
                tpl = tpls[int(rng.integers(len(tpls)))]
                docs.append(_doc(svc, minute, rng, tpl.format(*rng.integers(1, 9999, 2))))
            # a steady trickle of one known warning, so the error-share incident is known
            docs.append(_doc(svc, minute, rng, f"retrying upstream call {int(rng.integers(1, 3))} of 3", "WARN"))
        if minute == 20:
            for _ in range(25):
                docs.append(_doc(f"{prefix}-api", minute, rng,
                                 "payment provider refused token {} with reason {}".format(
                                     *rng.integers(1, 99999, 2)), "ERROR"))
        if minute == 26:
            for _ in range(300):
                docs.append(_doc(f"{prefix}-billing", minute, rng,
                                 "charged account {} amount {}".format(
                                     *rng.integers(1, 9999, 2))))
        if minute == 28:
            for _ in range(30):
                docs.append(_doc(f"{prefix}-api", minute, rng,
                                 "GET /orders/{} answered 200 in {} ms".format(
                                     *rng.integers(1, 9999, 2)), "ERROR"))
    return [(f"{prefix}-{i}", d) for i, d in enumerate(docs)]


def _index(engine: Any, namespace: str, docs: list[tuple[str, dict[str, Any]]],
           pipeline: str | None = None) -> None:
    stream = names.stream("logs", namespace)
    head: dict[str, Any] = {"_index": stream}
    rows = [({"create": dict(head, _id=i)}, d) for i, d in docs]
    params = {"pipeline": pipeline} if pipeline else {}
    result = engine.bulk(rows, refresh="true", **params)
    assert not result.errors, result.errors[:3]


def _run(engine: Any, namespace: str, method: L.Method, **kw: Any) -> L.LogAnomaliesResult:
    request = L.LogAnomaliesRequest(
        Window(T0.to_pydatetime(), (T0 + pd.Timedelta(minutes=MINUTES)).to_pydatetime()),
        Scope(namespace=namespace), method=method, **kw)
    return L.anomalies(request, L.ClusterLogs(engine, namespace))


def _by_id(result: L.LogAnomaliesResult) -> dict[str, Any]:
    return {f.id: f for f in result.findings}


def test_counts_find_the_incidents_lines_find(engine: Any, namespace: str) -> None:
    prefix = f"inc{namespace[-6:]}"
    _index(engine, namespace, _incidents(prefix))
    counts = _run(engine, namespace, "counts")
    lines = _run(engine, namespace, "lines")
    assert counts.method == "counts" and lines.method == "lines"
    assert counts.lines == lines.lines > 3000
    found = {(f.service, f.window_start.isoformat()) for f in counts.findings}
    expected = {
        (f"{prefix}-api", (T0 + pd.Timedelta(minutes=20)).isoformat()),  # new template burst
        (f"{prefix}-billing", (T0 + pd.Timedelta(minutes=26)).isoformat()),  # known spike
        (f"{prefix}-api", (T0 + pd.Timedelta(minutes=28)).isoformat()),  # error share
    }
    silent = {(f"{prefix}-worker", (T0 + pd.Timedelta(minutes=m)).isoformat())
              for m in (22, 23, 24)}
    assert expected <= found
    assert found & silent, "the silent worker is not flagged"
    # the same incidents, the same ids, nothing extra
    assert set(_by_id(counts)) == set(_by_id(lines))
    by_lines = _by_id(lines)
    for fid, f in _by_id(counts).items():
        other = by_lines[fid]
        assert f.evidence["lines"] == other.evidence["lines"]
        assert f.evidence["errors"] == other.evidence["errors"]
        assert f.severity == other.severity
        assert f.score == pytest.approx(other.score, abs=1e-9)
        assert len(f.sample_ids) == len(other.sample_ids)
    # the burst names its never-seen template with a real example line
    burst = next(f for f in counts.findings
                 if f.window_start == (T0 + pd.Timedelta(minutes=20)).to_pydatetime())
    new = burst.evidence["new_templates"]
    assert new and new[0]["count"] == 25
    assert new[0]["example"].startswith("payment provider refused token")
    assert new[0]["example_id"].startswith(prefix)
    # the windows table is the same as on lines
    assert len(counts.windows) == len(lines.windows)
    assert counts.windows["anomalous"].sum() == lines.windows["anomalous"].sum()


def test_documents_without_the_key_fall_back_to_lines(engine: Any, namespace: str) -> None:
    prefix = f"old{namespace[-6:]}"
    docs = _incidents(prefix)
    # "_none" skips the stream's default pipeline: documents as an older logsight wrote them
    _index(engine, namespace, docs, pipeline="_none")
    result = _run(engine, namespace, "auto")
    assert result.method == "lines"
    assert result.warnings and "logsight setup" in result.warnings[0]
    assert names.F.TEMPLATE_ID in result.warnings[0]
    assert result.findings  # the analysis still ran
    with pytest.raises(BadRequest) as err:
        _run(engine, namespace, "counts")
    assert err.value.parameter == "method"


def test_an_empty_range_says_what_matched_nothing(engine: Any, namespace: str) -> None:
    request = L.LogAnomaliesRequest(
        Window(T0.to_pydatetime(), (T0 + pd.Timedelta(minutes=5)).to_pydatetime()),
        Scope(namespace=namespace, service="nobody"), method="counts")
    result = L.anomalies(request, L.ClusterLogs(engine, namespace))
    assert result.findings == [] and result.lines == 0
    assert result.empty_reason and "nobody" in result.empty_reason


def test_the_template_key_is_a_stable_keyword(engine: Any, namespace: str) -> None:
    stream = names.stream("logs", namespace)
    msg = "disk /dev/sda1 at 91% on host db-7"
    docs = [(f"k{namespace}-{i}", {"@timestamp": T0.isoformat(), "message": msg})
            for i in range(2)]
    _index(engine, namespace, docs)
    caps = engine.request("GET", f"/{stream}/_field_caps",
                          params={"fields": names.F.TEMPLATE_ID})
    info = caps["fields"][names.F.TEMPLATE_ID]
    assert list(info) == ["keyword"] and info["keyword"]["aggregatable"]
    hits = engine.search(stream, {"query": {"match_all": {}}})["hits"]["hits"]
    keys = {h["_source"]["logsight"]["template_id"] for h in hits}
    assert len(keys) == 1  # the same line gets the same key on every ingest


def test_cli_reads_by_counts_and_by_lines_alike(engine: Any, namespace: str) -> None:
    import json

    from click.testing import CliRunner

    from logsight.cli import main

    prefix = f"cli{namespace[-6:]}"
    _index(engine, namespace, _incidents(prefix))
    base = ["logs", "anomalies", "--url", engine.url, "--no-write", "--namespace", namespace,
            "--from", T0.isoformat(), "--to", (T0 + pd.Timedelta(minutes=MINUTES)).isoformat(),
            "--json"]
    runner = CliRunner()
    out = {}
    for method in ("counts", "lines"):
        res = runner.invoke(main, [*base, "--method", method])
        assert res.exit_code == 0, res.output
        out[method] = json.loads(res.output)
    assert out["counts"]["lines"] == out["lines"]["lines"]
    ids = {m: sorted(f["id"] for f in o["findings"]) for m, o in out.items()}
    assert ids["counts"] == ids["lines"] and len(ids["counts"]) >= 4
    res = runner.invoke(main, [*base, "--method", "sideways"])
    assert res.exit_code == 2 and "--method" in res.output


def test_lines_without_a_message_are_counted_under_one_key(engine: Any,
                                                           namespace: str) -> None:
    """The pipeline gives no key to a line without a message (an error with error.message
    only): such lines do not send the run back to lines, and are counted as by lines."""
    prefix = f"nomsg{namespace[-6:]}"
    docs = _incidents(prefix)
    rng = np.random.default_rng(9)
    for minute in range(MINUTES):
        d = _doc(f"{prefix}-worker", minute, rng, "", "ERROR")
        del d["message"]
        d["error"] = {"message": "connection reset by peer"}
        docs.append((f"{prefix}-nomsg-{minute}", d))
    _index(engine, namespace, docs)
    counts, lines = _run(engine, namespace, "auto"), _run(engine, namespace, "lines")
    assert counts.method == "counts" and not counts.warnings
    assert counts.lines == lines.lines
    assert {f.id for f in counts.findings} == {f.id for f in lines.findings}


def test_the_api_and_scheduler_job_reads_by_counts(engine: Any, namespace: str) -> None:
    """``run_job`` (what /v1/anomalies and the scheduler call) with a baseline window that
    ends where the window starts: by counts, the same findings as by lines; a baseline window
    with no lines is a NoData naming it."""
    from logsight.errors import NoData
    from logsight.jobs.registry import JobParams, run_job

    prefix = f"api{namespace[-6:]}"
    _index(engine, namespace, _incidents(prefix))
    mid = (T0 + pd.Timedelta(minutes=15)).to_pydatetime()
    end = (T0 + pd.Timedelta(minutes=MINUTES)).to_pydatetime()
    params = JobParams(start=mid, end=end, baseline_start=T0.to_pydatetime(),
                       baseline_end=mid, namespace=namespace, write=False)
    result = run_job(engine, "log_anomalies", params)
    assert isinstance(result, L.LogAnomaliesResult) and result.method == "counts"
    request = L.LogAnomaliesRequest(Window(mid, end), Scope(namespace=namespace),
                                    baseline=Window(T0.to_pydatetime(), mid), method="lines")
    lines = L.anomalies(request, L.ClusterLogs(engine, namespace))
    assert {f.id for f in result.findings} == {f.id for f in lines.findings}
    assert len(result.findings) >= 4
    early = (T0 - pd.Timedelta(hours=2)).to_pydatetime()
    with pytest.raises(NoData) as err:
        run_job(engine, "log_anomalies", JobParams(
            start=(T0 - pd.Timedelta(hours=1)).to_pydatetime(), end=mid, baseline_start=early,
            baseline_end=(T0 - pd.Timedelta(hours=1)).to_pydatetime(), namespace=namespace,
            write=False))
    assert "baseline" in str(err.value)
