"""``logsight alerts list|install|test|run``: alert rules on any cluster.

``install`` compiles the rules to Watcher watches (Elasticsearch with Watcher), to Alerting
monitors (OpenSearch with the Alerting plugin), or reports that logsight's own evaluator runs
them (``logsight alerts run`` once, or the service's scheduler continuously).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from logsight.alerts import check_webhook_url, evaluate_rule, load_rules, run_rules
from logsight.alerts.rules import OPS, Rule, RuleError, format_duration
from logsight.cli.common import (
    engine_from,
    json_option,
    print_json,
    print_table,
    time_option,
    url_option,
    when,
)
from logsight.engine import EngineError, connect

TARGETS = ("auto", "watcher", "monitor", "builtin")


def _rules(paths: Sequence[Path], ids: Sequence[str]) -> list[Rule]:
    try:
        return load_rules(list(paths) or None, ids=list(ids) or None)
    except RuleError as e:
        raise click.BadParameter(str(e), param_hint="--rules / RULE_ID") from None


def _now(value: str | None, *, clock: datetime | None = None) -> datetime:
    """``--now`` against ``clock`` (default: now); see :func:`logsight.cli.common.when`."""
    clock = datetime.now(UTC) if clock is None else clock
    return when(value, now=clock, option="--now") or clock


def _webhook_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        return check_webhook_url(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def rules_option(f: Any) -> Any:
    return click.option("--rules", "rule_paths", multiple=True,
                        type=click.Path(exists=True, path_type=Path),
                        help="Rule file or directory of *.yaml (default: the shipped rules).")(f)


def scope_options(f: Any) -> Any:
    f = click.option("--namespace", default=None,
                     help="Evaluate on one namespace's streams (and its findings) only.")(f)
    return click.option("--index", default=None,
                        help="Read this index or pattern instead of each rule's own.")(f)


def evaluation_options(f: Any) -> Any:
    """What ``test`` and ``run`` share: the cluster, the rules, where they read, and when."""
    f = time_option('--now', 'now_', what='Evaluate as of this time', default='Default: now.')(f)
    f = scope_options(f)
    f = click.argument("rule_ids", nargs=-1)(f)
    f = rules_option(f)
    return url_option(f)


def webhook_option(f: Any) -> Any:
    return click.option("--webhook-url", envvar="LOGSIGHT_ALERT_WEBHOOK_URL", default=None,
                        callback=_webhook_url,
                        help="Where webhooks go, an http(s) URL "
                             "(env LOGSIGHT_ALERT_WEBHOOK_URL).")(f)


@click.group()
def alerts() -> None:
    """Alert rules: list, install on the cluster, test, or evaluate once."""


@alerts.command("list")
@rules_option
@json_option
def list_(rule_paths: tuple[Path, ...], as_json: bool) -> None:
    """Show the rules."""
    rules = _rules(rule_paths, ())
    rows = [{
        "id": r.id, "severity": r.severity, "index": r.query.index,
        "window": format_duration(r.query.window_s), "group_by": r.query.group_by or "",
        "condition": f"{r.metric.describe()} {OPS[r.condition.op]} {r.condition.threshold:g}",
        "throttle": format_duration(r.throttle_s), "runbook": r.runbook_url(),
    } for r in rules]
    if as_json:
        print_json(rows)
        return
    print_table(rows, ["id", "severity", "index", "window", "group_by", "condition", "throttle"])


@alerts.command()
@url_option
@rules_option
@click.argument("rule_ids", nargs=-1)
@click.option("--target", type=click.Choice(TARGETS), default="auto", show_default=True,
              help="auto: Watcher if the cluster has it, else Alerting monitors if the plugin "
                   "is there, else the built-in evaluator.")
@webhook_option
@click.option("--dry-run", is_flag=True, help="Compile and show; install nothing.")
@json_option
def install(url: str | None, rule_paths: tuple[Path, ...], rule_ids: tuple[str, ...],
            target: str, webhook_url: str | None, dry_run: bool, as_json: bool) -> None:
    """Install the rules on the cluster (idempotent: re-running updates in place).

    With --dry-run nothing is installed and no cluster is needed: the rules are compiled and
    shown (with --target auto and no cluster reachable, both the Watcher and the Alerting form).

    Example: logsight alerts install --dry-run --target watcher --json"""
    rules = _rules(rule_paths, rule_ids)
    eng: Any = None
    missing = ""
    if dry_run:
        # compiling needs no cluster: reach it only to pick the target / warn, and go on
        # without it when it cannot be reached
        try:
            eng = connect(url)
        except EngineError as e:
            missing = f"no cluster reached ({e.message}); compiled offline"
    else:
        eng = engine_from(url)
    if eng is not None:
        if target == "auto":
            target = ("watcher" if eng.has_watcher()
                      else "monitor" if eng.has_alerting_plugin() else "builtin")
        elif target == "watcher" and not eng.has_watcher():
            missing = f"{eng.flavor} {eng.version} at {eng.url} has no Watcher"
        elif target == "monitor" and not eng.has_alerting_plugin():
            missing = f"{eng.flavor} {eng.version} at {eng.url} has no Alerting plugin"
    if missing and not dry_run:
        raise click.ClickException(missing)
    if missing and not as_json:  # a dry run still shows what would be compiled; say it can't run
        click.echo(f"warning: {missing}" if eng is None else
                   f"warning: {missing}; showing what would be installed on a cluster that "
                   "has it", err=True)
    # offline with --target auto: the cluster's kind is unknown, so show both forms
    targets = ["watcher", "monitor"] if target == "auto" else [target]
    results = [_install_one(eng, rules, t, dry_run=dry_run, webhook_url=webhook_url)
               for t in targets]
    if as_json:
        outs = [{"target": t, "installed": [{"name": n, "action": a} for n, a in done],
                 **({"compiled": compiled} if dry_run else {}),
                 **({"warning": missing} if missing else {})}
                for t, (done, compiled) in zip(targets, results, strict=True)]
        print_json(outs[0] if len(outs) == 1 else outs)
        return
    where = f"{eng.flavor} {eng.version} at {eng.url}" if eng is not None else "offline"
    for t, (done, _) in zip(targets, results, strict=True):
        click.echo(f"{where}: target {t}")
        for name, action in done:
            click.echo(f"  {name}  {action}")
    if targets == ["builtin"]:
        click.echo("This cluster has neither Watcher nor the Alerting plugin: the rules are "
                   "evaluated by logsight itself ('logsight alerts run', or the service's "
                   "scheduler).")


def _install_one(eng: Any, rules: Sequence[Rule], target: str, *, dry_run: bool,
                 webhook_url: str | None) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Install (or, dry, compile) ``rules`` for one target; ``eng`` may be None when dry."""
    compiled: dict[str, Any] = {}
    try:
        if target == "watcher":
            from logsight.alerts.watcher import compile_watch, install_watches

            done = install_watches(eng, rules, dry_run=dry_run, webhook_url=webhook_url)
            compiled = {r.id: compile_watch(r, webhook_url=webhook_url) for r in rules}
        elif target == "monitor":
            from logsight.alerts.monitors import compile_monitor, install_monitors

            done = install_monitors(eng, rules, webhook_url=webhook_url, dry_run=dry_run)
            compiled = {r.id: compile_monitor(r) for r in rules}
        else:
            done = [(r.id, "built-in evaluator") for r in rules]
    except (EngineError, ValueError) as e:
        raise click.ClickException(f"install failed: {e}") from e
    return done, compiled


