"""Options and helpers shared by the CLI modules."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from logsight.engine import Engine, EngineAuthError, EngineError, connect

F = TypeVar("F", bound=Callable[..., Any])


def url_option(f: F) -> F:
    return click.option(
        "--url",
        envvar="LOGSIGHT_URL",
        default=None,
        help="Cluster URL (env LOGSIGHT_URL; default http://127.0.0.1:9200). Auth: "
        "LOGSIGHT_API_KEY or LOGSIGHT_USERNAME/LOGSIGHT_PASSWORD.",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)


def engine_from(url: str | None) -> Engine:
    try:
        return connect(url)
    except EngineAuthError as e:  # a configuration error: starting an engine would not help
        raise click.ClickException(f"configuration error: {e.message}") from e
    except EngineError as e:
        raise click.ClickException(
            f"{e.message}\nStart the local engine with 'logsight engine start' or set LOGSIGHT_URL."
        ) from e


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def print_table(rows: list[dict[str, Any]], columns: list[str], *, floatfmt: str = ".3f") -> None:
    """A plain aligned table (no extra dependency); numbers right-aligned."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return format(v, floatfmt)
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    click.echo("  ".join("-" * w for w in widths))
    for r, row in zip(rows, cells, strict=True):
        out = []
        for c, v, w in zip(columns, row, widths, strict=True):
            out.append(v.rjust(w) if isinstance(r.get(c), (int, float)) else v.ljust(w))
        click.echo("  ".join(out))


def namespace_callback(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    """Click callback for every ``--namespace``: empty means all namespaces; anything else must
    be a valid data-stream namespace (a usage error, exit 2, otherwise)."""
    if not value:
        return None
    from logsight.names import check_namespace

    try:
        return check_namespace(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None
