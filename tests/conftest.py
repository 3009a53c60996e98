"""Shared fixtures. The engine is real: ``LOGSIGHT_URL`` when set, otherwise a local OpenSearch
node started once for the whole session (on a free port, in a temporary state directory) and
stopped at the end."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if not DATASETS.exists():  # CI clones main beside a copy of shared/
    DATASETS = Path(os.environ.get("LOGSIGHT_DATASETS", "../shared/datasets")).resolve()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def engine_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("LOGSIGHT_URL")
    if url:
        yield url
        return
    from logsight.local import LocalEngine

    state = tmp_path_factory.mktemp("engine")
    local = LocalEngine(state, port=_free_port(), heap=os.environ.get("LOGSIGHT_ENGINE_HEAP", "1g"))
    local.start(timeout=300)
    os.environ["LOGSIGHT_URL"] = local.url  # subprocesses (CLI tests) find the same engine
    try:
        yield local.url
    finally:
        os.environ.pop("LOGSIGHT_URL", None)
        local.stop()


@pytest.fixture(scope="session")
def engine(engine_url: str):  # type: ignore[no-untyped-def]
    """A connected :class:`logsight.engine.Engine` with logsight's assets installed."""
    from logsight.assets import install
    from logsight.engine import connect

    eng = connect(engine_url)
    install(eng)
    yield eng
    eng.close()


@pytest.fixture
def namespace() -> str:
    """A data-stream namespace of this test's own, so tests never see each other's data."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def datasets() -> Path:
    if not DATASETS.exists():
        pytest.skip(f"shared datasets not found at {DATASETS}")
    return DATASETS
