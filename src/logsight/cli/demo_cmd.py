"""``logsight demo``: the whole story on this machine, in one command.

Starts the local engine (unless ``LOGSIGHT_URL`` / ``--url`` names a cluster), installs the
assets (``logsight setup``), simulates an instrumented ML system with four injected incidents,
runs every analysis scoped to the demo's namespace, prints the findings report and writes an
HTML report with plots.
"""

from __future__ import annotations

import shlex
import tempfile
import time
from pathlib import Path

import click

from logsight.assets import install
from logsight.cli.common import engine_from, print_json
from logsight.engine import EngineError
from logsight.local import LocalEngine, LocalEngineError
from logsight.timeutil import iso

# where `logsight serve` listens by default (serve_cmd's --host / --port defaults)
SERVE_URL = "http://127.0.0.1:8080"


def prepare_out_dir(out_dir: Path) -> Path:
    """Create ``out_dir`` and prove it is writable (a real file is written and removed: mode
    bits say nothing for root, read-only mounts or /proc). Raises ``ValueError`` saying why.
    Runs before anything touches the cluster, so a bad ``--out`` costs nothing."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".logsight-write-check-"):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ValueError(f"cannot write the report to {str(out_dir)!r}: {reason}") from None
    return out_dir


def next_steps(namespace: str, engine_url: str) -> list[str]:
    """Copy-pasteable follow-up commands: the API (with a key, as auth is on by default) and
    the Kibana views (``--kibana-url`` is required)."""
    q = shlex.quote
    findings = f"{SERVE_URL}/v1/findings?namespace={namespace}"
    return [
        "  # the HTTP API (in another terminal; OpenAPI docs at "
        f"{SERVE_URL}/docs):",
        # --no-scheduler: browsing the demo's findings should not add live-window analyses
        f"  LOGSIGHT_API_KEYS=demo-key logsight serve --url {q(engine_url)} --no-scheduler",
        f"  curl -H 'X-API-Key: demo-key' {q(findings)}",
        "  # Kibana: findings over time, log anomaly windows, the critical-path table per "
        "operation, drift and accuracy per model version:",
        "  logsight kibana import --kibana-url http://localhost:5601   # your Kibana's URL "
        "(or env KIBANA_URL)",
    ]


def engine_left_running(local: LocalEngine) -> list[str]:
    """The closing lines when the demo leaves its local engine up: that it still runs, what
    it holds on to, and the command that stops it (with --state-dir when not the default)."""
    from logsight.local.node import default_state_dir

    stop = "logsight engine stop"
    if local.state_dir.resolve() != default_state_dir().resolve():
        stop += f" --state-dir {shlex.quote(str(local.state_dir))}"
    return [f"The local engine is still running at {local.url} (heap {local.heap}, data in "
            f"{local.state_dir}).",
            f"Stop it with: {stop}   (or run the demo with --stop-engine)"]


@click.command()
@click.option("--url", envvar="LOGSIGHT_URL", default=None,
              help="Cluster URL (env LOGSIGHT_URL). Without it the local engine is started.")
@click.option("--namespace", default="demo", show_default=True,
              help="Data-stream namespace of the demo's data (reset at the start of a run).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("logsight-demo"), show_default=True,
              help="Directory for report.html.")
@click.option("--short", is_flag=True,
              help="A 30-minute simulated schedule instead of 60 minutes (faster).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed of the simulation.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--keep", is_flag=True,
              help="Do not delete the namespace's earlier data before the run.")
@click.option("--check-browser", is_flag=True,
              help="Open the report in headless Chromium and check that every plot rendered.")
@click.option("--stop-engine", is_flag=True,
              help="Stop the local engine at the end (by default it keeps running, ~1 GB of "
                   "memory, so the next steps can use it). No effect with --url.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON summary (findings, incidents, timings) at the end.")
def demo(url: str | None, namespace: str, out_dir: Path, short: bool, seed: int,
         no_progress: bool, keep: bool, check_browser: bool, stop_engine: bool,
         as_json: bool) -> None:
    """Run the end-to-end demo: simulate an ML system with incidents, analyse it, report."""
    # with --json, stdout is the JSON document alone: the running commentary goes to stderr
    def echo(message: str = "") -> None:
        click.echo(message, err=as_json)

    from logsight.demo.incidents import default_schedule, short_schedule
    from logsight.demo.report import check_in_browser
    from logsight.demo.runner import run_demo
    from logsight.names import check_namespace

    try:
        check_namespace(namespace)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--namespace") from None
    try:
        prepare_out_dir(out_dir)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--out") from None
    wall = time.monotonic()
    local: LocalEngine | None = None
    if not url:
        local = LocalEngine()
        try:
            status, started = local.start()
        except LocalEngineError as e:
            raise click.ClickException(str(e)) from e
        url = status.url
        echo(("started " if started else "using running ") + status.describe())
    engine = engine_from(url)
    try:
        try:
            report = install(engine)
        except EngineError as e:
            raise click.ClickException(f"setup failed: {e.message}") from e
        echo(f"setup: {report.changed} asset(s) changed, "
                   f"{len(report.rows) - report.changed} unchanged ({engine.flavor} "
                   f"{engine.version} at {engine.url})")
        schedule = short_schedule() if short else default_schedule()
        try:
            result = run_demo(engine, url=url, namespace=namespace, schedule=schedule,
                              out_dir=out_dir, random_state=seed, echo=echo,
                              progress=not no_progress, reset=not keep)
        except EngineError as e:
            raise click.ClickException(f"the demo could not talk to the cluster: {e.message}"
                                       ) from e
    finally:
        engine.close()
    echo("")
    for line in result.lines():
        echo(line)
    echo("")
    found = len(schedule.incidents) - len(result.match.missed)
    echo(f"{found} of {len(schedule.incidents)} injected incidents found; "
               f"{len(result.match.others)} other finding(s).")
    echo(f"HTML report: {result.html.resolve()}")
    if check_browser:
        shot = result.html.with_name("report.png")
        try:
            check = check_in_browser(result.html, screenshot=shot)
        except (FileNotFoundError, RuntimeError) as e:
            echo(f"browser check skipped: {e}")
        else:
            verdict = "ok" if check.ok else "FAILED"
            echo(f"browser check {verdict}: {check.loaded}/{check.images} plots rendered "
                 f"({len(check.empty)} without data), "
                       f"{len(check.errors)} page error(s); screenshot {check.screenshot}")
    elapsed = time.monotonic() - wall
    echo(f"demo wall time: {elapsed:.1f} s (simulate+ship "
               f"{result.timings['simulate_and_ship_s']:.1f} s, analyse "
               f"{result.timings['analyse_s']:.1f} s, report {result.timings['report_s']:.1f} s)")
    echo("")
    if local is not None and stop_engine:
        local.stop()
        echo(f"local engine stopped (data kept in {local.state_dir}; "
             "`logsight engine start` brings it back for the next steps).")
    echo("Next:")
    for line in next_steps(namespace, engine.url):  # the URL without credentials
        echo(line)
    if local is not None and not stop_engine:
        echo("")
        for line in engine_left_running(local):
            echo(line)
    if as_json:
        print_json({
            "namespace": namespace,
            # the simulated range, ground truth included: the window to query it back with
            "simulated": {"from": iso(result.t0),
                          "to": iso(result.t0 + result.schedule.horizon)},
            "report": str(result.html.resolve()),
            "wall_time_s": round(elapsed, 2),
            "timings": result.timings,
            "emitted": result.emitted,
            "missed": result.match.missed,
            "incidents": {k: [f.id for f in v] for k, v in result.match.found.items()},
            "others": [f.to_document() for f in result.match.others],
            "findings": [{"id": f.id, "kind": f.kind, "service": f.service,
                          "subject": f.subject, "window_start": str(f.window_start)}
                         for f in result.findings],
        })
