"""Lazy package exports: a package lists ``name -> module`` and imports each
module on first use of one of its names (so that ``spiking`` commands start
without torch, scipy or fonts)."""
from __future__ import annotations

import importlib
from typing import Callable, Dict


def lazy_exports(package: str, exports: Dict[str, str], namespace: dict) -> Callable[[str], object]:
    """A module-level ``__getattr__`` for ``package`` that resolves ``exports``
    and caches each value in the package's ``namespace`` (its globals())."""

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
