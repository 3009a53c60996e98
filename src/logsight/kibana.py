"""Kibana saved objects (``kibana/*.ndjson``): load, check, and import them into Kibana.

``import_objects`` uploads every object in one ``POST /api/saved_objects/_import?overwrite=true``
(multipart, ``kbn-xsrf`` header), so re-running replaces the objects in place. The helpers
:func:`fields_used`, :func:`check_references`, :func:`check_dashboards` and
:func:`saved_search_query` let the tests hold the objects to our index mappings and to the
shapes Kibana exports (kibana/README.md, "Format notes"), and run their queries on the real
engine.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from logsight import names
from logsight.assets import mappings as m
from logsight.assets.install import PLAIN_FIELDS, STREAM_FIELDS

RECORDS = "___records___"  # Lens' pseudo-field for count
NUMERIC = {"double", "long", "integer", "float", "half_float", "scaled_float", "short", "byte"}
AGGREGATABLE = NUMERIC | {"keyword", "date", "boolean", "ip"}
# which mapped types each use of a field needs
USE_TYPES: dict[str, set[str]] = {
    "timeField": {"date"},
    "date_histogram": {"date"},
    "terms": {"keyword", "boolean", "ip"} | NUMERIC,
    "percentile": NUMERIC, "average": NUMERIC, "sum": NUMERIC, "min": NUMERIC,
    "max": NUMERIC, "median": NUMERIC, "standard_deviation": NUMERIC,
    "unique_count": AGGREGATABLE, "last_value": AGGREGATABLE, "sort": AGGREGATABLE,
}
_LUCENE_FIELD = re.compile(r"(?:^|[\s(+\-!])(?:NOT\s+)?([A-Za-z_@][\w.@]*)\s*:")
_EXISTS = re.compile(r"_exists_\s*:\s*([A-Za-z_@][\w.@]*)")
_FORMULA_QUERY = re.compile(r"(kql|lucene)='((?:[^'\\]|\\.)*)'")
_SPACE_ID = re.compile(r"[a-z0-9_-]+")  # what Kibana accepts as a space identifier
GRID_COLUMNS = 48  # a dashboard row's width in grid units


def objects_dir() -> Path:
    """The saved objects: ``kibana/`` at the repository root in a checkout, the copy packaged
    in the wheel (``logsight/kibana-objects``) when installed; ``LOGSIGHT_KIBANA_DIR``
    overrides both."""
    env = os.environ.get("LOGSIGHT_KIBANA_DIR")
    if env:
        return Path(env)
    # not resolve()d: in a checkout kibana-objects is a symlink to kibana/, either is fine
    here = Path(__file__).absolute()
    for candidate in (here.parents[2] / "kibana", here.parent / "kibana-objects"):
        if candidate.is_dir() and any(candidate.glob("*.ndjson")):
            return candidate
    raise FileNotFoundError("kibana/ saved objects not found (set LOGSIGHT_KIBANA_DIR)")


def load_objects(paths: Sequence[str | Path] | None = None) -> list[dict[str, Any]]:
    """Saved objects from NDJSON files or directories of ``*.ndjson`` (default ``kibana/``:
    data views first, then searches, then dashboards, so references point backwards)."""
    files: list[Path] = []
    for p in [Path(x) for x in (paths or [objects_dir()])]:
        if p.is_dir():
            order = {"data-views.ndjson": 0, "searches.ndjson": 1, "dashboards.ndjson": 2}
            files.extend(sorted(p.glob("*.ndjson"), key=lambda f: (order.get(f.name, 9), f.name)))
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"{p}: no such NDJSON file or directory")
    objects: list[dict[str, Any]] = []
    for f in files:
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{f}:{n}: not valid JSON: {e.msg}") from None
            if not isinstance(obj, dict) or not {"type", "id", "attributes"} <= set(obj):
                raise ValueError(f"{f}:{n}: a saved object needs type, id and attributes")
            objects.append(obj)
    return objects


def to_ndjson(objects: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(o, sort_keys=True) + "\n" for o in objects).encode()


# -- what the objects use ---------------------------------------------------------------------
@dataclass(frozen=True)
class FieldUse:
    """One field one saved object uses, on one data view, for one purpose (``use``: a Lens
    operation such as ``terms``/``percentile``, or ``column``, ``sort``, ``query``, ``filter``,
    ``timeField``)."""

    object_type: str
    object_id: str
    where: str
    index_pattern: str
    field: str
    use: str


def lucene_fields(query: str) -> set[str]:
    """Field names a Lucene query string refers to (``f:v``, ``_exists_:f``)."""
    fields = {f for f in _LUCENE_FIELD.findall(query) if f != "_exists_"}
    return fields | set(_EXISTS.findall(query))


def _by_id(objects: Sequence[Mapping[str, Any]], type_: str) -> dict[str, Mapping[str, Any]]:
    return {o["id"]: o for o in objects if o["type"] == type_}


def _search_source(obj: Mapping[str, Any]) -> dict[str, Any]:
    raw = obj["attributes"].get("kibanaSavedObjectMeta", {}).get("searchSourceJSON", "{}")
    return dict(json.loads(raw))


def _ref(obj: Mapping[str, Any], name: str) -> str | None:
    for r in obj.get("references", []):
        if r["name"] == name:
            return str(r["id"])
    return None


def _lens_panels(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    panels = json.loads(dashboard["attributes"].get("panelsJSON", "[]"))
    return [p for p in panels if p.get("type") == "lens"
            and "attributes" in p.get("embeddableConfig", {})]


def fields_used(objects: Sequence[Mapping[str, Any]]) -> list[FieldUse]:
    """Every field every data view, saved search and by-value Lens panel uses."""
    views = _by_id(objects, "index-pattern")
    title = {vid: str(v["attributes"]["title"]) for vid, v in views.items()}
    out: list[FieldUse] = []
    for vid, v in views.items():
        tf = v["attributes"].get("timeFieldName")
        if tf:
            out.append(FieldUse("index-pattern", vid, "timeFieldName", title[vid], tf,
                                "timeField"))
    for sid, s in _by_id(objects, "search").items():
        src = _search_source(s)
        pattern = title.get(_ref(s, src.get("indexRefName", "")) or "", "?")
        for col in s["attributes"].get("columns", []):
            out.append(FieldUse("search", sid, "columns", pattern, col, "column"))
        for f, _ in s["attributes"].get("sort", []):
            out.append(FieldUse("search", sid, "sort", pattern, f, "sort"))
        for f in lucene_fields(src.get("query", {}).get("query", "")):
            out.append(FieldUse("search", sid, "query", pattern, f, "query"))
        for flt in src.get("filter", []):
            key = flt.get("meta", {}).get("key")
            if key:
                out.append(FieldUse("search", sid, "filter", pattern, key, "filter"))
    for did, d in _by_id(objects, "dashboard").items():
        for panel in _lens_panels(d):
            attrs = panel["embeddableConfig"]["attributes"]
            where = f"panel {panel['panelIndex']} ({attrs.get('title', '')})"
            layer_views = {r["name"].removeprefix("indexpattern-datasource-layer-"): r["id"]
                           for r in attrs.get("references", [])}
            state = attrs["state"]
            layers = state["datasourceStates"]["formBased"]["layers"]
            for layer_id, layer in layers.items():
                pattern = title.get(layer_views.get(layer_id, ""), "?")
                for f in lucene_fields(state.get("query", {}).get("query", "")):
                    out.append(FieldUse("dashboard", did, where, pattern, f, "query"))
                for col in layer["columns"].values():
                    src_field = col.get("sourceField")
                    if src_field and src_field != RECORDS:
                        out.append(FieldUse("dashboard", did, where, pattern, src_field,
                                            col["operationType"]))
                    for f in lucene_fields((col.get("filter") or {}).get("query", "")):
                        out.append(FieldUse("dashboard", did, where, pattern, f, "query"))
                    formula = (col.get("params") or {}).get("formula", "")
                    for _, q in _FORMULA_QUERY.findall(formula):
                        for f in lucene_fields(q):
                            out.append(FieldUse("dashboard", did, where, pattern, f, "query"))
    return out


def mapped_fields(index_pattern: str) -> dict[str, dict[str, Any]]:
    """The explicit mappings behind a data view's pattern (empty if it is not ours)."""
    for kind, fields in STREAM_FIELDS.items():
        if index_pattern == names.stream_pattern(kind):
            return fields
    return PLAIN_FIELDS.get(index_pattern, {})


