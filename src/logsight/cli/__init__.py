"""The ``logsight`` command: one click group, one module per job.

Every command that prints results takes ``--json``; every command that talks to a cluster takes
``--url`` (default ``LOGSIGHT_URL``, else the local engine's address).
"""

from __future__ import annotations

import click

from logsight import __version__
from logsight.cli import (
    alerts_cmd,
    cost_cmd,
    demo_cmd,
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="logsight")
def main() -> None:
    """logsight: log and trace analytics for ML systems on the Elasticsearch stack."""


main.add_command(engine_cmd.engine)
main.add_command(setup_cmd.setup)
main.add_command(ingest_cmd.ingest)
main.add_command(demo_cmd.demo)
main.add_command(traces_cmd.traces)
main.add_command(drift_cmd.drift)
main.add_command(drift_cmd.performance)
main.add_command(serve_cmd.serve)
main.add_command(alerts_cmd.alerts)
main.add_command(logs_cmd.logs)
main.add_command(kibana_cmd.kibana)
main.add_command(cost_cmd.cost)
main.add_command(resources_cmd.resources)
