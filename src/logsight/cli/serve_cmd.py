"""``logsight serve``: the HTTP API and the in-service scheduler, under uvicorn."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from logsight.cli.common import url_option

if TYPE_CHECKING:
    from logsight.service.settings import ServiceSettings


def _duration(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    from logsight.service.settings import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value, what=f"--{param.name}".replace("_", "-"))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _task_intervals(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Each NAME=5m|off parsed now: an unknown task or a bad interval is a usage error naming
    the flag and the valid task names, not a scheduler that silently never runs it."""
    from logsight.service.settings import parse_intervals

    if not value:
        return None
    try:
        return parse_intervals(",".join(value))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="HTTP port of the API (0: a free one).")
@click.option("--api-key", "api_keys", multiple=True,
              help="Accepted API key (repeatable). Prefer env LOGSIGHT_API_KEYS (comma-"
              "separated): command lines are visible to other users.")
@click.option("--no-auth", is_flag=True, help="Serve /v1 without API keys (trusted networks).")
@click.option("--scheduler/--no-scheduler", default=None,
              help="Run the analyses on their intervals (default on; env LOGSIGHT_SCHEDULER).")
@click.option("--interval", callback=_duration, default=None,
              help="Scheduler interval of every analysis, e.g. 5m (env "
              "LOGSIGHT_SCHEDULER_INTERVAL; default 5m).")
@click.option("--task-interval", "task_intervals", multiple=True, callback=_task_intervals,
              help="Per analysis: NAME=5m or NAME=off (repeatable; env "
              "LOGSIGHT_SCHEDULER_INTERVALS). Names: bottlenecks, trace_regressions, "
              "dependencies, canary, log_anomalies, drift, performance.")
@click.option("--namespace", default=None, help="Data-stream namespace to analyse (default all).")
@click.option("--max-window", callback=_duration, default=None,
              help="Largest time window a request may ask for (default 7d).")
@click.option("--request-timeout", callback=_duration, default=None,
              help="Per-request time limit (default 30s).")
@click.option("--cache-ttl", callback=_duration, default=None,
              help="How long GET analysis answers are reused, e.g. 30s; 0 turns reuse off "
              "(env LOGSIGHT_CACHE_TTL; default 30s).")
@click.option("--cache-past-ttl", callback=_duration, default=None,
              help="The same for fixed windows that ended over a minute ago (env "
              "LOGSIGHT_CACHE_PAST_TTL; default 10m).")
@click.option("--cache-size", type=click.IntRange(min=0), default=None,
              help="Cached answers kept at most, least recently used dropped first; 0: no "
              "cache (env LOGSIGHT_CACHE_SIZE; default 256).")
@click.option("--analysis-threads", type=click.IntRange(min=1), default=None,
              help="Analyses computing at once per process; others wait their turn (env "
              "LOGSIGHT_ANALYSIS_THREADS; default 4).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes (one per core; each has its own cache; the scheduler's "
              "leases keep one run per window across them).")
@click.option("--self-log/--no-self-log", default=True, show_default=True,
              help="Ship the service's own logs to the cluster through logsight's adapter.")
@click.option("--self-log-namespace", default=None,
              help="Namespace of the service's own logs, never the analysed one (env "
              "LOGSIGHT_SELF_LOG_NAMESPACE; default logsight).")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Log one line per request (credentials in URLs are redacted).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="info", show_default=True, help="Least severe level of the service's own "
              "log lines.")
@click.option("--otlp/--no-otlp", "otlp", default=None,
              help="Also run the OTLP/HTTP receiver (/v1/traces, /v1/logs, /v1/metrics) on its "
              "own port (default off; on when --otlp-port is given).")
@click.option("--otlp-port", type=click.IntRange(0, 65535), default=None,
              help="Port of the OTLP receiver (default 4318).")
@click.option("--otlp-namespace", default=None,
              help="Namespace the received telemetry is written to (default 'default').")
@click.option("--otlp-api-key", "otlp_keys", multiple=True,
              help="Key an exporter must send (Authorization: Bearer <key>; repeatable). Prefer "
              "env LOGSIGHT_OTLP_API_KEYS. None: the receiver is open.")
@click.option("--otlp-max-body", type=click.IntRange(min=1024), default=None,
              help="Largest export body in bytes, compressed and inflated (default 16 MiB).")
