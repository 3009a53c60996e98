"""Envoy / Istio access-log lines into ECS documents for the logs stream (pure).

Accepted shapes:

* Envoy's default text format::

    [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
    %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
    %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
    "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"

* Istio's default text format (the above with ``%RESPONSE_CODE_DETAILS%
  %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%"`` after the flags and
  ``%UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS%
  %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%`` at the end);
* Istio's JSON access log (``accessLogEncoding: JSON``: ``start_time``, ``method``, ``path``,
  ``response_code``, ``upstream_cluster``, ...), and the peer identities when the mesh logs
  them (``downstream_peer_uri_san`` / ``upstream_peer_uri_san``: SPIFFE ids under mTLS).

ECS fields: ``http.request.method``, ``http.request.id``, ``http.version``,
``http.response.status_code``, ``http.request.body.bytes``, ``http.response.body.bytes``,
``url.original`` / ``url.path`` / ``url.query`` / ``url.domain``, ``user_agent.original``,
``source.address`` / ``source.ip`` / ``source.port``, ``destination.address`` /
``destination.ip`` / ``destination.port``, ``network.forwarded_ip``, ``event.duration`` (ns),
``event.outcome``, ``service.target.name`` (from the upstream cluster), ``service.origin.name``
and ``tls.client.x509.alternative_names`` (the downstream peer's SPIFFE id),
``tls.server.x509.alternative_names`` (the upstream peer's); Envoy's own under ``envoy.*``:
``envoy.response_flags`` (a list), ``envoy.response_code_details``, ``envoy.upstream.cluster``,
``envoy.route_name``, ``envoy.duration_ms``, ``envoy.upstream_service_time_ms``.

A line that is none of these raises :class:`ValueError` saying why (it is dead-lettered).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from logsight.timeutil import iso

_TOKEN = re.compile(r'\[([^\]]*)\]|"((?:[^"\\]|\\.)*)"|(\S+)')
_ENVOY_FIELDS = ("start_time", "request", "response_code", "response_flags", "bytes_received",
                 "bytes_sent", "duration", "upstream_service_time", "x_forwarded_for",
                 "user_agent", "request_id", "authority", "upstream_host")
_ISTIO_FIELDS = ("start_time", "request", "response_code", "response_flags",
                 "response_code_details", "connection_termination_details",
                 "upstream_transport_failure_reason", "bytes_received", "bytes_sent", "duration",
                 "upstream_service_time", "x_forwarded_for", "user_agent", "request_id",
                 "authority", "upstream_host", "upstream_cluster", "upstream_local_address",
                 "downstream_local_address", "downstream_remote_address",
                 "requested_server_name", "route_name")
_QUOTED = {"request", "x_forwarded_for", "user_agent", "request_id", "authority",
           "upstream_host", "upstream_transport_failure_reason"}


def _tokens(line: str) -> list[tuple[str, str]]:
    """(kind, text) per token: ``[`` bracketed, ``"`` quoted, ``-`` bare."""
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _TOKEN.finditer(line):
        if line[pos:m.start()].strip():
            raise ValueError(f"unparsable text at column {pos + 1}")
        pos = m.end()
        if m.group(1) is not None:
            out.append(("[", m.group(1)))
        elif m.group(2) is not None:
            out.append(('"', m.group(2)))
        else:
            out.append(("-", m.group(3)))
    return out


def _text_fields(line: str) -> dict[str, str]:
    tokens = _tokens(line)
    names = {len(_ENVOY_FIELDS): _ENVOY_FIELDS, len(_ISTIO_FIELDS): _ISTIO_FIELDS}.get(
        len(tokens))
    if names is None:
        raise ValueError(f"{len(tokens)} fields: not Envoy's default access-log format "
                         f"({len(_ENVOY_FIELDS)}) nor Istio's ({len(_ISTIO_FIELDS)})")
    if tokens[0][0] != "[":
        raise ValueError("no [START_TIME] at the start of the line")
    fields: dict[str, str] = {}
    for name, (kind, text) in zip(names, tokens, strict=True):
        if (name in _QUOTED) != (kind == '"'):
            raise ValueError(f"{name} should {'' if name in _QUOTED else 'not '}be quoted")
        fields[name] = text
    method, _, rest = fields.pop("request").partition(" ")
    path, _, protocol = rest.rpartition(" ")
    if not method or not path:
        raise ValueError('the request is not "METHOD PATH PROTOCOL"')
    fields.update(method=method, path=path, protocol=protocol)
    return fields


def _present(v: Any) -> bool:
    return v is not None and v != "" and v != "-"


def _int(v: Any, what: str) -> int | None:
    if not _present(v):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {v!r} is not a number") from None


def _address(v: Any) -> tuple[str, str | None, int | None] | None:
    """(address, ip, port) of ``ip:port`` / ``[v6]:port`` / a bare host."""
    if not _present(v):
        return None
    text = str(v)
    m = re.fullmatch(r"\[?([0-9A-Fa-f:.]+?)\]?:(\d+)", text)
    if m and (":" not in m.group(1) or text.startswith("[")):
        host, port = m.group(1), int(m.group(2))
        ip = host if re.fullmatch(r"[0-9.]+|[0-9A-Fa-f:]+", host) else None
        return text, ip, port
    return text, None, None


def upstream_service(cluster: str) -> str | None:
    """The service an upstream cluster names: Istio's ``outbound|9080||reviews.default.svc
    .cluster.local`` -> ``reviews``; ``inbound|...`` -> None (the local app); other names
    as they are."""
    if not _present(cluster):
        return None
    parts = cluster.split("|")
    if len(parts) == 4:
        if parts[0] != "outbound":
            return None
        host = parts[3]
        return host.split(".")[0] if host.endswith(".svc.cluster.local") else host
    return cluster


def spiffe_service(uri: str) -> str | None:
    """The service account of a SPIFFE id (``spiffe://cluster.local/ns/default/sa/ratings``)."""
    m = re.search(r"/sa/([^/]+)$", uri or "")
    return m.group(1) if m else None


def parse_line(line: str) -> dict[str, Any]:
    """The ECS document (flat, dotted keys) of one access-log line; ValueError for a line that
    is not one."""
    text = line.strip()
    if text.startswith("{"):
        try:
            raw = json.loads(text)
        except ValueError as e:
            raise ValueError(f"not JSON: {e}") from None
        if not isinstance(raw, dict) or "start_time" not in raw:
            raise ValueError("a JSON line without start_time is not an Istio access log")
        fields: dict[str, Any] = dict(raw)
    else:
        fields = _text_fields(text)
    try:
        ts = datetime.fromisoformat(str(fields["start_time"]).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"start_time {fields['start_time']!r} is not ISO-8601") from None
    code = _int(fields.get("response_code"), "response_code")
    if code is None:
        raise ValueError("no response_code")
    duration = _int(fields.get("duration"), "duration")
    doc: dict[str, Any] = {"@timestamp": iso(ts), "message": text,
                           "event.dataset": "envoy.access", "event.kind": "event",
                           "event.category": "web"}
    doc["log.level"] = "error" if code >= 500 or code == 0 else "warn" if code >= 400 else "info"
    doc["event.outcome"] = "failure" if code >= 500 or code == 0 else "success"
    if _present(fields.get("method")):
        doc["http.request.method"] = str(fields["method"])
    path = fields.get("path")
    if _present(path):
        doc["url.original"] = str(path)
        p, _, q = str(path).partition("?")
        doc["url.path"] = p
        if q:
            doc["url.query"] = q
    proto = fields.get("protocol")
    if _present(proto) and str(proto).upper().startswith("HTTP/"):
        doc["http.version"] = str(proto)[5:]
    doc["http.response.status_code"] = code
    for key, field in (("bytes_received", "http.request.body.bytes"),
                       ("bytes_sent", "http.response.body.bytes")):
        n = _int(fields.get(key), key)
        if n is not None:
            doc[field] = n
    if duration is not None:
        doc["event.duration"] = duration * 1_000_000
        doc["envoy.duration_ms"] = float(duration)
    ust = _int(fields.get("upstream_service_time"), "upstream_service_time")
    if ust is not None:
        doc["envoy.upstream_service_time_ms"] = float(ust)
    flags = fields.get("response_flags")
    doc["envoy.response_flags"] = [f for f in str(flags).split(",") if f] \
        if _present(flags) else []
    for key, field in (("response_code_details", "envoy.response_code_details"),
                       ("connection_termination_details",
                        "envoy.connection_termination_details"),
                       ("upstream_transport_failure_reason",
                        "envoy.upstream_transport_failure_reason"),
                       ("route_name", "envoy.route_name"),
                       ("requested_server_name", "tls.client.server_name"),
                       ("user_agent", "user_agent.original"),
                       ("request_id", "http.request.id"),
                       ("authority", "url.domain"),
                       ("x_forwarded_for", "network.forwarded_ip")):
        if _present(fields.get(key)):
            doc[field] = str(fields[key])
    cluster = fields.get("upstream_cluster")
    if _present(cluster):
        doc["envoy.upstream.cluster"] = str(cluster)
        target = upstream_service(str(cluster))
        if target:
            doc["service.target.name"] = target
    for key, prefix in (("downstream_remote_address", "source"),
                        ("upstream_host", "destination")):
        addr = _address(fields.get(key))
        if addr is not None:
            doc[f"{prefix}.address"] = addr[0]
            if addr[1]:
                doc[f"{prefix}.ip"] = addr[1]
            if addr[2] is not None:
                doc[f"{prefix}.port"] = addr[2]
    down_peer = fields.get("downstream_peer_uri_san")
    if _present(down_peer):
        doc["tls.established"] = True
        doc["tls.client.x509.alternative_names"] = [str(down_peer)]
        origin = spiffe_service(str(down_peer))
        if origin:
            doc["service.origin.name"] = origin
    up_peer = fields.get("upstream_peer_uri_san")
    if _present(up_peer):
        doc["tls.established"] = True
        doc["tls.server.x509.alternative_names"] = [str(up_peer)]
    return doc
