"""Errors the user sees. Each carries enough context to act on without a traceback."""
from __future__ import annotations

from typing import Optional, Sequence, Union


class SpikingError(Exception):
    """Base class: the CLI prints these as one message and exits with ``exit_code``."""

    exit_code = 1


class ConfigError(SpikingError):
    """A bad network file: names the file, line and key path."""

    exit_code = 2

    def __init__(self, message: str, file: Optional[str] = None, line: Optional[int] = None,
                 path: Union[Sequence, str, None] = None):
        self.message = message
        self.file = file
        self.line = line
        self.path = path if isinstance(path, str) or path is None else ".".join(map(str, path))
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        key = f"{self.path}: " if self.path else ""
        return f"{where}{key}{self.message}"


class SimulationError(SpikingError):
    """A run that cannot go on (NaN/Inf in a state, out of memory plan, ...)."""


class DataError(SpikingError):
    """Bad input data: names the file and what is wrong with it."""

    exit_code = 2
