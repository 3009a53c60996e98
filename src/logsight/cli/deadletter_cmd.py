"""``logsight deadletter list|replay``: what the cluster refused, and re-sending it."""

from __future__ import annotations

import dataclasses

import click

from logsight.cli.common import engine_from, json_option, print_json, url_option
from logsight.deadletters import ignored_fields, list_deadletters, replay_deadletters
from logsight.engine import EngineError

stream_opt = click.option("--stream", default=None,
                          help="Only dead letters bound for this stream (e.g. "
                               "logs-logsight-default).")
stage_opt = click.option("--stage", default=None,
                         type=click.Choice(["bulk", "encode", "ingest"]),
                         help="Only dead letters from this stage (default: all, pipeline ones "
                              "included).")


@click.group()
def deadletter() -> None:
    """The dead-letter index (logsight-deadletter): list, and replay once fixed."""


@deadletter.command("list")
@url_option
@stream_opt
@stage_opt
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True,
              help="How many of the newest to show.")
@json_option
def list_cmd(url: str | None, stream: str | None, stage: str | None, limit: int,
             as_json: bool) -> None:
    """The newest dead letters with their reasons, and how many there are; also the documents
    stored with a field the engine ignored (``_ignored``: a value of another type than the
    field's mapping is kept in _source but not searchable)."""
    eng = engine_from(url)
    try:
        total, letters, reasons = list_deadletters(eng, stream=stream, stage=stage, limit=limit)
        ignored = ignored_fields(eng)
    except EngineError as e:
        raise click.ClickException(f"deadletter list failed: {e.message}") from e
    if as_json:
        print_json({"total": total, "reasons": reasons,
                    "dead_letters": [dataclasses.asdict(d) for d in letters],
                    "ignored": ignored})
        return
    click.echo(f"{total} dead letter(s){'' if total <= len(letters) else f', newest {len(letters)}'}")
    for d in letters:
        mark = "" if d.replayable else "  (not replayable)"
        click.echo(f"  {d.timestamp}  {d.id}  -> {d.stream}  [{d.stage or '?'}]  "
                   f"{d.reason.splitlines()[0][:160]}{mark}")
    # kept, not dead-lettered, but a field of them is not searchable (ignore_malformed)
    for pattern, info in ignored.items():
        fields = ", ".join(f"{f} ({n})" for f, n in list(info["fields"].items())[:10])
        click.echo(f"{info['documents']} document(s) in {pattern} stored with a field the "
                   f"engine ignored (a value of another type than its mapping): {fields}")


@deadletter.command()
@url_option
@stream_opt
@stage_opt
@click.option("--dry-run", is_flag=True, help="Count what would be replayed; send nothing.")
@json_option
def replay(url: str | None, stream: str | None, stage: str | None, dry_run: bool,
           as_json: bool) -> None:
    """Re-send dead letters to their streams (same ids: replaying twice stores nothing twice).
    Replayed ones are removed from the dead-letter index; those refused again stay."""
    eng = engine_from(url)
    try:
        report = replay_deadletters(eng, stream=stream, stage=stage, dry_run=dry_run)
    except EngineError as e:
        raise click.ClickException(f"deadletter replay failed: {e.message}") from e
    if as_json:
        print_json(dataclasses.asdict(report))
        return
    click.echo(f"{report.considered} dead letter(s): {report.replayed} replayed, "
               f"{report.already_there} already there, {report.failed_again} refused again, "
               f"{report.not_replayable} not replayable" + (" (dry run)" if dry_run else ""))
    for reason, n in sorted(report.reasons.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {n:6d}  {reason}")
