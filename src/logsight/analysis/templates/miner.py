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
   turned into a variable only because of a digit glued to letters inside a name
   (``jk2_init()``, ``ssh2``, ``eth0``) is shown as itself while every line of the cluster has
   the very same token, once the cluster has ``min_support`` lines; the first line that differs
   makes it ``<*>`` for good. Numbers - alone or as a part (``cuda:0``'s ``0``, ``job_0020``,
   ``HTTP/1.1``'s ``1.1``), sizes, counts, hex - are always variables, as labellers see them.
4. **Variants**: templates that are the same but for one word (and share at least
   ``_MIN_CONTEXT_WORDS`` other words) become one template with ``<*>`` there once that word has
   taken ``merge_after`` different values (user, host, program names); fewer values stay apart
   (states such as ``Started``/``Stopped``). This does not depend on the tree, so it also works
   for a varying first word. Ids handed out before a merge keep working: the merged cluster
   answers for them (:meth:`TemplateMiner.final_ids`, ``LogCluster.root``).

Clusters are numbered in order of creation; the numbers are stable across a save/load round
trip (:meth:`TemplateMiner.to_dict` / :meth:`TemplateMiner.from_dict`, plain JSON), so template
ids written next to log documents keep their meaning between runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from logsight.analysis.templates.masking import (
    DIGITS_TO_ZERO,
    WILDCARD,
    Masker,
    collapse,
    split_tokens,
)

FORMAT_VERSION = 2
_MAX_CACHE = 200_000  # bounded memo tables: an online miner runs for a long time
_MAX_VARIANT_TOKENS = 48  # longer templates are not indexed for variants (cost ~ length^2)
_MIN_CONTEXT_WORDS = 3  # words besides the varying one that variants must share
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_KEY_END = frozenset("=:")  # a key ends here: user=, id:
_CLOSING = frozenset(",;.)]}>'\"!?")


def _fits(tpl: str, tok: str) -> bool:
    """Whether a line's token fits a template token: equal, ``<*>``, or a key's value
    (``user=<*>`` takes ``user=bob``)."""
    if tpl in (tok, WILDCARD):
        return True
    i = tpl.find(WILDCARD)
    if i <= 0 or tpl[i - 1] not in _KEY_END or WILDCARD in tpl[i + 3:]:
        return False
    pre, suf = tpl[:i], tpl[i + 3:]
    return len(tok) > len(pre) + len(suf) and tok.startswith(pre) and tok.endswith(suf)


def _generalise(a: str, b: str) -> str:
    """The template token for two tokens that differ: ``<*>``, keeping a shared key and the
    closing punctuation after it (``user=root``, ``user=bob`` -> ``user=<*>``)."""
    k = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        k += 1
    while k > 0 and a[k - 1] not in _KEY_END:
        k -= 1
    if k == 0 or WILDCARD in a[:k]:
        return WILDCARD
    ra, rb = a[k:], b[k:]
    j = 0
    while j < min(len(ra), len(rb)) and ra[-1 - j] == rb[-1 - j] and ra[-1 - j] in _CLOSING:
        j += 1
    return a[:k] + WILDCARD + (ra[len(ra) - j:] if j else "")


def _aligned(message: str, masked: Sequence[str], masker: Masker) -> list[str | None]:
    """The raw token behind each masked position (None where a run of variables collapsed)."""
    raw = split_tokens(message)
    if len(raw) == len(masked):
        return list(raw)
    keep = collapse(raw, masker.full(raw), masker.named)
    out: list[str | None] = []
    for k, i in enumerate(keep):
        nxt = keep[k + 1] if k + 1 < len(keep) else len(raw)
        out.append(raw[i] if nxt == i + 1 else None)  # a collapsed run has no one raw token
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
    # set when this template was found to be a variant of another (a word position that took
    # many values): its lines belong to that one from then on
    parent: LogCluster | None = field(default=None, repr=False, compare=False)

    def root(self) -> LogCluster:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    @property
    def template(self) -> str:
        if self.parent is not None:
            return self.root().template
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


_Step = tuple[int, bool, bool]  # cluster id, is_new, changed (a MatchResult without its text)


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
    merge_after:
        Templates that are the same but for one word become one template with a variable
        there once that position has taken this many different words (a user, host or
        program name); fewer variants stay apart (states such as ``Started``/``Stopped``).
        This also works where the tree cannot, for a varying first word.
    """

    def __init__(
        self,
        *,
        depth: int = 4,
        sim_threshold: float = 0.9,
        max_children: int = 100,
        min_support: int = 2,
        merge_after: int = 5,
    ) -> None:
        if depth < 3:
            raise ValueError(f"depth must be >= 3, got {depth}")
        if not 0.0 < sim_threshold <= 1.0:
            raise ValueError(f"sim_threshold must be in (0, 1], got {sim_threshold}")
        if max_children < 2:
            raise ValueError(f"max_children must be >= 2, got {max_children}")
        if min_support < 1:
            raise ValueError(f"min_support must be >= 1, got {min_support}")
        if merge_after < 2:
            raise ValueError(f"merge_after must be >= 2, got {merge_after}")
        self.depth = depth
        self.sim_threshold = sim_threshold
        self.max_children = max_children
        self.min_support = min_support
        self.merge_after = merge_after
        self.clusters: dict[int, LogCluster] = {}
        self._root = _Node()
        self._cache: dict[tuple[str, ...], int] = {}  # masked line -> cluster
        self._shapes: dict[str, int] = {}  # digit-shape of a line -> cluster (the hot path)
        self._frozen: set[int] = set()
        self._mask = Masker()
        # template with one word position wildcarded -> the templates that share it
        self._siblings: dict[int, list[int]] = {}
        self._merged: dict[int, int] = {}  # such a template -> the cluster it was merged into
        self._merged_rows: list[tuple[int, list[str], int]] = []  # the same, to persist

    # -- mining ------------------------------------------------------------------------------
    def add(self, message: str) -> MatchResult:
        """Mine one message: join (and maybe generalise) a cluster, or start one."""
        key = message.translate(DIGITS_TO_ZERO)
        cid = self._shapes.get(key)
        if cid is None:
            cid, is_new, changed = self._add_shape(message, key)
            return MatchResult(cid, self.clusters[cid].template, is_new, changed)
        cluster = self.clusters[cid]
        if cluster.parent is not None:
            cluster = cluster.root()
        cluster.size += 1
        changed = bool(cluster.constants) and cluster.observe(
            _aligned(message, cluster.tokens, self._mask)
        )
        return MatchResult(cluster.cluster_id, cluster.template, False, changed)

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
        masker = self._mask
        for message, key in zip(messages, keys, strict=True):
            cid = shapes.get(key)
            if cid is None:
                cid = self._add_shape(message, key)[0]
            else:  # the hot path: a digit-shape seen before
                cluster = clusters[cid]
                if cluster.parent is not None:
                    cluster = cluster.root()
                    cid = cluster.cluster_id
                cluster.size += 1
                if cluster.constants:
                    cluster.observe(_aligned(message, cluster.tokens, masker))
            ids.append(cid)
        return ids

    def _add_shape(self, message: str, key: str) -> _Step:
        """A line whose digit-shape ``key`` has no cluster yet (or is not digit-blind)."""
        tokens = self._mask.shaped(message, key)
        cid = self._cache.get(tokens)
        if cid is None:
            result = self._add_tokens(message, tokens)
        else:
            cluster = self.clusters[cid].root()
            cluster.size += 1
            changed = bool(cluster.constants) and cluster.observe(
                _aligned(message, cluster.tokens, self._mask)
            )
            result = (cluster.cluster_id, False, changed)
        if self._mask.digit_blind(key):
            if len(self._shapes) >= _MAX_CACHE:
                self._shapes.clear()
            self._shapes[key] = result[0]
        return result

    def _add_tokens(self, message: str, tokens: tuple[str, ...]) -> _Step:
        leaf, path = self._leaf(self._path(tokens), create=True)
        assert leaf is not None
        best = self._best(leaf, tokens)
        if best is not None:
            best = self.clusters[best].root().cluster_id
        else:
            best = self._merged_target(tokens)
        if best is None:
            return self._new_cluster(message, tokens, leaf, path)
        cluster = self.clusters[best]
        cluster.size += 1
        changed = False
        for i, (a, b) in enumerate(zip(cluster.tokens, tokens, strict=True)):
            if not _fits(a, b):
                cluster.tokens[i] = _generalise(a, b)
                cluster.constants.pop(i, None)
                changed = True
        if cluster.constants:
            changed = cluster.observe(_aligned(message, tokens, self._mask)) or changed
        self._remember(tokens, best)
        return best, False, changed

    def _new_cluster(
        self, message: str, tokens: tuple[str, ...], leaf: _Node, path: tuple[str, ...]
    ) -> _Step:
        cid = len(self.clusters) + 1
        raw = _aligned(message, tokens, self._mask)
        constants = {
            i: r for i, (r, t) in enumerate(zip(raw, tokens, strict=True))
            if r is not None and r != t and self._mask.named(r)
        }
        cluster = LogCluster(cid, list(tokens), 1, path, constants, self.min_support)
        self.clusters[cid] = cluster
        leaf.clusters.append(cid)
        self._remember(tokens, cid)
        merged = self._register(cluster)
        if merged is not None:
            return merged.cluster_id, False, True
        return cid, True, False

    # -- variants: templates that differ in one word position --------------------------------
    @staticmethod
    def _word_positions(tokens: Sequence[str]) -> list[int]:
        """Positions of the words that may be variants of one another: only in templates
        with enough other words around them to say two templates are the same message."""
        if len(tokens) > _MAX_VARIANT_TOKENS:
            return []
        words = [i for i, t in enumerate(tokens)
                 if WILDCARD not in t and not _LETTERS.isdisjoint(t)]
        return words if len(words) > _MIN_CONTEXT_WORDS else []

    @staticmethod
    def _signature(tokens: Sequence[str], pos: int) -> int:
        """The template with position ``pos`` wildcarded, as a hash (the index holds one entry
        per word of every template; this process only - persistence stores the tokens)."""
        return hash((pos, *tokens[:pos], *tokens[pos + 1:]))

    def _merged_target(self, tokens: Sequence[str]) -> int | None:
        """The merged template a line without a cluster of its own belongs to, if any."""
        if not self._merged:
            return None
        for pos in self._word_positions(tokens):
            cid = self._merged.get(self._signature(tokens, pos))
            if cid is None or cid in self._frozen:
                continue
            root = self.clusters[cid].root()
            if len(root.tokens) == len(tokens) and all(
                _fits(a, b) for a, b in zip(root.tokens, tokens, strict=True)
            ):
                return root.cluster_id
        return None

    def _register(self, cluster: LogCluster) -> LogCluster | None:
        """Index a new template by its one-word-wildcarded forms; when one such form has
        ``merge_after`` distinct words, its templates become one (returned)."""
        if len(self._siblings) >= _MAX_CACHE:
            self._siblings.clear()  # a memo only: variants seen later are counted again
        for pos in self._word_positions(cluster.tokens):
            sig = self._signature(cluster.tokens, pos)
            group = self._siblings.setdefault(sig, [])
            group.append(cluster.cluster_id)
            if len(group) < self.merge_after:
                continue
            # the members as they are now (a template may have widened since it was indexed)
            members = [
                m for m in (self.clusters[c] for c in group)
                if m.parent is None and self._signature(m.tokens, pos) == sig
            ]
            group[:] = [m.cluster_id for m in members]
            if any(m.cluster_id in self._frozen for m in members):
                continue
            if len({m.tokens[pos] for m in members}) < self.merge_after:
                continue
            head = members[0]
            word = head.tokens[pos]
            for m in members[1:]:
                word = _generalise(word, m.tokens[pos])
            head.tokens[pos] = word
            head.constants.pop(pos, None)
            for m in members[1:]:
                m.parent = head
                head.size += m.size
                m.size = 0
            self._merged[sig] = head.cluster_id
            self._merged_rows.append((pos, [*head.tokens[:pos], WILDCARD, *head.tokens[pos + 1:]],
                                      head.cluster_id))
            del self._siblings[sig]
            return head
        return None

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
            return self.clusters[cid].root()
        leaf, _ = self._leaf(self._path(tokens), create=False)
        if leaf is None:
            return None
        best = self._best(leaf, tokens)
        return None if best is None else self.clusters[best].root()

    def final_ids(self, ids: Iterable[int]) -> list[int]:
        """The id each cluster id stands for now: templates later found to be variants of one
        another (see ``merge_after``) answer with the one they were merged into."""
        clusters = self.clusters
        return [clusters[c].root().cluster_id for c in ids]

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
        best_key = (-1.0, -(1 << 30))
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
                elif not _fits(a, b):
                    informative += 1
            if cid in frozen and params + same < n and not all(
                _fits(a, b) for a, b in zip(tpl, tokens, strict=True)
            ):
                continue  # a frozen template never widens: the line gets a template of its own
            # the share of constant words that agree; no word to compare: same shape, same key
            sim = same / informative if informative else 1.0
            # ties go to the most specific template (fewest variables): the one a line that
            # created it would find again after a reload, when the memo tables are empty
            key = (sim, -params)
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
                "merge_after": self.merge_after,
            },
            "frozen": sorted(self._frozen),
            "clusters": [
                {"id": c.cluster_id, "tokens": list(c.tokens), "size": c.size,
                 "path": list(c.path), "constants": {str(k): v for k, v in c.constants.items()},
                 "parent": None if c.parent is None else c.parent.cluster_id}
                for c in self.clusters.values()
            ],
            "merged": [[pos, tokens, cid] for pos, tokens, cid in self._merged_rows],
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
        for row in data["clusters"]:
            if row.get("parent") is not None:
                miner.clusters[int(row["id"])].parent = miner.clusters[int(row["parent"])]
        miner._frozen = {int(c) for c in data.get("frozen", [])}
        for pos, tokens, cid in data.get("merged", []):
            miner._merged[miner._signature(tokens, int(pos))] = int(cid)
            miner._merged_rows.append((int(pos), list(tokens), int(cid)))
        for cluster in miner.clusters.values():  # the variant index, without merging again
            if cluster.parent is None:
                for pos in miner._word_positions(cluster.tokens):
                    sig = miner._signature(cluster.tokens, pos)
                    miner._siblings.setdefault(sig, []).append(cluster.cluster_id)
        return miner

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> TemplateMiner:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def templates(self) -> dict[int, str]:
        return {cid: c.template for cid, c in self.clusters.items()}
