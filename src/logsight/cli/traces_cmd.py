"""``logsight traces bottlenecks|regressions``: critical-path analysis of spans, from an NDJSON
file (no cluster needed) or from the cluster's traces streams."""

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
from logsight.timeutil import iso, parse_duration

# the jobs' request fields as this command's options, for their errors
OPTIONS = {
    "window.start": "--from", "window.end": "--to", "window": "--from",
    "baseline.start": "--baseline-from", "baseline.end": "--baseline-to",
    "baseline": "--baseline-from", "input": "--input", "baseline_input": "--baseline-input",
    "service": "--service", "operation": "--operation", "candidate_version": "--version",
    "baseline_version": "--baseline-version",
}

TABLE_COLUMNS = [
    "rank", "service", "operation", "critical_path_share", "critical_path_ms",
    "on_critical_path_ratio", "self_time_p95_ms", "latency_p95_ms", "error_rate", "count",
]


def _window(frm: str | None, to: str | None, default: timedelta, now: datetime,
            names: tuple[str, str] = ("--from", "--to")) -> tuple[datetime, datetime]:
    end = when(to, now=now, option=names[1]) or now
    start = when(frm, now=now, option=names[0]) or end - default
    if end <= start:
        raise click.BadParameter(f"{names[0]} must be before {names[1]}", param_hint=names[0])
    return start, end


def _file_bounds(frm: str | None, to: str | None, now: datetime,
                 names: tuple[str, str] = ("--from", "--to")
                 ) -> tuple[datetime | None, datetime | None]:
    """A file's --from/--to: either may be left open (the file's first / last trace)."""
    start = when(frm, now=now, option=names[0])
    end = when(to, now=now, option=names[1])
    if start is not None and end is not None and end <= start:
        raise click.BadParameter(f"{names[0]} must be before {names[1]}", param_hint=names[0])
    return start, end


def _warn_overlap(current: tuple[datetime, datetime], baseline: tuple[datetime, datetime],
                  what: str = "baseline") -> None:
    if baseline[0] < current[1] and current[0] < baseline[1]:
        click.echo(f"warning: the {what} window ({iso(baseline[0], timespec='seconds')} to "
                   f"{iso(baseline[1], timespec='seconds')}) overlaps the current window "
                   f"({iso(current[0], timespec='seconds')} to "
                   f"{iso(current[1], timespec='seconds')}): spans in both are compared "
                   "with themselves", err=True)


@click.group()
def traces() -> None:
    """Trace bottlenecks (critical path, self time) and latency regressions."""


input_opt = click.option(
    "--input", "input_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
    help="NDJSON span file (one span per line, see docs/traces.md); no cluster needed.",
)
service_opt = click.option("--service", default=None, help="Entry point service (root spans).")
operation_opt = click.option(
    "--operation", default=None, help="Entry point operation (root span name)."
)
namespace_opt = click.option(
    "--namespace", default=None, callback=namespace_callback,
    help="Data-stream namespace (default: all)."
)
orphans_opt = click.option(
    "--orphans", type=click.Choice(["attach", "own"]), default="attach", show_default=True,
    help="Spans whose parent is missing: hang under the trace root, or stand as own roots.",
)


@traces.command()
@input_opt
@service_opt
@operation_opt
@time_option("--from", "frm", what="Window start",
             default="Default: 1h before --to (--input: the file's first trace). Traces are "
             "kept by the start of their root span.")
@time_option("--to", what="Window end",
             default="Default: now (--input: after the file's last trace).")
@click.option("--top", type=click.IntRange(1), default=10, show_default=True,
              help="How many operations to list, most critical-path time first.")
