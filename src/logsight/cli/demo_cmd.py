"""``logsight demo``: the whole story on this machine."""

from __future__ import annotations

import os

import click

from logsight.assets import install
from logsight.engine import connect
from logsight.local import LocalEngine, LocalEngineError


@click.command()
def demo() -> None:
    """Start the local engine (unless LOGSIGHT_URL is set) and install logsight's assets."""
    url = os.environ.get("LOGSIGHT_URL")
    if not url:
        try:
            status, started = LocalEngine().start()
        except LocalEngineError as e:
            raise click.ClickException(str(e)) from e
        url = status.url
        click.echo(("started " if started else "using running ") + status.describe())
    report = install(connect(url))
    click.echo(f"assets: {report.changed} changed, {len(report.rows) - report.changed} unchanged")
