"""Options and helpers shared by the CLI modules."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import click

from logsight.engine import Engine, EngineAuthError, EngineError, connect
from logsight.errors import BadRequest, NoData
from logsight.timeutil import parse_when

F = TypeVar("F", bound=Callable[..., Any])

TIME_HELP = "ISO-8601 time, 'now', or an age such as 15m, 6h, now-2h"


def time_option(*decls: str, what: str, default: str = "", **kw: Any) -> Callable[[F], F]:
    """THE declaration of a time option (``--from``, ``--baseline-to``, ``--now`` ...): every
    one takes the same grammar (:func:`when`) and says so the same way in its help."""
    text = f"{what}: {TIME_HELP}." + (f" {default}" if default else "")
    return click.option(*decls, help=text, **kw)


def when(value: str | None, *, now: datetime, option: str | None = None) -> datetime | None:
    """A time option's value (:func:`logsight.timeutil.parse_when`: ISO-8601, ``now``, an age,
    ``2024/05/01 10:00``) against the command's one ``now``; None when not given; a usage
    error naming ``option`` otherwise."""
    if value is None:
        return None
    try:
        return parse_when(value, now=now)
    except ValueError as e:
        raise click.BadParameter(f"not a date/time: {value!r} {e} (use {TIME_HELP})",
                                 param_hint=option) from None


def write_option(help: str) -> Callable[[F], F]:
    """THE ``--write/--no-write`` switch of every command that stores what it found
    (default: write); the parameter is ``write``."""
    return click.option("--write/--no-write", "write", default=True, show_default=True,
                        help=help)


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


@contextmanager
def job_errors(options: Mapping[str, str], *, hint: Mapping[str, str] | None = None
               ) -> Iterator[None]:
    """THE mapping of the jobs' error kinds to the CLI's answers: a bad parameter is a usage
    error (exit 2) naming the option that gives it (``options``: request field -> option, e.g.
    ``{"window.start": "--from"}``); no data is exit 1 with the reason (plus the ``hint`` for
    the fields that chose the empty place); the cluster's errors are exit 1."""
    try:
        yield
    except BadRequest as e:
        param = options.get(e.parameter or "") or options.get((e.parameter or "").split(".")[0])
        raise click.BadParameter(e.render(options), param_hint=param) from None
    except NoData as e:
        extra = [h for p, h in (hint or {}).items() if p in e.parameters]
        text = e.render(options) + "".join(f"\n{h}" for h in dict.fromkeys(extra))
        raise click.ClickException(text) from None
    except EngineError as e:
        raise click.ClickException(f"cluster error: {e}") from e
