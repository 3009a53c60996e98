"""The drift / performance CLI against the real engine when the question has no answer:
ages as times, an unknown model / namespace / version / baseline version, a task that does
not fit the labels. Each gets a clear message and a non-zero exit, never an empty table."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from logsight import names
from logsight.cli import main
from logsight.sources import mlevents as M

pytestmark = pytest.mark.engine

def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@pytest.fixture
def seeded(engine: Any, namespace: str) -> dict[str, Any]:
    """Predictions of a model (v1, v2) over the last five hours, with class labels 'a'/'b'
    given as feedback; times relative to the wall clock because the CLI reads ages from it."""
    now = datetime.now(UTC)
    model = f"churn-classifier-{namespace}"  # other tests and the demo use churn-classifier
    rng = np.random.default_rng(5)
    index = names.stream(names.MLEVENTS, namespace)
    service = f"svc-{namespace}"
    actions: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def add(kind: str, ts: datetime, **fields: Any) -> None:
        doc = {"@timestamp": _iso(ts), "event.id": uuid.uuid4().hex, "service.name": service,
               "ml.event_type": kind, "ml.model.name": model, **fields}
        actions.append(({"create": {"_index": index, "_id": doc["event.id"]}}, doc))

    n = 240
    for i in range(n):
        ts = now - timedelta(hours=5) + timedelta(seconds=int(i * 4.5 * 3600 / n))
        rid = f"{namespace}-{i}"
        label = str(rng.choice(["a", "b"]))
        add("prediction", ts, **{"ml.request_id": rid, "ml.model.version": "v1" if i % 3 else
                                 "v2", "ml.prediction": label if rng.random() < 0.8 else "b",
                                 "ml.score": float(rng.uniform(0.5, 1.0)),
                                 "ml.features.x0": float(rng.normal()),
                                 "ml.features.region": str(rng.choice(["eu", "us"]))})
        add("feedback", ts + timedelta(minutes=5), **{"ml.request_id": rid, "ml.label": label})
    res = engine.bulk(actions, refresh="wait_for")
    assert not res.errors, res.errors[:1]
    return {"namespace": namespace, "url": engine.url, "model": model}


def _run(seeded: dict[str, Any], *args: str) -> Any:
    return CliRunner().invoke(main, [*args, "--url", seeded["url"]])


def test_ages_are_times_and_inverted_windows_are_refused(seeded: dict[str, Any]) -> None:
    ns, MODEL = seeded["namespace"], seeded["model"]  # noqa: N806  # a constant per test
    ok = _run(seeded, "performance", "--model", MODEL, "--namespace", ns, "--from", "6h",
              "--to", "now", "--no-write", "--json")
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)["report"]
    assert report["n_predictions"] == 240 and report["label_coverage"] == pytest.approx(1.0)
    same = _run(seeded, "performance", "--model", MODEL, "--namespace", ns, "--from", "now-6h",
                "--to", "now - 0m", "--no-write", "--json")
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout)["report"]["n_predictions"] == 240
    inverted = _run(seeded, "performance", "--model", MODEL, "--namespace", ns, "--from", "1h",
                    "--to", "6h", "--no-write")
    assert inverted.exit_code == 2 and "must be before --to" in inverted.output
    drift = _run(seeded, "drift", "--model", MODEL, "--namespace", ns, "--reference-from",
                 "now-6h", "--reference-to", "3h", "--current-from", "3h", "--current-to",
                 "now", "--no-write", "--json")
    assert drift.exit_code == 0, drift.output
    feats = {f["feature"] for f in json.loads(drift.stdout)["features"]}
    assert {"x0", "region", "score", "prediction"} <= feats
    # an empty reference window is said, not silently skipped
    noref = _run(seeded, "performance", "--model", MODEL, "--namespace", ns, "--from", "6h",
                 "--to", "now", "--reference-from", "9h", "--reference-to", "8h", "--no-write")
    assert noref.exit_code == 0, noref.output
    assert "in the reference window" in noref.output and "no degradation check" in noref.output
    # every time option says the same thing about the forms it takes
    for cmd, n_times in (("performance", 4), ("drift", 4)):
        text = " ".join(_run(seeded, cmd, "--help").output.split())
        assert text.count("ISO-8601 time, 'now', or an age such as 15m, 6h, now-2h") == n_times


def test_unknown_model_namespace_version_and_baseline(seeded: dict[str, Any]) -> None:
    ns, MODEL = seeded["namespace"], seeded["model"]  # noqa: N806  # a constant per test
    base = ["performance", "--from", "6h", "--to", "now", "--no-write"]
    nosuch = _run(seeded, *base, "--model", "nosuch", "--namespace", ns)
    assert nosuch.exit_code == 1
    assert f"no predictions of model 'nosuch' in namespace '{ns}'" in nosuch.output
    assert f"models seen there: ['{MODEL}']" in nosuch.output
    assert "has no predictions in any namespace" in nosuch.output

    nons = _run(seeded, *base, "--model", MODEL, "--namespace", "nosuchns")
    assert nons.exit_code == 1
    assert "namespace 'nosuchns'" in nons.output
    assert f"in namespace(s) ['{ns}']" in nons.output  # where the model does have data

    nover = _run(seeded, *base, "--model", MODEL, "--namespace", ns, "--version", "9.9")
    assert nover.exit_code == 1
    assert "version '9.9'" in nover.output and "['v1', 'v2']" in nover.output

    nobase = _run(seeded, *base, "--model", MODEL, "--namespace", ns, "--baseline-version", "7")
    assert nobase.exit_code == 1
    assert "baseline version '7'" in nobase.output and "['v1', 'v2']" in nobase.output

    drift = _run(seeded, "drift", "--model", MODEL, "--namespace", ns, "--version", "9",
                 "--reference-from", "6h", "--reference-to", "3h", "--current-from", "3h",
                 "--current-to", "now", "--no-write")
    assert drift.exit_code == 1
    assert "version '9'" in drift.output and "['v1', 'v2']" in drift.output
    # an empty reference window (current has data) says which window, with the version
    ref_empty = _run(seeded, "drift", "--model", MODEL, "--namespace", ns, "--version", "v1",
                     "--reference-from", "9h", "--reference-to", "8h", "--current-from", "3h",
                     "--current-to", "now", "--no-write")
    assert ref_empty.exit_code == 1
    assert "version 'v1'" in ref_empty.output and "reference window" in ref_empty.output
    assert "Traceback" not in ref_empty.output


def test_task_that_does_not_fit_the_labels(seeded: dict[str, Any]) -> None:
    MODEL = seeded["model"]  # noqa: N806  # a constant per test
    res = _run(seeded, "performance", "--model", MODEL, "--from", "6h", "--to", "now",
               "--namespace", seeded["namespace"], "--task", "regression", "--no-write")
    assert res.exit_code == 2, res.output
    assert ("--task regression needs numeric labels (ml.label_value); model "
            f"'{MODEL}''s labels are classes: use --task classification") in res.output


def test_require_predictions_counts_and_describes(engine: Any,
                                                  seeded: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    ns, MODEL = seeded["namespace"], seeded["model"]  # noqa: N806  # a constant per test
    assert M.require_predictions(engine, model=MODEL, start=now - timedelta(hours=6), end=now,
                                 namespace=ns) == 240
    with pytest.raises(M.NoPredictions, match=r"versions of '.*' seen there: \['v1', 'v2'\]"):
        M.require_predictions(engine, model=MODEL, start=now - timedelta(hours=6), end=now,
                              namespace=ns, version="nope")


# -- the end of a window defaults to now (user test: "give both --current-from and ...") ----------
def test_window_ends_default_to_now(seeded: dict[str, Any]) -> None:
    ns, MODEL = seeded["namespace"], seeded["model"]  # noqa: N806  # a constant per test
    perf = _run(seeded, "performance", "--model", MODEL, "--namespace", ns, "--from", "6h",
                "--no-write", "--json")
    assert perf.exit_code == 0, perf.output
    assert json.loads(perf.stdout)["report"]["n_predictions"] == 240
    # the reference ends where the current window starts: the same result as spelled out
    short = _run(seeded, "drift", "--model", MODEL, "--namespace", ns, "--current-from", "3h",
                 "--reference-from", "6h", "--no-write", "--json")
    full = _run(seeded, "drift", "--model", MODEL, "--namespace", ns, "--current-from", "3h",
                "--current-to", "now", "--reference-from", "6h", "--reference-to", "3h",
                "--no-write", "--json")
    assert short.exit_code == 0 and full.exit_code == 0, short.output + full.output
    assert "overlap" not in short.stderr + full.stderr
    features = [{k: f[k] for k in ("feature", "statistic", "drifted")}
                for f in json.loads(short.stdout)["features"]]
    assert features == [{k: f[k] for k in ("feature", "statistic", "drifted")}
                        for f in json.loads(full.stdout)["features"]]
    assert features
    # an explicit overlapping reference still runs, with a warning on stderr
    overlap = _run(seeded, "drift", "--model", MODEL, "--namespace", ns, "--current-from",
                   "3h", "--reference-from", "6h", "--reference-to", "1h", "--no-write",
                   "--json")
    assert overlap.exit_code == 0, overlap.output
    assert "warning: the reference window" in overlap.stderr
    assert "overlaps the current window" in overlap.stderr
    json.loads(overlap.stdout)  # the warning stays out of the JSON
    perf_overlap = _run(seeded, "performance", "--model", MODEL, "--namespace", ns, "--from",
                        "3h", "--reference-from", "6h", "--reference-to", "2h", "--no-write")
    assert perf_overlap.exit_code == 0, perf_overlap.output
    assert "overlaps the current window" in perf_overlap.stderr
    # a reference starting after the current window's start has no default end
    late = _run(seeded, "drift", "--model", MODEL, "--namespace", ns, "--current-from", "3h",
                "--reference-from", "1h", "--no-write")
    assert late.exit_code == 2
    assert "must be before --reference-to (default: the current window's start" in late.output
