"""``logsight cost``: what each service, model version, stage and team cost, from the cluster's
metrics and mlevents streams or from NDJSON files, priced by a cost model YAML."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from logsight.cli.common import (
    engine_from,
    job_errors,
    json_option,
    namespace_callback,
    print_json,
    print_table,
    time_option,
    url_option,
    when,
    write_option,
)

OPTIONS = {"window.start": "--from", "window.end": "--to", "window": "--from",
           "service": "--service", "cost_model": "--cost-model", "bucket": "--bucket",
           "metrics": "--metrics", "events": "--events"}
GROUPS = {"service": "by_service", "version": "by_model_version", "stage": "by_stage",
          "team": "by_team"}
SUMMARY_COLUMNS = ["total_cost", "cpu_cost", "memory_cost", "gpu_cost", "instance_cost",
                   "gpu_hours", "predictions", "cost_per_1k_predictions"]
WINDOW_COLUMNS = ["window_start", "service", "model", "model_version", "stage", "team",
                  "total_cost", "predictions", "cost_per_1k_predictions"]
KEY_COLUMNS = {"service": ["service"], "version": ["model", "model_version", "stage"],
               "stage": ["stage"], "team": ["team"]}


@click.command()
@click.option("--metrics", "metrics_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="NDJSON file of metrics documents (the sampler's); no "
              "cluster needed.")
@click.option("--events", "events_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="With --metrics: NDJSON file of ML events, for the cost per "
              "1,000 predictions.")
@click.option("--cost-model", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Cost model YAML (prices, capacity, tags). Default: LOGSIGHT_COST_MODEL, "
              "else logsight's illustrative list prices.")
@time_option("--from", "frm", what="Window start", default="Default: 24h before --to (--metrics: the file's first sample).")
@time_option("--to", what="Window end", default="Default: now (--metrics: the file's last sample).")
@click.option("--bucket", default="1h", show_default=True,
              help="Width of the cost windows (15min, 1h, 1D ...).")
@click.option("--by", "group", type=click.Choice([*GROUPS, "window"]), default="service",
              show_default=True, help="What the table lists.")
@click.option("--service", default=None, help="Only this service.")
@click.option("--min-increase-pct", type=click.FloatRange(0), default=20.0, show_default=True,
              help="Cost per 1,000 predictions up this much after a deploy: a finding.")
@click.option("--idle-gpu-pct", type=click.FloatRange(0, 100), default=10.0, show_default=True,
              help="Mean GPU utilisation under this: an idle_gpu finding.")
@click.option("--rightsizing-min-hours", type=click.FloatRange(0), default=168.0,
              show_default=True, help="Hours of samples memory rightsizing needs (a week).")
@write_option("Cluster mode: store the cost rows and findings.")
@click.option("--namespace", default=None, callback=namespace_callback,
              help="Data-stream namespace (default: all).")
@url_option
@json_option
def cost(
    metrics_path: Path | None, events_path: Path | None, cost_model: Path | None,
    frm: str | None, to: str | None, bucket: str, group: str, service: str | None,
    min_increase_pct: float, idle_gpu_pct: float, rightsizing_min_hours: float,
    write: bool, namespace: str | None, url: str | None, as_json: bool,
) -> None:
    """Cost per service, model version, stage (training / inference) and team, per window
    and per 1,000 predictions; findings for dearer predictions after a deploy, idle GPUs and
    over-provisioned memory (with the suggested size)."""
    from logsight.jobs import cost as J

    if events_path is not None and metrics_path is None:
        raise click.BadParameter("--events needs --metrics (files mode)", param_hint="--events")
    now = datetime.now(UTC)
    start = when(frm, now=now, option="--from")
    end = when(to, now=now, option="--to")
    with job_errors(OPTIONS):
        model, origin = J.resolve_cost_model(cost_model)
        kw: dict[str, Any] = {"bucket": bucket, "min_increase_pct": min_increase_pct,
                              "idle_gpu_pct": idle_gpu_pct,
                              "rightsizing_min_hours": rightsizing_min_hours}
        scope = J.Scope(namespace=namespace, service=service)
        if metrics_path is not None:
            request = J.CostRequest(J.Window(start, end), scope, cost_model=model, **kw)
            result = J.cost(request, J.MetricsFiles(metrics_path, events_path))
        else:
            end = end or now
            start = start or end - timedelta(hours=24)
            request = J.CostRequest(J.Window(start, end), scope, cost_model=model, **kw)
            engine = engine_from(url)
            try:
                result = J.cost(request, J.ClusterMetrics(engine, namespace),
                                None if not write else J.ClusterWriter(engine))
            finally:
                engine.close()
    summary = {**result.summary(), "cost_model": origin}
    findings = [f.to_document() for f in result.findings]
    if as_json:
        print_json({**summary, "windows": result.rows(), "findings": findings})
        return
    cur = result.report.currency
    if group == "window":
        print_table(result.rows(), WINDOW_COLUMNS, floatfmt=".4f")
    else:
        rows = J.summary_rows(getattr(result.report, GROUPS[group]))
        print_table(rows, [*KEY_COLUMNS[group], *SUMMARY_COLUMNS], floatfmt=".4f")
    total = result.report.total
    click.echo(f"total {total.total_cost if total else 0.0:.2f} {cur} over {result.samples} "
               f"samples; cost model: {origin}")
    for note in result.notes:
        click.echo(f"note: {note}")
    for f in result.findings:
        click.echo(f"[{f.severity}] {f.kind}: {f.summary}")
