"""Every formulation builder by name.

The builders register themselves with :func:`perfcost.formulations.core.register` when their
module is imported; this module imports them all, so that ``core`` stays a leaf that every
builder can import without a circle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perfcost.formulations import accelerator, serving, training
from perfcost.formulations.core import _REGISTRY, Formulation

#: The modules whose builders this registry holds (imported for their registrations).
BUILDER_MODULES = (accelerator, serving, training)


def registered() -> dict[str, Callable[..., Formulation]]:
    """All registered formulation builders by name."""
    return dict(_REGISTRY)


def build(name: str, *args: Any, **kwargs: Any) -> Formulation:
    """Build the formulation registered under ``name``."""
    builders = registered()
    if name not in builders:
        raise KeyError(f"no formulation named {name!r}; known: {sorted(builders)}")
    return builders[name](*args, **kwargs)
