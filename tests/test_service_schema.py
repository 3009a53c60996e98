"""Property-based: schemathesis generates requests from the app's own OpenAPI schema; none may
get a 5xx (a client's mistake is a 4xx), and every 2xx/4xx body must match the schema."""

from __future__ import annotations

import uuid
import zlib
from datetime import UTC, datetime

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from logsight.engine import Engine, connect
from logsight.service import ServiceSettings, create_app

pytestmark = pytest.mark.engine

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


# Built at import (schemathesis parametrizes at collection); the engine is connected lazily
# on the first request, by then the `engine` fixture has made sure LOGSIGHT_URL answers. A
# namespace of its own keeps generated windows from reading other tests' data.
app = create_app(
    lambda: connect(),
    ServiceSettings(auth=False, namespace="t" + uuid.uuid4().hex[:12]),
    clock=lambda: NOW,
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_no_server_error_on_any_generated_input(case: schemathesis.Case, engine: Engine) -> None:
    response = case.call()
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
    if response.status_code < 300:
        case.validate_response(response)


KEY = "schema-test-key-" + uuid.uuid4().hex
authed_app = create_app(
    lambda: connect(),
    ServiceSettings(api_keys=(KEY,), namespace="t" + uuid.uuid4().hex[:12]),
    clock=lambda: NOW,
)
authed_schema = schemathesis.openapi.from_asgi("/openapi.json", authed_app)


@authed_schema.parametrize()
@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_no_server_error_with_auth_on(case: schemathesis.Case, engine: Engine) -> None:
    # half the time the generated credentials, half a valid key: both must stay below 500
    headers = dict(case.headers or {})
    if zlib.crc32((case.formatted_path + str(case.query)).encode()) % 2:
        headers.pop("Authorization", None)
        headers["X-API-Key"] = KEY
    response = case.call(headers=headers)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
    assert KEY not in response.text
