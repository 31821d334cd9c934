"""docs/generate.py, for the tests that check a generated region of a page from their own
results rather than have tests/test_docs.py run the command again."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType


def generator() -> ModuleType:
    """The docs generator module (docs/ is not a package)."""
    docs = str(Path(__file__).resolve().parents[1] / "docs")
    if docs not in sys.path:
        sys.path.insert(0, docs)
    import generate

    return generate
