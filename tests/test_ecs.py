"""The ECS core: known documents, the ECS logging spec, garbage in, never mutated."""

from __future__ import annotations

import copy
import json
import math
from collections import OrderedDict
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import DATASETS

from logsight.ecs import (
    ECS_VERSION,
    EventIds,
    Service,
    _nest_generic,
    dumps,
    dumps_line,
    dumps_source,
    format_timestamp,
    nest,
    sanitize_label_key,
    to_ecs,
)

SPEC_PATH = DATASETS.parent / "specs" / "ecs-logging-spec.json"
SERVICE = Service("checkout", version="1.2.3", environment="prod", hostname="h1")


def fixed_clock() -> float:
    return 1_700_000_000.25


def load_spec() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        pytest.skip(f"ECS logging spec not found at {SPEC_PATH}")
    return dict(json.loads(SPEC_PATH.read_text()))


def validate_ecs_line(line: str | bytes, spec: dict[str, Any]) -> dict[str, Any]:
    """A validator built on Elastic's spec, the checks its loggers run: required fields
    present, fields with an index at that position, top-level fields as dotted keys, types,
    label key sanitisation. Returns the parsed line."""
    data = json.loads(line, object_pairs_hook=OrderedDict)
    keys = list(data)

    def lookup(path: str) -> Any:
        if path in data:
            return data[path]
        node: Any = data
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    for name, field in spec["fields"].items():
        value = lookup(name)
        if field.get("required"):
            assert value is not None, f"required field {name} missing"
        if value is None:
            continue
        if field.get("top_level_field"):
            assert name in data, f"{name} must be a top-level dotted key"
        if "index" in field:
            assert keys.index(name) == field["index"], f"{name} must be at {field['index']}"
        if field["type"] == "datetime":
            datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
        elif field["type"] == "string":
            assert isinstance(value, str), f"{name} must be a string"
        elif field["type"] == "integer":
            assert isinstance(value, int)
        elif field["type"] == "object":
            assert isinstance(value, dict)
        sanitization = field.get("sanitization", {}).get("key")
        if sanitization:
            for key in value:
                for bad in sanitization["replacements"]:
                    assert bad not in key, f"{name} key {key!r} contains {bad!r}"
    return data


def test_known_document_in_spec_order() -> None:
    doc = to_ecs(
        {"event": "paid", "logger": "shop", "order": 17, "labels": {"team.a": "x"}},
        service=SERVICE, clock=fixed_clock, level="WARN", event_id="e1",
    )
    assert list(doc)[:4] == ["@timestamp", "log.level", "message", "ecs.version"]
    assert doc == {
        "@timestamp": "2023-11-14T22:13:20.250Z",
        "log.level": "warning",
        "message": "paid",
        "ecs.version": ECS_VERSION,
        "log.logger": "shop",
        "service.name": "checkout",
        "service.version": "1.2.3",
        "service.environment": "prod",
        "host.hostname": "h1",
        "event.dataset": "checkout",
        "labels.team_a": "x",
        "order": 17,
        "event.id": "e1",
    }


def test_exception_fields() -> None:
    try:
        raise KeyError("k")
    except KeyError as e:
        doc = to_ecs({"event": "x", "exc_info": e}, service=SERVICE, clock=fixed_clock)
    assert doc["error.type"] == "KeyError"
    assert doc["error.message"] == "'k'"
    assert doc["error.stack_trace"].startswith("Traceback") and "KeyError" in \
        doc["error.stack_trace"]


def test_lines_pass_the_ecs_logging_spec() -> None:
    spec = load_spec()
    try:
        raise ValueError("bad")
    except ValueError as e:
        exc = e
    events: list[dict[str, Any]] = [
        {"event": "plain"},
        {"event": "with extras", "user": {"id": 3}, "labels": {"a.b*c\\d": "v"}},
        {"event": "error", "exc_info": exc},
        {"event": None},
    ]
    for event in events:
        line = dumps_line(to_ecs(event, service=SERVICE, clock=fixed_clock))
        data = validate_ecs_line(line, spec)
        assert data["ecs.version"] == ECS_VERSION