def field_problem(use: FieldUse) -> str | None:
    """Why ``use`` does not fit our mappings, or None when it does."""
    fields = mapped_fields(use.index_pattern)
    if not fields:
        return f"data view {use.index_pattern!r} is not one of logsight's streams or indices"
    spec = fields.get(use.field)
    if spec is None:
        return f"{use.field!r} is not mapped in {use.index_pattern}"
    ftype = spec.get("type", "object")
    if spec == m.OPAQUE or spec.get("enabled") is False:
        return f"{use.field!r} is stored unindexed (object, enabled: false)"
    need = USE_TYPES.get(use.use)
    if need is not None and ftype not in need:
        return f"{use.use} on {use.field!r} needs {sorted(need)}, the mapping says {ftype}"
    indexed = spec.get("index", True) is not False
    if use.use in ("query", "filter") and not indexed:
        return f"{use.field!r} is not indexed: a query on it matches nothing"
    if (use.use in USE_TYPES and use.use != "timeField"
            and spec.get("doc_values", True) is False):
        return f"{use.field!r} has no doc values: {use.use} cannot aggregate on it"
    return None


def check_references(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """Problems with references: a reference to an object that is not in the set, a saved
    search without its data view, a dashboard panel whose reference is missing."""
    have = {(o["type"], o["id"]) for o in objects}
    problems: list[str] = []
    for o in objects:
        label = f"{o['type']} {o['id']}"
        for r in o.get("references", []):
            if (r["type"], r["id"]) not in have:
                problems.append(f"{label}: reference {r['name']} -> {r['type']} {r['id']} "
                                "is not among the saved objects")
        names_ = {r["name"] for r in o.get("references", [])}
        if o["type"] == "search":
            src = _search_source(o)
            wanted = [src.get("indexRefName")] + [f.get("meta", {}).get("indexRefName")
                                                  for f in src.get("filter", [])]
            for w in wanted:
                if not w or w not in names_:
                    problems.append(f"{label}: searchSource refers to {w!r}, not in references")
        if o["type"] == "dashboard":
            for p in json.loads(o["attributes"].get("panelsJSON", "[]")):
                pid = p.get("panelIndex")
                if "panelRefName" in p and f"{pid}:{p['panelRefName']}" not in names_:
                    problems.append(f"{label}: panel {pid} refers to {p['panelRefName']} "
                                    "without a reference")
            for p in _lens_panels(o):
                attrs = p["embeddableConfig"]["attributes"]
                inner = {r["name"]: r for r in attrs.get("references", [])}
                for layer_id in attrs["state"]["datasourceStates"]["formBased"]["layers"]:
                    name = f"indexpattern-datasource-layer-{layer_id}"
                    if name not in inner:
                        problems.append(f"{label}: panel {p['panelIndex']} layer {layer_id} "
                                        "has no data view reference")
                    elif f"{p['panelIndex']}:{name}" not in names_:
                        problems.append(f"{label}: panel {p['panelIndex']} layer {layer_id} "
                                        "reference is not on the dashboard")
                    elif (inner[name]["type"], inner[name]["id"]) not in have:
                        problems.append(f"{label}: panel {p['panelIndex']} uses data view "
                                        f"{inner[name]['id']} that is not among the objects")
    return problems


def _overlap(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def _lens_problems(attrs: Mapping[str, Any]) -> list[str]:
    """What would keep Lens from rendering a by-value panel's attributes: a column order that
    is not the layer's columns with the bucketed ones first, a reference (accessor, sort
    column, formula part) to a column that does not exist, a chart layer without its data
    layer."""
    problems: list[str] = []
    state = attrs["state"]
    layers = state["datasourceStates"]["formBased"]["layers"]
    for layer_id, layer in layers.items():
        cols = layer["columns"]
        order = layer["columnOrder"]
        if sorted(order) != sorted(cols):
            problems.append(f"layer {layer_id}: columnOrder {order} is not its columns")
        bucketed = [cols[c]["isBucketed"] for c in order if c in cols]
        if bucketed != sorted(bucketed, reverse=True):
            problems.append(f"layer {layer_id}: a metric comes before a bucket in columnOrder")
        for cid, col in cols.items():
            ob = (col.get("params") or {}).get("orderBy") or {}
            wanted = [ob["columnId"]] if ob.get("type") == "column" else []
            wanted += list(col.get("references", []))
            wanted += [a for a in ((col.get("params") or {}).get("tinymathAst") or {})
                       .get("args", []) if isinstance(a, str)]
            for w in wanted:
                if w not in cols:
                    problems.append(f"layer {layer_id}: column {cid} refers to missing {w}")
    vis = state["visualization"]
    kind = attrs.get("visualizationType")
    if kind == "lnsXY":
        for vl in vis.get("layers", []):
            cols = layers.get(vl["layerId"], {}).get("columns")
            if cols is None:
                problems.append(f"chart layer {vl['layerId']} has no data layer")
                continue
            for acc in ([vl.get("xAccessor"), vl.get("splitAccessor")] + vl["accessors"]):
                if acc is not None and acc not in cols:
                    problems.append(f"chart layer {vl['layerId']}: no column {acc}")
    elif kind == "lnsDatatable":
        cols = layers.get(vis.get("layerId"), {}).get("columns")
        if cols is None:
            problems.append(f"table layer {vis.get('layerId')} has no data layer")
        else:
            problems += [f"table: no column {c['columnId']}" for c in vis["columns"]
                         if c["columnId"] not in cols]
    else:
        problems.append(f"visualizationType {kind!r} is not checked here (lnsXY, lnsDatatable)")
    return problems


def check_dashboards(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """Problems with dashboard panels beyond references: a grid cell that is not the panel's
    index, panels outside the 48-column grid or on top of each other, panels without the
    ``version`` Kibana's exports carry, and by-value Lens state Lens cannot render."""
    problems: list[str] = []
    for d in _by_id(objects, "dashboard").values():
        label = f"dashboard {d['id']}"
        panels = json.loads(d["attributes"].get("panelsJSON", "[]"))
        seen: list[Mapping[str, Any]] = []
        for p in panels:
            pid, grid = p.get("panelIndex"), p.get("gridData", {})
            if grid.get("i") != pid:
                problems.append(f"{label}: panel {pid} has grid cell {grid.get('i')!r}")
            if grid.get("x", 0) < 0 or grid.get("x", 0) + grid.get("w", 0) > GRID_COLUMNS:
                problems.append(f"{label}: panel {pid} is outside the {GRID_COLUMNS}-column grid")
            problems += [f"{label}: panels {q['panelIndex']} and {pid} overlap"
                         for q in seen if _overlap(q["gridData"], grid)]
            seen.append(p)
            if not p.get("version"):
                problems.append(f"{label}: panel {pid} has no version")
        for p in _lens_panels(d):
            problems += [f"{label}: panel {p['panelIndex']}: {x}"
                         for x in _lens_problems(p["embeddableConfig"]["attributes"])]
    return problems


@dataclass
class SavedSearch:
    id: str
    title: str
    index_pattern: str
    query: str
    language: str
    filters: list[dict[str, Any]] = field(default_factory=list)


def saved_searches(objects: Sequence[Mapping[str, Any]]) -> list[SavedSearch]:
    views = _by_id(objects, "index-pattern")
    out = []
    for sid, s in _by_id(objects, "search").items():
        src = _search_source(s)
        view = views.get(_ref(s, src.get("indexRefName", "")) or "")
        out.append(SavedSearch(
            id=sid, title=str(s["attributes"]["title"]),
            index_pattern=str(view["attributes"]["title"]) if view else "?",
            query=str(src.get("query", {}).get("query", "")),
            language=str(src.get("query", {}).get("language", "kuery")),
            filters=list(src.get("filter", [])),
        ))
    return out


def saved_search_query(search: SavedSearch) -> dict[str, Any]:
    """The engine query a saved search runs: its Lucene query as ``query_string`` and each
    enabled filter's DSL (negated ones under ``must_not``), as Kibana sends them."""
    if search.language != "lucene":
        raise ValueError(f"saved search {search.id}: query language {search.language!r}; "
                         "logsight's saved searches are written in Lucene")
    must: list[dict[str, Any]] = []
    must_not: list[dict[str, Any]] = []
    if search.query.strip():
        must.append({"query_string": {"query": search.query, "analyze_wildcard": True}})
    for f in search.filters:
        meta = f.get("meta", {})
        if meta.get("disabled"):
            continue
        (must_not if meta.get("negate") else must).append(dict(f["query"]))
    return {"bool": {"filter": must, "must_not": must_not}}


# -- import -------------------------------------------------------------------------------------
@dataclass
class ImportResult:
    success: bool
    success_count: int
    errors: list[dict[str, Any]]
    status: int

    def error_lines(self) -> list[str]:
        """One line per failed object. Kibana 8.x puts the title in ``meta.title`` (the
        top-level ``title`` is deprecated) and says why in ``error.type``, with the missing
        objects for ``missing_references`` and a message for ``unknown``."""
        lines = []
        for e in self.errors:
            title = (e.get("meta") or {}).get("title") or e.get("title") or ""
            err = e.get("error") or {}
            why = str(err.get("type", "error"))
            if err.get("references"):
                why += ": " + ", ".join(f"{r.get('type')} {r.get('id')}"
                                        for r in err["references"])
            elif err.get("message"):
                why += f": {err['message']}"
            lines.append(f"{e.get('type')} {e.get('id')} ({title}): {why}")
        return lines


class KibanaError(Exception):
    """Kibana could not be reached or refused the request."""


def import_objects(
    url: str,
    objects: Sequence[Mapping[str, Any]] | None = None,
    *,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    space: str | None = None,
    verify: bool | str = True,
    timeout: float = 60.0,
    overwrite: bool = True,
) -> ImportResult:
    """Upload saved objects (default: all of ``kibana/``) in one import request."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"Kibana URL {url!r} must start with http:// or https://")
    if space and not _SPACE_ID.fullmatch(space):
        raise ValueError(f"Kibana space id {space!r}: use lowercase letters, digits, '_' and "
                         "'-' (the space's id, not its display name)")
    objs = load_objects() if objects is None else objects
    base = url.rstrip("/") + (f"/s/{space}" if space and space != "default" else "")
    headers = {"kbn-xsrf": "true"}
    auth: httpx.BasicAuth | None = None
    if api_key:
        headers["Authorization"] = f"ApiKey {api_key}"
    elif username is not None:
        auth = httpx.BasicAuth(username, password or "")
    try:
        resp = httpx.post(
            f"{base}/api/saved_objects/_import",
            params={"overwrite": "true"} if overwrite else None,
            files={"file": ("logsight.ndjson", to_ndjson(objs), "application/ndjson")},
            headers=headers, auth=auth, verify=verify, timeout=timeout,
        )
    except httpx.HTTPError as e:
        raise KibanaError(f"cannot reach Kibana at {url}: {e}") from e
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if resp.status_code >= 400:
        msg = body.get("message") or resp.text[:300]
        raise KibanaError(f"Kibana answered {resp.status_code}: {msg}")
    return ImportResult(success=bool(body.get("success")),
                        success_count=int(body.get("successCount", 0)),
                        errors=list(body.get("errors", [])), status=resp.status_code)
