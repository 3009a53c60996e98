"""Build the desired assets and install them idempotently."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from logsight import names
from logsight.assets import mappings as m
from logsight.engine import EngineError

if TYPE_CHECKING:
    from logsight.engine import Engine

# Bump when an asset changes in a way that should be visible in `logsight setup` output; the
# content hash alone already decides whether an asset is re-installed.
ASSET_VERSION = 1

# Keys the ingest ctx carries that are not part of the document.
INGEST_METADATA = [
    "_index", "_id", "_routing", "_version", "_version_type", "_if_seq_no", "_if_primary_term",
    "_ingest", "_op_type", "_now", "_type", "_dynamic_templates", "_source",
]

STREAM_FIELDS = {
    names.LOGS: m.LOGS,
    names.TRACES: m.TRACES,
    names.METRICS: m.METRICS,
    names.MLEVENTS: m.MLEVENTS,
}

PLAIN_FIELDS = {
    names.FINDINGS_INDEX: m.FINDINGS,
    names.DEADLETTER_INDEX: m.DEADLETTER,
    names.ALERTS_INDEX: m.ALERTS,
    names.CRITICAL_PATH_INDEX: m.CRITICAL_PATH,
    names.PROFILES_INDEX: m.PROFILES,
    names.LEASES_INDEX: m.LEASES,
    names.META_INDEX: m.META,
    names.DEPENDENCIES_INDEX: m.DEPENDENCIES,
    names.COST_INDEX: m.COST,
}


def pipelines_dir() -> Path:
    """``ingest-pipelines/`` at the repository root (or packaged beside this module)."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "ingest-pipelines", here.parent / "ingest-pipelines"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("ingest-pipelines/ not found next to the package")


def load_pipeline(kind: str) -> dict[str, Any]:
    """The pipeline for ``kind`` as the engine expects it: ``source_file`` references to
    ``ingest-pipelines/scripts/*.painless`` inlined, the ingest metadata list passed to every
    script as ``params.metadata``."""
    base = pipelines_dir()
    body = json.loads((base / f"{names.pipeline(kind)}.json").read_text())

    def resolve(processors: list[dict[str, Any]]) -> None:
        for proc in processors:
            script = proc.get("script")
            if script and "source_file" in script:
                script["source"] = (base / "scripts" / script.pop("source_file")).read_text()
                script.setdefault("params", {})["metadata"] = INGEST_METADATA
            for value in proc.values():
                if isinstance(value, dict) and "on_failure" in value:
                    resolve(value["on_failure"])

    resolve(body["processors"])
    resolve(body.get("on_failure", []))
    return body


@dataclass(frozen=True)
class LifecycleConfig:
    """Rollover and retention per stream kind (days)."""

    rollover_age: str = "1d"
    rollover_size: str = "50gb"
    retention_days: dict[str, int] = field(
        default_factory=lambda: {
            names.LOGS: 30,
            names.TRACES: 14,
            names.METRICS: 30,
            names.MLEVENTS: 180,
        }
    )


@dataclass
class Asset:
    kind: Literal["pipeline", "lifecycle", "index_template", "index"]
    name: str
    body: dict[str, Any]

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.body, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class AssetReport:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # kind, name, action, note

    def add(self, kind: str, name: str, action: str, note: str = "") -> None:
        self.rows.append((kind, name, action, note))

    @property
    def changed(self) -> int:
        return sum(1 for r in self.rows if r[2] in ("created", "upgraded"))

    def lines(self) -> list[str]:
        width = max((len(r[1]) for r in self.rows), default=10)
        return [
            f"{kind:<15} {name:<{width}}  {action}{(' - ' + note) if note else ''}"
            for kind, name, action, note in self.rows
        ]


def _ilm_policy(kind: str, cfg: LifecycleConfig) -> dict[str, Any]:
    return {
        "policy": {
            "phases": {
                "hot": {
                    "actions": {
                        "rollover": {
                            "max_age": cfg.rollover_age,
                            "max_primary_shard_size": cfg.rollover_size,
                        }
                    }
                },
                "delete": {
                    "min_age": f"{cfg.retention_days[kind]}d",
                    "actions": {"delete": {}},
                },
            }
        }
    }