@click.option("--min-share", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="Critical-path share from which a bottleneck becomes a finding.")
@write_option("Cluster mode: store findings/aggregates.")
@orphans_opt
@namespace_opt
@url_option
@json_option
def bottlenecks(
    input_path: Path | None, service: str | None, operation: str | None, frm: str | None,
    to: str | None, top: int, min_share: float, write: bool, orphans: str,
    namespace: str | None, url: str | None, as_json: bool,
) -> None:
    """Rank operations by the critical-path time they contribute."""
    from logsight.jobs import stored_traces as stored_job
    from logsight.jobs import traces as J

    scope = J.Scope(namespace=namespace, service=service, operation=operation)
    with job_errors(OPTIONS):
        if input_path is not None:
            window = J.Window(*_file_bounds(frm, to, datetime.now(UTC)))
            request = J.BottlenecksRequest(window, scope, top=top, min_share=min_share,
                                           orphans=orphans)  # type: ignore[arg-type]  # click.Choice
            span_file = J.SpanFile(input_path)
            result = J.bottlenecks(request, span_file)
            for note in span_file.notes:
                click.echo(f"note: {note}", err=True)
            stats: dict[str, Any] = result.stats
        else:
            window = J.Window(*_window(frm, to, timedelta(hours=1), datetime.now(UTC)))
            request = J.BottlenecksRequest(window, scope, top=top, min_share=min_share,
                                           orphans=orphans)  # type: ignore[arg-type]  # click.Choice
            engine = engine_from(url)
            try:
                # from the trace-completion job's documents where it covered the window
                result = stored_job.bottlenecks(
                    request, stored_job.StoredTraces(engine, namespace),
                    J.ClusterSpans(engine, namespace),
                    None if not write else J.ClusterWriter(engine))
            finally:
                engine.close()
            start, end = window.closed
            stats = {"window_start": start.isoformat(), "window_end": end.isoformat(),
                     "findings": len(result.findings), "answered_from": result.answered_from}
            for note in result.notes:
                click.echo(f"note: {note}", err=True)
    rows = result.bottlenecks
    if not rows:
        raise click.ClickException(result.empty_reason or "no spans")
    if as_json:
        print_json({"bottlenecks": rows, "stats": stats})
        return
    print_table(rows, TABLE_COLUMNS)
    click.echo("  ".join(f"{k}={v}" for k, v in stats.items()))


@traces.command()
@click.option("--input", "input_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Current spans (NDJSON); with --baseline-input, no cluster.")
@click.option("--baseline-input", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Baseline spans (NDJSON).")
@service_opt
@operation_opt
@time_option('--from', 'frm', what='Current window start',
             default="Default: 1h before --to (--input: the file's first trace).")
@time_option('--to', what='Current window end',
             default="Default: now (--input: after the file's last trace).")
@time_option('--baseline-from', what='Baseline start',
             default='Default: as long before --baseline-to as the current window is long '
                     "(--baseline-input: the file's first trace).")
@time_option('--baseline-to', what='Baseline end',
             default="Default: the current window's start (--baseline-input: after the file's "
                     'last trace).')
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.01,
              show_default=True, help="Significance level (BH-adjusted Mann-Whitney U).")
@click.option("--min-ratio", type=click.FloatRange(1.0), default=1.2, show_default=True,
              help="Smallest p95 ratio that counts as a regression.")
@click.option("--min-count", type=click.IntRange(2), default=20, show_default=True,
              help="Fewest spans an operation needs on each side (window or version) to be "
              "compared.")
@click.option("--baseline-version", default=None,
              help="Compare two versions of --service within one window: the baseline one.")
@click.option("--version", "candidate_version", default=None,
              help="The version compared with --baseline-version (same window).")
