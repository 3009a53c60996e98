"""Errors the API answers with: one JSON shape, the right status, never a 500 for a client's
mistake and never a secret or a stack trace in the body."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from logsight import errors
from logsight.engine import EngineAuthError, EngineError, EngineUnavailable
from logsight.service.models import ErrorBody

_log = logging.getLogger("logsight.service")


class ApiError(Exception):
    """An answer other than 2xx, raised anywhere below the routes."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details


def bad_request(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


def not_found(message: str, code: str = "not_found", details: Any = None) -> ApiError:
    return ApiError(404, code, message, details=details)


def unknown_parameters(unknown: list[str], accepted: list[str]) -> ApiError:
    """422 for query parameters the route does not declare (a misspelt filter would otherwise
    be silently ignored and answer for more than was asked)."""
    names = ", ".join(unknown)
    allowed = ", ".join(accepted) if accepted else "none"
    return ApiError(
        422, "invalid_request",
        f"unknown query parameter{'s' if len(unknown) > 1 else ''}: {names} "
        f"(this route accepts: {allowed})",
        details={"unknown": unknown, "accepted": accepted},
    )


# THE mapping of the jobs' error kinds to answers: (status, error code). No data where the
# request points is the caller's to fix by asking elsewhere, like a bad parameter: 400; an
# unknown name 404; no free slot 503 (with Retry-After, as for an unreachable cluster, which
# has its own handler below: its detail stays in our log).
STATUS: dict[type[errors.LogsightError], tuple[int, str]] = {
    errors.BadRequest: (400, "bad_request"),
    errors.NoData: (400, "no_data"),
    errors.NotFound: (404, "not_found"),
    errors.Busy: (503, "busy"),
}


def api_error(err: errors.LogsightError, names: Mapping[str, str] | None = None) -> ApiError:
    """The answer to a job's error, its parameters named as the route calls them
    (``names``: request field -> query/body parameter)."""
    # errors.EngineUnavailable, or a kind without an answer yet: not the caller's fault
    status, code = next((answer for kind, answer in STATUS.items() if isinstance(err, kind)),
                        (503, err.kind))
    details: Any = None
    if isinstance(err, errors.BadRequest) and err.parameter:
        shown = (names or {}).get(err.parameter, err.parameter)
        details = {"parameter": shown}
    headers = {}
    if isinstance(err, errors.Busy) and err.retry_after is not None:
        headers["Retry-After"] = str(int(err.retry_after))
    return ApiError(status, code, err.render(names), headers=headers, details=details)


class RequestTimeout(ApiError):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            504, "timeout", f"the request did not finish within {seconds:g} s; narrow the window "
            "or filter by service"
        )


# what /health and the error answers say when the cluster answers 401
REFUSED = "the cluster refused our credentials"


def _body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return ErrorBody(error=code, message=message, details=details).model_dump(exclude_none=True)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entry documenting the error shape for ``statuses``."""
    text = {
        400: "Bad input (inverted or too large window, bad cursor, unknown name)",
        401: "Missing or wrong API key",
        404: "Unknown service, model, model version or analysis",
        422: "A parameter of the wrong type or out of range, an unknown body field, or an "
             "unknown query parameter (only the documented parameters are accepted)",
        502: "The cluster refused our credentials (a configuration error), or refused the "
             "request",
        503: "The cluster is unavailable, or every analysis slot is busy; retry after the "
             "Retry-After seconds",
        504: "The request timed out",
    }
    return {s: {"model": ErrorBody, "description": text.get(s, "Error")} for s in statuses}


def install_error_handlers(app: FastAPI, *, retry_after: int) -> None:
    # every app installs these: also the place that keeps credentials out of the access log
    from logsight.service.selflog import redact_access_log

    redact_access_log()

    @app.exception_handler(EngineAuthError)
    async def _refused(request: Request, exc: EngineAuthError) -> JSONResponse:
        # a configuration error, not an outage: retrying (503) would not help
        _log.error("the cluster refused our credentials on %s", request.url.path)
        return JSONResponse(
            _body("engine_credentials_refused",
                  f"{REFUSED} (401): check LOGSIGHT_API_KEY or "
                  "LOGSIGHT_USERNAME/LOGSIGHT_PASSWORD of this service"),
            status_code=502,
        )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            _body(exc.code, exc.message, exc.details), status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(EngineUnavailable)
    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        # the engine message names the cluster URL only, never credentials (they travel in
        # headers); still, keep the answer generic and the detail in our own log
        _log.warning("cluster unavailable: %s", exc)
        return JSONResponse(
            _body("engine_unavailable", "the search cluster is unavailable; try again later"),
            status_code=503,
            headers={"Retry-After": str(retry_after)},
        )

    @app.exception_handler(errors.LogsightError)
    async def _job_error(request: Request, exc: errors.LogsightError) -> JSONResponse:
        if isinstance(exc, errors.EngineUnavailable):
            return await _unavailable(request, exc)
        return await _api_error(request, api_error(exc))

    @app.exception_handler(EngineError)
    async def _engine_error(request: Request, exc: EngineError) -> JSONResponse:
        _log.error("cluster error on %s: %s", request.url.path, exc)
        return JSONResponse(
            _body("engine_error", f"the search cluster refused the request ({exc.status})"),
            status_code=502,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        loc = details[0]["loc"] if details else []
        msg = str(details[0]["msg"]) if details else "invalid request"
        where = ".".join(str(p) for p in loc)
        return JSONResponse(
            _body("invalid_request", f"{where}: {msg}" if where else msg, details),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            _body("http_error", str(exc.detail)), status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )
