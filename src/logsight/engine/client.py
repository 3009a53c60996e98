"""One client facade over the official ``elasticsearch`` and ``opensearch-py`` clients.

The flavour is chosen from the server's own ``GET /`` answer, so ``LOGSIGHT_URL`` can point at
any cluster. Requests go through each client's transport (auth, retries on dead connections,
compatibility headers); the REST paths and bodies are the ones both engines accept, except in
the few methods below that branch on :attr:`Engine.flavor`.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from logsight import errors

Flavor = Literal["elasticsearch", "opensearch"]
DEFAULT_URL = "http://127.0.0.1:9200"


class EngineError(Exception):
    """The cluster answered, but with an error (a 4xx, or a 5xx that is not transient)."""

    def __init__(self, status: int | str, message: str, info: Any = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.info = info


class EngineUnavailable(EngineError, errors.EngineUnavailable):
    """The cluster could not be reached, or answered 429/502/503/504: try again later (the
    :class:`logsight.errors.EngineUnavailable` kind)."""


class EngineAuthError(EngineError):
    """The cluster refused our credentials (401): a configuration error, not an outage;
    retrying does not help until LOGSIGHT_API_KEY / LOGSIGHT_USERNAME / LOGSIGHT_PASSWORD (or
    the credentials in the URL) are fixed."""

    def __init__(self, message: str, info: Any = None) -> None:
        super().__init__(401, message, info)


@dataclass(frozen=True)
class BulkItemError:
    """One item of a ``_bulk`` that failed; ``retryable`` says whether sending it again helps."""

    position: int
    status: int
    error_type: str
    reason: str
    id: str | None

    @property
    def retryable(self) -> bool:
        # a write block (index.blocks.write: 403 cluster_block_exception; flood stage's
        # read_only_allow_delete: 429) is lifted by an operator or by freed disk: retry, never
        # dead-letter the document for good
        return self.status in (429, 502, 503, 504) or (
            self.status == 403 and self.error_type == "cluster_block_exception")


@dataclass
class BulkResult:
    items: int = 0
    ok: int = 0
    # create of an id that already exists: the event was delivered before (a replay); not an error
    duplicates: int = 0
    errors: list[BulkItemError] = field(default_factory=list)
    ok_positions: list[int] = field(default_factory=list)  # which items were stored


@dataclass(frozen=True)
class ConnectionSettings:
    url: str = DEFAULT_URL
    # secrets never appear in a repr (settings end up in logs and tracebacks)
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verify_certs: bool = True
    ca_certs: str | None = None
    request_timeout: float = 30.0
    # HTTP connections kept per node: at least as many as threads sending at once (the
    # shipper's senders), else the pool discards connections ("Connection pool is full")
    connections: int = 10

    def __post_init__(self) -> None:
        # credentials in the URL (http://user:pw@host:9200), as both clients accept them:
        # moved to username/password (explicit ones win), so the URL itself never carries a
        # secret into a log line, an error message or a repr
        user, password, bare = split_credentials(self.url)
        if user is None:
            return
        object.__setattr__(self, "url", bare)
        if self.username is None and self.api_key is None:
            object.__setattr__(self, "username", user)
            if self.password is None:
                object.__setattr__(self, "password", password)


def split_credentials(url: str) -> tuple[str | None, str | None, str]:
    """(user, password, URL without them) for ``scheme://user:password@host...``; user is
    None when the URL has no credentials. Percent-escapes in them are decoded."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return None, None, url
    if "@" not in parts.netloc:
        return None, None, url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    bare = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return unquote(user), unquote(password) if sep else None, bare


def redact_url(text: str) -> str:
    """``text`` with the password (and any API key passed as a query parameter) of every URL
    in it replaced by ``***``: for log lines and error messages."""
    import re

    text = re.sub(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@]*):[^@/\s]*@", r"\1:***@", text)
    return re.sub(r"(?i)([?&](?:api_key|apikey|api-key|key|token|password|access_token)=)"
                  r"[^&\s]*", r"\1***", text)


