"""The API routes: stored findings, filtered and paged."""

# no `from __future__ import annotations`: FastAPI reads the route signatures at runtime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.params import Depends

from logsight import names
from logsight.findings import read_findings
from logsight.service.context import (
    FindingKind,
    ServiceContext,
    _finding_out,
)
from logsight.service.errors import bad_request, error_responses
from logsight.service.models import (
    FindingsPage,
    Severity,
    TimeError,
    decode_cursor,
    encode_cursor,
    parse_time,
)
from logsight.timeutil import iso


def router(ctx: ServiceContext, guarded: list[Depends]) -> APIRouter:
    """The routes, bound to the app's context; ``guarded``: the dependencies every ``/v1``
    route runs first (API key, strict query parameters)."""
    router = APIRouter()
    errors = error_responses(400, 401, 404, 422, 503, 504)

    @router.get("/v1/findings", response_model=FindingsPage, tags=["findings"],
             dependencies=guarded, responses=errors)
    async def findings(
        kind: Annotated[list[FindingKind] | None, Query()] = None,
        service: Annotated[str | None, Query(max_length=256)] = None,
        severity: Annotated[list[Severity] | None, Query()] = None,
        start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=ctx.cfg.max_page_size)] = 50,
        cursor: Annotated[str | None, Query(max_length=1024,
                                            description="next_cursor of the previous page")
                          ] = None,
        namespace: Annotated[str | None, Query(
            max_length=100, description="Only findings about this data-stream namespace "
            "(default: the configured namespace, else all)")] = None,
    ) -> FindingsPage:
        """Stored findings, newest first, filtered; page with `next_cursor`. Without `from`
        the range is open (the window limit applies only when both ends are given)."""
        ns = ctx.check_namespace(namespace)
        now = ctx.clock()
        try:
            s = parse_time(start, now=now, name="from")
            e = parse_time(end, now=now, name="to")
        except TimeError as err:
            raise bad_request(str(err), "bad_time") from None
        if s is not None and e is not None and e <= s:
            raise bad_request(f"inverted time range: from ({iso(s)}) must be before to "
                              f"({iso(e)})", "bad_time")
        after = None
        if cursor:
            try:
                after = decode_cursor(cursor)
            except ValueError as err:
                raise bad_request(str(err), "bad_cursor") from None

        def read() -> tuple[list[dict[str, Any]], list[Any] | None]:
            engine = ctx.holder.get()
            ctx.require_known(engine, "service", service,
                          [names.LOGS, names.TRACES, names.MLEVENTS], ns, findings=True)
            return read_findings(engine, kind=kind, service=service, severity=severity,
                                 start=s, end=e, size=limit, search_after=after, namespace=ns)

        docs, nxt = await ctx.blocking(read)
        return FindingsPage(findings=[_finding_out(d) for d in docs],
                            next_cursor=encode_cursor(nxt) if nxt else None)

    return router
