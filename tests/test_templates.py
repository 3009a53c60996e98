"""Template miner: masking rules, generalisation rules, persistence, accuracy measures, and a
quality floor on the shared Loghub sets (GA and PA, corrected labels)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logsight.analysis.templates import (
    WILDCARD,
    TemplateMiner,
    fnv1a64,
    ingest_template,
    mask,
    mask_many,
    mask_tokens,
)
from logsight.analysis.templates.accuracy import accuracy, load_loghub, normalize_template
from logsight.analysis.templates.masking import digit_in_name


# -- masking: each case pins one rule (see logsight.analysis.templates.masking) ------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # a piece holding a digit is a variable; words are constants
        ("PacketResponder 1 for block blk_-6952 terminating",
         "PacketResponder <*> for block <*> terminating"),
        ("id 123e4567-e89b-12d3-a456-426614174000 done", "id <*> done"),
        ("read 0xdeadbeef from reg", "read <*> from reg"),
        # host and port are two variables, a leading slash belongs to the address
        ("connect to 10.0.0.12:50010 failed", "connect to <*>:<*> failed"),
        ("Served /10.0.0.1:50010 ok", "Served <*>:<*> ok"),
        ("Old: host-1/10.0.0.1:9000 New: host-1:9000", "Old: <*>/<*>:<*> New: <*>:<*>"),
        ("connect www.example.org:443 ok", "connect <*>:<*> ok"),
        # MAC and IPv6 addresses are one variable
        ("addr fe80::1ff:fe23:4567:890a up", "addr <*> up"),
        ("mac 00:1A:2B:3C:4D:5E up", "mac <*> up"),
        # units stay: a glued unit is part of the number, a separate unit is a word
        ("took 35ms (max 1.5s)", "took <*> (max <*>)"),
        ("done in 5 ms.", "done in <*> ms."),
        ("allocating 512 MiB on cuda:0", "allocating <*> MiB on cuda:<*>"),
        # key=value: the key and the punctuation stay, the value is masked
        ("size=1024, count=3;", "size=<*>, count=<*>;"),
        ("user=alice id=7", "user=alice id=<*>"),
        ("PSR0=00ff PSR1=0 ok", "PSR0=<*> PSR1=<*> ok"),
        ("headroom=<memory:1024, vCores:1>", "headroom=<memory:<*>, vCores:<*>>"),
        ("ok=true obj=null", "ok=<*> obj=<*>"),
        # quoted strings: the quotes stay, words inside are constants, variables are masked
        ("user 'alice' logged in", "user 'alice' logged in"),
        ('key "abc" missing', 'key "abc" missing'),
        ('q "GET /a/1 HTTP/1.1" 200', 'q "GET <*> <*>" <*>'),
        ("don't retry", "don't retry"),
        # paths, URLs (the scheme stays), query strings belong to the path
        ("open /var/log/app.log and /etc/passwd", "open <*> and <*>"),
        ("sending to /default-rack", "sending to <*>"),
        ("loading ./lib.so", "loading <*>"),
        ("log C:\\Windows\\Logs\\CBS.log.", "log <*>."),
        ("GET https://example.com/a/b?x=1 ok", "GET https://<*> ok"),
        ("GET /v2/abc/servers?all=True&x=1 HTTP/1.1 ok", "GET <*> ok"),
        ("a / b", "a / b"),
        ("load/store op", "load/store op"),
        # a version number is a number; a number glued to a word by a slash is one variable
        ("proto HTTP/1.1 up", "proto <*> up"),
        # numbered names, dotted leaders, trailing sentence punctuation
        ("generating core.2275", "generating core.<*>"),
        ("fetch......0", "fetch......<*>"),
        ("job job_42_0001.", "job <*>."),
        # dates and times: digit groups are separate numbers, a run of variables is one
        ("from 2017-05-16 00:00:00 to", "from <*>-<*>-<*> <*>:<*>:<*> to"),
        ("started at 2024-05-01T10:00:00.123Z by cron", "started at <*>:<*>:<*> by cron"),
        # variable-length variables: consecutive variables collapse into one, but a name with
        # a digit keeps its place (the miner shows it when it never varies)
        ("copied 1 2 3 4 files", "copied <*> files"),
        ("port 22 ssh2", "port <*> <*>"),
        # a weekday or month name next to a number is part of a date
        ("at Sun Jul 10 03:55:15 2005 by cron", "at <*> <*>:<*>:<*> <*> by cron"),
        ("Date: Mon, 10 Jul 2005", "Date: <*>, <*>"),
        ("May I help on Monday", "May I help on Monday"),
        ("x <*><*> y", "x <*> y"),
        ("", ""),
    ],
)
def test_mask_known_values(line: str, expected: str) -> None:
    assert mask(line) == expected


def test_mask_many_matches_mask_tokens() -> None:
    lines = ["a 1 b", "a 22 b", "x /p/q y", "", "multi\nline 5", "PSR0=1", "PSR1=1"]
    assert [list(t) for t in mask_many(lines)] == [mask_tokens(m) for m in lines]
    # digits in a key name are kept, so those two lines do not share a shape
    assert mask("PSR0=1") != mask("PSR1=1")
    assert mask_many([]) == []


def test_whitespace_is_ascii_whitespace() -> None:
    # the ingest script splits on the same characters (a no-break space is not one)
    assert mask_tokens("a\tb\x1c c\xa0d 1") == ["a", "b", "c\xa0d", WILDCARD]


def test_ingest_template_id_is_fnv1a64() -> None:
    # known FNV-1a 64 values (offset basis for "", the published vector for "a")
    assert fnv1a64("") == "cbf29ce484222325"
    assert fnv1a64("a") == "af63dc4c8601ec8c"
    assert ingest_template("user 42 logged in") == (
        "user <*> logged in", fnv1a64("user <*> logged in"))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=80))
def test_masking_is_stable_and_collapses_runs(text: str) -> None:
    masked = mask(text)
    # masking a template changes nothing but the runs a name with a digit had kept apart
    assert normalize_template(mask(masked)) == normalize_template(masked)
    tokens = mask_tokens(text)
    raw = text.split()
    if len(tokens) == len(raw):
        for i in range(len(tokens) - 1):
            # runs of variables are one variable, unless one of them may be a name
            if tokens[i] == tokens[i + 1] == WILDCARD:
                assert digit_in_name(raw[i]) or digit_in_name(raw[i + 1]), (text, masked)
    # a digit survives only inside a key name (a word before "=")
    for tok in masked.split():
        if any(c in "0123456789" for c in tok):
            assert "=" in tok, (text, masked)


# -- mining: grouping and generalisation rules -----------------------------------------------
@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(["alpha", "beta", "gamma", "7", "x9", "/a/b", "delta"]),
                 min_size=1, max_size=8).map(" ".join),
        min_size=1, max_size=40,
    )
)
def test_every_line_fits_its_template(lines: list[str]) -> None:
    miner = TemplateMiner()
    ids = miner.add_many(lines)
    for line, cid in zip(lines, ids, strict=True):
        tpl = miner.clusters[cid].root().tokens
        tokens = mask_tokens(line)
        assert len(tpl) == len(tokens)
        for a, b in zip(tpl, tokens, strict=True):
            pre, _, suf = a.partition(WILDCARD)
            assert a == b or (WILDCARD in a and b.startswith(pre) and b.endswith(suf)), (a, b)
        shown = miner.clusters[cid].root().template.split()
        raw = line.split()
        # a shown constant that the masking had made a variable is the line's own token
        for pos, tok in enumerate(shown):
            if tok != tpl[pos]:
                assert tok in raw
    assert sum(c.size for c in miner.clusters.values()) == len(lines)


def test_a_differing_word_is_a_different_template() -> None:
    miner = TemplateMiner()
    a = miner.add("[instance: 7] VM Resumed (Lifecycle Event)")
    b = miner.add("[instance: 9] VM Paused (Lifecycle Event)")
    assert a.cluster_id != b.cluster_id
    assert b.template == "[instance: <*>] VM Paused (Lifecycle Event)"


def test_long_messages_generalise_a_varying_word() -> None:
    miner = TemplateMiner()
    words = "Connection from {} closed by peer after a long idle period of inactivity now"
    a = miner.add(words.format("alice"))
    b = miner.add(words.format("bob"))
    assert a.is_new and not b.is_new and b.changed
    assert a.cluster_id == b.cluster_id
    assert miner.clusters[a.cluster_id].template == words.format(WILDCARD)
    # different lengths never share a template
    d = miner.add("Connection from bob closed")
    assert d.cluster_id != a.cluster_id


def test_a_word_that_takes_many_values_is_a_variable() -> None:
    """Templates that differ only in one word merge once that word took ``merge_after``
    values (user names, program names - also as the first word, where the tree cannot help);
    a few values (states) stay apart."""
    miner = TemplateMiner(merge_after=4)
    users = ["root", "admin", "oracle", "guest", "alice", "bob"]
    lines = [f"Failed password for invalid user {u} from 10.0.0.{i} port {i} ssh2"
             for i, u in enumerate(users)]
    lines += [f"{p}.exe - www.example.org:443 open through proxy proxy.example.org:5070 HTTPS"
              for p in ("chrome", "firefox", "dropbox", "outlook", "slack")]
    states = [f"[instance: {i}] VM {s} (Lifecycle Event)"
              for i, s in enumerate(["Started", "Stopped", "Paused"] * 2)]
    ids = miner.add_many(lines + states)
    final = miner.final_ids(ids)
    assert len(set(final[:6])) == 1
    assert miner.clusters[final[0]].template == (
        "Failed password for invalid user <*> from <*> port <*> ssh2")
    assert len(set(final[6:11])) == 1
    assert miner.clusters[final[6]].template == (
        "<*> - <*>:<*> open through proxy <*>:<*> HTTPS")
    assert len(set(final[11:])) == 3
    # lines after the merge are assigned to the merged template on arrival
    later = miner.add("Failed password for invalid user zed from 10.0.0.9 port 9 ssh2")
    assert later.cluster_id == final[0] and not later.is_new
    assert sum(c.size for c in miner.clusters.values()) == len(ids) + 1
    # the merge survives persistence
    loaded = TemplateMiner.from_dict(json.loads(json.dumps(miner.to_dict())))
    assert loaded.final_ids(ids) == final
    assert loaded.templates() == miner.templates()


def test_a_generalised_value_keeps_its_key_and_punctuation() -> None:
    miner = TemplateMiner(merge_after=3)
    for user in ("root", "news", "cyrus"):
        last = miner.add(f"session opened for user={user}, by cron daemon")
    assert last.template == "session opened for user=<*>, by cron daemon"
    # a later value fits the key's variable
    again = miner.add("session opened for user=mail, by cron daemon")
    assert again.cluster_id == last.cluster_id and not again.changed
    words = "Connection from peer {} closed by remote side after a long idle period now"
    miner.add(words.format("state=idle;"))
    assert miner.add(words.format("state=busy;")).template == words.format("state=<*>;")


def test_digit_in_a_name_is_constant_until_it_varies() -> None:
    """``jk2_init()``/``HTTP2``: constant in one template (it never varies there), variable in
    another (it does)."""
    miner = TemplateMiner()
    for child in (11, 12, 13):
        miner.add(f"jk2_init() Found child {child} in scoreboard slot 4")
    const = miner.add("jk2_init() Found child 14 in scoreboard slot 5")
    assert const.template == "jk2_init() Found child <*> in scoreboard slot <*>"
    one = miner.add("served via HTTP2 in 5 ms")
    assert one.template == "served via <*> in <*> ms"  # one line: the masking decides
    assert miner.add("served via HTTP2 in 7 ms").template == "served via HTTP2 in <*> ms"
    varied = miner.add("served via HTTP3 in 9 ms")
    assert varied.changed and varied.template == "served via <*> in <*> ms"
    assert miner.add("served via HTTP2 in 1 ms").template == "served via <*> in <*> ms"


def test_numbers_and_ids_are_variables_even_when_constant() -> None:
    miner = TemplateMiner()
    for _ in range(3):
        last = miner.add("allocating 512 MiB on cuda:0 for job_0001 via HTTP/1.1")
    # a device number, an id with a number part and a version number are values
    assert last.template == "allocating <*> MiB on cuda:<*> for <*> via <*>"


def test_add_and_add_many_agree() -> None:
    lines = ["jk2_init() Found child 1 in slot 2", "jk2_init() Found child 3 in slot 4",
             "Disk quota exceeded on volume data", "Connection from bob closed"]
    one = TemplateMiner()
    ids = [one.add(m).cluster_id for m in lines]
    many = TemplateMiner()
    assert many.add_many(lines) == ids
    assert many.templates() == one.templates()


def test_match_does_not_learn() -> None:
    miner = TemplateMiner()
    miner.add("job 12 finished in 3s")
    assert miner.match("job 99 finished in 7s") is not None
    assert miner.match("totally different words here") is None
    assert len(miner.clusters) == 1
    assert miner.clusters[1].size == 1


def test_frozen_templates_do_not_widen() -> None:
    miner = TemplateMiner(sim_threshold=0.8)
    miner.add_many(["Connection established to db host a", "Connection established to db host b"])
    miner.freeze()
    new = miner.add("Connection refused to db host c")
    assert new.is_new
    assert miner.clusters[1].template == "Connection established to db host <*>"
    assert miner.add("Connection established to db host q").cluster_id == 1


def test_persistence_round_trip(tmp_path: Path) -> None:
    lines = [f"worker {i} processed batch {i * 7} in {i}ms via eth0" for i in range(20)]
    lines += ["cache miss for key user", "cache miss for key item", "shutting down"]
    miner = TemplateMiner(sim_threshold=0.6, depth=5, max_children=10, min_support=3)
    ids = miner.add_many(lines)
    miner.freeze()
    path = tmp_path / "miner.json"
    miner.save(path)
    json.loads(path.read_text())  # plain JSON, no pickle
    loaded = TemplateMiner.load(path)
    assert loaded.templates() == miner.templates()
    assert "eth0" in loaded.templates()[ids[0]]  # the kept constant survives the round trip
    assert (loaded.depth, loaded.sim_threshold, loaded.max_children, loaded.min_support) == (
        5, 0.6, 10, 3)
    assert loaded.frozen == miner.frozen
    # the restored tree routes lines to the same clusters, and new ids continue the sequence
    assert loaded.add_many(lines) == ids
    fresh = loaded.add("a brand new message").cluster_id
    assert fresh == max(ids) + 1


def test_persistence_reads_format_1() -> None:
    old = {"format_version": 1, "config": {"depth": 4, "sim_threshold": 0.7, "max_children": 100},
           "frozen": [1], "clusters": [{"id": 1, "tokens": ["disk", "<*>", "full"], "size": 3,
                                         "path": ["3", "disk", "<*>"]}]}
    miner = TemplateMiner.from_dict(old)
    assert miner.templates() == {1: "disk <*> full"}
    assert miner.add("disk 7 full").cluster_id == 1


def test_persistence_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="format_version"):
        TemplateMiner.from_dict({"format_version": 99, "config": {}, "clusters": []})


@pytest.mark.parametrize(
    "kwargs",
    [{"depth": 2}, {"sim_threshold": 0.0}, {"sim_threshold": 1.5}, {"max_children": 1},
     {"min_support": 0}, {"merge_after": 1}],
)
def test_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TemplateMiner(**kwargs)  # type: ignore[arg-type]  # the bad values are the point


# -- accuracy measures -------------------------------------------------------------------------
def test_accuracy_known_values() -> None:
    # truth: A A B C; predicted groups: {1,2} exact (template right), {3,4} merges B and C
    a = accuracy(["A", "A", "B", "C"], ["x <*>", "x <*>", "y", "z"],
                 [1, 1, 2, 2], ["x  <*> <*>", "x <*>", "<*>", "<*>"])
    assert a.ga == pytest.approx(0.5)
    assert a.pa == pytest.approx(0.5)  # whitespace and <*> runs are normalised
    # 1 exact group of 2 predicted and 3 true: P=1/2, R=1/3
    assert a.fga == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert a.fta == pytest.approx(a.fga)
    assert normalize_template(" a  <*>  <*> b ") == "a <*> b"
    with pytest.raises(ValueError):
        accuracy(["A"], ["a"], [1, 2], ["a", "b"])


def test_quality_floor_on_loghub(datasets: Path) -> None:
    """One configuration for every system, corrected labels; the benchmark prints the figures
    (measured: mean GA 0.983, PA 0.948; every system GA >= 0.92, PA >= 0.87)."""
    logs = load_loghub(datasets / "loghub-2k")
    if not logs:
        pytest.skip("no Loghub-2k structured files")
    assert all(log.corrected for log in logs)
    scores = {}
    for log in logs:
        miner = TemplateMiner()
        ids = miner.final_ids(miner.add_many(log.messages))
        final = miner.templates()
        scores[log.system] = accuracy(log.true_ids, log.true_templates, ids,
                                      [final[i] for i in ids])
    k = len(scores)
    mean_ga = sum(a.ga for a in scores.values()) / k
    mean_pa = sum(a.pa for a in scores.values()) / k
    assert mean_ga >= 0.975, scores
    assert mean_pa >= 0.94, scores
    assert min(a.ga for a in scores.values()) >= 0.9, scores
    assert min(a.pa for a in scores.values()) >= 0.85, scores


def test_a_reloaded_miner_assigns_shared_logs_as_the_original(datasets: Path) -> None:
    """Stable ids: after a save/load round trip (empty memo tables) every line of every shared
    system goes to the template it went to before, and add() agrees with add_many()."""
    logs = load_loghub(datasets / "loghub-2k")
    if not logs:
        pytest.skip("no Loghub-2k structured files")
    for log in logs:
        miner = TemplateMiner()
        ids = miner.final_ids(miner.add_many(log.messages))
        one = TemplateMiner()
        assert one.final_ids([one.add(m).cluster_id for m in log.messages]) == ids, log.system
        loaded = TemplateMiner.from_dict(json.loads(json.dumps(miner.to_dict())))
        assert loaded.final_ids(loaded.add_many(log.messages)) == ids, log.system
