"""Variable masking: the per-line template key, the same in Python and at ingest (Painless).

A message is split on whitespace into tokens, each token is masked on its own (but for
calendar words, see below), then runs of tokens that became exactly ``<*>`` collapse into one
``<*>`` (a variable spanning a variable number of tokens - a path and its protocol, a date and
its time - is one variable). The rules follow what a person labelling templates calls a
variable (the Loghub-2.0 labels were the yardstick); none names a product or a data set:

* **URL**: the scheme is kept, what follows ``://`` up to a bracket or quote is one variable
  (``hdfs://<*>``).
* **Path**: a piece that starts with ``/``, ``./`` or ``../`` followed by a name is one variable
  (``/var/log/app.log``, ``/default-rack``; a leading slash before an address belongs to it),
  with its query string; so is a windows path (``C:\\Windows\\Logs``).
* **Hex groups**: four or more colon-joined groups of at most four hex characters, or any run
  with ``::``, holding a digit (MAC and IPv6 addresses) are one variable.
* **Pieces**: otherwise a token is cut at structural punctuation ``= , ; ( ) [ ] { } < > | " '
  : # @`` (kept as is) and at runs of two or more dots; a piece holding a digit is a variable,
  so ``10.0.0.1:50010`` masks as ``<*>:<*>``, ``size=1024,`` as ``size=<*>,``.
* **Host names**: a dotted name followed by ``:port`` is an address (``www.example.org:443``
  -> ``<*>:<*>``).
* **Keys are names**: a piece that starts with a letter and is followed by ``=`` is kept even
  when it holds a digit (``PSR0=<*>``).
* **Literals**: ``true``, ``false`` and ``null`` (any case) are values.
* **Trailing sentence punctuation** (``.``, ``!``, ``?``) stays outside the variable (``<*>.``).
* **Numbered names**: ``core.2275`` masks as ``core.<*>`` (a name, a dot, a number).
* **Slash compounds**: the parts of ``a/b`` holding a digit are variables and the word parts
  around them belong to them (``HTTP/1.1`` -> ``<*>``, ``host-1/10.0.0.1`` -> ``<*>/<*>``);
  ``load/store`` (no digit) stays.
* **Dates**: digit groups joined by ``-`` are separate numbers (``2017-05-16`` ->
  ``<*>-<*>-<*>``); other ``-`` words with a digit (``blk_-42``, ``msra-sa-41``) are one. A
  run of weekday or month names (English, ``Jul``/``July``/``JUL``) next to a token with a
  digit is part of a date (the only rule that looks beyond its token).
* **Runs**: consecutive tokens that are exactly ``<*>`` are one variable, except that a name
  with a digit (``ssh2``, ``eth0``: digits glued to letters) keeps its own place, so the miner
  can show it when it never varies (:func:`digit_in_name`).

Digits are ASCII ``0-9`` and whitespace is ASCII whitespace (what Python's ``str.split()``
uses on ASCII text) in both implementations, so the Painless script
(``ingest-pipelines/scripts/logs_template.painless``) produces the same key for every line;
the integration test and ``benchmarks/template_mining.py`` check that on real logs.

Masking looks at where a message has digits, never at which digits, except in key names: lines
that differ only in their digits mask alike, which is what makes a masked-shape cache effective.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence

WILDCARD = "<*>"
# the ingest pipeline masks at most this many characters of a message (its normalize step
# already caps messages at 32,000): ingest_template() applies the same cap
INGEST_MAX_CHARS = 32000

_DIGITS = frozenset("0123456789")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEX = frozenset("0123456789abcdefABCDEF")
_SEPS = frozenset("=,;()[]{}<>|\"':#@")
_URL_STOP = frozenset("\"'<>[](){}")
_PATH_STOP = _SEPS - frozenset("=#@")
_SCHEME = _LETTERS | _DIGITS | frozenset("+.-")
_TRAIL = frozenset(".!?")
_LITERALS = frozenset(("true", "false", "null"))  # boolean and null values
_PATH_NAME = _LETTERS | _DIGITS | frozenset("_-.~$%+@*")
# ASCII whitespace as str.split() sees it on ASCII text (also the \x1c-\x1f separators)
_WS_RE = re.compile(r"[ \t\n\r\x0b\x0c\x1c-\x1f]+")
DIGITS_TO_ZERO = str.maketrans("123456789", "000000000")  # a line's digit-shape
_MAX_CACHE = 200_000  # bounded memo tables: an online miner runs for a long time
# a token that is one piece of letters, digits, "_" and "-", dot-separated (no run of dots, no
# dot at either end): no rule but the digit rules can apply to it
_SIMPLE_RE = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*")


def _has_digit(s: str) -> bool:
    return not _DIGITS.isdisjoint(s)


def _hex_groups_end(s: str, i: int) -> int:
    """End of a MAC/IPv6-like run starting at ``i`` (``i`` when there is none)."""
    n = len(s)
    j = i
    groups = 0
    size = 0
    double = False
    digit = False
    while j < n:
        c = s[j]
        if c in _HEX:
            size += 1
            if size > 4:
                return i
            digit = digit or c in _DIGITS
        elif c == ":":
            if size == 0:
                if j > i and s[j - 1] == ":":
                    double = True
                elif j > i:
                    break
            else:
                groups += 1
            size = 0
        else:
            break
        j += 1
    if size:
        groups += 1
    elif j > i and s[j - 1] == ":" and not (j > i + 1 and s[j - 2] == ":"):
        j -= 1  # a trailing single colon is punctuation ("mac 00:11:22:33:44:55: up")
    if j < n and s[j] not in _SEPS:
        return i  # the run is part of a longer word
    if digit and (groups >= 4 or (double and groups >= 2)):
        return j
    return i


def _is_path(core: str) -> bool:
    if core.startswith("./"):
        rest = core[2:]
    elif core.startswith("../"):
        rest = core[3:]
    elif core.startswith("/"):
        rest = core[1:]
    else:
        return False
    return bool(rest) and rest[0] in _PATH_NAME


def _mask_digit_core(core: str) -> str:
    """Mask a piece core that holds a digit (no separator, no trailing punctuation)."""
    if "/" in core:
        parts = [p for p in core.split("/") if _has_digit(p)]
        return "/".join(WILDCARD for _ in parts)
    dot = core.rfind(".")
    if 0 < dot < len(core) - 1 and _LETTERS.issuperset(core[:dot]) and _DIGITS.issuperset(
        core[dot + 1:]
    ):
        return core[: dot + 1] + WILDCARD  # a numbered name: core.2275
    if "-" in core:
        parts = core.split("-")
        if len(parts) > 1 and all(p and _DIGITS.issuperset(p) for p in parts):
            return "-".join(WILDCARD for _ in parts)  # a date: 2017-05-16
    return WILDCARD


def _mask_piece(piece: str, key: bool) -> str:
    if key and piece[0] in _LETTERS:
        return piece  # a key name: kept even with a digit (PSR0=)
    if ".." in piece:
        # runs of dots separate (a dotted leader: "instruction......0")
        out: list[str] = []
        i = 0
        n = len(piece)
        while i < n:
            if piece[i] == "." and i + 1 < n and piece[i + 1] == ".":
                j = i
                while j < n and piece[j] == ".":
                    j += 1
                out.append(piece[i:j])
                i = j
                continue
            j = i
            while j < n and not (piece[j] == "." and j + 1 < n and piece[j + 1] == "."):
                j += 1
            out.append(_mask_piece(piece[i:j], False) if j < n else _mask_piece(piece[i:j], key))
            i = j
        return "".join(out)
    t = len(piece)
    while t > 0 and piece[t - 1] in _TRAIL:
        t -= 1
    core, tail = piece[:t], piece[t:]
    if not core:
        return piece
    if _is_path(core) or core.lower() in _LITERALS:
        return WILDCARD + tail
    if not _has_digit(core):
        return piece
    return _mask_digit_core(core) + tail


def _is_host(piece: str) -> bool:
    """A dotted name without digits or slashes (digits already make a piece a variable)."""
    return "/" not in piece and not _has_digit(piece) and ".." not in piece and not (
        piece.startswith(".") or piece.endswith(".")
    )


def _is_port(s: str, i: int) -> bool:
    """Digits from ``i`` up to the end of ``s`` or a separator."""
    j = i
    while j < len(s) and s[j] in _DIGITS:
        j += 1
    return j > i and (j == len(s) or s[j] in _SEPS or s[j] in _TRAIL or s[j] == "/")


def _mask_pieces(s: str) -> str:
    out: list[str] = []
    n = len(s)
    i = 0
    while i < n:
        c = s[i]
        if c in _LETTERS and s.startswith(":\\", i + 1) and (i == 0 or s[i - 1] in _SEPS):
            # a windows path (C:\dir\file): one variable, trailing punctuation outside
            j = i + 3
            while j < n and s[j] not in _PATH_STOP:
                j += 1
            t = j
            while t > i + 3 and s[t - 1] in _TRAIL:
                t -= 1
            out.append(WILDCARD + s[t:j])
            i = j
            continue
        if c in _HEX or c == ":":
            end = _hex_groups_end(s, i)
            if end > i and (i == 0 or s[i - 1] in _SEPS):
                out.append(WILDCARD)
                i = end
                continue
        if c in _SEPS:
            out.append(c)
            i += 1
            continue
        j = i
        if c == "/" or s.startswith(("./", "../"), i):
            # a path runs on over its query string (?a=1&b=2) and @ # in names
            while j < n and s[j] not in _PATH_STOP:
                j += 1
        while j < n and s[j] not in _SEPS:
            j += 1
        piece = s[i:j]
        if j < n and s[j] == ":" and "." in piece and _is_host(piece) and _is_port(s, j + 1):
            out.append(WILDCARD)  # a dotted host name before :port is an address
        else:
            out.append(_mask_piece(piece, j < n and s[j] == "="))
        i = j
    return "".join(out)


def _plain(token: str) -> bool:
    """A token no rule can change: no digit, no slash, no literal, no ``<*>`` (the common
    case; a shortcut of the Python side only, the result is the same)."""
    if not _DIGITS.isdisjoint(token) or "/" in token or "\\" in token or WILDCARD in token:
        return False
    low = token.lower()
    return "true" not in low and "false" not in low and "null" not in low


def mask_token(token: str) -> str:
    """One whitespace-free token with its variables replaced by ``<*>``."""
    if _plain(token):
        return token
    if _SIMPLE_RE.fullmatch(token) and not _DIGITS.isdisjoint(token):
        # one piece of name characters with a digit (a number, an id, a dotted name): the
        # general path below would come to this too, a shortcut of the Python side only
        return _mask_digit_core(token)
    i = token.find("://")
    if i > 0:
        j = i
        while j > 0 and token[j - 1] in _SCHEME:
            j -= 1
        if j < i:
            k = i + 3
            while k < len(token) and token[k] not in _URL_STOP:
                k += 1
            body = WILDCARD if k > i + 3 else ""
            return _mask_pieces(token[:j]) + token[j : i + 3] + body + mask_token(token[k:])
    out = _mask_pieces(token)
    while WILDCARD + WILDCARD in out:
        out = out.replace(WILDCARD + WILDCARD, WILDCARD)
    return out


def split_tokens(message: str) -> list[str]:
    """Whitespace tokens (ASCII whitespace, as the ingest script splits)."""
    if message.isascii():
        return message.split()
    return [t for t in _WS_RE.split(message) if t]


_NAME_LETTERS = _LETTERS | frozenset("_")
_PART_SEPS = frozenset("_-./")


def digit_in_name(raw: str) -> bool:
    """A raw token whose every digit is glued to letters inside a name (``ssh2``, ``eth0``,
    ``jk2_init()``, ``log4j``): it may well be a constant, which the miner decides by whether
    it varies. A piece (between ``= , ; ( ) [ ] { } < > | " ' : # @``) or a ``_ - . /`` part
    that is all digits (``blk_42``, ``job_0020``, ``HTTP/1.1``'s ``1.1``), a piece that starts
    with a digit or is all hex, or a path makes it a value."""
    if raw.startswith(("/", "./", "../")):
        return False
    named = False
    n = len(raw)
    start = 0
    for end in range(n + 1):
        if end < n and raw[end] not in _SEPS:
            continue
        piece = raw[start:end]
        start = end + 1
        if not piece or _DIGITS.isdisjoint(piece):
            continue
        if piece[0] not in _NAME_LETTERS or _HEX.issuperset(piece):
            return False
        part_digits = True
        part_len = 0
        for c in piece + "/":
            if c in _PART_SEPS:
                if part_len and part_digits:
                    return False
                part_digits, part_len = True, 0
            else:
                part_len += 1
                part_digits = part_digits and c in _DIGITS
        named = True
    return named


_CALENDAR = frozenset(
    w
    for name in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
                 "January", "February", "March", "April", "May", "June", "July", "August",
                 "September", "October", "November", "December")
    for w in (name, name[:3], name.upper(), name[:3].upper())
) | {"Sept", "SEPT"}
# every calendar word starts with one of these: a quick test for the lines to look at
_CALENDAR_RE = re.compile("|".join(sorted({w[:3] for w in _CALENDAR})))


def calendar_words(raw: Sequence[str], masked: list[str]) -> None:
    """A run of weekday or month names next to a token with a digit is part of a date:
    masked in place (``at Sun Jul 10 03:55:15 2005`` is one variable once runs collapse)."""
    n = len(raw)
    i = 0
    while i < n:
        if raw[i].rstrip(",.") not in _CALENDAR:
            i += 1
            continue
        j = i
        while j < n and raw[j].rstrip(",.") in _CALENDAR:
            j += 1
        if (i > 0 and _has_digit(raw[i - 1])) or (j < n and _has_digit(raw[j])):
            for k in range(i, j):
                masked[k] = WILDCARD + raw[k][len(raw[k].rstrip(",.")):]
        i = j


def collapse(
    raw: Sequence[str], masked: Sequence[str], named: Callable[[str], bool] = digit_in_name
) -> list[int]:
    """Which masked tokens stay: a token that is exactly ``<*>`` right after another one joins
    it (a variable spanning several tokens), unless either may be a name with a digit
    (``port <*> ssh2`` keeps ``ssh2``'s place, so the miner can tell whether it varies).
    ``named`` is :func:`digit_in_name` or a memoised version of it."""
    keep: list[int] = []
    prev = False  # the last kept token is a <*> that can absorb the next one
    for i, tok in enumerate(masked):
        if tok == WILDCARD:
            absorbable = not named(raw[i])
            if prev and absorbable:
                continue
            prev = absorbable
        else:
            prev = False
        keep.append(i)
    return keep


class Masker:
    """:func:`mask_tokens` with memo tables (tokens and whole digit-shapes repeat a lot)."""

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}
        self._lines: dict[str, tuple[str, ...]] = {}
        self._named: dict[str, bool] = {}

    def token(self, token: str) -> str:
        out = self._tokens.get(token)
        if out is None:
            out = mask_token(token)
            if len(self._tokens) >= _MAX_CACHE:
                self._tokens.clear()
            self._tokens[token] = out
        return out

    def full(self, raw: Sequence[str]) -> list[str]:
        """Each raw token masked (before runs collapse)."""
        tok = self.token
        get = self._tokens.get
        out = [get(t) or tok(t) for t in raw]  # a masked token is never empty
        if _CALENDAR_RE.search(" ".join(raw)):  # one C-level scan; calendar_words decides
            calendar_words(raw, out)
        return out

    def named(self, token: str) -> bool:
        """:func:`digit_in_name`, memoised."""
        out = self._named.get(token)
        if out is None:
            out = digit_in_name(token)
            if len(self._named) >= _MAX_CACHE:
                self._named.clear()
            self._named[token] = out
        return out

    def raw(self, message: str) -> tuple[str, ...]:
        """Mask without the digit-shape memo (each token still memoised)."""
        raw = split_tokens(message)
        out = self.full(raw)
        if out.count(WILDCARD) > 1:
            return tuple(out[i] for i in collapse(raw, out, self.named))
        return tuple(out)

    def __call__(self, message: str) -> tuple[str, ...]:
        return self.shaped(message, message.translate(DIGITS_TO_ZERO))

    def many(self, messages: Iterable[str]) -> list[tuple[str, ...]]:
        """Mask many messages (their digit-shapes are computed in one C-level pass)."""
        messages = list(messages)
        if not messages:
            return []
        joined = "\n".join(messages)
        if joined.count("\n") != len(messages) - 1:  # a message holds a newline itself
            return [self(m) for m in messages]
        keys = joined.translate(DIGITS_TO_ZERO).split("\n")
        shaped = self.shaped
        return [shaped(m, k) for m, k in zip(messages, keys, strict=True)]

    def digit_blind(self, key: str) -> bool:
        """Whether every line of this digit-shape masks alike (known once it was masked)."""
        return key in self._lines

    def shaped(self, message: str, key: str) -> tuple[str, ...]:
        """Mask ``message`` whose digit-shape (digits turned into ``0``) is ``key``."""
        out = self._lines.get(key)
        if out is None:
            out = self.raw(key)
            if "0" in "".join(out):
                # a digit survived (a key name such as PSR1=): the shape is not digit-blind
                return self.raw(message)
            if len(self._lines) >= _MAX_CACHE:
                self._lines.clear()
            self._lines[key] = out
        return out


_DEFAULT = Masker()


def mask_tokens(message: str) -> list[str]:
    """The message's tokens with every variable replaced by ``<*>`` (see module docstring)."""
    return list(_DEFAULT(message))


def mask_many(messages: Iterable[str]) -> list[tuple[str, ...]]:
    """:func:`mask_tokens` for many messages (a fresh memo for the batch)."""
    return Masker().many(messages)


def mask(message: str) -> str:
    """The masked message as one string (tokens joined by a space)."""
    return " ".join(mask_tokens(message))


def template_id(template: str) -> str:
    """A short content hash of a template text (handy as a document field)."""
    return hashlib.sha1(template.encode()).hexdigest()[:12]


def fnv1a64(text: str) -> str:
    """64-bit FNV-1a over the UTF-16 code units of ``text``, as hex without leading zeros:
    the ``logsight.template_id`` the ingest pipeline writes (Java strings are UTF-16)."""
    h = 0xCBF29CE484222325
    data = text.encode("utf-16-le")
    for i in range(0, len(data), 2):
        h ^= data[i] | (data[i + 1] << 8)
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return format(h, "x")


def ingest_template(message: str) -> tuple[str, str]:
    """``(logsight.template, logsight.template_id)`` as the logs ingest pipeline computes them."""
    template = mask(message[:INGEST_MAX_CHARS])
    return template, fnv1a64(template)