@url_option
def serve(
    host: str, port: int, api_keys: tuple[str, ...], no_auth: bool, scheduler: bool | None,
    interval: Any, task_intervals: dict[str, Any] | None, namespace: str | None, max_window: Any,
    request_timeout: Any, cache_ttl: Any, cache_past_ttl: Any, cache_size: int | None,
    analysis_threads: int | None, workers: int, self_log: bool,
    self_log_namespace: str | None, access_log: bool, log_level: str, otlp: bool | None,
    otlp_port: int | None, otlp_namespace: str | None, otlp_keys: tuple[str, ...],
    otlp_max_body: int | None, url: str | None,
) -> None:
    """Serve the analytics API (bottlenecks, anomalies, drift, performance, findings)."""
    import uvicorn

    from logsight.engine import connect
    from logsight.service import ServiceSettings, create_app
    from logsight.service.selflog import configure_self_logging
    from logsight.service.settings import parse_keys

    overrides: dict[str, Any] = {
        "interval": interval, "namespace": namespace, "max_window": max_window,
        "request_timeout": request_timeout.total_seconds() if request_timeout else None,
        "cache_ttl": cache_ttl.total_seconds() if cache_ttl is not None else None,
        "cache_past_ttl": cache_past_ttl.total_seconds() if cache_past_ttl is not None else None,
        "cache_size": cache_size, "analysis_threads": analysis_threads,
        "self_log_namespace": self_log_namespace,
    }
    if api_keys:
        overrides["api_keys"] = tuple(k for spec in api_keys for k in parse_keys(spec))
    if no_auth:
        overrides["auth"] = False
    if scheduler is not None:
        overrides["scheduler"] = scheduler
    elif "LOGSIGHT_SCHEDULER" not in os.environ:
        overrides["scheduler"] = True  # on by default for a served API; off in create_app
    if task_intervals:
        overrides["intervals"] = task_intervals
    try:
        # errors here come from the environment (LOGSIGHT_*) or combinations of flags
        settings = ServiceSettings.from_env(**overrides)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    click.echo(
        f"logsight API on http://{host}:{port} (auth {'on' if settings.auth else 'OFF'}, "
        f"scheduler {'on' if settings.scheduler else 'off'}, {workers} worker(s)); OpenAPI at "
        "/docs",
        err=True,
    )
    receiver_on = otlp if otlp is not None else otlp_port is not None
    if receiver_on and workers > 1:
        raise click.UsageError("--otlp runs in one process: use --workers 1 (or run a second "
                               "'logsight serve --otlp' beside the workers)")
    if workers > 1:
        # each worker process imports the factory and reads its settings from the environment
        os.environ.update(worker_env(settings, url, self_log=self_log))
        uvicorn.run("logsight.service.app:create_app_from_env", factory=True, workers=workers,
                    host=host, port=port, log_level=log_level, access_log=access_log)
        return
    handle = configure_self_logging(
        url, namespace=settings.self_log_namespace) if self_log else None
    app = create_app(lambda: connect(url), settings, log_handle=handle)
    try:
        if receiver_on:
            _serve_with_receiver(
                app, url, host=host, port=port, otlp_port=4318 if otlp_port is None else otlp_port,
                namespace=otlp_namespace, keys=otlp_keys, max_body=otlp_max_body,
                log_level=log_level, access_log=access_log)
        else:
            uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log)
    finally:
        if handle is not None:
            handle.close(timeout=5.0)


def _serve_with_receiver(
    app: Any, url: str | None, *, host: str, port: int, otlp_port: int, namespace: str | None,
    keys: tuple[str, ...], max_body: int | None, log_level: str, access_log: bool,
) -> None:
    """The API and the OTLP receiver, two uvicorn servers in one event loop."""
    import asyncio

    import uvicorn

    from logsight import names
    from logsight.otlp import OtlpReceiver, ReceiverSettings
    from logsight.service.otlp import create_otlp_app
    from logsight.service.settings import parse_keys

    env_keys = os.environ.get("LOGSIGHT_OTLP_API_KEYS", "")
    accepted = tuple(k for spec in (*keys, env_keys) if spec for k in parse_keys(spec))
    try:
        cfg = ReceiverSettings(
            namespace=names.check_namespace(namespace or names.DEFAULT_NAMESPACE),
            max_body_bytes=max_body or ReceiverSettings.max_body_bytes)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--otlp-namespace") from None
    receiver = OtlpReceiver(url, cfg)
    click.echo(f"logsight OTLP/HTTP receiver on http://{host}:{otlp_port}/v1/{{traces,logs,"
               f"metrics}} (auth {'on' if accepted else 'OFF'}, namespace {cfg.namespace})",
               err=True)
    servers = [
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                      access_log=access_log)),
        uvicorn.Server(uvicorn.Config(create_otlp_app(receiver, api_keys=accepted), host=host,
                                      port=otlp_port, log_level=log_level,
                                      access_log=access_log)),
    ]

    async def both() -> None:
        await asyncio.gather(*(s.serve() for s in servers))

    asyncio.run(both())


def _seconds(td: timedelta) -> str:
    return f"{td.total_seconds():g}s"


def worker_env(settings: ServiceSettings, url: str | None, *, self_log: bool) -> dict[str, str]:
    """The environment that makes :func:`~logsight.service.app.create_app_from_env` build
    ``settings`` again in a worker process."""
    env = {
        "LOGSIGHT_API_KEYS": ",".join(settings.api_keys),
        "LOGSIGHT_AUTH": "on" if settings.auth else "off",
        "LOGSIGHT_SCHEDULER": "on" if settings.scheduler else "off",
        "LOGSIGHT_SCHEDULER_INTERVAL": _seconds(settings.interval),
        "LOGSIGHT_SCHEDULER_INTERVALS": ",".join(
            f"{task}={_seconds(iv) if iv is not None else 'off'}"
            for task, iv in settings.intervals.items()),
        "LOGSIGHT_NAMESPACE": settings.namespace or "",
        "LOGSIGHT_MAX_WINDOW": _seconds(settings.max_window),
        "LOGSIGHT_REQUEST_TIMEOUT": f"{settings.request_timeout:g}s",
        "LOGSIGHT_CACHE_TTL": f"{settings.cache_ttl:g}s",
        "LOGSIGHT_CACHE_PAST_TTL": f"{settings.cache_past_ttl:g}s",
        "LOGSIGHT_CACHE_SIZE": str(settings.cache_size),
        "LOGSIGHT_ANALYSIS_THREADS": str(settings.analysis_threads),
        "LOGSIGHT_SELF_LOG": "on" if self_log else "off",
        "LOGSIGHT_SELF_LOG_NAMESPACE": settings.self_log_namespace,
    }
    if url:
        env["LOGSIGHT_URL"] = url
    return env
