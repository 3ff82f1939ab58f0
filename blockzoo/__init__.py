"""BlockZoo: rank neural architectures with parameter remapping and few-batch block distillation.

``import blockzoo`` stays torch-free: the torch-backed entry points (``build_network``) are
imported on first use, so the API process can use spaces and the cost model cheaply.
"""

from __future__ import annotations

from typing import Any

from .cost_model import Cost, cost
from .space import Architecture, ArchitectureError, SearchSpace, get_space, list_spaces

__version__ = "0.1.0"

__all__ = [
    "Architecture", "ArchitectureError", "Cost", "SearchSpace", "build_network", "cost",
    "get_space", "list_spaces",
]


def __getattr__(name: str) -> Any:
    if name == "build_network":
        from .nets import build_network

        return build_network
    raise AttributeError(f"module 'blockzoo' has no attribute {name!r}")
