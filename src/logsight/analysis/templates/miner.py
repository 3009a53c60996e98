"""Online log template mining: variable masking, a Drain-style parse tree, exact templates.

One configuration serves every log source. For each message, as it arrives:

1. **Masking** (:mod:`.masking`): variables are replaced by ``<*>`` with general rules (numbers,
   addresses, paths, URLs, ids holding a digit; key names, punctuation and units are kept).
   The masked key is the same as the ingest pipeline's ``logsight.template``.
2. **Tree search** (Drain, He et al. ICWS 2017): the masked token sequence is routed by its
   length, then by its first ``depth - 2`` tokens (a token holding ``<*>`` goes to a wildcard
   branch), to a leaf holding a few clusters. The most similar cluster (share of constant words
   that agree) is taken when the similarity reaches ``sim_threshold``; its template turns the
   differing positions into ``<*>``. Otherwise a new cluster starts.
3. **Per-position variability** keeps constants that merely hold a digit: a token the masking
   turned into a variable only because of a digit inside a name (``jk2_init()``, ``HTTP/1.1``,
   ``eth0``) is shown as itself while every line of the cluster has the very same token, once
   the cluster has ``min_support`` lines; the first line that differs makes it ``<*>`` for good.
   Plain numbers (``cuda:0``'s ``0``, sizes, counts) are always variables.

Clusters are numbered in order of creation; the numbers are stable across a save/load round
trip (:meth:`TemplateMiner.to_dict` / :meth:`TemplateMiner.from_dict`, plain JSON), so template
ids written next to log documents keep their meaning between runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from logsight.analysis.templates.masking import (
    DIGITS_TO_ZERO,
    WILDCARD,
    Masker,
    split_tokens,
)

FORMAT_VERSION = 2
_MAX_CACHE = 200_000  # bounded memo tables: an online miner runs for a long time
_PIECE_SPLIT = re.compile(r"[=,;()\[\]{}<>|\"':#@]+")
_PART_SPLIT = re.compile(r"[_\-./]+")
_DIGITS = frozenset("0123456789")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_HEX = frozenset("0123456789abcdefABCDEF")


def _digit_in_name(raw: str) -> bool:
    """A raw token whose every digit is glued to letters inside a name (``jk2_init()``,
    ``eth0``, ``log4j``): such a token may be a constant. A number anywhere - a piece or a
    ``_ - . /``-delimited part that is all digits (``blk_42``, ``job_0020``, ``HTTP/1.1``'s
    ``1.1``) - a path, or a hex string makes it a value."""
    named = False
    for piece in _PIECE_SPLIT.split(raw):
        if not _DIGITS.isdisjoint(piece):
            if piece[0] not in _LETTERS or _HEX.issuperset(piece):
                return False
            if any(part and _DIGITS.issuperset(part) for part in _PART_SPLIT.split(piece)):
                return False
            named = True
    return named and not raw.startswith(("/", "./", "../"))


def _aligned(
    message: str, masked: Sequence[str], token_mask: Callable[[str], str]
) -> list[str | None]:
    """The raw token behind each masked position (None where a run of variables collapsed)."""
    raw = split_tokens(message)
    if len(raw) == len(masked):
        return list(raw)
    out: list[str | None] = []
    prev_var = False
    for tok in raw:
        m = token_mask(tok)
        if m == WILDCARD and prev_var:
            out[-1] = None
            continue
        out.append(tok)
        prev_var = m == WILDCARD
    return out


@dataclass
class LogCluster:
    """One template: the masked tokens (``<*>`` where lines differ), how many lines it
    absorbed, and the tokens that held a digit but never varied (position -> raw token)."""

    cluster_id: int
    tokens: list[str]
    size: int = 0
    path: tuple[str, ...] = ()  # the tree branch it lives under (for persistence)
    constants: dict[int, str] = field(default_factory=dict)
    min_support: int = 2

    @property
    def template(self) -> str:
        if not self.constants or self.size < self.min_support:
            return " ".join(self.tokens)
        out = list(self.tokens)
        for pos, raw in self.constants.items():
            out[pos] = raw
        return " ".join(out)

    def observe(self, raw: list[str | None]) -> bool:
        """Drop the kept constants this line contradicts; True when one was dropped."""
        dropped = [p for p, tok in self.constants.items() if raw[p] != tok]
        for p in dropped:
            del self.constants[p]
        return bool(dropped)


class MatchResult(NamedTuple):
    cluster_id: int
    template: str
    is_new: bool  # a cluster was created for this line
    changed: bool  # an existing template was generalised by this line


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    clusters: list[int] = field(default_factory=list)


class TemplateMiner:
    """Online Drain-style template miner with general variable masking and exact templates.

    Parameters
    ----------
    depth:
        Tree depth as in Drain: length layer + ``depth - 2`` leading-token layers + leaf.
    sim_threshold:
        Minimum share of constant words that agree for a line to join a cluster.
    max_children:
        Maximum children per inner node; further distinct tokens share the wildcard branch.
    min_support:
        Lines a cluster needs before a digit-holding token that never varied is shown as a
        constant (below it, the masking decides).
    """

    def __init__(
        self,
        *,
        depth: int = 4,
        sim_threshold: float = 0.9,
        max_children: int = 100,
        min_support: int = 2,
    ) -> None:
        if depth < 3:
            raise ValueError(f"depth must be >= 3, got {depth}")
        if not 0.0 < sim_threshold <= 1.0:
            raise ValueError(f"sim_threshold must be in (0, 1], got {sim_threshold}")
        if max_children < 2:
            raise ValueError(f"max_children must be >= 2, got {max_children}")
        if min_support < 1:
            raise ValueError(f"min_support must be >= 1, got {min_support}")
        self.depth = depth
        self.sim_threshold = sim_threshold
        self.max_children = max_children
        self.min_support = min_support
        self.clusters: dict[int, LogCluster] = {}
        self._root = _Node()
        self._cache: dict[tuple[str, ...], int] = {}  # masked line -> cluster
        self._shapes: dict[str, int] = {}  # digit-shape of a line -> cluster (the hot path)
        self._frozen: set[int] = set()
        self._mask = Masker()

    # -- mining ------------------------------------------------------------------------------
    def add(self, message: str) -> MatchResult:
        """Mine one message: join (and maybe generalise) a cluster, or start one."""
        key = message.translate(DIGITS_TO_ZERO)
        cid = self._shapes.get(key)
        if cid is None:
            return self._add_shape(message, key)
        cluster = self.clusters[cid]
        cluster.size += 1
        changed = bool(cluster.constants) and cluster.observe(
            _aligned(message, cluster.tokens, self._mask.token)
        )
        return MatchResult(cid, cluster.template, False, changed)

    def add_many(self, messages: Iterable[str]) -> list[int]:
        """Mine messages in order; returns each one's cluster id."""
        messages = list(messages)
        joined = "\n".join(messages)
        if joined.count("\n") != len(messages) - 1:  # a message holds a newline itself
            return [self.add(m).cluster_id for m in messages]
        keys = joined.translate(DIGITS_TO_ZERO).split("\n") if messages else []
        ids: list[int] = []
        shapes = self._shapes
        clusters = self.clusters
        token = self._mask.token
        for message, key in zip(messages, keys, strict=True):
            cid = shapes.get(key)
            if cid is None:
                cid = self._add_shape(message, key).cluster_id
            else:  # the hot path: a digit-shape seen before
                cluster = clusters[cid]
                cluster.size += 1
                if cluster.constants:
                    cluster.observe(_aligned(message, cluster.tokens, token))
            ids.append(cid)
        return ids

    def _add_shape(self, message: str, key: str) -> MatchResult:
        """A line whose digit-shape ``key`` has no cluster yet (or is not digit-blind)."""
        tokens = self._mask.shaped(message, key)
        cid = self._cache.get(tokens)
        if cid is None:
            result = self._add_tokens(message, tokens)
        else:
            cluster = self.clusters[cid]
            cluster.size += 1
            changed = bool(cluster.constants) and cluster.observe(
                _aligned(message, cluster.tokens, self._mask.token)
            )
            result = MatchResult(cid, cluster.template, False, changed)
        if self._mask.digit_blind(key):
            if len(self._shapes) >= _MAX_CACHE:
                self._shapes.clear()
            self._shapes[key] = result.cluster_id
        return result

    def _add_tokens(self, message: str, tokens: tuple[str, ...]) -> MatchResult:
        leaf, path = self._leaf(self._path(tokens), create=True)
        assert leaf is not None
        best = self._best(leaf, tokens)
        if best is None:
            return self._new_cluster(message, tokens, leaf, path)
        cluster = self.clusters[best]
        cluster.size += 1
        changed = False
        for i, (a, b) in enumerate(zip(cluster.tokens, tokens, strict=True)):
            if a != b and a != WILDCARD:
                cluster.tokens[i] = WILDCARD
                cluster.constants.pop(i, None)
                changed = True
        if cluster.constants:
            changed = cluster.observe(_aligned(message, tokens, self._mask.token)) or changed
        self._remember(tokens, best)
        return MatchResult(best, cluster.template, False, changed)

    def _new_cluster(
        self, message: str, tokens: tuple[str, ...], leaf: _Node, path: tuple[str, ...]
    ) -> MatchResult:
        cid = len(self.clusters) + 1
        raw = _aligned(message, tokens, self._mask.token)
        constants = {
            i: r for i, (r, t) in enumerate(zip(raw, tokens, strict=True))
            if r is not None and r != t and _digit_in_name(r)
        }
        cluster = LogCluster(cid, list(tokens), 1, path, constants, self.min_support)
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

    def match(self, message: str) -> LogCluster | None:
        """The cluster a message belongs to, without learning from it (None: never seen)."""
        tokens = self._mask(message)
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
                "min_support": self.min_support,
            },
            "frozen": sorted(self._frozen),
            "clusters": [
                {"id": c.cluster_id, "tokens": list(c.tokens), "size": c.size,
                 "path": list(c.path), "constants": {str(k): v for k, v in c.constants.items()}}
                for c in self.clusters.values()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TemplateMiner:
        version = data.get("format_version")
        if version not in (1, FORMAT_VERSION):
            raise ValueError(
                f"unsupported template miner format_version {version!r} "
                f"(this logsight reads 1 and {FORMAT_VERSION})"
            )
        miner = cls(**dict(data["config"]))
        for row in data["clusters"]:
            constants = {int(k): str(v) for k, v in dict(row.get("constants", {})).items()}
            cluster = LogCluster(int(row["id"]), list(row["tokens"]), int(row["size"]),
                                 tuple(row["path"]), constants, miner.min_support)
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
