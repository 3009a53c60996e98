"""docker-compose.yml, checked statically (Docker does not run on our development machines):
it parses, every variable it reads is documented in .env.example, every service, volume and
image it names exists, the long-running services restart and have healthchecks, and the
logsight commands it runs are real commands with real options."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from logsight.cli import main

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; $$ escapes (the
# container's shell expands those, not compose)
_INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
_BARE = re.compile(r"(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def _env_example() -> dict[str, str]:
    """Variables of .env.example, each with the comment lines right above it."""
    out: dict[str, str] = {}
    comment: list[str] = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.startswith("#"):
            comment.append(line.lstrip("# "))
        elif "=" in line:
            name = line.split("=", 1)[0].strip()
            out[name] = " ".join(comment)
            comment = []
        else:
            comment = []
    return out


def test_interpolation_pattern_known_values() -> None:
    text = "a ${A} b ${B:-x} c ${C:?need C} d $${NOT_ME} e $$HOME f ${D-y}"
    assert [m.group(1) for m in _INTERPOLATION.finditer(text)] == ["A", "B", "C", "D"]
    assert _BARE.findall(text) == []


def test_every_variable_it_reads_is_documented(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    used = {m.group(1) for m in _INTERPOLATION.finditer(text)}
    assert used, "the compose file reads no variables?"
    assert not _BARE.findall(text), "use ${VAR} (or $$VAR for the container's shell)"
    documented = _env_example()
    missing = sorted(used - set(documented))
    assert not missing, f"read by docker-compose.yml but not in .env.example: {missing}"
    for name in used:
        assert documented[name], f"{name} has no comment in .env.example"
    unused = sorted(set(documented) - used)
    assert not unused, f".env.example documents variables compose never reads: {unused}"


def test_required_variables_have_a_working_example(compose: dict[str, Any]) -> None:
    """The default path: ``cp .env.example .env`` gives every required variable a value."""
    text = COMPOSE.read_text()
    required = {m.group(1) for m in _INTERPOLATION.finditer(text) if m.group(2) in (":?", "?")}
    assert {"ELASTIC_PASSWORD", "LOGSIGHT_API_KEYS"} <= required
    values = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                  if line and not line.startswith("#"))
    for name in required:
        assert values.get(name, "").strip(), f"{name} is required but empty in .env.example"


def test_named_services_and_volumes_exist(compose: dict[str, Any]) -> None:
    services: dict[str, Any] = compose["services"]
    volumes = set(compose.get("volumes") or {})
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for dep, spec in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            assert dep in services, f"{name} depends on unknown service {dep}"
            cond = (spec or {}).get("condition")
            if cond == "service_healthy":
                assert "healthcheck" in services[dep] and not services[dep][
                    "healthcheck"].get("disable"), f"{name} waits for {dep}'s health: none"
            elif cond == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is not a one-shot job"
        for v in svc.get("volumes") or []:
            source = str(v).split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in volumes, f"{name} mounts undeclared volume {source}"
        if "build" in svc:
            assert (REPO / svc["build"] / "Dockerfile").is_file()


def test_long_running_services_restart_and_report_health(compose: dict[str, Any]) -> None:
    services: dict[str, Any] = compose["services"]
    for name in ("elasticsearch", "kibana", "logsight"):
        assert services[name]["restart"] == "unless-stopped", name
        assert services[name]["healthcheck"]["test"], name
    one_shots = [n for n, s in services.items() if s.get("restart") == "no"]
    assert "kibana-import" in one_shots
    deps = services["kibana-import"]["depends_on"]
    assert deps["kibana"]["condition"] == "service_healthy"


def _logsight_commands(svc: dict[str, Any]) -> list[list[str]]:
    cmd = svc.get("command")
    if cmd is None:
        return [["serve", "--host", "0.0.0.0", "--port", "8000"]]  # the Dockerfile's CMD
    words = cmd if isinstance(cmd, list) else shlex.split(cmd)
    if words[:2] == ["sh", "-c"]:
        words = shlex.split(words[2])
    out: list[list[str]] = []
    current: list[str] = []
    for w in [*words, "&&"]:
        if w in ("&&", ";", "||"):
            if current:
                out.append(current)
            current = []
        else:
            current.append(w)
    return [c[c.index("logsight") + 1:] for c in out if "logsight" in c]


def _resolve(args: list[str]) -> click.Context:
    """Parse ``args`` as click would (unknown options and missing required ones raise)."""
    cmd: click.Command = main
    while isinstance(cmd, click.Group):
        sub = cmd.get_command(click.Context(cmd), args[0])
        assert sub is not None, f"no logsight command {args[0]!r}"
        cmd, args = sub, args[1:]
    return cmd.make_context(cmd.name or "", list(args))


def test_logsight_commands_are_real_and_their_settings_are_read(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each logsight command of the file parses (options exist, required ones given by the
    service's environment), and every LOGSIGHT_/KIBANA_ variable handed to a logsight
    container is one logsight reads."""
    source = "\n".join(p.read_text() for p in (REPO / "src" / "logsight").rglob("*.py"))
    checked = 0
    for name, svc in compose["services"].items():
        if "build" not in svc:
            continue
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        for var in env:
            if var.startswith(("LOGSIGHT_", "KIBANA_")):
                assert f'"{var}"' in source, f"{name}: logsight never reads {var}"
        # only the service's own environment: none of this machine's settings
        for var in [v for v in os.environ if v.startswith(("LOGSIGHT_", "KIBANA_"))]:
            monkeypatch.delenv(var)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        for args in _logsight_commands(svc):
            _resolve(args)
            checked += 1
        for var in env:
            monkeypatch.delenv(var, raising=False)
    assert checked >= 3  # setup, serve, kibana import


def test_dockerfile_installs_the_wheel_and_runs_unprivileged() -> None:
    lines = [ln.strip() for ln in (REPO / "Dockerfile").read_text().splitlines()]
    code = [ln for ln in lines if ln and not ln.startswith("#")]
    runs = " ".join(ln for ln in code if ln.startswith("RUN"))
    assert "pip install" in runs and " -e " not in f" {runs} ", "no editable install"
    assert re.search(r"pip wheel\b", runs) and ".whl" in " ".join(code)
    users = [ln.split()[1] for ln in code if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    health = " ".join(code[code.index(next(ln for ln in code if ln.startswith("HEALTHCHECK"))):])
    assert "/health" in health
    # everything it copies exists in the tree (src's symlinks point into two of them)
    for ln in code:
        if ln.startswith("COPY") and "--from=" not in ln:
            for src in ln.split()[1:-1]:
                assert (REPO / src).exists(), f"Dockerfile copies missing {src}"
    for link in ("src/logsight/kibana-objects", "src/logsight/assets/ingest-pipelines"):
        assert (REPO / link).is_symlink() and (REPO / link).resolve().is_dir(), link
