"""Test-wide settings: a disk cache of this run's own (solver/problem/cache.py), so that no test
reads an entry an earlier run (or the user) wrote, while the tests of one run share theirs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache() -> Iterator[None]:
    before = os.environ.get("PERFCOST_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="perfcost-cache-") as folder:
        os.environ["PERFCOST_CACHE_DIR"] = folder
        yield
    if before is None:
        os.environ.pop("PERFCOST_CACHE_DIR", None)
    else:
        os.environ["PERFCOST_CACHE_DIR"] = before
