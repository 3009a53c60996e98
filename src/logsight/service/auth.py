"""API-key auth: ``X-API-Key: <key>`` or ``Authorization: ApiKey <key>``.

Keys are compared with :func:`hmac.compare_digest` against every configured key (no early
exit, so timing tells nothing about which key, or which prefix, was close). A key is never
logged, echoed, or put in an error body."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence

from fastapi import Security
from fastapi.security import APIKeyHeader

from logsight.service.errors import ApiError

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="ApiKeyHeader",
    description="An API key from LOGSIGHT_API_KEYS / --api-key",
)
authorization_header = APIKeyHeader(
    name="Authorization", auto_error=False, scheme_name="ApiKeyAuthorization",
    description="'ApiKey <key>'",
)


def _digest(key: str) -> bytes:
    # hashing first gives equal-length inputs, so compare_digest's time does not depend on
    # the length of the configured key
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class KeyChecker:
    """Holds the digests of the configured keys (not the keys)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._digests = tuple(_digest(k) for k in keys)

    def __repr__(self) -> str:
        return f"KeyChecker({len(self._digests)} key(s))"

    def check(self, presented: str | None) -> bool:
        if not presented or not self._digests:
            return False
        d = _digest(presented)
        ok = False
        for known in self._digests:
            ok |= hmac.compare_digest(d, known)
        return ok


def presented_key(x_api_key: str | None, authorization: str | None) -> str | None:
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "apikey" and token.strip():
            return token.strip()
    return None


def make_auth_dependency(
    keys: Sequence[str], *, enabled: bool
) -> Callable[..., Awaitable[None]]:
    """The dependency every ``/v1`` route takes; a no-op when auth is off (and then the
    OpenAPI schema declares no security scheme either: it describes the app as it runs)."""
    checker = KeyChecker(keys)

    if not enabled:
        async def open_access() -> None:
            return None

        return open_access

    async def require_api_key(
        x_api_key: str | None = Security(api_key_header),
        authorization: str | None = Security(authorization_header),
    ) -> None:
        key = presented_key(x_api_key, authorization)
        if key is None:
            raise ApiError(
                401, "unauthorized",
                "missing API key: send 'X-API-Key: <key>' or 'Authorization: ApiKey <key>'",
                headers={"WWW-Authenticate": "ApiKey"},
            )
        if not checker.check(key):
            raise ApiError(401, "unauthorized", "invalid API key",
                           headers={"WWW-Authenticate": "ApiKey"})

    return require_api_key