def settings_from_env(url: str | None = None, **overrides: Any) -> ConnectionSettings:
    """Connection settings from ``LOGSIGHT_URL``, ``LOGSIGHT_API_KEY``, ``LOGSIGHT_USERNAME`` /
    ``LOGSIGHT_PASSWORD``, ``LOGSIGHT_CA_CERTS`` and ``LOGSIGHT_VERIFY_CERTS`` (explicit
    arguments win)."""
    env = os.environ
    values: dict[str, Any] = {
        "url": url or env.get("LOGSIGHT_URL") or DEFAULT_URL,
        "api_key": env.get("LOGSIGHT_API_KEY") or None,
        "username": env.get("LOGSIGHT_USERNAME") or None,
        "password": env.get("LOGSIGHT_PASSWORD") or None,
        "ca_certs": env.get("LOGSIGHT_CA_CERTS") or None,
        "verify_certs": env.get("LOGSIGHT_VERIFY_CERTS", "true").lower() not in ("0", "false", "no"),
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ConnectionSettings(**values)


def _auth_headers(s: ConnectionSettings) -> dict[str, str]:
    if s.api_key:
        return {"Authorization": f"ApiKey {s.api_key}"}
    if s.username is not None:
        token = base64.b64encode(f"{s.username}:{s.password or ''}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    return {}


def probe(settings: ConnectionSettings, timeout: float = 5.0) -> dict[str, Any]:
    """``GET /`` with plain urllib: tells which engine answers before we pick a client."""
    url = settings.url
    if not url.startswith(("http://", "https://")):
        raise EngineError(
            "invalid-url",
            f"invalid cluster URL {url!r}: it must start with http:// or https:// "
            f"(e.g. http://{url.split('://')[-1] or '127.0.0.1:9200'})",
        )
    req = urllib.request.Request(url.rstrip("/") + "/", headers=_auth_headers(settings))
    ctx = None
    if url.startswith("https"):
        ctx = ssl.create_default_context(cafile=settings.ca_certs)
        if not settings.verify_certs:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        hint = " (check LOGSIGHT_API_KEY or LOGSIGHT_USERNAME/PASSWORD)" if e.code in (401, 403) else ""
        if e.code == 401:
            raise EngineAuthError(
                f"the cluster refused our credentials: GET / on {url} failed: 401 "
                f"{e.reason}{hint}") from e
        raise EngineError(e.code, f"GET / on {url} failed: {e.code} {e.reason}{hint}") from e
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as e:
        raise EngineUnavailable("N/A", f"cannot reach {url}: {e}") from e
    try:
        info = json.loads(raw)
    except ValueError:
        info = None
    if not isinstance(info, dict) or "number" not in (info.get("version") or {}):
        raise EngineError(
            "not-a-cluster",
            f"{url} answered, but not as Elasticsearch or OpenSearch does "
            "(GET / gave no JSON with a version number)",
        )
    return info


def flavor_of(info: Mapping[str, Any]) -> Flavor:
    if info.get("version", {}).get("distribution") == "opensearch":
        return "opensearch"
    return "elasticsearch"


class Engine:
    """A connected cluster. Build it with :func:`connect`."""

    def __init__(self, settings: ConnectionSettings, info: Mapping[str, Any]) -> None:
        self.settings = settings
        self.url = settings.url
        self.info = dict(info)
        self.flavor: Flavor = flavor_of(info)
        self.version: str = str(info.get("version", {}).get("number", "unknown"))
        self.major = int(self.version.split(".")[0]) if self.version[0].isdigit() else 0
        self._client = self._make_client()
        self._plugins: set[str] | None = None

    # -- transport ---------------------------------------------------------------------------
    def _make_client(self) -> Any:
        s = self.settings
        if self.flavor == "opensearch":
            from opensearchpy import OpenSearch

            kw: dict[str, Any] = {
                "hosts": [s.url],
                "timeout": s.request_timeout,
                "verify_certs": s.verify_certs,
                "ca_certs": s.ca_certs,
                "headers": _auth_headers(s) or None,
                "pool_maxsize": max(1, s.connections),
            }
            return OpenSearch(**{k: v for k, v in kw.items() if v is not None})
        from elasticsearch import Elasticsearch

        ekw: dict[str, Any] = {"request_timeout": s.request_timeout,
                               "connections_per_node": max(1, s.connections)}
        if s.url.startswith("https"):
            ekw["verify_certs"] = s.verify_certs
            if s.ca_certs:
                ekw["ca_certs"] = s.ca_certs
        if s.api_key:
            ekw["api_key"] = s.api_key
        elif s.username is not None:
            ekw["basic_auth"] = (s.username, s.password or "")
        return Elasticsearch(s.url, **ekw)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        *,
        ndjson: bool = False,
        ok_missing: bool = False,
    ) -> Any:
        """Send one REST request; returns the decoded body (``None`` for a 404 when
        ``ok_missing``). Raises :class:`EngineUnavailable` or :class:`EngineError`."""
        params = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        try:
            if self.flavor == "opensearch":
                headers = {"content-type": "application/x-ndjson"} if ndjson else None
                return self._client.transport.perform_request(
                    method, path, params=params or None, body=body, headers=headers
                )
            headers = {"accept": "application/json"}
            if ndjson:
                headers["content-type"] = "application/x-ndjson"
            elif body is not None:
                headers["content-type"] = "application/json"
            if body is not None and not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            if params:
                path = path + ("&" if "?" in path else "?") + _urlencode(params)
            resp = self._client.perform_request(method, path, headers=headers, body=body)
            return resp.body
        except Exception as e:  # both clients' errors are mapped in one place
            status, message, info = _describe(e)
            if status == 404 and ok_missing:
                return None
            if status == 401:
                raise EngineAuthError(
                    f"the cluster refused our credentials ({message}); check "
                    "LOGSIGHT_API_KEY or LOGSIGHT_USERNAME/PASSWORD", info) from e
            if status in ("N/A", 429, 502, 503, 504) or _is_connection_error(e):
                raise EngineUnavailable(status, message, info) from e
            raise EngineError(status, message, info) from e

    def close(self) -> None:
        self._client.close()

    # -- cluster -----------------------------------------------------------------------------
    def health(self, wait_for_status: str | None = None, timeout: str = "30s") -> dict[str, Any]:
        params = {"wait_for_status": wait_for_status, "timeout": timeout} if wait_for_status else {}
        return dict(self.request("GET", "/_cluster/health", params=params))

    def plugins(self) -> set[str]:
        """Names of installed plugins (OpenSearch) or features (Elasticsearch), lower case."""
        if self._plugins is None:
            rows = self.request("GET", "/_cat/plugins", params={"format": "json"}) or []
            self._plugins = {str(r.get("component", "")).lower() for r in rows}
        return self._plugins

    # -- documents ---------------------------------------------------------------------------
    def bulk_ndjson(
        self, body: bytes | str, *, pipeline: str | None = None, refresh: bool | str | None = None
    ) -> BulkResult:
        """Send a prepared ``_bulk`` body; per-item failures come back in the result."""
        resp = self.request(
            "POST", "/_bulk", body=body, params={"pipeline": pipeline, "refresh": refresh},
            ndjson=True,
        )
        return _bulk_result(resp)

    def bulk(
        self,
        actions: Iterable[tuple[Mapping[str, Any], Mapping[str, Any] | None]],
        *,
        pipeline: str | None = None,
        refresh: bool | str | None = None,
    ) -> BulkResult:
        """``_bulk`` from (action, source) pairs; source is None for deletes."""
        lines: list[str] = []
        for action, source in actions:
            lines.append(json.dumps(action, separators=(",", ":")))
            if source is not None:
                lines.append(json.dumps(source, separators=(",", ":"), default=str))
        if not lines:
            return BulkResult()
        return self.bulk_ndjson("\n".join(lines) + "\n", pipeline=pipeline, refresh=refresh)

    def index(
        self,
        index: str,
        document: Mapping[str, Any],
        *,
        id: str | None = None,
        refresh: bool | str | None = None,
        op_type: str | None = None,
        pipeline: str | None = None,
        if_seq_no: int | None = None,
        if_primary_term: int | None = None,
    ) -> dict[str, Any]:
        path = f"/{index}/_doc" + (f"/{_q(id)}" if id is not None else "")
        return dict(
            self.request(
                "PUT" if id is not None else "POST",
                path,
                body=dict(document),
                params={
                    "refresh": refresh,
                    "op_type": op_type,
                    "pipeline": pipeline,
                    "if_seq_no": if_seq_no,
                    "if_primary_term": if_primary_term,
                },
            )
        )

    def get(self, index: str, id: str) -> dict[str, Any] | None:
        """The whole hit (``_source``, ``_seq_no``, ``_primary_term``) or None."""
        resp = self.request("GET", f"/{index}/_doc/{_q(id)}", ok_missing=True)
        if not resp or not resp.get("found"):
            return None
        return dict(resp)

    def delete(self, index: str, id: str, *, refresh: bool | str | None = None) -> bool:
        resp = self.request(
            "DELETE", f"/{index}/_doc/{_q(id)}", params={"refresh": refresh}, ok_missing=True
        )
        return bool(resp and resp.get("result") == "deleted")

    def search(self, index: str, body: Mapping[str, Any], **params: Any) -> dict[str, Any]:
        return dict(self.request("POST", f"/{index}/_search", body=dict(body), params=params))

    def count(self, index: str, query: Mapping[str, Any] | None = None) -> int:
        body = {"query": dict(query)} if query else None
        resp = self.request(
            "POST", f"/{index}/_count", body=body, params={"ignore_unavailable": "true"}
        )
        return int(resp["count"])

    def refresh(self, index: str) -> None:
        self.request("POST", f"/{index}/_refresh", params={"ignore_unavailable": "true"})

    def delete_by_query(
        self, index: str, query: Mapping[str, Any], *, refresh: bool = True
    ) -> int:
        resp = self.request(
            "POST",
            f"/{index}/_delete_by_query",
            body={"query": dict(query)},
            params={"refresh": refresh, "conflicts": "proceed", "ignore_unavailable": "true"},
        )
        return int(resp.get("deleted", 0))

    def exists(self, index: str) -> bool:
        try:
            # opensearch-py answers a HEAD 404 with False instead of raising
            return self.request("HEAD", f"/{index}") is not False
        except EngineUnavailable:
            raise
        except EngineError as e:
            if e.status == 404:
                return False
            raise

    def delete_index(self, index: str) -> None:
        """Delete indices or data streams matching ``index`` (missing ones are fine)."""
        if self.request("GET", f"/_data_stream/{index}", ok_missing=True):
            self.request("DELETE", f"/_data_stream/{index}", ok_missing=True)
        self.request(
            "DELETE", f"/{index}", params={"ignore_unavailable": "true"}, ok_missing=True
        )

    def scan(
        self,
        index: str,
        query: Mapping[str, Any] | None = None,
        *,
        sort_field: str = "@timestamp",
        source: Sequence[str] | bool | None = None,
        page_size: int = 2000,
        keep_alive: str = "2m",
    ) -> Iterator[dict[str, Any]]:
        """Every hit matching ``query``, in ``sort_field`` order, read with a point in time and
        ``search_after`` (no deep from/size, a consistent view while new data arrives)."""
        pit = self._open_pit(index, keep_alive)
        if pit is None:  # nothing to read: the pattern matched no index
            return
        try:
            # ES adds _shard_doc as the tiebreaker itself; OpenSearch 2.x needs one from us.
            sort: list[Any] = [{sort_field: {"order": "asc", "unmapped_type": "date"}}]
            if self.flavor == "opensearch":
                sort.append({"_id": "asc"})
            after: list[Any] | None = None
            while True:
                body: dict[str, Any] = {
                    "size": page_size,
                    "query": dict(query) if query else {"match_all": {}},
                    "sort": sort,
                    "pit": {"id": pit, "keep_alive": keep_alive},
                    "track_total_hits": False,
                }
                if source is not None:
                    body["_source"] = list(source) if not isinstance(source, bool) else source
                if after is not None:
                    body["search_after"] = after
                resp = self.request("POST", "/_search", body=body)
                pit = resp.get("pit_id", pit)
                hits = resp["hits"]["hits"]
                yield from hits
                if len(hits) < page_size:
                    break
                after = hits[-1]["sort"]
        finally:
            self._close_pit(pit)

    def _open_pit(self, index: str, keep_alive: str) -> str | None:
        try:
            if self.flavor == "opensearch":
                resp = self.request(
                    "POST", f"/{index}/_search/point_in_time",
                    params={"keep_alive": keep_alive},
                )
                return str(resp["pit_id"])
            resp = self.request("POST", f"/{index}/_pit", params={"keep_alive": keep_alive})
            return str(resp["id"])
        except EngineUnavailable:
            raise
        except EngineError as e:
            # a pattern that matches nothing: 404 on Elasticsearch, 400 on OpenSearch
            if e.status in (400, 404) and self.count(index) == 0:
                return None
            raise

    def _close_pit(self, pit: str) -> None:
        try:
            if self.flavor == "opensearch":
                self.request("DELETE", "/_search/point_in_time", body={"pit_id": [pit]})
            else:
                self.request("DELETE", "/_pit", body={"id": pit})
        except EngineError:
            pass  # an expired PIT is already gone; nothing to clean

    # -- assets: where the engines differ ----------------------------------------------------
    def lifecycle_kind(self) -> Literal["ilm", "ism"] | None:
        """Which lifecycle manager the cluster has, if any."""
        if self.flavor == "elasticsearch":
            return "ilm"
        try:
            self.request("GET", "/_plugins/_ism/policies", params={"size": 1})
            return "ism"
        except EngineError:
            return None

    def has_watcher(self) -> bool:
        if self.flavor != "elasticsearch":
            return False
        try:
            resp = self.request("GET", "/_xpack")
            return bool(resp.get("features", {}).get("watcher", {}).get("enabled"))
        except EngineError:
            return False

    def has_alerting_plugin(self) -> bool:
        return self.flavor == "opensearch" and any("alerting" in p for p in self.plugins())

    def __repr__(self) -> str:
        return f"Engine({self.flavor} {self.version} at {self.url})"


def connect(
    url: str | None = None,
    *,
    settings: ConnectionSettings | None = None,
    timeout: float = 5.0,
    **overrides: Any,
) -> Engine:
    """Connect to the cluster at ``url`` (or ``LOGSIGHT_URL``) and pick the right client."""
    s = settings or settings_from_env(url, **overrides)
    return Engine(s, probe(s, timeout=timeout))


# -- helpers ---------------------------------------------------------------------------------
def _param(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _urlencode(params: Mapping[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def _q(id: str) -> str:
    from urllib.parse import quote

    return quote(str(id), safe="")


def _is_connection_error(e: Exception) -> bool:
    name = type(e).__name__
    return "Connection" in name or "Timeout" in name


def _describe(e: Exception) -> tuple[int | str, str, Any]:
    # elasticsearch 8: ApiError(message, meta, body) / TransportError(message, errors)
    meta = getattr(e, "meta", None)
    if meta is not None and hasattr(meta, "status"):
        body = getattr(e, "body", None)
        return int(meta.status), _reason(body) or str(e), body
    # opensearch-py: TransportError(status_code, error, info)
    status = getattr(e, "status_code", None)
    if status is not None:
        info = getattr(e, "info", None)
        return status, _reason(info) or str(getattr(e, "error", e)), info
    return "N/A", str(e), None


def _reason(body: Any) -> str | None:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            root = (err.get("root_cause") or [err])[0]
            return f"{root.get('type', err.get('type'))}: {root.get('reason', err.get('reason'))}"
        if isinstance(err, str):
            return err
    return None


def _bulk_result(resp: Mapping[str, Any]) -> BulkResult:
    result = BulkResult()
    for pos, item in enumerate(resp.get("items", [])):
        (op,) = item.values()
        result.items += 1
        status = int(op.get("status", 500))
        if status < 300:
            result.ok += 1
            result.ok_positions.append(pos)
        elif status == 409 and "create" in item:
            result.duplicates += 1
        else:
            err = op.get("error") or {}
            result.errors.append(
                BulkItemError(
                    position=pos,
                    status=status,
                    error_type=str(err.get("type", "unknown")),
                    reason=str(err.get("reason", err)),
                    id=op.get("_id"),
                )
            )
    return result