def test_validator_rejects_a_wrong_line() -> None:
    spec = load_spec()
    with pytest.raises(AssertionError):
        validate_ecs_line('{"log.level":"info","@timestamp":"2023-01-01T00:00:00.000Z",'
                          '"ecs.version":"1.6.0"}', spec)
    with pytest.raises(AssertionError):  # log.level nested instead of dotted
        validate_ecs_line('{"@timestamp":"2023-01-01T00:00:00.000Z","log":{"level":"info"},'
                          '"ecs.version":"1.6.0"}', spec)


def test_source_form_is_fully_nested() -> None:
    doc = to_ecs({"event": "x"}, service=SERVICE, clock=fixed_clock, event_id="i")
    src = json.loads(dumps_source(doc))
    assert src["log"]["level"] == "info"
    assert src["ecs"]["version"] == ECS_VERSION
    assert src["event"] == {"dataset": "checkout", "id": "i"}
    assert not [k for k in src if "." in k]


def test_huge_message_truncated_with_marker() -> None:
    doc = to_ecs({"event": "x" * 100_000}, service=SERVICE, clock=fixed_clock,
                 max_message_chars=1000)
    assert doc["message"].startswith("x" * 1000)
    assert doc["message"].endswith("[truncated 99000 chars]")


def test_garbage_values_serialise() -> None:
    class Weird:
        def __str__(self) -> str:
            raise RuntimeError("no")

    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["d"] = {}
        node = node["d"]
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    doc = to_ecs(
        {"event": b"\xffbytes", "nan": math.nan, "inf": -math.inf, "obj": Weird(),
         "deep": deep, "cyc": cyclic, "set": {1}, "when": datetime(2024, 1, 1)},
        service=SERVICE, clock=fixed_clock,
    )
    out = json.loads(dumps_source(doc))
    assert out["message"] == "\ufffdbytes"
    assert out["nan"] is None and out["inf"] is None
    assert out["obj"] == "<unprintable Weird>"
    assert out["set"] == [1]
    assert out["when"] == "2024-01-01T00:00:00"
    assert "[circular reference]" in json.dumps(out["cyc"])
    assert "truncated: nesting" in json.dumps(out["deep"])


def test_label_key_sanitisation() -> None:
    assert sanitize_label_key("a.b*c\\d") == "a_b_c_d"


def test_timestamp_format_known_values() -> None:
    assert format_timestamp(0.0) == "1970-01-01T00:00:00.000Z"
    assert format_timestamp(1_700_000_000.999) == "2023-11-14T22:13:20.999Z"


def test_nest_keeps_first_seen_order_and_conflicts_flat() -> None:
    flat = {"a.b": 1, "c": 2, "a.d": 3, "c.x": 4}
    assert list(nest(flat)) == ["a", "c", "c.x"]
    assert nest(flat)["a"] == {"b": 1, "d": 3}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=15,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_never_mutates_and_always_serialises(event: dict[str, Any]) -> None:
    before = copy.deepcopy(event)
    doc = to_ecs(event, service=SERVICE, clock=fixed_clock)
    for blob in (dumps_source(doc), dumps_line(doc)):
        parsed = json.loads(blob)
        assert isinstance(parsed, dict)
    assert repr(event) == repr(before)  # repr: NaN != NaN would defeat ==


# -- the fast serialiser (compiled nesting plans + orjson) ----------------------------------
dotted_keys = st.lists(st.sampled_from(["a", "b", "c", "@t", "log", "level", ""]),
                       min_size=1, max_size=4).map(".".join)
plain_values = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5)
flat_values = plain_values | st.dictionaries(st.sampled_from(["x", "y"]), plain_values,
                                             max_size=2)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(dotted_keys, flat_values, max_size=8),
       st.sampled_from([(), ("log.level", "ecs.version"), ("a.b",)]))
