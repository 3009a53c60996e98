"""``logsight resources``: memory leak trends, CPU saturation (lined up with latency on the
cluster) and GPU memory pressure in the resource metrics, from the cluster or an NDJSON file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

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
           "service": "--service", "metrics": "--metrics"}
COLUMNS = ["test", "service", "host", "score", "threshold", "anomalous", "onset"]


@click.command()
@click.option("--metrics", "metrics_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="NDJSON file of metrics documents; no cluster needed.")
@time_option("--from", "frm", what="Window start", default="Default: 24h before --to (--metrics: the file's first sample).")
@time_option("--to", what="Window end", default="Default: now (--metrics: the file's last sample).")
@click.option("--service", default=None, help="Only this service.")
@click.option("--all", "show_all", is_flag=True, help="List every test's verdict, not only "
              "the anomalous ones.")
@write_option("Cluster mode: store findings.")
@click.option("--namespace", default=None, callback=namespace_callback,
              help="Data-stream namespace (default: all).")
@url_option
@json_option
def resources(metrics_path: Path | None, frm: str | None, to: str | None, service: str | None,
              show_all: bool, write: bool, namespace: str | None, url: str | None,
              as_json: bool) -> None:
    """Memory leaks, CPU saturation and GPU memory pressure per service and host."""
    from logsight.jobs import resources as J

    now = datetime.now(UTC)
    start = when(frm, now=now, option="--from")
    end = when(to, now=now, option="--to")
    scope = J.Scope(namespace=namespace, service=service)
    with job_errors(OPTIONS):
        if metrics_path is not None:
            result = J.resource_anomalies(J.ResourcesRequest(J.Window(start, end), scope),
                                          J.MetricsFiles(metrics_path))
        else:
            end = end or now
            start = start or end - timedelta(hours=24)
            engine = engine_from(url)
            try:
                result = J.resource_anomalies(
                    J.ResourcesRequest(J.Window(start, end), scope),
                    J.ClusterMetrics(engine, namespace),
                    None if not write else J.ClusterWriter(engine))
            finally:
                engine.close()
    rows = [r for r in result.rows() if show_all or r["anomalous"]]
    if as_json:
        print_json({"results": rows, "samples": result.samples,
                    "findings": [f.to_document() for f in result.findings]})
        return
    if rows:
        print_table(rows, COLUMNS)
    click.echo(f"{result.samples} samples, {len(result.findings)} finding(s)")
    for f in result.findings:
        click.echo(f"[{f.severity}] {f.kind}: {f.summary}")