def _result_rows(rule: Rule, ev: Any) -> list[dict[str, Any]]:
    if not ev.results and not ev.error:
        # say that the rule ran: "no rows" must not read as "not evaluated"
        return [{"rule": rule.id, "group": "(no data in window)", "count": 0, "value": None,
                 "threshold": rule.condition.threshold, "fires": "no", "note": ""}]
    rows = []
    for r in ev.results:
        rows.append({"rule": rule.id, "group": r.group or "", "count": r.count,
                     "value": r.value, "threshold": rule.condition.threshold,
                     "fires": "yes" if r.fired else "no", "note": r.note})
    return rows


@alerts.command()
@evaluation_options
@json_option
def test(url: str | None, rule_paths: tuple[Path, ...], rule_ids: tuple[str, ...],
         namespace: str | None, index: str | None, now_: str | None, as_json: bool) -> None:
    """Evaluate rules and show every group's value; records nothing and sends nothing."""
    rules = _rules(rule_paths, rule_ids)
    now = _now(now_)
    eng = engine_from(url)
    out: list[dict[str, Any]] = []
    errors: list[str] = []
    for rule in rules:
        try:
            ev = evaluate_rule(eng, rule, now=now, namespace=namespace, index=index)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--namespace") from None
        if ev.error:
            errors.append(f"{rule.id}: {ev.error}")
        out.extend(_result_rows(rule, ev))
    if as_json:
        print_json({"now": now.isoformat(), "results": out, "errors": errors})
    else:
        print_table(out, ["rule", "group", "count", "value", "threshold", "fires", "note"])
        for err in errors:
            click.echo(f"error: {err}", err=True)
    if errors:
        raise SystemExit(1)


@alerts.command()
@evaluation_options
@webhook_option
@click.option("--no-actions", is_flag=True, help="Record alerts but send nothing.")
@json_option
def run(url: str | None, rule_paths: tuple[Path, ...], rule_ids: tuple[str, ...],
        namespace: str | None, index: str | None, now_: str | None, webhook_url: str | None,
        no_actions: bool, as_json: bool) -> None:
    """Evaluate the rules once with the built-in evaluator: fire, throttle, record, act."""
    rules = _rules(rule_paths, rule_ids)
    now = _now(now_)
    eng = engine_from(url)
    try:
        report = run_rules(eng, rules, now=now, namespace=namespace, index=index,
                           webhook_url=webhook_url, run_actions=not no_actions)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--namespace") from None
    except EngineError as e:
        raise click.ClickException(f"alerts run failed: {e.message}") from e
    failed = report.delivery_failed
    if as_json:
        print_json({"now": now.isoformat(), "fired": [a.payload() for a in report.fired],
                    "delivery_failed": [a.id for a in failed], "errors": report.errors})
    else:
        for a in report.fired:
            state = ("throttled" if a.throttled
                     else "UNSENT" if a.delivery == "failed" else "FIRED")
            click.echo(f"{state:9} {a.severity:8} {a.message}\n          runbook: {a.runbook}")
            for note in a.actions:
                if a.delivery == "failed" and "failed" in note:
                    click.echo(f"          {note}")
        throttled = sum(1 for a in report.fired if a.throttled)
        fired = len(report.fired) - throttled - len(failed)
        summary = f"{len(rules)} rule(s) evaluated, {fired} alert(s) fired"
        if failed:
            summary += f", {len(failed)} delivery failed (retried on the next run)"
        click.echo(f"{summary}, {throttled} throttled")
        for err in report.errors:
            click.echo(f"error: {err}", err=True)
        for a in failed:
            click.echo(f"error: {a.rule_id}: alert not delivered: "
                       f"{'; '.join(n for n in a.actions if 'failed' in n)}", err=True)
    if report.errors or failed:
        raise SystemExit(1)
