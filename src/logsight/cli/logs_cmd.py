"""``logsight logs anomalies``: anomalous log windows and template drift per deploy, from the
cluster or from a file."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pandas as pd

from logsight.cli.common import engine_from, json_option, print_json, print_table, url_option
from logsight.engine import EngineError

_RELATIVE_RE = re.compile(r"^now(?:-(\d+)([smhdw]))?$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(value: str | None, *, now: datetime | None = None) -> datetime | None:
    """``now``, ``now-15m`` / ``now-2h`` / ``now-1d``, or an ISO-8601 timestamp (UTC when no
    offset is given)."""
    if value is None:
        return None
    text = value.strip()
    rel = _RELATIVE_RE.match(text)
    if rel:
        base = now or datetime.now(UTC)
        if rel.group(1) is None:
            return base
        return base - pd.Timedelta(**{_UNITS[rel.group(2)]: int(rel.group(1))}).to_pytimedelta()
    try:
        ts = pd.Timestamp(text)
    except ValueError as e:
        raise click.BadParameter(
            f"{value!r} is not a time: use ISO-8601 (2024-05-01T10:00:00Z) or now-15m / now-2h",
            param_hint="--from/--to",
        ) from e
    if ts.tzinfo is None:
        ts = ts.tz_localize(UTC)
    return ts.to_pydatetime()


def _baseline(value: str) -> float | str:
    try:
        frac = float(value)
    except ValueError:
        return value  # a timestamp or a duration; checked by the analysis
    if not 0.0 < frac < 1.0:
        raise click.BadParameter(
            f"a baseline fraction must be in (0, 1), got {value}", param_hint="--baseline"
        )
    return frac


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


@click.group()
def logs() -> None:
    """Log analyses: template mining and anomaly detection."""


@logs.command()
@url_option
@click.option("--from", "start", default=None, help="Start (ISO-8601 or now-1h). Default now-1h.")
@click.option("--to", "end", default=None, help="End, exclusive (ISO-8601 or now). Default now.")
@click.option("--service", default=None, help="Only this service.name.")
@click.option("--namespace", default=None, help="Data-stream namespace (default: all).")
@click.option("--index", default=None, help="Read this index/pattern instead of the logs stream.")
@click.option("--input", "input_path", type=click.Path(path_type=Path), default=None,
              help="Analyse a file (raw lines or NDJSON ECS documents) instead of the cluster.")
@click.option("--window", default="1min", show_default=True, help="Window length.")
@click.option("--window-lines", type=click.IntRange(1), default=50, show_default=True,
              help="Lines per window when lines have no timestamps (files only).")
@click.option("--baseline", default="0.5", show_default=True,
              help="Baseline: fraction of the time range, an end timestamp, or a duration "
                   "from the start (e.g. 10min).")
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
    errors) and explain them: deviating features, never-seen templates, sample ids."""
    from logsight.analysis.logs import findings_table, parse_window
    from logsight.sources.logs import analyse_frame, read_log_file, run_log_anomalies

    try:
        parse_window(window)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--window") from e
    base = _baseline(baseline)
    cont = _contamination(contamination)
    try:
        if input_path is not None:
            frame = read_log_file(input_path, service=service)
            if service:
                frame = frame[frame["service"] == service]
            findings = analyse_frame(
                frame, window=window, baseline=base, contamination=cont,
                window_lines=window_lines, drift=drift, model=model_path, save_model=save_model,
            )
        else:
            now = datetime.now(UTC)
            t_end = parse_time(end, now=now) or now
            t_start = parse_time(start, now=now) or (t_end - pd.Timedelta(hours=1).to_pytimedelta())
            if t_start >= t_end:
                raise click.BadParameter("--from must be before --to", param_hint="--from")
            eng = engine_from(url)
            try:
                findings = run_log_anomalies(
                    eng, start=t_start, end=t_end, service=service, namespace=namespace,
                    index=index, window=window, baseline=base, contamination=cont,
                    drift=drift, write=write, model=model_path, save_model=save_model,
                )
            finally:
                eng.close()
    except (ValueError, OSError) as e:
        raise click.ClickException(str(e)) from e
    except EngineError as e:
        raise click.ClickException(f"cluster error: {e}") from e
    if as_json:
        print_json([dict(f.to_document(), id=f.id) for f in findings])
        return
    if not findings:
        click.echo("no anomalous windows")
        return
    rows: list[dict[str, Any]] = findings_table(findings)
    print_table(
        rows, ["kind", "service", "window_start", "severity", "score", "new_templates", "summary"]
    )
