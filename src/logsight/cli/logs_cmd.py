"""``logsight logs anomalies``: anomalous log windows and template drift per deploy, from the
cluster or from a file."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import pandas as pd

from logsight import names
from logsight.cli.common import (
    engine_from,
    json_option,
    namespace_callback,
    print_json,
    print_table,
    url_option,
)
from logsight.engine import EngineError
from logsight.timeutil import as_utc, iso
from logsight.timeutil import parse_time as parse_time_text

if TYPE_CHECKING:
    from logsight.analysis.logs import LogAnalysisResult
    from logsight.engine import Engine
    from logsight.findings import Finding

TIME_HELP = "ISO-8601 time, 'now', or an age such as 15m, 6h, now-2h"
TABLE_COLUMNS = ["kind", "service", "window_start", "severity", "score", "new_templates",
                 "summary"]
TABLE_WIDTH = 160
# date-first forms pandas read before the shared parser (2024/05/01 10:00); never ages
_DATE_FIRST = re.compile(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}")


def parse_time(value: str | None, *, now: datetime, option: str = "--from/--to"
               ) -> datetime | None:
    """The shared time parser (:func:`logsight.timeutil.parse_time`: ISO-8601, ``now``, an
    age such as ``6h`` / ``now-2h``) plus the date-first forms pandas accepted before
    (``2024/05/01 10:00``); UTC-aware. BadParameter naming ``option`` otherwise."""
    if value is None:
        return None
    try:
        return as_utc(parse_time_text(value, now=now))
    except ValueError as e:
        if _DATE_FIRST.match(value.strip()):
            try:
                ts = pd.Timestamp(value.strip())
            except ValueError:
                pass
            else:
                if not pd.isna(ts):
                    return as_utc(ts.to_pydatetime())
        raise click.BadParameter(f"{value!r} {e}", param_hint=option) from None


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
    from logsight.analysis.logs import parse_window

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


def _print_findings(findings: list[Finding]) -> None:
    from logsight.analysis.logs import findings_table

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


def _no_lines_message(
    eng: Engine, *, start: datetime, end: datetime, service: str | None,
    namespace: str | None, index: str | None,
) -> str:
    from logsight.sources.logs import log_services

    target = index or names.read_target(names.LOGS, namespace)
    if index:
        where = f"index {index!r}"
    elif namespace:
        where = f"namespace {namespace!r} ({target})"
    else:
        where = f"any namespace ({target})"
    missing = "*" not in target and "," not in target and not eng.exists(target)
    what = f"no log lines of service {service!r}" if service else "no log lines"
    msg = f"{what} in {where} between {_t(start)} and {_t(end)}"
    if missing:
        return f"{msg}: {target} does not exist"
    if service:
        seen = sorted(log_services(eng, start=start, end=end, namespace=namespace, index=index))
        msg += f"; services seen: {seen}" if seen else "; no lines of any service either"
    return msg


@click.group()
def logs() -> None:
    """Log analyses: template mining and anomaly detection."""


@logs.command()
@url_option
@click.option("--from", "start", default=None,
              help=f"Start: {TIME_HELP}. Default: 1h before --to (files: the first line).")
@click.option("--to", "end", default=None,
              help=f"End, exclusive: {TIME_HELP}. Default: now (files: after the last line).")
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
@click.option("--write/--no-write", default=True, show_default=True,
              help="Index findings into logsight-findings (cluster mode only).")
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
    from logsight.analysis.logs import BaselineError, parse_window
    from logsight.sources.logs import LogFileError, analyse_log_frame

    try:
        parse_window(window)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--window") from e
    now = datetime.now(UTC)
    base = _baseline(baseline, now)
    cont = _contamination(contamination)
    t_start, t_end = _bounds(start, end, now)
    skipped: list[tuple[int, str]] = []
    read_info: dict[str, Any] | None = None
    try:
        if input_path is not None:
            try:
                frame, skipped, read_info = _read_file(input_path, service, t_start, t_end,
                                                       skip_bad_lines)
            except LogFileError as e:
                raise click.BadParameter(str(e), param_hint="--input") from None
            result = analyse_log_frame(
                frame, window=window, baseline=base, contamination=cont,
                window_lines=window_lines, drift=drift, detector_path=model_path,
                save_model=save_model, start=t_start, end=t_end,
            )
        else:
            result = _run_cluster(
                url, now=now, start=t_start, end=t_end, service=service, namespace=namespace,
                index=index, window=window, baseline=base, contamination=cont, drift=drift,
                write=write, detector_path=model_path, save_model=save_model,
            )
    except BaselineError as e:
        raise click.ClickException(f"{e}\n(see --baseline, and --from/--to for the range)") from e
    except (ValueError, OSError) as e:
        raise click.ClickException(str(e)) from e
    except EngineError as e:
        raise click.ClickException(f"cluster error: {e}") from e
    _report(result, skipped, as_json=as_json, read_info=read_info)


def _read_file(
    path: Path, service: str | None, start: datetime | None, end: datetime | None,
    skip_bad_lines: bool,
) -> tuple[pd.DataFrame, list[tuple[int, str]], dict[str, Any]]:
    """The file's log frame after --service (NDJSON) and --from/--to, the skipped lines, and
    how the file was read (timestamp format, multi-line events, invalid UTF-8)."""
    from logsight.sources.logs import filter_log_frame, load_log_file

    data = load_log_file(path, service=service, skip_bad_lines=skip_bad_lines)
    info: dict[str, Any] = {
        "format": data.format, "timestamp_format": data.timestamp_format,
        "continuation_lines": data.continuation_lines,
        "invalid_utf8_lines": data.decode.count if data.decode else 0, "notes": data.notes,
    }
    frame = data.frame
    if data.format == "ndjson" and service is not None:
        seen = sorted(set(frame["service"]))
        frame = filter_log_frame(frame, service=service)
        if frame.empty:
            raise click.ClickException(
                f"no lines of service {service!r} in {path}; services seen: {seen}"
            )
    if start is not None or end is not None:
        ts = frame["timestamp"].dropna()
        if ts.empty:
            raise click.BadParameter(
                f"the lines of {path} have no timestamps to filter on", param_hint="--from/--to"
            )
        kept = filter_log_frame(frame, start=start, end=end)
        if kept.empty:
            span = f"{_t(ts.min().to_pydatetime())} to {_t(ts.max().to_pydatetime())}"
            raise click.ClickException(
                f"no lines of {path} between {_t(start) if start else 'its start'} and "
                f"{_t(end) if end else 'its end'}; its lines span {span}"
            )
        frame = kept
    return frame, data.skipped, info


def _run_cluster(url: str | None, *, now: datetime, start: datetime | None,
                 end: datetime | None, **kw: Any) -> LogAnalysisResult:
    from logsight.sources.logs import run_log_analysis

    t_end = end or now
    t_start = start or t_end - timedelta(hours=1)
    if t_start >= t_end:
        raise click.BadParameter(
            f"{_t(t_start)} is not before --to ({_t(t_end)})", param_hint="--from"
        )
    eng = engine_from(url)
    try:
        result = run_log_analysis(eng, start=t_start, end=t_end, **kw)
        if result.lines == 0:
            raise click.ClickException(_no_lines_message(
                eng, start=t_start, end=t_end, service=kw.get("service"),
                namespace=kw.get("namespace"), index=kw.get("index"),
            ))
    finally:
        eng.close()
    return result


def _report(result: LogAnalysisResult, skipped: list[tuple[int, str]], *, as_json: bool,
            read_info: dict[str, Any] | None = None) -> None:
    if read_info and not as_json:
        for note in read_info["notes"]:
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
        if read_info:
            out["read"] = read_info
        print_json(out)
        return
    analysed = f"{n_windows} window(s) scored, {result.lines} line(s) read"
    if not result.findings:
        click.echo(f"no anomalous windows ({analysed})")
        return
    _print_findings(result.findings)
    click.echo(f"{len(result.findings)} finding(s); {analysed}")
