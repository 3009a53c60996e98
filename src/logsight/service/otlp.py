"""The OTLP/HTTP receiver's web face: ``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics``
(protobuf or JSON, gzip or not) and ``GET /health``, an app of its own served on its own port
(4318 by convention) so the API and the receiver can be secured differently.

Auth is optional: with keys configured every export needs one, as ``Authorization: Bearer
<key>`` (what the SDKs' ``OTEL_EXPORTER_OTLP_HEADERS`` usually carry), ``Authorization: ApiKey
<key>`` or ``X-API-Key: <key>``; 401 otherwise. Bodies larger than the limit are refused with
413 before they are read in full. The work (decode, ``_bulk``, spool) runs in a worker thread.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from logsight.otlp import Answer, OtlpReceiver
from logsight.otlp.decode import PROTOBUF, SIGNALS
from logsight.service.auth import KeyChecker


def presented_otlp_key(headers: dict[str, str]) -> str | None:
    """The key an exporter presents: ``X-API-Key``, or ``Authorization: Bearer|ApiKey``."""
    if headers.get("x-api-key"):
        return headers["x-api-key"].strip()
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() in ("bearer", "apikey") and token.strip():
        return token.strip()
    return None


def create_otlp_app(receiver: OtlpReceiver, *, api_keys: Sequence[str] = (),
                    close_receiver: bool = True) -> FastAPI:
    """The receiver's app; ``api_keys`` empty: open (a trusted network's collector port)."""
    checker = KeyChecker(api_keys) if api_keys else None
    limit = receiver.settings.max_body_bytes

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if close_receiver:
                await anyio.to_thread.run_sync(functools.partial(receiver.close, timeout=10.0))

    app = FastAPI(title="logsight OTLP receiver", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.receiver = receiver

    def reply(answer: Answer) -> Response:
        return Response(answer.body, status_code=answer.status, media_type=answer.content_type,
                        headers=answer.headers)

    async def export(request: Request, signal: str) -> Response:
        ctype = request.headers.get("content-type") or PROTOBUF
        if checker is not None:
            key = presented_otlp_key(dict(request.headers))
            if key is None or not checker.check(key):
                return reply(receiver.error_answer(401, "missing or invalid API key (send "
                                             "'Authorization: Bearer <key>')", ctype))
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return reply(receiver.error_answer(413, f"request body larger than the limit of {limit} "
                                         "bytes", ctype))
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return reply(receiver.error_answer(413, f"request body larger than the limit of "
                                             f"{limit} bytes", ctype))
            chunks.append(chunk)
        answer = await anyio.to_thread.run_sync(functools.partial(
            receiver.handle, signal, b"".join(chunks), content_type=ctype,
            content_encoding=request.headers.get("content-encoding")))
        return reply(answer)

    def route(signal: str) -> Callable[[Request], Awaitable[Response]]:
        async def receive(request: Request) -> Response:
            return await export(request, signal)

        return receive

    for signal in SIGNALS:
        app.add_api_route(f"/v1/{signal}", route(signal), methods=["POST"],
                          name=f"export_{signal}")

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse(receiver.status())

    return app
