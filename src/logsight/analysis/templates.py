"""Online log template mining: variable masking + a Drain-style fixed-depth parse tree.

One configuration serves every log source. The pipeline for a message is:

1. **Masking** (:func:`mask`): general variable shapes are replaced by ``<*>`` - URLs, UUIDs,
   IPv4/IPv6 addresses (with ports), MAC addresses, ISO/syslog timestamps, hex literals, file
   paths, quoted values, and any token piece that contains a digit (numbers, sizes, durations,
   ids such as ``blk_-1234`` or ``task_0001``). Pieces are split on ``= , ; ( ) [ ] { } < >`` so
   ``size=1234,`` keeps its key (``size=<*>,``). No rule names a product or a dataset.
2. **Tree search** (Drain, He et al. ICWS 2017): the masked token sequence is routed by its
   length, then by its first ``depth - 2`` tokens (a token holding ``<*>`` goes to a wildcard
   branch), to a leaf holding a few clusters. The most similar cluster (share of positions whose
   constant token is equal) is taken when the similarity reaches ``sim_threshold``; its template
   turns the differing positions into ``<*>``. Otherwise a new cluster starts.
3. **Consecutive wildcards collapse** (``<*> <*>`` -> ``<*>``) before routing, so a variable that
   spans a variable number of tokens (a quoted sentence, a list) still lands in one cluster.

Clusters are numbered in order of creation; the numbers are stable across a save/load round
trip (:meth:`TemplateMiner.to_dict` / :meth:`TemplateMiner.from_dict`, plain JSON), so template
ids written next to log documents keep their meaning between runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WILDCARD = "<*>"
FORMAT_VERSION = 1

# Shapes that hold separators or no digit at all, so the digit rule below would miss or split
# them: URLs, unix/windows paths, single-token quoted values. Every branch starts with a literal
# character so the regex engine can skip ahead quickly (lookbehinds come after that character).
_SHAPE_RE = re.compile(
    "|".join(
        (
            r"://[^\s\"'<>]+",  # URL (the scheme is kept: "hdfs://<*>")
            r":\\[^\s\"']+",  # windows path (the drive letter is kept)
            # unix path: two or more segments, or one segment with an extension
            r"/(?<![\w/.:]/)(?:[\w.\-@%+~$*]+/)+[\w.\-@%+~$*]*"
            r"|/(?<![\w/.:]/)[\w\-@%+~$]+\.\w+",
            # a quoted single token, opened after a space or a separator (not an apostrophe)
            r"\"(?<![^\s=(\[{,:]\")[^\"\s]*\"(?!\w)",
            r"'(?<![^\s=(\[{,:]')[^'\s]+'(?!\w)",
        )
    )
)
_SHAPE_CHARS = frozenset("/\\\"'")
# A token piece holding a digit is a variable: numbers, sizes, durations, IPs, UUIDs, hex ids,
# timestamps, ids such as blk_-1234. Pieces are split on structural punctuation (kept); a piece
# starts after a separator, so the scan stays linear.
_SEP = r"\s=,;()\[\]{}<>|\"'"
_DIGIT_PIECE_RE = re.compile(rf"(?<![^{_SEP}:])[^{_SEP}:\d]*\d[^{_SEP}]*", re.MULTILINE)
# consecutive variables (also across spaces) are one variable of variable length
_RUN_RE = re.compile(r"<\*>(?:[^\S\n]*<\*>)+")
# Masking looks at whether a piece holds a digit, never at which digit: lines that differ only
# in their digits mask alike, so they are masked once (a cheap C-level translate is the key).
_DIGITS_TO_ZERO = str.maketrans("123456789", "000000000")
_MAX_CACHE = 200_000  # bounded memo tables: an online miner runs for a long time


def _shape_sub(m: re.Match[str]) -> str:
    text = m.group(0)
    if text.startswith("://"):
        return "://" + WILDCARD
    if text.startswith(":"):
        return ":\\" + WILDCARD
    return WILDCARD


def _mask_text(text: str) -> str:
    if not _SHAPE_CHARS.isdisjoint(text):
        text = _SHAPE_RE.sub(_shape_sub, text)
    text = _DIGIT_PIECE_RE.sub(WILDCARD, text)
    if text.count(WILDCARD) > 1:
        text = _RUN_RE.sub(WILDCARD, text)
    return text


def mask_tokens(message: str) -> list[str]:
    """The message's tokens with every variable replaced by ``<*>`` (see module docstring)."""
    return _mask_text(message).split()


