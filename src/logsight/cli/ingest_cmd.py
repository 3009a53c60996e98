"""``logsight ingest FILE``: ship an existing log (or NDJSON) file into the cluster."""

from __future__ import annotations

from pathlib import Path

import click

from logsight import names
from logsight.cli.common import engine_from, json_option, namespace_callback, print_json, url_option
from logsight.engine import EngineError
from logsight.ingest import ingest_file


@click.command()
@click.argument("path", metavar="FILE", type=click.Path(path_type=Path))
@url_option
@click.option("--kind", type=click.Choice(names.STREAM_TYPES), default=names.LOGS,
              show_default=True, help="Which stream the lines belong to.")
@click.option("--namespace", default=names.DEFAULT_NAMESPACE, show_default=True,
              callback=namespace_callback, help="Data-stream namespace to write to.")
@click.option("--service", default=None,
              help="logs: the service these lines come from (JSON lines may name their own).")
@click.option("--missing-time", type=click.Choice(["dead-letter", "now"]), default="dead-letter",
              show_default=True,
              help="logs: a line with no timestamp goes to the dead-letter index, or gets the "
                   "ingest time.")
@click.option("--format", "fmt", type=click.Choice(["auto", "envoy"]), default="auto",
              show_default=True,
              help="logs: 'envoy' parses Envoy's default access-log format and Istio's text or "
                   "JSON access logs into ECS http.*, url.*, source.*, destination.* fields.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=1000, show_default=True,
              help="Lines per _bulk request.")
@click.option("--retry-for", type=click.FloatRange(0, 3600), default=60.0, show_default=True,
              help="Seconds to keep retrying lines the cluster pushes back (429, a write "
                   "block) before dead-lettering them.")
@json_option
def ingest(path: Path, url: str | None, kind: str, namespace: str, service: str | None,
           missing_time: str, fmt: str, batch_size: int, retry_for: float,
           as_json: bool) -> None:
    """Ship FILE (raw log lines, or NDJSON documents) through the ingest pipelines.

    Re-running on the same file sends nothing twice; lines that cannot be indexed land in
    logsight-deadletter with the reason (`logsight deadletter list|replay`). A line nested
    deeper than 20 levels is dead-lettered before it is parsed. --kind traces also takes
    OTel-JSON spans (trace_id, span_id, start_time_unix_nano, ...), as traces --input does.
    """
    if not path.is_file():
        raise click.BadParameter(
            f"{path}: {'is a directory' if path.is_dir() else 'no such file'}", param_hint="PATH")
    eng = engine_from(url)
    try:
        report = ingest_file(eng, path, kind=kind, namespace=namespace, service=service,
                             missing_time=missing_time, batch_size=batch_size, refresh=True,
                             retry_for=retry_for, fmt=fmt)
    except EngineError as e:
        raise click.ClickException(f"ingest failed: {e.message}") from e
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if as_json:
        print_json(report.__dict__)
        return
    click.echo(f"{report.path} -> {report.stream}: {report.lines} line(s): "
               f"{report.indexed} indexed, {report.duplicates} already there, "
               f"{report.dead_lettered} dead-lettered")
    if report.continuation_lines:
        click.echo(f"  {report.continuation_lines} line(s) without a timestamp sent with the "
                   "event before them (multi-line events)")
    if report.timestamp_format and report.timestamp_format != "iso8601":
        click.echo(f"  timestamps read as {report.timestamp_format}")
    for reason, n in sorted(report.reasons.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {n:6d}  {reason}")