def test_compiled_nesting_equals_the_generic_walk(flat: dict[str, Any],
                                                  keep: tuple[str, ...]) -> None:
    """Property: the per-shape plan gives exactly the generic walk's result (key order
    included), whether or not the shape has conflicts; run twice so the cached plan is used."""
    before = copy.deepcopy(flat)
    expected = _nest_generic(flat, keep)
    for _ in range(2):
        got = nest(flat, keep)
        assert got == expected
        assert json.dumps(got) == json.dumps(expected)  # same order at every level
    assert flat == before


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=6), plain_values | st.floats(allow_nan=False,
                                                                    allow_infinity=False),
                       max_size=6))
def test_fast_encoder_agrees_with_the_stdlib(doc: dict[str, Any]) -> None:
    out = dumps(doc)
    out.decode("utf-8")  # strict: valid UTF-8
    expected = json.loads(json.dumps(doc, ensure_ascii=False).encode("utf-8", "replace"))
    if all(_utf8_ok(k) and (not isinstance(v, str) or _utf8_ok(v)) for k, v in doc.items()):
        assert json.loads(out) == expected


def _utf8_ok(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_non_finite_numbers_become_null() -> None:
    """NaN / inf have no JSON form: null (the field is absent for the cluster), never an
    error and never the invalid tokens ``NaN`` / ``Infinity``."""
    np = pytest.importorskip("numpy")
    doc = {"a": math.nan, "b": math.inf, "c": -math.inf, "d": [1.0, math.nan],
           "e": np.float64("nan"), "f": np.array([1.0, np.inf]), "g": 1.5}
    blob = dumps(doc)
    assert b"NaN" not in blob and b"Infinity" not in blob
    assert json.loads(blob) == {"a": None, "b": None, "c": None, "d": [1.0, None], "e": None,
                                "f": [1.0, None], "g": 1.5}


def test_lone_surrogates_never_leave_as_invalid_utf8() -> None:
    doc = to_ecs({"event": "bad \ud800 message", "\udc80key": "v\udfff", "ok": "snow \u2603",
                  "nested": {"k": ["\ud83d"]}}, service=SERVICE, clock=fixed_clock,
                 event_id="id\ud800")
    for blob in (dumps_source(doc), dumps_line(doc)):
        text = blob.decode("utf-8")  # strict: raises on any surrogate
        out = json.loads(text)
        assert out["message"] == "bad ? message"
        assert out["ok"] == "snow \u2603"
        assert out["?key"] == "v?"
        assert out["nested"] == {"k": ["?"]}


def test_integers_beyond_64_bits_are_kept_as_text() -> None:
    out = json.loads(dumps({"big": 2**70, "small": -(2**63)}))
    assert out == {"big": str(2**70), "small": -(2**63)}


def test_stdlib_fallback_without_orjson() -> None:
    """Without orjson (an import failure) the stdlib encoder gives the same guarantees."""
    import subprocess
    import sys

    code = (
        "import sys, json, math; sys.modules['orjson'] = None\n"
        "from logsight.ecs import dumps, _orjson\n"
        "assert _orjson is None\n"
        "out = dumps({'m': 'x\\ud800', 'n': math.nan, 'b': b'\\xff', 's': {1}})\n"
        "out.decode('utf-8')\n"
        "print(json.dumps(json.loads(out)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"m": "x?", "n": None, "b": "\ufffd", "s": [1]}


def test_event_ids_are_unique_and_reseeded_in_a_forked_child() -> None:
    import os

    ids = EventIds()
    parent = {ids() for _ in range(1000)}
    assert len(parent) == 1000
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave without running pytest's exit
        try:
            os.write(w, json.dumps([ids() for _ in range(5)] + [ids.prefix]).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        child = json.loads(f.read())
    os.waitpid(pid, 0)
    assert child[-1] != ids.prefix
    assert not set(child[:-1]) & (parent | {ids() for _ in range(5)})


# -- review regressions ----------------------------------------------------------------------
def test_timestamp_cache_follows_alternating_seconds() -> None:
    """The cached seconds prefix is one (sec, prefix) pair: alternating seconds (as threads
    with different clocks would) always give each its own prefix."""
    for _ in range(3):
        assert format_timestamp(0.5) == "1970-01-01T00:00:00.500Z"
        assert format_timestamp(86_401.25) == "1970-01-02T00:00:01.250Z"
        assert format_timestamp(86_401.75) == "1970-01-02T00:00:01.750Z"


def test_an_events_own_trace_ids_win_over_the_active_span() -> None:
    active = {"trace.id": "active-trace", "span.id": "active-span", "transaction.id": "tx"}
    event = {"event": "hi", "trace.id": "own-trace", "span.id": "own-span"}
    before = dict(event)
    doc = to_ecs(event, service=Service(name="svc"), clock=lambda: 0.0, trace=active)
    assert doc["trace.id"] == "own-trace"
    assert doc["span.id"] == "own-span"
    assert doc["transaction.id"] == "tx"  # what the event does not carry still comes from it
    assert event == before
    plain = to_ecs({"event": "hi"}, service=Service(name="svc"), clock=lambda: 0.0,
                   trace=active)
    assert (plain["trace.id"], plain["span.id"]) == ("active-trace", "active-span")


# -- user fields that clash with ECS fields, nesting caps, huge messages -------------------------
def test_clashing_kwargs_move_aside_and_never_overwrite() -> None:
    event = {"event": "svc", "service": "other", "log": 3, "error": ["a"], "host": None,
             "user": "bob", "url": {"full": "http://x"}, "labels": "flat",
             "message": "dup", "level": "error", "logsight": True}
    before = copy.deepcopy(event)
    doc = to_ecs(event, service=SERVICE, clock=fixed_clock, level="info")
    assert event == before
    assert doc["service.name"] == "checkout" and doc["log.level"] == "info"
    assert doc["message"] == "svc"
    assert doc["labels.service"] == "other" and doc["labels.log"] == 3
    assert doc["labels.user"] == "bob" and doc["labels.message"] == "dup"
    assert doc["labels.level"] == "error" and doc["labels.logsight"] is True
    assert doc["logsight.extra.error"] == ["a"] and doc["logsight.extra.host"] is None
    assert doc["logsight.extra.labels"] == "flat"
    assert doc["url"] == {"full": "http://x"}  # an ECS object given as an object stays
    src = json.loads(dumps_source(doc))
    assert src["service"]["name"] == "checkout" and src["log"]["level"] == "info"
    assert src["logsight"]["extra"] == {"error": ["a"], "host": None, "labels": "flat"}


def test_repeated_message_and_level_are_not_kept_twice() -> None:
    doc = to_ecs({"event": "same", "message": "same", "level": "INFO"}, service=SERVICE,
                 clock=fixed_clock, level="info")
    assert "labels.message" not in doc and "labels.level" not in doc


def _nested(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels - 1):
        node["d"] = {}
        node = node["d"]
    node["leaf"] = 1
    return root


def _depth(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


def test_nesting_is_capped_at_15_levels_with_a_marker() -> None:
    ok, deep = _nested(15), _nested(40)
    doc = to_ecs({"event": "x", "ok": ok, "deep": deep, "service": [deep]}, service=SERVICE,
                 clock=fixed_clock)
    assert doc["ok"] is ok  # within the cap: not copied
    assert _depth(doc["deep"]) == 15
    assert json.dumps(doc["deep"]).count("[truncated: nesting deeper than 15]") == 1
    src = json.loads(dumps_source(doc))
    assert _depth(src) < 20  # the engine's mapping depth limit
    assert _depth(deep) == 40  # the caller's value is untouched


def test_huge_message_fits_the_pipeline_limit_and_keeps_the_original() -> None:
    text = "".join(chr(97 + i % 26) for i in range(40_000))
    doc = to_ecs({"event": text}, service=SERVICE, clock=fixed_clock)
    assert len(doc["message"]) <= 32_000
    assert doc["message"] == text[:31_950] + "...[truncated 8050 chars]"
    assert doc["event.original"] == text
    huge = "y" * 2_000_000
    big = to_ecs({"event": huge}, service=SERVICE, clock=fixed_clock)
    assert big["event.original"] == "y" * 1_048_576 + "...[truncated 951424 chars]"
    assert "event.original" not in to_ecs({"event": "short"}, service=SERVICE,
                                          clock=fixed_clock)