def mask_many(messages: Iterable[str]) -> list[tuple[str, ...]]:
    """:func:`mask_tokens` for many messages, masking each digit-shape only once."""
    keys = "\n".join(m.replace("\n", " ") for m in messages).translate(_DIGITS_TO_ZERO)
    if not keys:
        return []
    lines = keys.split("\n")
    unique = list(dict.fromkeys(lines))
    masked = _mask_text("\n".join(unique)).split("\n")
    table = {k: tuple(v.split()) for k, v in zip(unique, masked, strict=True)}
    return [table[k] for k in lines]


def mask(message: str) -> str:
    """The masked message as one string (tokens joined by a space)."""
    return " ".join(mask_tokens(message))


def template_id(template: str) -> str:
    """A short content hash of a template text (handy as a document field)."""
    return hashlib.sha1(template.encode()).hexdigest()[:12]


@dataclass
class LogCluster:
    """One template: the tokens (``<*>`` where lines differ) and how many lines it absorbed."""

    cluster_id: int
    tokens: list[str]
    size: int = 0
    path: tuple[str, ...] = ()  # the tree branch it lives under (for persistence)

    @property
    def template(self) -> str:
        return " ".join(self.tokens)


@dataclass(frozen=True)
class MatchResult:
    cluster_id: int
    template: str
    is_new: bool  # a cluster was created for this line
    changed: bool  # an existing template was generalised by this line


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    clusters: list[int] = field(default_factory=list)


