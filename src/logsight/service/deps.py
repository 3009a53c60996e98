"""The checks every ``/v1`` route runs first, as FastAPI dependencies: the API key, then the
query parameters (an unknown one is a 422 naming it, never silently ignored)."""

from fastapi import Depends, Request
from fastapi.routing import APIRoute

from logsight.service.auth import make_auth_dependency
from logsight.service.errors import unknown_parameters
from logsight.service.settings import ServiceSettings


def guarded(cfg: ServiceSettings) -> list[Depends]:  # type: ignore[valid-type]  # Depends() is a call in FastAPI's types
    """The dependencies of a guarded route: API key (unless ``--no-auth``), strict query."""
    auth = make_auth_dependency(cfg.api_keys, enabled=cfg.auth)
    declared: dict[int, frozenset[str]] = {}

    def query_names(route: APIRoute) -> frozenset[str]:
        """The query parameters ``route`` declares (its own and its dependencies')."""
        found = declared.get(id(route))
        if found is None:
            names_: set[str] = set()
            stack = [route.dependant]
            while stack:
                dep = stack.pop()
                names_.update(p.alias for p in dep.query_params)
                stack.extend(dep.dependencies)
            found = declared[id(route)] = frozenset(names_)
        return found

    async def strict_query(request: Request) -> None:
        """422 for a query parameter the route does not declare (after auth: an anonymous
        caller learns nothing about the routes)."""
        route = request.scope.get("route")
        if not isinstance(route, APIRoute):
            return
        accepted = query_names(route)
        unknown = sorted({k for k in request.query_params if k not in accepted})
        if unknown:
            raise unknown_parameters(unknown, sorted(accepted))

    return [Depends(auth), Depends(strict_query)]
