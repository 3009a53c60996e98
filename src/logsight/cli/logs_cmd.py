"""``logsight logs anomalies``: anomalous log windows and template drift per deploy, from the
cluster or from a file."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

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
from logsight.timeutil import iso, short_time

if TYPE_CHECKING:
    from logsight.findings import Finding
    from logsight.jobs.logs import LogAnomaliesResult

TABLE_COLUMNS = ["kind", "service", "window_start", "severity", "score", "new_templates",
                 "summary"]
TABLE_WIDTH = 160
# the log job's request fields as this command's options, for its errors
OPTIONS = {"window": "--from/--to", "window.start": "--from", "window.end": "--to",
           "input": "--input", "baseline": "--baseline", "service": "--service",
           "detector": "--model", "method": "--method"}
HINTS = {"baseline": "(see --baseline, and --from/--to for the range)"}
# date-first forms pandas read before the shared parser (2024/05/01 10:00); never ages
_DATE_FIRST = re.compile(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}")


# the command's time parser, by its old name (tests and callers import it from here)
parse_time = when


def _t(ts: datetime) -> str:
    return iso(ts, timespec="seconds")


def _bounds(start: str | None, end: str | None, now: datetime
            ) -> tuple[datetime | None, datetime | None]:
    t_start = parse_time(start, now=now, option="--from")
    t_end = parse_time(end, now=now, option="--to")
    if t_start is not None and t_end is not None and t_start >= t_end:
        raise click.BadParameter(
            f"{_t(t_start)} is not before --to ({_t(t_end)})", param_hint="--from"
        )
    return t_start, t_end


def _baseline(value: str, now: datetime) -> float | str | datetime:
    """A fraction, a time (ISO-8601 or ``now``/``now-2h``), or a duration from the start."""
    from logsight.timeutil import parse_window

    text = value.strip()
    try:
        frac = float(text)
    except ValueError:
        pass
    else:
        if not 0.0 < frac < 1.0:
            raise click.BadParameter(
                f"a baseline fraction must be in (0, 1), got {value}", param_hint="--baseline"
            )
        return frac
    if text.startswith("now") or _DATE_FIRST.match(text):
        t = parse_time(text, now=now, option="--baseline")
        assert t is not None  # text is not None
        return t
    try:
        parse_window(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a baseline: use a fraction of the range such as 0.5, a duration "
            "from its start such as 10min, or a time (ISO-8601, now-2h)",
            param_hint="--baseline",
        ) from None
    return text


def _contamination(value: str) -> float | str:
    if value == "auto":
        return value
    try:
        c = float(value)
    except ValueError:
        raise click.BadParameter(
            f"use 'auto' or a number in (0, 0.5], got {value!r}", param_hint="--contamination"
        ) from None
    if not 0.0 < c <= 0.5:
        raise click.BadParameter(
            f"contamination must be in (0, 0.5], got {value}", param_hint="--contamination"
        )
    return c


def _shorten(text: str, width: int) -> str:
    """``text`` cut at a word boundary to at most ``width`` characters, ending in an ellipsis
    when cut."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    space = cut.rfind(" ")
    if space >= width // 2:  # a long unbroken token (a template) is cut mid-token instead
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


