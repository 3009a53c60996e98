"""The ``logsight`` command: one click group, one module per job.

Every command that prints results takes ``--json``; every command that talks to a cluster takes
``--url`` (default ``LOGSIGHT_URL``, else the local engine's address).
"""

from __future__ import annotations

import json
from typing import Any

import click

from logsight import __version__
from logsight.cli import (
    alerts_cmd,
    canary_cmd,
    cost_cmd,
    deadletter_cmd,
    demo_cmd,
    dependencies_cmd,
    drift_cmd,
    engine_cmd,
    ingest_cmd,
    kibana_cmd,
    logs_cmd,
    resources_cmd,
    serve_cmd,
    setup_cmd,
    traces_cmd,
)


class JsonErrorsGroup(click.Group):
    """The root group: with ``--json`` anywhere on the command line, an error is a JSON
    document on stdout as well (``{"error": {"message", "exit_code", "type"}}``), so a script
    that reads stdout gets something it can parse; the exit code is unchanged."""

    def invoke(self, ctx: click.Context) -> Any:
        # the subcommand's arguments, still unparsed: read from this call's context, so the
        # shared group object keeps no per-call state
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        try:
            return super().invoke(ctx)
        except click.ClickException as e:
            if "--json" in rest:
                click.echo(json.dumps({"error": {"message": e.format_message(),
                                                 "exit_code": e.exit_code,
                                                 "type": type(e).__name__}}))
            raise


@click.group(cls=JsonErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="logsight")
def main() -> None:
    """logsight: log and trace analytics for ML systems on the Elasticsearch stack.

    Example: logsight demo --short"""


main.add_command(engine_cmd.engine)
main.add_command(setup_cmd.setup)
main.add_command(ingest_cmd.ingest)
main.add_command(deadletter_cmd.deadletter)
main.add_command(demo_cmd.demo)
main.add_command(traces_cmd.traces)
main.add_command(drift_cmd.drift)
main.add_command(drift_cmd.performance)
main.add_command(serve_cmd.serve)
main.add_command(alerts_cmd.alerts)
main.add_command(logs_cmd.logs)
main.add_command(kibana_cmd.kibana)
main.add_command(dependencies_cmd.dependencies)
main.add_command(canary_cmd.canary)
main.add_command(cost_cmd.cost)
main.add_command(resources_cmd.resources)


# One example at the end of every subcommand's help (a test holds every command to it).
EXAMPLES = {
    "engine start": "logsight engine start --port 9200 --heap 1g",
    "engine stop": "logsight engine stop",
    "engine status": "logsight engine status --json",
    "setup": "logsight setup --url http://127.0.0.1:9200",
    "ingest": "logsight ingest app.log --service checkout",
    "deadletter list": "logsight deadletter list --json",
    "deadletter replay": "logsight deadletter replay --stream logs-logsight-default",
    "demo": "logsight demo --short --stop-engine",
    "traces bottlenecks": "logsight traces bottlenecks --service checkout --from now-1h",
    "traces complete": "logsight traces complete --settle 30s --lookback 2h",
    "traces regressions": "logsight traces regressions --service checkout --from now-1h "
                          "--baseline-from now-1d --baseline-to now-23h",
    "drift": "logsight drift --reference train.csv --current today.csv",
    "serve": "logsight serve --port 8080 --api-key \"$KEY\"",
    "alerts list": "logsight alerts list",
    "alerts test": "logsight alerts test log-error-rate-spike --now now",
    "alerts run": "logsight alerts run",
    "logs anomalies": "logsight logs anomalies --input app.log --baseline 30min",
    "kibana list": "logsight kibana list",
    "kibana import": "logsight kibana import --kibana-url http://localhost:5601",
    "dependencies": "logsight dependencies --from now-1h",
    "cost": "logsight cost --metrics metrics.ndjson --events mlevents.ndjson",
    "resources": "logsight resources --metrics metrics.ndjson",
    "canary": "logsight canary --service scorer --baseline-version 1.4 --version 1.5",
}


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*path, name))
        else:
            out.append((" ".join((*path, name)), cmd))
    return out


for _name, _cmd in _commands(main):
    if _name in EXAMPLES and "Example:" not in (_cmd.help or ""):
        _cmd.help = f"{(_cmd.help or '').rstrip()}\n\nExample: {EXAMPLES[_name]}"
