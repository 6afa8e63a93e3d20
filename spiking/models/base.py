"""Neuron-model registry.

A model file (``lif.py``, ``izhikevich.py``, ...) declares its parameters, state
variables and receptors in a :class:`ModelInfo`, and holds its step for each
backend beside it. It registers itself under the name the YAML uses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import numpy as np


@dataclass(frozen=True)
class Param:
    """A model parameter: its dimension (see ``spiking.config.units``), default
    value in base units, and optional bounds that validation enforces."""

    dimension: str
    default: Optional[float]
    doc: str = ""
    low: Optional[float] = None       # inclusive lower bound
    high: Optional[float] = None      # inclusive upper bound
    low_exclusive: bool = False       # True: value must be > low


@dataclass(frozen=True)
class StateVar:
    """A state variable; ``default`` is a constant or the name of a parameter."""

    dimension: str
    default: object = 0.0
    doc: str = ""


@dataclass
class ModelInfo:
    """What a neuron model declares.

    kind: ``"neuron"`` (integrated by the backends) or ``"source"`` (spikes come
    from outside: Poisson, spike arrays, event streams).
    receptors: names a projection's ``receptor_type`` may take; each maps to a
    fixed input slot (``RECEPTOR_SLOTS``). receptor_dimensions: the unit of a
    weight onto that receptor (e.g. ``current`` for LIF, ``voltage`` for ``v``).
    options: non-numeric parameters (name -> allowed values, first is default).
    prepare: builds the per-neuron coefficient table used by the kernels,
    ``prepare(params: dict[str, np.ndarray], options: dict, dt) -> float32 [n_coef, n]``.
    initial_state: ``(params, initial) -> float32 [N_STATE, n]``.
    state_rows: state-variable name -> row of the state table.
    model_id: the number the backends' kernels dispatch on.
    """

    name: str
    kind: str
    params: Dict[str, Param]
    state: Dict[str, StateVar] = field(default_factory=dict)
    receptors: Tuple[str, ...] = ()
    receptor_dimensions: Dict[str, str] = field(default_factory=dict)
    options: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    doc: str = ""
    prepare: Optional[Callable] = None
    initial_state: Optional[Callable] = None
    state_rows: Dict[str, int] = field(default_factory=dict)
    model_id: int = -1


# Every model's receptors map onto these input slots (the ring buffer has one
# row per slot and neuron), so propagation never needs to know the model.
RECEPTOR_SLOTS: Dict[str, int] = {"excitatory": 0, "inhibitory": 1, "v": 2}
N_SLOTS = len(RECEPTOR_SLOTS)
# Rows of the state table every model shares (a model uses the first few).
N_STATE = 4

MODELS: Dict[str, ModelInfo] = {}


def register_model(info: ModelInfo) -> ModelInfo:
    if info.name in MODELS:
        raise ValueError(f"model {info.name!r} is registered twice")
    MODELS[info.name] = info
    return info


def get_model(name: str) -> ModelInfo:
    """Return the registered model ``name``; the error lists valid names."""
    _ensure_loaded()
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(
            f"unknown neuron model {name!r}; registered models: {', '.join(sorted(MODELS))}"
        ) from None


def _ensure_loaded() -> None:
    # Importing the package registers the built-in models.
    import spiking.models  # noqa: F401


def f32(x) -> np.ndarray:
    """Contiguous float32 copy, the dtype every kernel works in."""
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))
