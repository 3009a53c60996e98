"""Finding ids and documents (pure), and the settings' repr (no secrets)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from logsight.engine.client import ConnectionSettings
from logsight.findings import Finding, finding_id


def test_one_instant_one_id_whatever_its_spelling() -> None:
    dt = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    ids = {
        finding_id("log_anomaly", "api", None, dt, dt),
        finding_id("log_anomaly", "api", None, "2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
        finding_id("log_anomaly", "api", None, "2024-05-01T10:00:00+00:00",
                   "2024-05-01T12:00:00+02:00"),
        finding_id("log_anomaly", "api", None, datetime(2024, 5, 1, 10, 0), dt),  # naive = UTC
    }
    assert len(ids) == 1


def test_ids_differ_by_what_the_finding_is_about() -> None:
    base = ("trace_bottleneck", "api", "GET /x", "2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z")
    variants = [
        finding_id(*base),
        finding_id(*base, "team_a"),
        finding_id(*base, "team_b"),
        finding_id("trace_regression", *base[1:]),
        finding_id(base[0], "db", *base[2:]),
        finding_id(*base[:3], "2024-05-01T10:01:00Z", base[4]),
    ]
    assert len(set(variants)) == len(variants)


def test_document_is_strict_json_and_keeps_the_id() -> None:
    f = Finding(kind="feature_drift", title="t", summary="s", score=float("nan"),
                evidence={"p": float("inf"), "when": datetime(2024, 5, 1, tzinfo=UTC)},
                window_start="2024-05-01T10:00:00Z", window_end="2024-05-01T11:00:00Z",
                namespace="ns1")
    doc = f.to_document(now=datetime(2024, 5, 2, tzinfo=UTC))
    assert doc["id"] == f.id and doc["score"] is None
    assert doc["evidence"] == {"p": None, "when": "2024-05-01T00:00:00Z"}
    assert doc["@timestamp"] == "2024-05-01T11:00:00Z"
    assert Finding.from_document(doc).id == f.id


def test_bad_severity_is_refused() -> None:
    with pytest.raises(ValueError, match="severity"):
        Finding(kind="log_anomaly", title="t", summary="s", severity="urgent")


def test_connection_settings_never_show_secrets() -> None:
    s = ConnectionSettings(url="http://x:9200", api_key="SECRET-KEY", username="u",
                           password="SECRET-PW")
    assert "SECRET" not in repr(s) and "SECRET" not in str(s)
