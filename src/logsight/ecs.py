"""The one ECS document core: event dict in, ordered ECS document out, and its serialisers.

Every adapter (structlog, stdlib / python-json-logger, ML events, spans, metrics) builds its
document here or with the helpers here, so the same event always gives the same document.

Two representations:

* in memory (what :func:`to_ecs` returns and what the shipper queues): a *flat* dict whose
  keys are ECS field paths (``"log.level"``, ``"service.name"``), in the ECS logging spec's
  order (``@timestamp``, ``log.level``, ``message`` first). Building it is a handful of dict
  stores, which keeps the application thread's cost low.
* on the wire (built by the shipper's worker, never on the application thread):
  :func:`dumps_source` nests the dotted keys into objects for ``_bulk`` (ingest processors
  address ``log.level`` as ``log`` -> ``level``; OpenSearch's ``dot_expander`` has no ``*``),
  and :func:`dumps_line` writes the ECS-logging line form for files / stdout (``log.level``
  and ``ecs.version`` stay top-level dotted keys, as the spec asks; the rest is nested).

Garbage never raises: values that JSON cannot hold (bytes, NaN/inf, sets, arbitrary objects,
cycles, absurd nesting) are converted, and oversized messages are truncated with a marker.

Why one file past ~600 lines: the builder and both serialisers share the field order, the key
rules and the coercion of garbage; split apart, the "one ECS core" the adapters are held to by
the spec tests would be three places that can drift.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import socket
import time
import traceback
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ECS_VERSION = "1.6.0"

# Keys of the ECS logging spec that must stay top-level dotted keys in a log line.
TOP_LEVEL_DOTTED = ("log.level", "ecs.version")

# Event-dict keys with a meaning of their own (not copied through as extra fields).
_STRUCTLOG_RESERVED = frozenset(
    {"event", "level", "logger", "timestamp", "exc_info", "exception", "stack_info", "_record",
     "_from_structlog", "labels"}
)
_LEVEL_ALIASES = {"warn": "warning", "fatal": "critical", "exception": "error", "msg": "info"}

# The logs pipeline truncates messages longer than 32,000 chars (logs_normalize.painless,
# params.max_message); kept text plus the longest marker (40 chars) stays within it, so the
# pipeline never truncates a second time.
DEFAULT_MAX_MESSAGE_CHARS = 31_950
# The whole text of a truncated message goes to event.original, itself capped (and marked).
MAX_ORIGINAL_CHARS = 1_048_576
# The engine's mapping depth limit is 20 objects; user values are capped at 15 levels so even
# under the deepest prefix logsight adds (``logsight.extra.<name>``: 3) a document fits.
MAX_VALUE_DEPTH = 15
DEFAULT_MAX_DEPTH = 18  # the slow path's backstop for a whole (nested) document
TRUNCATION_MARKER = "...[truncated {n} chars]"
DEPTH_MARKER = "[truncated: nesting deeper than {n}]"
CIRCULAR_MARKER = "[circular reference]"

# Object fields logsight fills itself: a user field of that name always moves aside.
_OWN_OBJECTS = frozenset({"log", "service", "host", "ecs", "event", "error", "trace", "span",
                          "transaction", "labels", "logsight", "data_stream"})
# Other ECS objects: a mapping value is the object ECS means and stays; a scalar moves aside.
_ECS_OBJECTS = _OWN_OBJECTS | frozenset({
    "agent", "client", "cloud", "container", "destination", "dns", "email", "file", "geo",
    "group", "http", "network", "observer", "orchestrator", "organization", "os", "package",
    "process", "related", "rule", "server", "source", "threat", "tls", "url", "user",
    "user_agent", "vulnerability"})

Clock = Callable[[], float]


@dataclass(frozen=True)
class Service:
    """Who emits the documents: fixed per configured handle."""

    name: str
    version: str | None = None
    environment: str | None = None
    node_name: str | None = None
    hostname: str = field(default_factory=socket.gethostname)
    dataset: str | None = None  # event.dataset; the spec's default is the service name
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("service name must be a non-empty string")

    def base_fields(self) -> dict[str, Any]:
        """The constant service/host fields, in document order (computed once per handle)."""
        out: dict[str, Any] = {"service.name": self.name}
        if self.version:
            out["service.version"] = self.version
        if self.environment:
            out["service.environment"] = self.environment
        if self.node_name:
            out["service.node.name"] = self.node_name
        out["host.hostname"] = self.hostname
        out["event.dataset"] = self.dataset or self.name
        for k, v in sanitize_labels(self.labels).items():
            out["labels." + k] = v
        return out


# -- timestamps --------------------------------------------------------------------------------
class _TimestampFormatter:
    """ISO-8601 UTC with milliseconds; the seconds prefix is cached (one strftime per second)."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        # one tuple, read and replaced in one step: threads never see a second with another
        # second's prefix
        self._cache: tuple[int, str] = (-1, "")

    def __call__(self, t: float) -> str:
        sec = int(t)
        cached_sec, prefix = self._cache
        if cached_sec != sec:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            self._cache = (sec, prefix)
        return f"{prefix}.{int((t - sec) * 1000):03d}Z"


