"""Test-wide settings: a disk cache of this run's own (solver/problem/cache.py), so that no test
reads an entry an earlier run (or the user) wrote, while the tests of one run share theirs --
across pytest-xdist's worker processes too. The workers of a run build many of the same
formulations (every file that evaluates a built-in study needs its numeric functions); one
folder for the run lets a worker read what the other has already built. Entries are written
to a temporary file and renamed into place, so two workers writing one key never leave a torn
entry."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's base folder sits in the run's own folder (pytest-N/popen-gwK).
    run_folder = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = run_folder / "perfcost-cache"
    folder.mkdir(exist_ok=True)
    before = os.environ.get("PERFCOST_CACHE_DIR")
    os.environ["PERFCOST_CACHE_DIR"] = str(folder)
    yield
    if before is None:
        os.environ.pop("PERFCOST_CACHE_DIR", None)
    else:
        os.environ["PERFCOST_CACHE_DIR"] = before
