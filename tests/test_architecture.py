"""The layering rules of docs/DEVELOPING.md, checked on the source (imports only)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "logsight"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(sub: str = "") -> list[Path]:
    return sorted((SRC / sub).rglob("*.py"))


def _offenders(files: list[Path], banned: tuple[str, ...]) -> list[str]:
    return [
        f"{p.relative_to(SRC)} imports {m}"
        for p in files
        for m in sorted(_imports(p))
        if any(m == b or m.startswith(b + ".") for b in banned)
    ]


def test_only_the_engine_seam_imports_the_clients() -> None:
    files = [p for p in _modules() if "engine" not in p.relative_to(SRC).parts[:1]]
    assert _offenders(files, ("elasticsearch", "opensearchpy")) == []


def test_only_the_service_imports_fastapi() -> None:
    files = [p for p in _modules() if p.relative_to(SRC).parts[0] != "service"]
    assert _offenders(files, ("fastapi", "starlette", "uvicorn")) == [
        o for o in _offenders(files, ("uvicorn",)) if o.startswith("cli/serve_cmd.py")
    ]


@pytest.mark.parametrize("banned", ["logsight.engine", "logsight.service", "logsight.sources"])
def test_analyses_are_pure(banned: str) -> None:
    assert _offenders(_modules("analysis"), (banned,)) == []


def test_adapters_and_shipper_never_import_analyses() -> None:
    files = _modules("adapters") + _modules("shipper") + [SRC / "ecs.py"]
    assert _offenders(files, ("logsight.analysis", "logsight.sources", "logsight.service")) == []


# the faces: what users and other programs call. They run analyses through logsight.jobs only.
FACES = ("cli", "service", "demo/runner.py")


def _faces() -> list[Path]:
    return [p for f in FACES for p in ([SRC / f] if f.endswith(".py") else _modules(f))]


def test_faces_call_jobs_never_analyses_or_sources() -> None:
    assert _faces(), "no face modules found: FACES is out of date"
    assert _offenders(_faces(), ("logsight.analysis", "logsight.sources")) == []


def test_sources_only_read() -> None:
    """Writing findings, critical-path aggregates and profiles is the writer's (one module)."""
    writes = ("write_findings", ".bulk(", ".index(")
    found = [f"{p.relative_to(SRC)}: {w}" for p in _modules("sources") for w in writes
             if w in p.read_text()]
    assert found == []


def test_jobs_never_import_faces() -> None:
    assert _offenders(_modules("jobs"), ("logsight.cli", "logsight.service",
                                         "logsight.demo")) == []