@write_option("Cluster mode: store findings.")
@namespace_opt
@url_option
@json_option
def regressions(
    input_path: Path | None, baseline_input: Path | None, service: str | None,
    operation: str | None, frm: str | None, to: str | None, baseline_from: str | None,
    baseline_to: str | None, alpha: float, min_ratio: float, min_count: int,
    baseline_version: str | None, candidate_version: str | None, write: bool,
    namespace: str | None, url: str | None, as_json: bool,
) -> None:
    """Operations whose latency or critical-path share grew significantly: against a baseline
    window (default), or, with --baseline-version/--version, between two versions of
    --service in the same window."""
    from logsight.jobs import traces as J

    if baseline_version is not None or candidate_version is not None:
        _version_regressions(
            input_path=input_path, service=service, operation=operation, frm=frm, to=to,
            baseline_input=baseline_input, baseline_from=baseline_from,
            baseline_to=baseline_to, baseline_version=baseline_version,
            candidate_version=candidate_version, alpha=alpha, min_ratio=min_ratio,
            min_count=min_count, write=write, namespace=namespace, url=url,
            as_json=as_json,
        )
        return
    if (input_path is None) != (baseline_input is None):
        raise click.UsageError("give both --input and --baseline-input, or neither (cluster)")
    now = datetime.now(UTC)
    scope = J.Scope(namespace=namespace, service=service, operation=operation)
    options: dict[str, Any] = {"alpha": alpha, "min_ratio": min_ratio, "min_count": min_count}
    with job_errors(OPTIONS):
        if input_path is not None and baseline_input is not None:
            request = J.RegressionsRequest(
                J.Window(*_file_bounds(frm, to, now)),
                J.Window(*_file_bounds(baseline_from, baseline_to, now,
                                       ("--baseline-from", "--baseline-to")), name="baseline"),
                scope, **options)
            result = J.regressions(request, J.SpanFile(input_path), J.SpanFile(
                baseline_input, parameter="baseline_input", window_parameter="baseline"))
        else:
            start, end = _window(frm, to, timedelta(hours=1), now)
            bend = when(baseline_to, now=now, option="--baseline-to") or start
            bstart = when(baseline_from, now=now, option="--baseline-from") or (
                bend - (end - start)
            )
            if bend <= bstart:
                raise click.BadParameter("--baseline-from must be before --baseline-to")
            _warn_overlap((start, end), (bstart, bend))
            request = J.RegressionsRequest(J.Window(start, end),
                                           J.Window(bstart, bend, name="baseline"), scope,
                                           **options)
            engine = engine_from(url)
            try:
                result = J.regressions(request, J.ClusterSpans(engine, namespace),
                                       writer=None if not write else J.ClusterWriter(engine))
            finally:
                engine.close()
            if result.empty_reason:
                raise click.ClickException(result.empty_reason)
    results = result.regressions
    rows = [dict(r.__dict__, reasons=list(r.reasons)) for r in results]
    if as_json:
        print_json({"regressions": rows})
        return
    if not rows:
        click.echo(f"no operation seen at least {min_count} times (--min-count) in both windows")
        return
    print_regressions(rows)


REGRESSION_COLUMNS = ["service", "operation", "regressed", "baseline_p95_ms", "current_p95_ms",
                      "p95_ratio", "baseline_share", "current_share", "p_value_latency",
                      "p_value_share", "note"]
DOWNSTREAM_NOTE = "slower because of its children"


def regression_note(row: dict[str, Any]) -> str:
    """Why a row is (not) a regression, for the table (``--json`` has the fields)."""
    if row.get("regressed"):
        return "regressed: " + ", ".join(str(r).replace("_", " ") for r in row["reasons"])
    if row.get("downstream"):
        return DOWNSTREAM_NOTE
    return ""


def format_p_value(p: Any) -> str:
    """Three decimals, or scientific notation where that would print 0.000."""
    if p is None or not isinstance(p, (int, float)) or p != p:
        return "n/a"
    return f"{p:.2e}" if 0 < p < 1e-3 else f"{p:.3f}"


def print_regressions(rows: list[dict[str, Any]]) -> None:
    # p-values go in as text (mixed notation); padded to the header so they align like numbers
    shown = [
        dict(r, note=regression_note(r),
             **{c: format_p_value(r[c]).rjust(len(c)) for c in ("p_value_latency",
                                                                  "p_value_share")})
        for r in rows
    ]
    print_table(shown, REGRESSION_COLUMNS)


