"""``logsight dependencies``: the service dependency map of a window (from an NDJSON span file
or the cluster), and the edges new or vanished against a baseline window."""

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
    write_option,
)
from logsight.cli.traces_cmd import OPTIONS, _file_bounds, _window

COLUMNS = ["source", "target", "calls", "rate_per_s", "error_rate", "latency_p50_ms",
           "latency_p95_ms", "via"]


@click.command()
@click.option("--input", "input_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="NDJSON span file; no cluster needed.")
@click.option("--baseline-input", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Baseline spans (NDJSON) to compare the map with.")
@time_option("--from", "frm", what="Window start", default="Default: 1h before --to (--input: the file's first span).")
@time_option("--to", what="Window end", default="Default: now.")
@time_option("--baseline-from", what="Baseline start", default="Cluster default: one window length before --baseline-to.")
@time_option("--baseline-to", what="Baseline end", default="Cluster default: --from.")
@click.option("--no-baseline", is_flag=True, help="Cluster mode: the map only, no comparison.")
@click.option("--min-calls", type=click.IntRange(1), default=5, show_default=True,
              help="Calls an edge needs on one side to be reported as new or vanished.")
@write_option("Cluster mode: store the map and findings.")
@click.option("--namespace", default=None, callback=namespace_callback,
              help="Data-stream namespace (default: all).")
@url_option
@json_option
def dependencies(
    input_path: Path | None, baseline_input: Path | None, frm: str | None, to: str | None,
    baseline_from: str | None, baseline_to: str | None, no_baseline: bool, min_calls: int,
    write: bool, namespace: str | None, url: str | None, as_json: bool,
) -> None:
    """Who calls whom: calls, rate, error rate and p95 latency per edge between services."""
    from logsight.jobs import dependencies as J

    now = datetime.now(UTC)
    scope = J.Scope(namespace=namespace)
    with job_errors(OPTIONS):
        if input_path is not None:
            window = J.Window(*_file_bounds(frm, to, now))
            baseline = J.Window(*_file_bounds(baseline_from, baseline_to, now, (
                "--baseline-from", "--baseline-to")), name="baseline") \
                if baseline_input is not None else None
            result = J.dependencies(
                J.DependencyRequest(window, scope, baseline, min_calls=min_calls),
                J.SpanFile(input_path),
                J.SpanFile(baseline_input, parameter="baseline_input",
                           window_parameter="baseline") if baseline_input else None)
        else:
            if baseline_input is not None:
                raise click.UsageError("--baseline-input needs --input")
            start, end = _window(frm, to, timedelta(hours=1), now)
            window = J.Window(start, end)
            baseline = None
            if not no_baseline:
                bs, be = _window(baseline_from, baseline_to or start.isoformat(), end - start,
                                 now, ("--baseline-from", "--baseline-to"))
                baseline = J.Window(bs, be, name="baseline")
            engine = engine_from(url)
            try:
                result = J.dependencies(
                    J.DependencyRequest(window, scope, baseline, min_calls=min_calls),
                    J.ClusterSpans(engine, namespace),
                    writer=None if not write else J.ClusterWriter(engine),
                    mesh=J.ClusterMesh(engine, namespace))
            finally:
                engine.close()
    rows = result.rows()
    changes = [{"change": c.change, "source": c.edge.source, "target": c.edge.target,
                "calls": c.edge.calls} for c in result.changes]
    if as_json:
        print_json({"edges": rows, "changes": changes, "findings": len(result.findings)})
        return
    if not rows:
        click.echo(result.empty_reason or "no edges")
    else:
        print_table(rows, COLUMNS)
    for c in changes:
        click.echo(f"{c['change']}: {c['source']} -> {c['target']} ({c['calls']} calls)")