format_timestamp = _TimestampFormatter()


def format_timestamp_ns(ns: int) -> str:
    """ISO-8601 UTC with microseconds from Unix nanoseconds (span start times)."""
    sec, rem = divmod(int(ns), 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{rem // 1000:06d}Z"


# -- event ids ---------------------------------------------------------------------------------
class EventIds:
    """Unique, cheap event ids: a random per-instance prefix plus a counter.

    ``next()`` on an ``itertools.count`` is atomic under the GIL, so this is thread-safe without
    a lock, and far cheaper than ``uuid4()`` on the hot path. The id is assigned once, before the
    event is queued, and travels with it into the spool, so a replay re-sends the same id.
    """

    def __init__(self, prefix: str | None = None) -> None:
        self._random_prefix = prefix is None
        self.prefix = prefix if prefix is not None else os.urandom(10).hex()
        self._count = itertools.count()
        _all_ids.add(self)

    def __call__(self) -> str:
        return f"{self.prefix}{next(self._count):x}"

    def _after_fork(self) -> None:
        # a forked child would otherwise repeat the parent's ids (same prefix, same counter),
        # and the cluster would take its events for duplicates (409) of the parent's
        if self._random_prefix:
            self.prefix = os.urandom(10).hex()
            self._count = itertools.count()


_all_ids: weakref.WeakSet[EventIds] = weakref.WeakSet()


def _reseed_ids_after_fork() -> None:
    for ids in list(_all_ids):
        ids._after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reseed_ids_after_fork)


# -- labels / keys ---------------------------------------------------------------------------
_LABEL_TRANS = str.maketrans({".": "_", "*": "_", "\\": "_"})


def sanitize_label_key(key: str) -> str:
    """The ECS logging spec's label key sanitisation: '.', '*' and '\\' become '_'."""
    return str(key).translate(_LABEL_TRANS)


def sanitize_labels(labels: Mapping[Any, Any] | None) -> dict[str, Any]:
    if not labels:
        return {}
    return {sanitize_label_key(k): v for k, v in labels.items()}


def truncate_message(message: str, max_chars: int = DEFAULT_MAX_MESSAGE_CHARS) -> str:
    if len(message) <= max_chars:
        return message
    cut = len(message) - max_chars
    return message[:max_chars] + TRUNCATION_MARKER.format(n=cut)


def cap_depth(value: Any, max_depth: int = MAX_VALUE_DEPTH) -> Any:
    """``value`` with containers nested deeper than ``max_depth`` (dicts and lists both count)
    replaced by a marker, and cycles by ``"[circular reference]"``. Returns ``value`` itself
    when nothing is cut (no copy on the common path); never modifies it."""

    def walk(v: Any, left: int, seen: set[int]) -> Any:
        if left <= 0:
            return DEPTH_MARKER.format(n=max_depth)
        if id(v) in seen:
            return CIRCULAR_MARKER
        seen.add(id(v))
        try:
            if isinstance(v, Mapping):
                out: dict[Any, Any] | None = None
                for k, x in v.items():
                    if isinstance(x, (Mapping, list, tuple)):
                        y = walk(x, left - 1, seen)
                        if y is not x:
                            if out is None:
                                out = dict(v)
                            out[k] = y
                return v if out is None else out
            items: list[Any] | None = None
            for i, x in enumerate(v):
                if isinstance(x, (Mapping, list, tuple)):
                    y = walk(x, left - 1, seen)
                    if y is not x:
                        if items is None:
                            items = list(v)
                        items[i] = y
            return v if items is None else items
        finally:
            seen.discard(id(v))

    if not isinstance(value, (Mapping, list, tuple)):
        return value
    return walk(value, max_depth, set())


def _aside(doc: dict[str, Any], name: str, value: Any) -> None:
    """A user field whose name clashes with a field logsight sets: a string, number or bool
    goes to ``labels.<name>``, anything else to ``logsight.extra.<name>`` (never lost, never
    overwriting the ECS field)."""
    key = sanitize_label_key(name)
    if isinstance(value, (str, int, float, bool)):
        doc["labels." + key] = value
    else:
        doc["logsight.extra." + key] = cap_depth(value, MAX_VALUE_DEPTH)


def _as_message(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        return str(value)
    except Exception:  # a __str__ that raises must not reach the app
        return f"<unprintable {type(value).__name__}>"


def normalize_level(level: Any) -> str:
    name = str(level).lower()
    return _LEVEL_ALIASES.get(name, name)


def error_fields(exc_info: Any) -> dict[str, str]:
    """``error.type`` / ``error.message`` / ``error.stack_trace`` from an exc_info value
    (True, an exception, or a ``(type, value, tb)`` tuple). Empty when there is none."""
    import sys

    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple) or len(exc_info) != 3 or exc_info[0] is None:
        return {}
    etype, value, tb = exc_info
    try:
        stack = "".join(traceback.format_exception(etype, value, tb)).rstrip("\n")
    except Exception:
        stack = ""
    return {
        "error.type": getattr(etype, "__qualname__", str(etype)),
        "error.message": _as_message(value),
        "error.stack_trace": stack,
    }


# -- the core ---------------------------------------------------------------------------------
def to_ecs(
    event_dict: Mapping[str, Any],
    *,
    service: Service | Mapping[str, Any],
    clock: Clock = time.time,
    level: str | None = None,
    logger: str | None = None,
    event_id: str | None = None,
    trace: Mapping[str, str] | None = None,
    max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
) -> dict[str, Any]:
    """One log event as an ordered, flat ECS document. ``event_dict`` is never modified.

    ``event_dict`` is structlog-shaped: ``event`` (the message), optional ``level``,
    ``logger``, ``timestamp`` (epoch seconds), ``exc_info``/``exception``, ``labels`` (a dict);
    every other key is kept as an extra field with its type. ``service`` is a :class:`Service`
    or its precomputed :meth:`Service.base_fields`. ``trace`` adds ``trace.id`` / ``span.id`` /
    ``transaction.id`` unless the event already carries them.
    """
    ts = event_dict.get("timestamp")
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        ts = clock()
    lvl = level if level is not None else event_dict.get("level", "info")
    message = event_dict.get("event")
    text = _as_message("" if message is None else message)
    doc: dict[str, Any] = {
        "@timestamp": format_timestamp(ts),
        "log.level": normalize_level(lvl),
        "message": truncate_message(text, max_message_chars),
        "ecs.version": ECS_VERSION,
    }
    name = logger if logger is not None else event_dict.get("logger")
    if name is not None:
        doc["log.logger"] = str(name)
    doc.update(service.base_fields() if isinstance(service, Service) else service)
    if trace:
        for k, v in trace.items():  # the event's own ids win over the active span's
            if k not in event_dict:
                doc[k] = v
    exc = event_dict.get("exc_info")
    if exc:
        doc.update(error_fields(exc))
    elif isinstance(event_dict.get("exception"), str):  # structlog's format_exc_info output
        doc["error.stack_trace"] = event_dict["exception"]
    labels = event_dict.get("labels")
    if isinstance(labels, Mapping):
        for k, v in labels.items():
            doc["labels." + sanitize_label_key(k)] = v
    elif labels is not None:
        doc["logsight.extra.labels"] = cap_depth(labels)
    if level is not None and "level" in event_dict \
            and normalize_level(event_dict["level"]) != doc["log.level"]:
        _aside(doc, "level", event_dict["level"])  # the method's level wins
    for k, v in event_dict.items():
        if k in _STRUCTLOG_RESERVED:
            continue
        if k in doc:  # e.g. a ``message`` kwarg: kept aside unless it repeats the field
            if k not in _FIXED_KEYS and v != doc[k]:
                _aside(doc, k, v)
        elif k in _OWN_OBJECTS or (k in _ECS_OBJECTS and not isinstance(v, Mapping)):
            _aside(doc, k, v)
        else:
            doc[k] = cap_depth(v) if isinstance(v, (Mapping, list, tuple)) else v
    if len(doc["message"]) != len(text) and "event.original" not in doc:
        doc["event.original"] = truncate_message(text, MAX_ORIGINAL_CHARS)
    doc["event.id"] = event_id if event_id is not None else doc.get("event.id") or _ids()
    return doc


# doc keys a same-named event key never moves aside (the event repeats them by design)
_FIXED_KEYS = frozenset({"event.id", "trace.id", "span.id", "transaction.id"})


_ids = EventIds()


# -- serialisation (worker side) -------------------------------------------------------------
# The worker's cost per event competes with the application for the GIL, so it is kept small:
# nesting runs a compiled plan per document *shape* (the tuple of its keys: the same logger
# call gives the same shape), and orjson writes the bytes. Anything orjson refuses (lone
# surrogates, integers beyond 64 bits, cycles, nesting deeper than 254, non-string keys, a
# failing ``default``) takes the slow path: :func:`sanitize`, then the stdlib encoder.
_MAX_PLANS = 1024  # distinct shapes compiled per nester; beyond that the generic walk runs
_MAX_PLAN_KEYS = 256


def _nest_generic(flat: Mapping[str, Any], keep_dotted: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    mine: set[int] = set()  # ids of the dicts created here (safe to write into)
    for key, value in flat.items():
        if not isinstance(key, str) or "." not in key or key in keep_dotted or key[0] == "@":
            out[key] = value
            continue
        parts = key.split(".")
        cur = out
        ok = True
        for p in parts[:-1]:
            nxt = cur.get(p)
            if nxt is None:
                nxt = cur[p] = {}
                mine.add(id(nxt))
            elif not isinstance(nxt, dict):
                ok = False
                break
            elif id(nxt) not in mine:
                nxt = cur[p] = dict(nxt)
                mine.add(id(nxt))
            cur = nxt
        if ok:
            leaf = parts[-1]
            if leaf in cur and isinstance(cur[leaf], dict) and isinstance(value, Mapping):
                merged = dict(cur[leaf])
                merged.update(value)
                cur[leaf] = merged
                mine.add(id(merged))
            else:
                cur[leaf] = value
        else:
            out[key] = value
    return out


def _compile_plan(shape: tuple[Any, ...],
                  keep_dotted: tuple[str, ...]) -> Callable[..., dict[str, Any]] | None:
    """A function of the document's values (in ``shape`` order) returning the nested dict, as
    one dict display. None when the shape needs the generic walk: non-string keys, or a key
    that is a prefix of another (a value would have to be merged into)."""
    if len(shape) > _MAX_PLAN_KEYS:
        return None
    tree: dict[str, Any] = {}
    for i, key in enumerate(shape):
        if type(key) is not str:
            return None
        path = [key] if ("." not in key or key in keep_dotted or key[0] == "@") \
            else key.split(".")
        node = tree
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                return None  # an earlier key ends here
            node = nxt
        if path[-1] in node:
            return None  # an earlier key continues below this one (or a repeated path)
        node[path[-1]] = i
    consts: list[str] = []
    const_index: dict[str, int] = {}

    def name(key: str) -> str:
        if key not in const_index:
            const_index[key] = len(consts)
            consts.append(key)
        return f"k{const_index[key]}"

    def display(node: dict[str, Any]) -> str:
        return "{" + ", ".join(
            f"{name(k)}: " + (f"a{v}" if isinstance(v, int) else display(v))
            for k, v in node.items()) + "}"

    body = display(tree)
    # only generated identifiers appear in the source; the keys come in as arguments
    args = ", ".join(f"a{i}" for i in range(len(shape)))
    cargs = ", ".join(f"k{i}" for i in range(len(consts)))
    src = (f"def _make({cargs}):\n"
           f"    def plan({args}):\n"
           f"        return {body}\n"
           f"    return plan\n")
    ns: dict[str, Any] = {}
    # exec: one dict display per shape builds the nested document in a single expression,
    # measurably faster than the generic walk (benchmarks/adapter_hot_path.py); the source
    # holds only generated identifiers, the keys arrive as arguments
    exec(compile(src, "<logsight.ecs nest plan>", "exec"), ns)
    plan: Callable[..., dict[str, Any]] = ns["_make"](*consts)
    return plan


class _Nester:
    """Nesting with per-shape compiled plans (thread-safe: a racing compile stores an equal
    plan)."""

    __slots__ = ("keep_dotted", "_plans")

    def __init__(self, keep_dotted: tuple[str, ...]) -> None:
        self.keep_dotted = keep_dotted
        self._plans: dict[tuple[Any, ...], Callable[..., dict[str, Any]] | None] = {}

    def __call__(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        if type(flat) is not dict:
            return _nest_generic(flat, self.keep_dotted)
        shape = tuple(flat)
        try:
            plan = self._plans[shape]
        except KeyError:
            if len(self._plans) >= _MAX_PLANS:
                return _nest_generic(flat, self.keep_dotted)
            plan = self._plans[shape] = _compile_plan(shape, self.keep_dotted)
        except TypeError:  # an unhashable key cannot be a dict key; kept for safety
            return _nest_generic(flat, self.keep_dotted)
        if plan is None:
            return _nest_generic(flat, self.keep_dotted)
        return plan(*flat.values())


nest_source = _nest_source = _Nester(())  # every dotted key nested (``_bulk`` sources)
nest_line = _nest_line = _Nester(TOP_LEVEL_DOTTED)  # ECS logging lines


def nest(flat: Mapping[str, Any], keep_dotted: tuple[str, ...] = ()) -> dict[str, Any]:
    """Dotted keys into nested objects, keeping first-seen order. Never mutates ``flat`` or the
    dicts inside it. A path that collides with a non-object value keeps its dotted key, which
    the cluster then rejects as a mapping conflict (the dead-letter index takes it)."""
    if keep_dotted == ():
        return _nest_source(flat)
    if keep_dotted == TOP_LEVEL_DOTTED:
        return _nest_line(flat)
    return _nest_generic(flat, keep_dotted)


def _default(o: Any) -> Any:
    """Fallback for values JSON has no type for (orjson and the stdlib encoder)."""
    if isinstance(o, (bytes, bytearray, memoryview)):
        return bytes(o).decode("utf-8", "replace")
    if isinstance(o, (set, frozenset)):
        return list(o)
    if hasattr(o, "isoformat"):
        try:
            return o.isoformat()
        except Exception:
            pass
    if hasattr(o, "tolist") or hasattr(o, "item"):  # numpy arrays and scalars
        try:
            return o.tolist() if hasattr(o, "tolist") else o.item()
        except Exception:
            pass
    if isinstance(o, Mapping):
        return dict(o)
    try:
        return str(o)
    except Exception:
        return f"<unprintable {type(o).__name__}>"


def _utf8_safe(s: str) -> str:
    """``s`` with lone surrogates (which UTF-8 cannot hold) replaced by ``?``."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace").decode("utf-8")
    return s


def sanitize(value: Any, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """A JSON-safe copy: non-finite floats become None, unknown types strings, lone surrogates
    ``?``, cycles and nesting deeper than ``max_depth`` a marker string, integers beyond 64
    bits strings. The slow path, used only when the fast encoder refuses a document."""

    def walk(v: Any, depth: int, seen: frozenset[int]) -> Any:
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, str):
            return _utf8_safe(v)
        if isinstance(v, int):
            return int(v) if -(2**63) <= v < 2**64 else str(v)
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if depth >= max_depth:
            return DEPTH_MARKER.format(n=max_depth)
        if isinstance(v, Mapping):
            if id(v) in seen:
                return CIRCULAR_MARKER
            inner = seen | {id(v)}
            return {_utf8_safe(_key(k)): walk(x, depth + 1, inner) for k, x in v.items()}
        if isinstance(v, (list, tuple, set, frozenset)):
            if id(v) in seen:
                return CIRCULAR_MARKER
            inner = seen | {id(v)}
            return [walk(x, depth + 1, inner) for x in v]
        converted = _default(v)
        if isinstance(converted, str):
            return _utf8_safe(converted)
        return walk(converted, depth + 1, seen)

    return walk(value, 0, frozenset())


def _key(k: Any) -> str:
    if isinstance(k, str):
        return k
    try:
        return json.dumps(k) if isinstance(k, (bool, int, float)) or k is None else str(k)
    except Exception:
        return f"<unprintable {type(k).__name__}>"


def _dumps_slow(obj: Any) -> bytes:
    text = json.dumps(sanitize(obj), default=_default, allow_nan=False, ensure_ascii=False,
                      separators=(",", ":"))
    return text.encode("utf-8", "replace")  # sanitize removed surrogates; belt and braces


try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency; the stdlib keeps it working
    _orjson = None  # type: ignore[assignment]  # the fallback branch below checks for None

if _orjson is not None:
    _OPT = _orjson.OPT_SERIALIZE_NUMPY
    _orjson_dumps = _orjson.dumps

    def dumps(obj: Any) -> bytes:
        """Compact UTF-8 JSON for any value; never raises (NaN/inf become null)."""
        try:
            return _orjson_dumps(obj, default=_default, option=_OPT)
        except Exception:  # orjson.JSONEncodeError and anything a ``default`` leaks
            return _dumps_slow(obj)

else:  # pragma: no cover - exercised only without orjson

    def dumps(obj: Any) -> bytes:
        """Compact UTF-8 JSON for any value; never raises (NaN/inf become null)."""
        try:
            text = json.dumps(obj, default=_default, allow_nan=False, ensure_ascii=False,
                              separators=(",", ":"))
            return text.encode("utf-8")
        except (ValueError, TypeError, RecursionError, OverflowError, UnicodeEncodeError):
            return _dumps_slow(obj)




def dumps_source(doc: Mapping[str, Any]) -> bytes:
    """The document as the cluster receives it: nested objects, one line, UTF-8."""
    return dumps(_nest_source(doc))


def dumps_line(doc: Mapping[str, Any]) -> bytes:
    """The document as an ECS logging line (files, stdout): ``@timestamp``, ``log.level``,
    ``message`` first, ``log.level`` / ``ecs.version`` as top-level dotted keys, rest nested.
    No trailing newline."""
    return dumps(_nest_line(doc))
