"""The wheel a user installs: built from this tree, installed into a fresh virtual environment,
and used from outside the checkout (``logsight setup``, ``kibana list``, ``alerts list``,
``demo --short``) against the session's real engine.

Dependencies come from the package index (``pip install logsight-*.whl``, what a user runs),
so a dependency missing from pyproject.toml fails here. Without network, set
``LOGSIGHT_WHEEL_DEPS=shared``: the fresh venv then sees this interpreter's installed packages
through a ``.pth`` line instead (faster, but it cannot catch an undeclared dependency).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from logsight.alerts.rules import load_rules
from logsight.kibana import load_objects

REPO = Path(__file__).resolve().parents[1]
DEPS_MODE = os.environ.get("LOGSIGHT_WHEEL_DEPS", "index")


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 600
         ) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout, check=False)
    assert res.returncode == 0, (
        f"{' '.join(cmd)} exited {res.returncode}\n--- stdout\n{res.stdout[-4000:]}\n"
        f"--- stderr\n{res.stderr[-4000:]}")
    return res


@dataclass
class Installed:
    wheel: Path
    venv: Path
    cwd: Path  # outside the checkout
    env: dict[str, str]

    @property
    def logsight(self) -> str:
        return str(self.venv / "bin" / "logsight")

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return _run([self.logsight, *args], cwd=self.cwd, env=self.env, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    # no PYTHONPATH (it would put this checkout's src/ first) and no overrides that point
    # back into the checkout: everything must come from the installed wheel
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "LOGSIGHT_KIBANA_DIR", "VIRTUAL_ENV")}
    # HOME stays (pip's download cache lives there); logsight's own state goes to LOGSIGHT_HOME
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_ROOT_USER_ACTION="ignore",
               LOGSIGHT_URL=engine_url, LOGSIGHT_HOME=str(base / "home"), MPLBACKEND="Agg")
    # build from a clean copy of the tree: setuptools builds in place and would reuse a stale
    # build/ or *.egg-info of the checkout (and leave new ones behind)
    src = base / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
        ".hypothesis", "logsight-demo"))
    dist = base / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)]
    if DEPS_MODE == "shared":  # offline: build with the setuptools already installed here
        build.insert(4, "--no-build-isolation")
    _run(build, cwd=base, env=env)
    (wheel,) = dist.glob("logsight-*.whl")
    target = base / "venv"
    venv.EnvBuilder(with_pip=True, symlinks=True).create(target)
    py = str(target / "bin" / "python")
    if DEPS_MODE == "shared":
        purelib = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                            cwd=base, env=env).stdout.strip())
        # a plain path line: the packages are importable, but this environment's own .pth
        # hooks (an editable logsight among them) are not run
        (purelib / "_logsight_test_shared.pth").write_text(
            sysconfig.get_path("purelib") + "\n")
    _run([py, "-m", "pip", "install", "-q", str(wheel)], cwd=base, env=env, timeout=1200)
    cwd = base / "elsewhere"
    cwd.mkdir()
    yield Installed(wheel=wheel, venv=target, cwd=cwd, env=env)


def test_wheel_carries_the_data_files(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    kibana = {n.rsplit("/", 1)[-1] for n in names if n.startswith("logsight/kibana-objects/")}
    assert kibana == {p.name for p in (REPO / "kibana").glob("*.ndjson")}
    pipelines = {n.rsplit("/", 1)[-1] for n in names
                 if n.startswith("logsight/assets/ingest-pipelines/") and n.endswith(".json")}
    assert pipelines == {p.name for p in (REPO / "ingest-pipelines").glob("*.json")}
    assert {n for n in names if n.startswith("logsight/alerts/rules/")}
    assert "logsight/local/pom.xml" in names
    # the installed package is the wheel's, not this checkout
    where = _run([str(installed.venv / "bin" / "python"), "-c",
                  "import logsight, logsight.kibana as k; print(logsight.__file__); "
                  "print(k.objects_dir())"], cwd=installed.cwd, env=installed.env).stdout
    module, objects = where.split()
    assert Path(module).is_relative_to(installed.venv)
    assert Path(objects).is_relative_to(installed.venv) and objects.endswith("kibana-objects")


@pytest.mark.engine
def test_setup_kibana_and_alerts_from_the_wheel(installed: Installed) -> None:
    setup = installed.run("setup")
    assert "asset" in setup.stdout.lower() or "unchanged" in setup.stdout.lower(), setup.stdout
    objects = json.loads(installed.run("kibana", "list", "--json").stdout)
    expected = load_objects()  # the checkout's kibana/
    assert sorted((o["type"], o["id"]) for o in objects) == sorted(
        (o["type"], o["id"]) for o in expected)
    rules = json.loads(installed.run("alerts", "list", "--json").stdout)
    assert sorted(r["id"] for r in rules) == sorted(r.id for r in load_rules())


@pytest.mark.engine
def test_demo_from_the_wheel(installed: Installed, namespace: str) -> None:
    out = installed.cwd / "demo-out"
    res = installed.run("demo", "--short", "--namespace", namespace, "--out", str(out),
                        "--no-progress", timeout=900)
    assert "4 of 4 injected incidents found" in res.stdout, res.stdout
    assert "logsight kibana import" in res.stdout
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5