def _ism_policy(kind: str, cfg: LifecycleConfig) -> dict[str, Any]:
    return {
        "policy": {
            "description": f"logsight {kind}: rollover, delete after {cfg.retention_days[kind]}d",
            "default_state": "hot",
            "states": [
                {
                    "name": "hot",
                    "actions": [
                        {
                            "rollover": {
                                "min_index_age": cfg.rollover_age,
                                "min_primary_shard_size": cfg.rollover_size,
                            }
                        }
                    ],
                    "transitions": [
                        {
                            "state_name": "delete",
                            "conditions": {"min_index_age": f"{cfg.retention_days[kind]}d"},
                        }
                    ],
                },
                {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
            ],
            "ism_template": [
                {"index_patterns": [f".ds-{names.stream_pattern(kind)}"], "priority": 100}
            ],
        }
    }


def desired_assets(
    flavor: str, lifecycle: str | None, cfg: LifecycleConfig | None = None
) -> list[Asset]:
    """Every asset logsight installs, in install order (pipelines and policies before the
    templates that name them)."""
    cfg = cfg or LifecycleConfig()
    assets: list[Asset] = []
    for kind in names.STREAM_TYPES:
        assets.append(Asset("pipeline", names.pipeline(kind), load_pipeline(kind)))
    if lifecycle == "ilm":
        for kind in names.STREAM_TYPES:
            assets.append(Asset("lifecycle", f"logsight-{kind}", _ilm_policy(kind, cfg)))
    elif lifecycle == "ism":
        for kind in names.STREAM_TYPES:
            assets.append(Asset("lifecycle", f"logsight-{kind}", _ism_policy(kind, cfg)))
    for kind, fields in STREAM_FIELDS.items():
        settings: dict[str, Any] = {
            "number_of_shards": 1,
            # 0 replicas on one node (green), 1 as soon as a second node is there
            "auto_expand_replicas": "0-1",
            "default_pipeline": names.pipeline(kind),
            # An app field that changes type (a number, later a string or an object) must not
            # cost the whole line: the value is kept in _source, listed in _ignored, not indexed.
            "mapping": {"total_fields": {"limit": 2000}, "ignore_malformed": True},
        }
        if lifecycle == "ilm":
            settings["lifecycle"] = {"name": f"logsight-{kind}"}
        assets.append(
            Asset(
                "index_template",
                f"logsight-{kind}",
                {
                    "index_patterns": [names.stream_pattern(kind)],
                    "data_stream": {},
                    # above the built-in logs-*-*/metrics-*-*/traces-*-* templates (100)
                    "priority": 200,
                    "template": {"settings": {"index": settings}, "mappings": m.mapping(fields)},
                },
            )
        )
    for index, fields in PLAIN_FIELDS.items():
        assets.append(
            Asset(
                "index_template",
                index,
                {
                    "index_patterns": [index],
                    "priority": 200,
                    "template": {
                        "settings": {
                            "index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}
                        },
                        "mappings": m.mapping(fields),
                    },
                },
            )
        )
    for index in PLAIN_FIELDS:
        assets.append(Asset("index", index, {}))
    return assets


def _mark(asset: Asset) -> dict[str, Any]:
    return {"managed_by": "logsight", "version": ASSET_VERSION, "hash": asset.hash}


def install(
    engine: Engine, *, lifecycle: LifecycleConfig | None = None, dry_run: bool = False
) -> AssetReport:
    """Install every asset; unchanged ones are left alone. Returns what was done."""
    report = AssetReport()
    kind = engine.lifecycle_kind()
    if kind is None:
        report.add(
            "lifecycle", "logsight-*", "skipped",
            f"{engine.flavor} {engine.version} has no lifecycle manager (ISM plugin absent)",
        )
    for asset in desired_assets(engine.flavor, kind, lifecycle):
        action, note = _install_one(engine, asset, kind, dry_run)
        report.add(asset.kind, asset.name, action, note)
    return report


def _install_one(
    engine: Engine, asset: Asset, lifecycle: str | None, dry_run: bool
) -> tuple[str, str]:
    if asset.kind == "pipeline":
        current = engine.request("GET", f"/_ingest/pipeline/{asset.name}", ok_missing=True)
        marker = f"[logsight v{ASSET_VERSION} #{asset.hash}]"
        existing = (current or {}).get(asset.name)
        if existing and existing.get("description", "").endswith(marker):
            return "unchanged", ""
        body = dict(asset.body, version=ASSET_VERSION)
        body["description"] = f"{asset.body.get('description', '')} {marker}"
        if not dry_run:
            engine.request("PUT", f"/_ingest/pipeline/{asset.name}", body=body)
        return ("upgraded" if existing else "created"), ""

    if asset.kind == "lifecycle":
        return _install_policy(engine, asset, lifecycle, dry_run)

    if asset.kind == "index_template":
        current = engine.request("GET", f"/_index_template/{asset.name}", ok_missing=True)
        templates = (current or {}).get("index_templates", [])
        meta = templates[0]["index_template"].get("_meta", {}) if templates else {}
        if meta.get("hash") == asset.hash:
            return "unchanged", ""
        if dry_run:
            return ("upgraded" if templates else "created"), ""
        engine.request(
            "PUT", f"/_index_template/{asset.name}", body=dict(asset.body, _meta=_mark(asset))
        )
        note = _update_live_mappings(engine, asset) if templates else ""
        return ("upgraded" if templates else "created"), note

    # plain index: create once; its template provides settings and mappings
    if engine.exists(asset.name):
        return "unchanged", ""
    if not dry_run:
        try:
            engine.request("PUT", f"/{asset.name}")
        except EngineError as e:
            if "resource_already_exists" not in e.message:
                raise
            return "unchanged", ""
    return "created", ""


def _install_policy(
    engine: Engine, asset: Asset, lifecycle: str | None, dry_run: bool
) -> tuple[str, str]:
    if lifecycle == "ilm":
        path = f"/_ilm/policy/{asset.name}"
        current = engine.request("GET", path, ok_missing=True)
        existing = (current or {}).get(asset.name, {})
        if existing.get("policy", {}).get("_meta", {}).get("hash") == asset.hash:
            return "unchanged", ""
        body = {"policy": dict(asset.body["policy"], _meta=_mark(asset))}
        if not dry_run:
            engine.request("PUT", path, body=body)
        return ("upgraded" if existing else "created"), "ILM"
    path = f"/_plugins/_ism/policies/{asset.name}"
    current = engine.request("GET", path, ok_missing=True)
    marker = f"[logsight v{ASSET_VERSION} #{asset.hash}]"
    if current and current.get("policy", {}).get("description", "").endswith(marker):
        return "unchanged", ""
    body = json.loads(json.dumps(asset.body))
    body["policy"]["description"] += f" {marker}"
    params = None
    if current:
        params = {"if_seq_no": current["_seq_no"], "if_primary_term": current["_primary_term"]}
    if not dry_run:
        engine.request("PUT", path, body=body, params=params)
    return ("upgraded" if current else "created"), "ISM"


def _update_live_mappings(engine: Engine, asset: Asset) -> str:
    """A new template applies to new backing indices; push additive mapping changes to the
    current ones too so an upgrade takes effect now, not at the next rollover."""
    patterns = asset.body["index_patterns"]
    mappings = asset.body["template"]["mappings"]
    try:
        engine.request(
            "PUT",
            f"/{','.join(patterns)}/_mapping",
            body={"properties": mappings["properties"]},
            params={"allow_no_indices": "true", "ignore_unavailable": "true"},
        )
    except EngineError as e:
        return f"live mapping not updated ({e.message}); applies at the next rollover"
    return "live mappings updated"
