"""``logsight setup``: install index assets (idempotent, versioned)."""

from __future__ import annotations

import re

import click

from logsight.assets import LifecycleConfig, install
from logsight.cli.common import engine_from, json_option, print_json, url_option
from logsight.engine import EngineError


def _check_age(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not re.fullmatch(r"[1-9][0-9]*[smhd]", value):
        raise click.BadParameter(f"{value!r} is not an age such as 12h or 1d")
    return value


@click.command()
@url_option
@json_option
@click.option("--retention-days", type=click.IntRange(1, 3650), default=None,
              help="Retention for logs, traces and metrics (days; default 30/14/30).")
@click.option("--ml-retention-days", type=click.IntRange(1, 3650), default=None,
              help="Retention for ML events (days; default 180).")
@click.option("--rollover-age", default="1d", show_default=True, callback=_check_age,
              help="Roll over after this age (a number and a unit: s, m, h or d).")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
def setup(url: str | None, as_json: bool, retention_days: int | None,
          ml_retention_days: int | None, rollover_age: str, dry_run: bool) -> None:
    """Install ingest pipelines, index templates, data streams and lifecycle policies.

    Re-running changes nothing; a newer logsight upgrades its assets in place.
    """
    cfg = LifecycleConfig(rollover_age=rollover_age)
    if retention_days or ml_retention_days:
        days = dict(cfg.retention_days)
        for k in ("logs", "traces", "metrics"):
            days[k] = retention_days or days[k]
        days["mlevents"] = ml_retention_days or days["mlevents"]
        cfg = LifecycleConfig(rollover_age=rollover_age, retention_days=days)
    eng = engine_from(url)
    try:
        report = install(eng, lifecycle=cfg, dry_run=dry_run)
    except EngineError as e:
        raise click.ClickException(f"setup failed: {e.message}") from e
    if as_json:
        print_json({"engine": {"flavor": eng.flavor, "version": eng.version, "url": eng.url},
                    "changed": report.changed,
                    "assets": [dict(zip(("kind", "name", "action", "note"), r, strict=True))
                               for r in report.rows]})
        return
    click.echo(f"{eng.flavor} {eng.version} at {eng.url}")
    for line in report.lines():
        click.echo("  " + line)
    verb = "would change" if dry_run else "changed"
    click.echo(f"{report.changed} asset(s) {verb}, {len(report.rows) - report.changed} unchanged")
