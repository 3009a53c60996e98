"""``logsight serve``: the HTTP API and the in-service scheduler, under uvicorn."""

from __future__ import annotations

import os
from typing import Any

import click

from logsight.cli.common import url_option


def _duration(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    from logsight.service.settings import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value, what=f"--{param.name}".replace("_", "-"))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--api-key", "api_keys", multiple=True,
              help="Accepted API key (repeatable). Prefer env LOGSIGHT_API_KEYS (comma-"
              "separated): command lines are visible to other users.")
@click.option("--no-auth", is_flag=True, help="Serve /v1 without API keys (trusted networks).")
@click.option("--scheduler/--no-scheduler", default=None,
              help="Run the analyses on their intervals (default on; env LOGSIGHT_SCHEDULER).")
@click.option("--interval", callback=_duration, default=None,
              help="Scheduler interval of every analysis, e.g. 5m (env "
              "LOGSIGHT_SCHEDULER_INTERVAL; default 5m).")
@click.option("--task-interval", "task_intervals", multiple=True,
              help="Per analysis: NAME=5m or NAME=off (repeatable; env "
              "LOGSIGHT_SCHEDULER_INTERVALS). Names: bottlenecks, trace_regressions, "
              "log_anomalies, drift, performance.")
@click.option("--namespace", default=None, help="Data-stream namespace to analyse (default all).")
@click.option("--max-window", callback=_duration, default=None,
              help="Largest time window a request may ask for (default 7d).")
@click.option("--request-timeout", callback=_duration, default=None,
              help="Per-request time limit (default 30s).")
@click.option("--self-log/--no-self-log", default=True, show_default=True,
              help="Ship the service's own logs to the cluster through logsight's adapter.")
@click.option("--access-log/--no-access-log", default=True, show_default=True)
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="info", show_default=True)
@url_option
def serve(
    host: str, port: int, api_keys: tuple[str, ...], no_auth: bool, scheduler: bool | None,
    interval: Any, task_intervals: tuple[str, ...], namespace: str | None, max_window: Any,
    request_timeout: Any, self_log: bool, access_log: bool, log_level: str, url: str | None,
) -> None:
    """Serve the analytics API (bottlenecks, anomalies, drift, performance, findings)."""
    import uvicorn

    from logsight.engine import connect
    from logsight.service import ServiceSettings, create_app
    from logsight.service.selflog import configure_self_logging
    from logsight.service.settings import parse_intervals, parse_keys

    overrides: dict[str, Any] = {
        "interval": interval, "namespace": namespace, "max_window": max_window,
        "request_timeout": request_timeout.total_seconds() if request_timeout else None,
    }
    if api_keys:
        overrides["api_keys"] = tuple(k for spec in api_keys for k in parse_keys(spec))
    if no_auth:
        overrides["auth"] = False
    if scheduler is not None:
        overrides["scheduler"] = scheduler
    elif "LOGSIGHT_SCHEDULER" not in os.environ:
        overrides["scheduler"] = True  # on by default for a served API; off in create_app
    try:
        if task_intervals:
            overrides["intervals"] = parse_intervals(",".join(task_intervals))
        settings = ServiceSettings.from_env(**overrides)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    handle = configure_self_logging(url, namespace=settings.namespace) if self_log else None
    app = create_app(lambda: connect(url), settings, log_handle=handle)
    click.echo(
        f"logsight API on http://{host}:{port} (auth {'on' if settings.auth else 'OFF'}, "
        f"scheduler {'on' if settings.scheduler else 'off'}); OpenAPI at /docs",
        err=True,
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log)
    finally:
        if handle is not None:
            handle.close(timeout=5.0)
