"""Bounds a document must meet before it leaves logsight, and the dead letter for one that does
not.

A JSON document nested thousands of levels deep does not fail cleanly in the engine: its
parser recurses until the write thread overflows its stack, the whole ``_bulk`` (innocent
documents too) times out, and the indexing-pressure bytes it held stay held. So nesting is
bounded here, on logsight's side, for every path a document takes (``logsight ingest``, the
shipper's encoder, and any receiver that takes documents from outside, e.g. OTLP, through
:func:`check_json`), and an over-deep document is dead-lettered with its original bytes
instead of being sent.

Depth counts JSON containers, objects and arrays alike, the document itself being level 1.
:data:`MAX_DEPTH` is the engine's mapping depth limit (``index.mapping.depth.limit``, 20): a
document within it can never be refused for its depth, whichever document came first.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 20
# what a dead letter keeps of an original it cannot hold whole (the dead-letter index is not
# a blob store): the first MAX_ORIGINAL_TEXT characters as text, and the exact bytes as
# base64 up to MAX_ORIGINAL_BYTES
MAX_ORIGINAL_TEXT = 32_000
MAX_ORIGINAL_BYTES = 1024 * 1024

# a JSON string (escapes included) or one structural bracket; strings are skipped whole so a
# bracket inside one does not count
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(text: bytes | str, limit: int = MAX_DEPTH) -> int:
    """How deeply the JSON ``text`` nests (0 for a scalar), counting at most to ``limit + 1``
    (enough to say "too deep" without walking a hostile document to its end). Never parses
    (so never recurses), and is linear in the length; text that is not JSON is scanned the
    same way (its brackets outside strings count)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if b"{" not in data and b"[" not in data:
        return 0
    return _scan(data, limit)


def _scan(data: bytes, limit: int) -> int:
    depth = deepest = 0
    for m in _TOKENS.finditer(data):
        tok = m.group()
        if tok in (b"{", b"["):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif tok in (b"}", b"]"):
            depth = max(0, depth - 1)
    return deepest


def value_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply a Python value nests (mappings, lists and tuples count; 0 for a scalar),
    counting at most to ``limit + 1``. Iterative: a hostile value cannot exhaust the stack."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen: set[int] = set()
    while stack:
        v, depth = stack.pop()
        if isinstance(v, Mapping):
            children: Any = v.values()
        elif isinstance(v, (list, tuple)):
            children = v
        else:
            continue
        if id(v) in seen:  # a cycle is cut by the encoder, never deep
            continue
        seen.add(id(v))
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((c, depth + 1) for c in children if isinstance(c, (Mapping, list, tuple)))
    return deepest


def too_deep(text: bytes | str, limit: int = MAX_DEPTH) -> str | None:
    """The reason ``text`` may not be sent (nested deeper than ``limit``), or None."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    # the common case, at C speed: no more brackets than the limit cannot nest deeper
    if data.count(b"{") + data.count(b"[") <= limit:
        return None
    if json_depth(data, limit) > limit:
        return f"document nested deeper than {limit} levels (objects and arrays count)"
    return None


def check_json(text: bytes | str, limit: int = MAX_DEPTH) -> str | None:
    """For a receiver of JSON from outside (e.g. an OTLP/HTTP endpoint): call before parsing;
    a non-None reason means dead-letter ``text`` (see :func:`deadletter_original`) instead of
    parsing or sending it."""
    return too_deep(text, limit)


def deadletter_original(raw: bytes) -> dict[str, Any]:
    """The ``original_text`` / ``original`` fields of a dead letter for ``raw`` bytes that
    cannot be sent as a document: text truncated to :data:`MAX_ORIGINAL_TEXT` characters, the
    exact bytes in base64 when at most :data:`MAX_ORIGINAL_BYTES` (``deadletter replay`` uses
    them), and the original size."""
    text = raw.decode("utf-8", "replace")
    out: dict[str, Any] = {"original_text": text[:MAX_ORIGINAL_TEXT]}
    original: dict[str, Any] = {"bytes": len(raw)}
    if len(text) > MAX_ORIGINAL_TEXT:
        original["text_truncated"] = True
    if len(raw) <= MAX_ORIGINAL_BYTES:
        original["base64"] = base64.b64encode(raw).decode("ascii")
    out["original"] = original
    return out


def original_bytes(deadletter: Mapping[str, Any]) -> bytes | None:
    """The original document bytes a dead letter holds (base64 first, then the parsed
    original, then untruncated text), or None when only a truncated part was kept."""
    original = deadletter.get("original")
    if isinstance(original, Mapping):
        b64 = original.get("base64")
        if isinstance(b64, str):
            try:
                return base64.b64decode(b64, validate=True)
            except ValueError:
                return None
        if not ({"bytes", "text_truncated"} & set(original)):
            from logsight.ecs import dumps

            return dumps(dict(original))
        if original.get("text_truncated"):
            return None
    text = deadletter.get("original_text")
    if isinstance(text, str):
        return text.encode("utf-8")
    return None
