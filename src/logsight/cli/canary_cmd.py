"""``logsight canary``: promote / hold / roll back for services running two versions at once,
from an NDJSON span file or the cluster."""

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
    time_option,
    url_option,
    write_option,
)
from logsight.cli.traces_cmd import OPTIONS, _file_bounds, _window


@click.command()
@click.option("--input", "input_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="NDJSON span file; no cluster needed.")
@click.option("--service", default=None,
              help="The service (default: every service running two versions).")
@click.option("--model", default=None,
              help="A model's canary (cluster): versions compared on accuracy/loss from the "
              "labelled predictions and on KPIs; needs --version.")
@click.option("--version", "candidate", default=None,
              help="The candidate version (default: the one with the fewest requests).")
@click.option("--baseline-version", default=None,
              help="The version compared with (default: the one with the most requests).")
@time_option("--from", "frm", what="Window start", default="Default: 1h before --to (--input: the file's first span).")
@time_option("--to", what="Window end", default="Default: now.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.01, show_default=True, help="Significance level (BH-adjusted).")
@click.option("--max-latency-ratio", type=click.FloatRange(1.0), default=1.2,
              show_default=True, help="Candidate/baseline p95 from which it is rolled back.")
@click.option("--max-error-increase", type=click.FloatRange(0, 1), default=0.02,
              show_default=True, help="Error-rate increase from which it is rolled back.")
@click.option("--min-requests", type=click.IntRange(2), default=50, show_default=True,
              help="Requests needed per version; fewer: hold.")
@write_option("Cluster mode: store the findings.")
@click.option("--namespace", default=None, callback=namespace_callback,
              help="Data-stream namespace (default: all).")
@url_option
@json_option
def canary(
    input_path: Path | None, service: str | None, model: str | None, candidate: str | None,
    baseline_version: str | None, frm: str | None, to: str | None, alpha: float,
    max_latency_ratio: float, max_error_increase: float, min_requests: int, write: bool,
    namespace: str | None, url: str | None, as_json: bool,
) -> None:
    """One verdict per canary - promote, hold or roll back - with the evidence. Exit code 3
    when any verdict is roll back (for a deploy pipeline)."""
    from logsight.jobs import canary as J

    now = datetime.now(UTC)
    limits = J.CanaryLimits(alpha=alpha, max_latency_ratio=max_latency_ratio,
                            max_error_increase=max_error_increase, min_requests=min_requests)
    scope = J.Scope(namespace=namespace, service=service, version=candidate, model=model)
    if model is not None and input_path is not None:
        raise click.UsageError("--model reads the cluster's ML events: no --input")
    with job_errors({**OPTIONS, "candidate_version": "--version"}):
        if input_path is not None:
            request = J.CanaryRequest(J.Window(*_file_bounds(frm, to, now)), scope,
                                      baseline_version, limits)
            result = J.canary(request, J.SpanFile(input_path))
        else:
            request = J.CanaryRequest(J.Window(*_window(frm, to, timedelta(hours=1), now)),
                                      scope, baseline_version, limits)
            engine = engine_from(url)
            writer = None if not write else J.ClusterWriter(engine)
            try:
                if model is not None:
                    result = J.model_canary(request, J.ClusterEvents(engine, namespace), writer)
                else:
                    result = J.canary(request, J.ClusterSpans(engine, namespace), writer)
            finally:
                engine.close()
    rows = result.rows()
    if as_json:
        print_json({"verdicts": rows})
    elif not rows:
        click.echo("no canary: no service runs two versions in the window")
    for v in ([] if as_json else result.verdicts):
        click.echo(f"{v.service} {v.candidate_version} (vs {v.baseline_version}): "
                   f"{v.verdict.upper()} - {v.reason}")
    if any(v.verdict == "roll back" for v in result.verdicts):
        raise SystemExit(3)