class TemplateMiner:
    """Online Drain-style template miner with general variable masking.

    Parameters
    ----------
    depth:
        Tree depth as in Drain: length layer + ``depth - 2`` leading-token layers + leaf.
    sim_threshold:
        Minimum share of positions with an equal constant token to join a cluster.
    max_children:
        Maximum children per inner node; further distinct tokens share the wildcard branch.
    """

    def __init__(
        self,
        *,
        depth: int = 4,
        sim_threshold: float = 0.7,
        max_children: int = 100,
    ) -> None:
        if depth < 3:
            raise ValueError(f"depth must be >= 3, got {depth}")
        if not 0.0 < sim_threshold <= 1.0:
            raise ValueError(f"sim_threshold must be in (0, 1], got {sim_threshold}")
        if max_children < 2:
            raise ValueError(f"max_children must be >= 2, got {max_children}")
        self.depth = depth
        self.sim_threshold = sim_threshold
        self.max_children = max_children
        self.clusters: dict[int, LogCluster] = {}
        self._root = _Node()
        self._cache: dict[tuple[str, ...], int] = {}  # masked line -> cluster (hot path)
        self._frozen: set[int] = set()
        self._masked: dict[str, tuple[str, ...]] = {}  # digit-shape of a line -> its tokens

    # -- mining ------------------------------------------------------------------------------
    def add(self, message: str) -> MatchResult:
        """Mine one message: join (and maybe generalise) a cluster, or start one."""
        key = message.translate(_DIGITS_TO_ZERO)
        tokens = self._masked.get(key)
        if tokens is None:
            tokens = tuple(mask_tokens(key))
            if len(self._masked) >= _MAX_CACHE:
                self._masked.clear()
            self._masked[key] = tokens
        return self._add_tokens(tokens)

    def _add_tokens(self, tokens: tuple[str, ...]) -> MatchResult:
        cid = self._cache.get(tokens)
        if cid is not None:
            cluster = self.clusters[cid]
            cluster.size += 1
            return MatchResult(cid, cluster.template, False, False)
        leaf, path = self._leaf(self._path(tokens), create=True)
        assert leaf is not None
        best = self._best(leaf, tokens)
        if best is None:
            return self._new_cluster(tokens, leaf, path)
        cluster = self.clusters[best]
        cluster.size += 1
        changed = False
        for i, (a, b) in enumerate(zip(cluster.tokens, tokens, strict=True)):
            if a != b and a != WILDCARD:
                cluster.tokens[i] = WILDCARD
                changed = True
        self._remember(tokens, best)
        return MatchResult(best, cluster.template, False, changed)

    def _new_cluster(
        self, tokens: tuple[str, ...], leaf: _Node, path: tuple[str, ...]
    ) -> MatchResult:
        cid = len(self.clusters) + 1
        cluster = LogCluster(cid, list(tokens), 1, path)
        self.clusters[cid] = cluster
        leaf.clusters.append(cid)
        self._remember(tokens, cid)
        return MatchResult(cid, cluster.template, True, False)

    def freeze(self) -> TemplateMiner:
        """Stop the templates known now from widening: a later line that differs from one of
        them in a constant position gets a new template (so it can be reported as never seen
        instead of silently absorbed). Returns self."""
        self._frozen = set(self.clusters)
        return self

    @property
    def frozen(self) -> frozenset[int]:
        return frozenset(self._frozen)

    def _remember(self, tokens: tuple[str, ...], cid: int) -> None:
        if len(self._cache) >= _MAX_CACHE:
            self._cache.clear()  # a memo only: the tree still finds every cluster
        self._cache[tokens] = cid

    def add_many(self, messages: Iterable[str]) -> list[int]:
        """Mine messages in order; returns each one's cluster id."""
        ids: list[int] = []
        cache = self._cache
        clusters = self.clusters
        for tokens in mask_many(messages):
            cid = cache.get(tokens)
            if cid is None:
                cid = self._add_tokens(tokens).cluster_id
            else:  # the hot path: a masked shape seen before
                clusters[cid].size += 1
            ids.append(cid)
        return ids

    def match(self, message: str) -> LogCluster | None:
        """The cluster a message belongs to, without learning from it (None: never seen)."""
        tokens = tuple(mask_tokens(message))
        cid = self._cache.get(tokens)
        if cid is not None:
            return self.clusters[cid]
        leaf, _ = self._leaf(self._path(tokens), create=False)
        if leaf is None:
            return None
        best = self._best(leaf, tokens)
        return None if best is None else self.clusters[best]

    def _path(self, tokens: tuple[str, ...]) -> tuple[str, ...]:
        keys = [str(len(tokens))]
        for tok in tokens[: self.depth - 2]:
            keys.append(WILDCARD if WILDCARD in tok else tok)
        return tuple(keys)

    def _leaf(
        self, path: tuple[str, ...], *, create: bool
    ) -> tuple[_Node | None, tuple[str, ...]]:
        """The leaf for ``path`` and the branch keys actually taken to reach it."""
        node = self._root
        taken: list[str] = []
        for depth, key in enumerate(path):
            child = node.children.get(key)
            # a full node sends unseen tokens to its wildcard branch (Drain's max_children)
            if (
                child is None
                and depth > 0
                and key != WILDCARD
                and (not create or len(node.children) >= self.max_children)
            ):
                key = WILDCARD
                child = node.children.get(WILDCARD)
                if child is None and create:
                    child = node.children[WILDCARD] = _Node()
            if child is None:
                if not create:
                    return None, tuple(taken)
                child = node.children[key] = _Node()
            taken.append(key)
            node = child
        return node, tuple(taken)

    def _best(self, leaf: _Node, tokens: tuple[str, ...]) -> int | None:
        best: int | None = None
        best_key = (-1.0, -1)
        n = len(tokens)
        frozen = self._frozen
        for cid in leaf.clusters:
            tpl = self.clusters[cid].tokens
            if len(tpl) != n:
                continue
            same = 0
            params = 0
            informative = 0
            for a, b in zip(tpl, tokens, strict=True):
                if a == WILDCARD:
                    params += 1
                elif WILDCARD not in a:
                    # tokens that hold a variable ("<*>]", "id=<*>") agree by construction
                    # far more often than words do: they do not count as evidence
                    informative += 1
                    if a == b:
                        same += 1
                elif a != b:
                    informative += 1
            if cid in frozen and params + same < n and any(
                a != b and a != WILDCARD for a, b in zip(tpl, tokens, strict=True)
            ):
                continue  # a frozen template never widens: the line gets a template of its own
            # the share of constant words that agree; no word to compare: same shape, same key
            sim = same / informative if informative else 1.0
            key = (sim, params)
            if sim >= self.sim_threshold and key > best_key:
                best, best_key = cid, key
        return best

    # -- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "config": {
                "depth": self.depth,
                "sim_threshold": self.sim_threshold,
                "max_children": self.max_children,
            },
            "frozen": sorted(self._frozen),
            "clusters": [
                {"id": c.cluster_id, "tokens": list(c.tokens), "size": c.size, "path": list(c.path)}
                for c in self.clusters.values()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TemplateMiner:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"unsupported template miner format_version {version!r} "
                f"(this logsight reads {FORMAT_VERSION})"
            )
        miner = cls(**dict(data["config"]))
        for row in data["clusters"]:
            cluster = LogCluster(int(row["id"]), list(row["tokens"]), int(row["size"]),
                                 tuple(row["path"]))
            miner.clusters[cluster.cluster_id] = cluster
            leaf, _ = miner._leaf(cluster.path, create=True)
            assert leaf is not None
            leaf.clusters.append(cluster.cluster_id)
        miner._frozen = {int(c) for c in data.get("frozen", [])}
        return miner

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> TemplateMiner:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def templates(self) -> dict[int, str]:
        return {cid: c.template for cid, c in self.clusters.items()}