def findings_table(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    """Rows for a readable table (CLI)."""
    rows = []
    for f in findings:
        ev: Mapping[str, Any] = f.evidence
        new = ev.get("new_templates") or []
        rows.append(
            {
                "kind": f.kind,
                "service": f.service,
                "window_start": _window_text(f),
                "severity": f.severity,
                "score": float(f.score),
                "summary": f.summary,
                "new_templates": len(new),
            }
        )
    return rows


def _window_text(f: Finding) -> str:
    start = short_time(f.window_start)
    lines = f.evidence.get("line_range")
    if start.startswith("1970-") and lines:  # a line-count window (see assign_windows)
        return f"{lines[0]}..{lines[1]}"
    return start


def _print_findings(findings: list[Finding]) -> None:
    rows: list[dict[str, Any]] = findings_table(findings)
    for r in rows:
        # three decimals say all a score has to say; + 0.0 turns -0.0 into 0.0
        r["score"] = round(float(r["score"]), 3) + 0.0
    others = TABLE_COLUMNS[:-1]
    widths = [
        max([len(c)] + [len(format(r[c], ".3f") if isinstance(r[c], float) else str(r[c]))
                        for r in rows])
        for c in others
    ]
    budget = max(40, TABLE_WIDTH - sum(widths) - 2 * len(others))
    for r in rows:
        r["summary"] = _shorten(str(r["summary"]), budget)
    print_table(rows, TABLE_COLUMNS, floatfmt=".3f")


@click.group()
def logs() -> None:
    """Log analyses: template mining and anomaly detection."""


@logs.command()
@url_option
@time_option('--from', 'start', what='Start',
             default='Default: 1h before --to (files: the first line).')
@time_option('--to', 'end', what='End, exclusive',
             default='Default: now (files: after the last line).')
@click.option("--service", default=None,
              help="Cluster: only this service.name. Files: for raw lines, the service they "
                   "belong to (default: the file name); for NDJSON, keep only this service.")
@click.option("--namespace", default=None, callback=namespace_callback,
              help="Data-stream namespace to read (default: all); with --index, only the "
                   "namespace findings are filed under.")
@click.option("--index", default=None, help="Read this index/pattern instead of the logs stream.")
@click.option("--input", "input_path", default=None,
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Analyse a file instead of the cluster: NDJSON ECS documents when its first "
                   "line starts with '{', else raw text lines.")
@click.option("--skip-bad-lines", is_flag=True,
              help="NDJSON files: skip (and count) lines that are not JSON or lack a valid "
                   "@timestamp instead of stopping at the first.")
@click.option("--window", default="1min", show_default=True, help="Window length.")
@click.option("--window-lines", type=click.IntRange(1), default=50, show_default=True,
              help="Lines per window when lines have no timestamps (files only).")
@click.option("--baseline", default="0.5", show_default=True,
              help="Where the baseline ends: a fraction of the time range, a duration from its "
                   "start (e.g. 10min), or a time (ISO-8601, now-2h).")
@click.option("--contamination", default="auto", show_default=True,
              help="IsolationForest contamination: auto or a share in (0, 0.5].")
@click.option("--drift/--no-drift", default=True, show_default=True,
              help="Also report template drift when service.version changes.")
@click.option("--method", type=click.Choice(["auto", "counts", "lines"]), default="auto",
              show_default=True,
              help="How a cluster is read: counts (aggregations by template key, examples of "
                   "flagged windows only), lines (every line), auto (counts; lines with a "
                   "warning where logs lack the template key). Files are read by lines.")
@write_option("Index findings into logsight-findings (cluster mode only).")
@click.option("--model", "model_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Score every line with this saved model (no baseline).")
@click.option("--save-model", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Save the trained model (templates, detector, feature schema, version).")
@json_option
def anomalies(
    url: str | None,
    start: str | None,
    end: str | None,
    service: str | None,
    namespace: str | None,
    index: str | None,
    input_path: Path | None,
    skip_bad_lines: bool,
    window: str,
    window_lines: int,
    baseline: str,
    contamination: str,
    drift: bool,
    method: str,
    write: bool,
    model_path: Path | None,
    save_model: Path | None,
    as_json: bool,
) -> None:
    """Flag anomalous log windows per service (isolation forest + a meaningful deviation from
    the baseline, or overwhelming error evidence on its own, e.g. a burst of never-seen
    errors) and explain them: deviating features, never-seen templates, sample ids.

    Exits 1 when nothing matched what was asked (no lines in the range, index, namespace or
    service); 0 with a count of what was analysed when nothing is anomalous."""
    from logsight.jobs import logs as J
    from logsight.timeutil import parse_window

    try:
        parse_window(window)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--window") from e
    now = datetime.now(UTC)
    base = _baseline(baseline, now)
    cont = _contamination(contamination)
    t_start, t_end = _bounds(start, end, now)
    source: J.LogFileSource | J.ClusterLogs
    if input_path is None:
        t_end = t_end or now
        t_start = t_start or t_end - timedelta(hours=1)
        if t_start >= t_end:
            raise click.BadParameter(
                f"{_t(t_start)} is not before --to ({_t(t_end)})", param_hint="--from"
            )
    request = J.LogAnomaliesRequest(
        J.Window(t_start, t_end), J.Scope(namespace=namespace, service=service), baseline=base,
        window_size=window, window_lines=window_lines, contamination=cont, drift=drift,
        method=cast("J.Method", method))
    with job_errors(OPTIONS, hint=HINTS):
        try:
            if input_path is not None:
                source = J.LogFileSource(input_path, service=service,
                                         skip_bad_lines=skip_bad_lines)
                result = J.anomalies(request, source, detector=model_path,
                                     save_model=save_model)
            else:
                eng = engine_from(url)
                try:
                    source = J.ClusterLogs(eng, namespace, index=index)
                    result = J.anomalies(request, source, J.ClusterWriter(eng) if write else None,
                                         detector=model_path, save_model=save_model)
                finally:
                    eng.close()
        except OSError as e:  # a saved model that cannot be read or written
            raise click.ClickException(str(e)) from e
    if result.empty_reason is not None and input_path is None:
        raise click.ClickException(result.empty_reason)
    _report(result, as_json=as_json)


def _report(result: LogAnomaliesResult, *, as_json: bool) -> None:
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    skipped = result.skipped
    if result.read and not as_json:
        for note in result.read["notes"]:
            click.echo(f"note: {note}", err=True)
    if skipped:
        shown = "; ".join(msg for _, msg in skipped[:3])
        more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        click.echo(f"skipped {len(skipped)} bad line(s): {shown}{more}", err=True)
    n_windows = len(result.windows)
    if as_json:
        out: dict[str, Any] = {
            "findings": [dict(f.to_document(), id=f.id) for f in result.findings],
            "windows_analysed": n_windows,
            "lines": result.lines,
        }
        if skipped:
            out["skipped_lines"] = [n for n, _ in skipped]
        if result.read:
            out["read"] = result.read
        print_json(out)
        return
    analysed = f"{n_windows} window(s) scored, {result.lines} line(s) read"
    if not result.findings:
        click.echo(f"no anomalous windows ({analysed})")
        return
    _print_findings(result.findings)
    click.echo(f"{len(result.findings)} finding(s); {analysed}")