def _version_regressions(
    *, input_path: Path | None, service: str | None, operation: str | None, frm: str | None,
    to: str | None, baseline_input: Path | None, baseline_from: str | None,
    baseline_to: str | None, baseline_version: str | None, candidate_version: str | None,
    alpha: float, min_ratio: float, min_count: int, write: bool, namespace: str | None,
    url: str | None, as_json: bool,
) -> None:
    """``traces regressions --baseline-version V1 --version V2 --service S``."""
    from logsight.jobs import traces as J

    if baseline_version is None or candidate_version is None:
        raise click.UsageError("give both --baseline-version and --version")
    if service is None:
        raise click.UsageError("--service is required with --version: the service whose "
                               "versions are compared")
    if baseline_input is not None or baseline_from is not None or baseline_to is not None:
        raise click.UsageError("--baseline-version/--version compare two versions within one "
                               "window; drop --baseline-input/--baseline-from/--baseline-to")
    if operation is not None:
        raise click.UsageError("--operation is not used with --version (every operation of "
                               "the traces through --service is compared)")
    now = datetime.now(UTC)
    with job_errors(OPTIONS):
        bounds = (_file_bounds(frm, to, now) if input_path is not None
                  else _window(frm, to, timedelta(hours=1), now))
        request = J.VersionRegressionsRequest(
            J.Window(*bounds), service=service, baseline_version=baseline_version,
            candidate_version=candidate_version, namespace=namespace, alpha=alpha,
            min_ratio=min_ratio, min_count=min_count)
        if input_path is not None:
            result = J.version_regressions(request, J.SpanFile(input_path))
        else:
            engine = engine_from(url)
            try:
                result = J.version_regressions(
                    request, J.ClusterSpans(engine, namespace),
                    None if not write else J.ClusterWriter(engine))
            finally:
                engine.close()
    results, findings, split = result.regressions, result.findings, result.split
    assert split is not None  # a version comparison always has its split
    rows = [dict(r.__dict__, reasons=list(r.reasons)) for r in results]
    header = {
        "service": split.service, "baseline_version": split.baseline_version,
        "candidate_version": split.candidate_version,
        "traces": {"baseline": split.baseline_traces, "candidate": split.candidate_traces,
                   "mixed": split.mixed_traces},
    }
    if as_json:
        print_json({**header, "regressions": rows,
                    "findings": [f.to_document() for f in findings]})
        return
    click.echo(f"{split.service} {split.candidate_version} ({split.candidate_traces} traces) "
               f"vs {split.baseline_version} ({split.baseline_traces} traces); "
               f"{split.mixed_traces} traces through both left out")
    if not rows:
        click.echo(f"no operation seen at least {min_count} times (--min-count) in both "
                   "versions")
        return
    print_regressions(rows)


def _duration(ctx: click.Context, param: click.Parameter, value: str | None
              ) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@traces.command()
@click.option("--settle", default="30s", show_default=True, callback=_duration,
              help="A trace is complete this long after its last span was ingested.")
@time_option("--since", what="Ingest time to start at",
             default="Default: where the last run ended (first run: --lookback before now).")
@click.option("--lookback", default="1h", show_default=True, callback=_duration,
              help="First run: how far back in ingest time to start.")
@click.option("--step", default="1m", show_default=True, callback=_duration,
              help="Ingest time read per step (bounds memory).")
@namespace_opt
@url_option
@json_option
def complete(settle: timedelta, since: str | None, lookback: timedelta, step: timedelta,
             namespace: str | None, url: str | None, as_json: bool) -> None:
    """Run the trace-completion job now: compute the critical path of every trace settled
    since the last run once and store it per trace and operation (what `traces bottlenecks`
    and /v1/bottlenecks aggregate)."""
    from logsight.jobs import trace_completion as C

    now = datetime.now(UTC)
    with job_errors({"settle": "--settle", "lookback": "--lookback", "step": "--step"}):
        request = C.CompletionRequest(now=now, namespace=namespace, settle=settle,
                                      lookback=lookback, step=step,
                                      since=when(since, now=now, option="--since"))
        engine = engine_from(url)
        try:
            result = C.complete_traces(request, C.StoredTraces(engine, namespace),
                                       C.ClusterWriter(engine, refresh=False))
        finally:
            engine.close()
    row = result.rows()[0]
    if as_json:
        print_json(row)
        return
    click.echo("  ".join(f"{k}={v}" for k, v in row.items()))
