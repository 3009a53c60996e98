"""``logsight engine start|stop|status``: the local OpenSearch node."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import click

from logsight.local import LocalEngine, LocalEngineError


def _local(state_dir: Path | None, port: int | None, heap: str | None) -> LocalEngine:
    return LocalEngine(state_dir, port=port, heap=heap)


state_opt = click.option(
    "--state-dir", type=click.Path(path_type=Path), envvar="LOGSIGHT_ENGINE_DIR", default=None,
    help="Where data and logs live (default: the user's data dir, logsight/engine).",
)
port_opt = click.option("--port", type=click.IntRange(1, 65535), default=None,
                        help="HTTP port on 127.0.0.1 (default 9200, env LOGSIGHT_ENGINE_PORT).")
heap_opt = click.option("--heap", default=None,
                        help="JVM heap, e.g. 512m or 1g (default 1g, env LOGSIGHT_ENGINE_HEAP).")


@click.group()
def engine() -> None:
    """Run a real single-node OpenSearch on this machine (resolved with Maven)."""


@engine.command()
@state_opt
@port_opt
@heap_opt
@click.option("--timeout", type=float, default=240.0, show_default=True,
              help="Seconds to wait for a green cluster.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of sentences.")
def start(state_dir: Path | None, port: int | None, heap: str | None, timeout: float,
          as_json: bool) -> None:
    """Start the engine and wait until the cluster is green."""
    eng = _local(state_dir, port, heap)
    t0 = time.monotonic()
    try:
        status, started = eng.start(timeout=timeout)
    except LocalEngineError as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        click.echo(json.dumps({"started": started, "seconds": round(time.monotonic() - t0, 1),
                               **dataclasses.asdict(status)}, default=str))
        return
    if started:
        click.echo(f"engine started in {time.monotonic() - t0:.1f}s: {status.url}")
    else:
        click.echo(f"engine already running: {status.url}")
    click.echo(status.describe())


@engine.command()
@state_opt
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a sentence.")
def stop(state_dir: Path | None, as_json: bool) -> None:
    """Stop the engine cleanly; data stays in the state directory."""
    eng = _local(state_dir, None, None)
    try:
        stopped = eng.stop()
    except LocalEngineError as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        click.echo(json.dumps({"stopped": stopped}))  # False: it was not running
        return
    click.echo("engine stopped" if stopped else "engine was not running")


@engine.command()
@state_opt
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a sentence.")
def status(state_dir: Path | None, as_json: bool) -> None:
    """Say whether the engine runs, its version and URL. Exit code 3 when stopped."""
    st = _local(state_dir, None, None).status()
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(st)))
    else:
        click.echo(st.describe())
    if not st.running:
        raise SystemExit(3)
