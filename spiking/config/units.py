"""Physical quantities in network files.

A quantity is a number, taken in the base unit of its dimension, or a string
``"<number> <unit>"`` (``"20 ms"``, ``"-65mV"``, ``"200 µs"``). Everything is
converted to the base units below on load, so the rest of the code only sees
floats in ms, mV, nA, nF, uS, MOhm, Hz and um.
"""
from __future__ import annotations

import difflib
import math
import re
from numbers import Real
from typing import Dict, Optional

# dimension -> unit -> factor to the base unit (the unit with factor 1).
UNITS: Dict[str, Dict[str, float]] = {
    "time": {"s": 1e3, "ms": 1.0, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ns": 1e-6, "min": 6e4},
    "voltage": {"V": 1e3, "mV": 1.0, "uV": 1e-3, "µV": 1e-3, "μV": 1e-3},
    "current": {"A": 1e9, "mA": 1e6, "uA": 1e3, "µA": 1e3, "μA": 1e3, "nA": 1.0, "pA": 1e-3},
    "capacitance": {"F": 1e9, "uF": 1e3, "µF": 1e3, "μF": 1e3, "nF": 1.0, "pF": 1e-3},
    "conductance": {"S": 1e6, "mS": 1e3, "uS": 1.0, "µS": 1.0, "μS": 1.0, "nS": 1e-3},
    "resistance": {"Ohm": 1e-6, "kOhm": 1e-3, "MOhm": 1.0, "GOhm": 1e3},
    "rate": {"Hz": 1.0, "kHz": 1e3},
    "length": {"m": 1e6, "mm": 1e3, "um": 1.0, "µm": 1.0, "μm": 1.0},
    "dimensionless": {"": 1.0},
}
DIMENSIONS = tuple(UNITS)
BASE_UNITS: Dict[str, str] = {
    dim: next(u for u, f in units.items() if f == 1.0) for dim, units in UNITS.items()
}
_EXAMPLES: Dict[str, str] = {
    "time": "20 ms", "voltage": "-65 mV", "current": "0.5 nA", "capacitance": "1 nF",
    "conductance": "10 nS", "resistance": "100 MOhm", "rate": "5 Hz", "length": "10 um",
    "dimensionless": "0.5",
}
_UNIT_DIMENSION: Dict[str, str] = {u: dim for dim, units in UNITS.items() for u in units}
_QUANTITY = re.compile(
    r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf)\s*([^\s\d.+-]*)\s*$")


def describe(dimension: str) -> str:
    """``"a time (e.g. '20 ms')"``: how messages name what was expected."""
    noun = "dimensionless number" if dimension == "dimensionless" else dimension
    return f"a {noun} (e.g. '{_EXAMPLES[dimension]}')"


def format_quantity(value: float, dimension: str) -> str:
    """A base-unit value with its unit, for messages: ``format_quantity(20, "time") == "20 ms"``."""
    unit = BASE_UNITS[dimension]
    return f"{value:g} {unit}" if unit else f"{value:g}"


def parse_quantity(value: object, dimension: str, *, where: Optional[str] = None) -> float:
    """Return ``value`` in the base unit of ``dimension`` (ms, mV, nA, ...).

    Numbers (not booleans) are taken as already in the base unit. Raises
    ValueError naming what was expected; ``where`` (a key name) prefixes it.
    """
    if dimension not in UNITS:
        raise ValueError(f"unknown dimension {dimension!r}; known: {', '.join(DIMENSIONS)}")
    try:
        return _to_base(value, dimension)
    except ValueError as e:
        raise ValueError(f"{where}: {e}" if where else str(e)) from None


def _to_base(value: object, dimension: str) -> float:
    """Parse one number or ``"<number> <unit>"`` string; ValueError if it does not fit."""
    if isinstance(value, Real) and not isinstance(value, bool) and not math.isnan(value):
        return float(value)
    match = _QUANTITY.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected {describe(dimension)}, got {value!r}")
    number, unit = float(match.group(1)), match.group(2)
    units = UNITS[dimension]
    if unit in units or not unit:
        return number * units.get(unit, 1.0)
    if unit in _UNIT_DIMENSION:
        raise ValueError(f"expected {describe(dimension)}, got {value!r} "
                         f"(a {_UNIT_DIMENSION[unit]})")
    accepted = ", ".join(u for u in units if u.isascii())
    raise ValueError(f"unknown unit {unit!r} in {value!r}; {_suggest_unit(unit, units)}"
                     + (f"{dimension} units: {accepted}" if accepted else "expected no unit"))


def _suggest_unit(unit: str, units: Dict[str, float]) -> str:
    """``"did you mean 'mV'? "`` for a near miss such as ``mv``, else ``""``."""
    same_letters = [u for u in units if u.lower() == unit.lower()]
    close = same_letters or difflib.get_close_matches(unit, [u for u in units if u], 1, 0.5)
    return f"did you mean {close[0]!r}? " if close else ""
