"""Index assets against the real engine: pipelines (simulate and real indexing), templates,
idempotent setup."""

from __future__ import annotations

import json
from typing import Any

import pytest

from logsight import names
from logsight.assets import desired_assets, install, load_pipeline
from logsight.engine import Engine

pytestmark = pytest.mark.engine


def _simulate(engine: Engine, kind: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    resp = engine.request(
        "POST",
        f"/_ingest/pipeline/{names.pipeline(kind)}/_simulate",
        body={"docs": [{"_index": names.stream(kind), "_source": d} for d in docs]},
    )
    return [d["doc"] for d in resp["docs"]]


def _dead_letters(engine: Engine, stream: str) -> list[dict[str, Any]]:
    engine.refresh(names.DEADLETTER_INDEX)
    resp = engine.search(
        names.DEADLETTER_INDEX,
        {"size": 100, "query": {"term": {"failure.stream": stream}}},
    )
    return [h["_source"] for h in resp["hits"]["hits"]]


GOOD_LOGS = [
    # an ECS document as our adapters (and Elastic's ECS loggers) write it
    {"@timestamp": "2024-05-01T10:00:00.123Z", "log.level": "WARNING", "message": "disk low",
     "service": {"name": "api"}, "ecs.version": "1.6.0"},
    # a raw text line as Filebeat ships it
    {"message": "2024-05-01 10:00:01,234 ERROR [main] db timeout after 30s",
     "log": {"file": {"path": "/var/log/app.log"}}},
    # a JSON line in message (the app wrote ECS JSON to a file)
    {"message": json.dumps({"@timestamp": "2024-05-01T10:00:02Z", "log.level": "info",
                            "message": "json line", "service.name": "svc"})},
    # epoch milliseconds and a numeric (python) level
    {"@timestamp": 1714557603000, "log": {"level": 40}, "message": "numeric level"},
]

BAD_LOGS = {
    "malformed-json": ({"message": '{"broken json'}, "parse-json-line"),
    "missing-timestamp": ({"message": "no timestamp here"}, "missing @timestamp"),
    "wrong-type-message": ({"@timestamp": "2024-05-01T10:00:00Z", "message": {"a": 1}},
                           "message must be a string"),
    "wrong-type-level": ({"@timestamp": "2024-05-01T10:00:00Z", "log.level": {"x": 1},
                          "message": "x"}, "log.level must be a string"),
    "bad-timestamp": ({"@timestamp": "not a date", "message": "x"}, "not a date"),
    "invalid-utf8": ({"@timestamp": "2024-05-01T10:00:00Z",
                      "message": b"bad \xff\xfe bytes".decode("utf-8", "replace")},
                     "invalid UTF-8"),
}


def test_logs_pipeline_simulate_good(engine: Engine) -> None:
    out = _simulate(engine, names.LOGS, GOOD_LOGS)
    assert [d["_index"] for d in out] == [names.stream(names.LOGS)] * len(GOOD_LOGS)
    src = [d["_source"] for d in out]
    assert src[0]["log"]["level"] == "warn"
    assert src[0]["@timestamp"] == "2024-05-01T10:00:00.123Z"  # the app's time, not ours
    assert src[1]["log"]["level"] == "error"
    assert src[1]["@timestamp"] == "2024-05-01T10:00:01.234Z"
    assert src[2]["message"] == "json line" and src[2]["service"]["name"] == "svc"
    assert src[3]["log"]["level"] == "error" and src[3]["@timestamp"].startswith("2024-05-01T10:00:03")
    for s in src:
        assert "ingested" in s["event"]
        assert "_logsight_original" not in s


@pytest.mark.parametrize("case", sorted(BAD_LOGS))
def test_logs_pipeline_simulate_bad_goes_to_dead_letter(engine: Engine, case: str) -> None:
    doc, reason = BAD_LOGS[case]
    (out,) = _simulate(engine, names.LOGS, [doc])
    assert out["_index"] == names.DEADLETTER_INDEX
    src = out["_source"]
    assert src["original"] == doc  # untouched
    assert reason in src["failure"]["message"] + src["failure"].get("tag", "")
    assert src["failure"]["pipeline"] == "logsight-logs"
    assert src["failure"]["stream"] == names.stream(names.LOGS)


def test_huge_message_is_truncated_but_kept(engine: Engine) -> None:
    big = "x" * 40_000
    (out,) = _simulate(engine, names.LOGS, [{"@timestamp": "2024-05-01T10:00:00Z", "message": big}])
    src = out["_source"]
    assert out["_index"] == names.stream(names.LOGS)
    assert len(src["message"]) < 33_000 and "truncated 8000 chars" in src["message"]
    assert src["event"]["original"] == big
    assert src["logsight"]["truncated"] is True


def test_real_indexing_routes_good_and_bad(engine: Engine, namespace: str) -> None:
    stream = names.stream(names.LOGS, namespace)
    actions = []
    for i, doc in enumerate(GOOD_LOGS):
        actions.append(({"create": {"_index": stream, "_id": f"good-{i}"}}, doc))
    for case, (doc, _) in BAD_LOGS.items():
        actions.append(({"create": {"_index": stream, "_id": f"{namespace}-{case}"}}, doc))
    result = engine.bulk(actions, refresh="wait_for")
    assert result.errors == []
    engine.refresh(stream)
    hits = engine.search(stream, {"size": 50})["hits"]["hits"]
    assert sorted(h["_id"] for h in hits) == [f"good-{i}" for i in range(len(GOOD_LOGS))]
    # mapped as the template says
    mapping = engine.request("GET", f"/{stream}/_mapping")
    (props,) = [v["mappings"]["properties"] for v in mapping.values()]
    assert props["log"]["properties"]["level"]["type"] == "keyword"
    assert props["@timestamp"]["type"] == "date"
    assert props["message"]["type"] == "text"
    dead = _dead_letters(engine, stream)
    assert sorted(d["failure"]["message"][:40] for d in dead) and len(dead) == len(BAD_LOGS)
    by_id = {d["original"].get("message", "") if isinstance(d["original"].get("message"), str)
             else "obj": d for d in dead}
    assert by_id["no timestamp here"]["failure"]["tag"] == "normalize"


def test_invalid_utf8_bytes_are_rejected_per_item_not_per_request(engine: Engine,
                                                                  namespace: str) -> None:
    """Raw invalid UTF-8 never reaches a pipeline: the engine rejects it as a non-retryable item
    error (so a shipper dead-letters it instead of retrying forever). It can spoil its
    neighbours too, which is why our shipper only ever sends ASCII-escaped JSON and readers
    decode raw lines with U+FFFD replacement (-> dead letter with the reason, see above)."""
    stream = names.stream(names.LOGS, namespace)
    body = (
        b'{"create":{"_index":"' + stream.encode() + b'","_id":"u1"}}\n'
        b'{"@timestamp":"2024-05-01T10:00:00Z","message":"bad \xff\xfe"}\n'
        b'{"create":{"_index":"' + stream.encode() + b'","_id":"u2"}}\n'
        b'{"@timestamp":"2024-05-01T10:00:00Z","message":"fine"}\n'
    )
    result = engine.bulk_ndjson(body, refresh="wait_for")
    assert "u1" in [e.id for e in result.errors]
    assert all(e.status == 400 and not e.retryable for e in result.errors)


def test_traces_pipeline(engine: Engine) -> None:
    good = {"trace": {"id": "t1"}, "span": {"id": "s1", "name": "GET /x", "kind": "SPAN_KIND_SERVER",
            "start_unix_nano": 1714557600000000000, "end_unix_nano": 1714557600250000000,
            "status": "STATUS_CODE_ERROR"}, "service.name": "api"}
    with_duration = {"trace.id": "t1", "span.id": "s2", "parent.id": "s1",
                     "span.start_unix_nano": "1714557600010000000", "span.duration_ms": 12.5}
    bad = [
        {"span": {"id": "s3", "start_unix_nano": 1}},  # no trace id
        {"trace.id": "t", "span.id": "s", "span.start_unix_nano": 10, "span.end_unix_nano": 5},
        {"trace.id": "t", "span.id": "s", "span.start_unix_nano": "soon", "span.duration_ms": 1},
    ]
    out = _simulate(engine, names.TRACES, [good, with_duration, *bad])
    g = out[0]["_source"]
    assert g["span"]["duration_ms"] == pytest.approx(250.0)
    assert g["span"]["status"] == "error" and g["event"]["outcome"] == "failure"
    assert g["span"]["kind"] == "server"
    assert g["@timestamp"] == "2024-05-01T10:00:00.000Z"
    w = out[1]["_source"]
    assert w["span"]["end_unix_nano"] == 1714557600010000000 + 12_500_000
    assert w["parent"]["id"] == "s1" and w["span"]["status"] == "unset"
    reasons = [d["_source"]["failure"]["message"] for d in out[2:]]
    assert all(d["_index"] == names.DEADLETTER_INDEX for d in out[2:])
    assert "trace.id is required" in reasons[0]
    assert "negative duration" in reasons[1]
    assert "must be a number" in reasons[2]


def test_mlevents_pipeline(engine: Engine) -> None:
    ts = "2024-05-01T10:00:00Z"
    good = [
        {"@timestamp": ts, "ml": {"event_type": "prediction", "model": {"name": "churn", "version": 3},
                                   "request_id": 17, "features": {"age": 31, "plan": "pro", "vip": True},
                                   "prediction": 1, "score": "0.8"}},
        {"@timestamp": ts, "ml.event_type": "feedback", "ml.request_id": "17", "ml.label": "1"},
        {"@timestamp": ts, "ml": {"event_type": "kpi", "kpi": {"name": "revenue", "value": "12.5"}}},
    ]
    bad = [
        {"ml": {"event_type": "prediction", "model": {"name": "m"}}},  # no timestamp
        {"@timestamp": ts, "ml": {"event_type": "guess"}},
        {"@timestamp": ts, "ml": {"event_type": "prediction", "model": {"name": "m"},
                                  "features": {"x": {"nested": 1}}}},
        {"@timestamp": ts, "ml": {"event_type": "feedback", "request_id": "1"}},
        {"@timestamp": ts, "ml": {"event_type": "prediction", "model": {"name": "m"}, "score": "high"}},
    ]
    out = _simulate(engine, names.MLEVENTS, good + bad)
    p = out[0]["_source"]["ml"]
    assert p["model"]["version"] == "3" and p["request_id"] == "17"
    assert p["prediction"] == "1" and p["prediction_value"] == 1 and p["score"] == 0.8
    assert p["features"] == {"age": 31, "plan": "pro", "vip": 1}
    assert out[1]["_source"]["ml"]["label"] == "1"
    assert out[2]["_source"]["ml"]["kpi"]["value"] == 12.5
    assert [d["_index"] for d in out[3:]] == [names.DEADLETTER_INDEX] * len(bad)
    reasons = " | ".join(d["_source"]["failure"]["message"] for d in out[3:])
    for expected in ("missing @timestamp", "ml.event_type must be one of",
                     "feature 'x' must be a number or a string", "feedback needs",
                     "ml.score must be a number"):
        assert expected in reasons


def test_metrics_pipeline(engine: Engine) -> None:
    out = _simulate(engine, names.METRICS, [
        {"@timestamp": "2024-05-01T10:00:00Z", "system.cpu.pct": 0.5},
        {"system.cpu.pct": 0.5},
    ])
    assert out[0]["_source"]["system"]["cpu"]["pct"] == 0.5
    assert out[0]["_source"]["service"]["name"] == "unknown"
    assert out[1]["_index"] == names.DEADLETTER_INDEX


def test_setup_is_idempotent_and_assets_are_present(engine: Engine) -> None:
    again = install(engine)
    assert again.changed == 0, again.lines()
    for asset in desired_assets(engine.flavor, engine.lifecycle_kind()):
        if asset.kind == "pipeline":
            got = engine.request("GET", f"/_ingest/pipeline/{asset.name}")
            assert asset.name in got
        elif asset.kind == "index_template":
            got = engine.request("GET", f"/_index_template/{asset.name}")
            tpl = got["index_templates"][0]["index_template"]
            assert tpl["_meta"]["hash"] == asset.hash
        elif asset.kind == "index":
            assert engine.exists(asset.name)


def test_changed_asset_is_upgraded_in_place(engine: Engine) -> None:
    # Tamper with one pipeline as an older logsight would have left it; setup must put it back.
    body = load_pipeline(names.METRICS)
    body["description"] = "an older logsight"
    engine.request("PUT", f"/_ingest/pipeline/{names.pipeline(names.METRICS)}", body=body)
    report = install(engine)
    assert [(r[1], r[2]) for r in report.rows if r[2] not in ("unchanged", "skipped")] == [
        (names.pipeline(names.METRICS), "upgraded")
    ]
    assert install(engine).changed == 0


def test_logs_get_an_ingest_time_template(engine: Engine) -> None:
    docs = [{"@timestamp": "2024-05-01T10:00:00Z", "message": m} for m in (
        "user 42 logged in from 10.0.0.1", "user 7 logged in from 10.0.0.9", "disk full")]
    out = [d["_source"]["logsight"] for d in _simulate(engine, names.LOGS, docs)]
    assert out[0]["template"] == "user <*> logged in from <*>"
    assert out[0]["template_id"] == out[1]["template_id"] != out[2]["template_id"]
    assert out[2]["template"] == "disk full"


def test_a_field_that_changes_type_does_not_cost_the_line(engine: Engine, namespace: str) -> None:
    stream = names.stream(names.LOGS, namespace)
    docs = [
        {"@timestamp": "2024-05-01T10:00:00Z", "message": "first", "f_amb": 1},
        {"@timestamp": "2024-05-01T10:00:01Z", "message": "second", "f_amb": "now a string"},
        {"@timestamp": "2024-05-01T10:00:02Z", "message": "third", "f_amb": {"k": 1}},
    ]
    # sequential: the first document decides the field's type
    for i, d in enumerate(docs):
        result = engine.bulk([({"create": {"_index": stream, "_id": f"amb-{i}"}}, d)],
                             refresh="wait_for")
        assert result.errors == [], result.errors
    hits = engine.search(stream, {"size": 10, "sort": [{"@timestamp": "asc"}]})["hits"]["hits"]
    assert [h["_source"]["message"] for h in hits] == ["first", "second", "third"]
    # the string is listed as ignored; an object where a number was is dropped from the index
    # (not all engines list it in _ignored) - either way the line itself is kept
    assert [h.get("_ignored") for h in hits][:2] == [None, ["f_amb"]]
    assert hits[2]["_source"]["f_amb"] == {"k": 1}


def test_the_logs_pipeline_levels_are_the_level_vocabulary() -> None:
    """The pipeline's level table is generated from logsight.levels (one vocabulary): the
    stored spellings, and every word the analysis reads."""
    import json

    from logsight.assets.install import pipelines_dir
    from logsight.levels import STORED_LEVELS, normalize_level, pipeline_params

    body = json.loads((pipelines_dir() / "logsight-logs.json").read_text())
    [script] = [p["script"] for p in body["processors"]
                if "script" in p and p["script"].get("tag") == "normalize"]
    assert script["params"]["levels"] == pipeline_params()
    assert set(pipeline_params().values()) == set(STORED_LEVELS)
    # the analysis counts what the pipeline stores: trace as debug, critical as fatal
    assert [normalize_level(v) for v in STORED_LEVELS] == [
        "debug", "debug", "info", "warn", "error", "fatal"]
    assert normalize_level("WARNING") == "warn" and normalize_level(None) == "info"
