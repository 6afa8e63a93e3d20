"""NetworkSpec: everything a backend needs, as numpy arrays, already sampled.

A spec is built once from a validated config (seeded) and is independent of
the backend. Neuron indices are global: populations occupy consecutive ranges
in the order they are declared. Synaptic input goes to *slots*:
``slot = RECEPTOR_SLOTS[receptor] * n_total + neuron``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from spiking.models.base import N_SLOTS, N_STATE


@dataclass
class PopulationSpec:
    name: str
    model: str
    model_id: int
    kind: str                      # "neuron" or "source"
    size: int
    offset: int                    # first global index
    params: Dict[str, np.ndarray]  # per neuron, float64, base units
    options: Dict[str, Any]
    coef: Optional[np.ndarray] = None     # float32 [n_coef, size] (neurons)
    state0: Optional[np.ndarray] = None   # float32 [N_STATE, size] (neurons)
    source_table: Optional[np.ndarray] = None  # float64 (poisson sources)
    stream_key: int = 0                   # counter-based RNG key (noise, Poisson counts)
    spike_steps: Optional[np.ndarray] = None   # int64 [k] (spike_source_array)
    spike_index: Optional[np.ndarray] = None   # int64 [k] local neuron per spike
    events: Optional[np.ndarray] = None        # uint8 [T, (B,) size] (event_source file)
    positions: Optional[np.ndarray] = None     # float64 [size, 3] um

    @property
    def stop(self) -> int:
        return self.offset + self.size

    @property
    def slice(self) -> slice:
        return slice(self.offset, self.stop)


@dataclass
class ProjectionSpec:
    name: str
    index: int
    pre: str
    post: str
    receptor: str
    n_synapses: int
    plasticity: Optional[dict] = None
    hardware: Optional[dict] = None


@dataclass
class Connectivity:
    """All projections in one presynaptic CSR over global neuron indices."""

    indptr: np.ndarray   # int64 [n_total + 1]
    target: np.ndarray   # int32 [nnz] input slot
    delay: np.ndarray    # int16 [nnz] steps, >= 1
    weight: np.ndarray   # float32 [nnz]
    projection: np.ndarray  # int16 [nnz]

    @property
    def nnz(self) -> int:
        return int(self.target.shape[0])

    def pre_index(self) -> np.ndarray:
        """Global presynaptic neuron of each synapse (int64 [nnz])."""
        return np.repeat(np.arange(self.indptr.shape[0] - 1), np.diff(self.indptr))


@dataclass
class MonitorSpec:
    type: str                      # spikes | state | rate | weights
    population: str                # "" for weights
    neurons: Optional[np.ndarray] = None  # global indices (spikes, state)
    variables: List[str] = field(default_factory=list)
    rows: List[int] = field(default_factory=list)  # state rows of `variables`
    every: int = 1                 # steps between state (weights: 0 = 1/20 of a run) samples
    bin: int = 1                   # steps per rate bin
    projection: str = ""           # weights: the plastic projection
    bins: int = 50                 # weights: histogram bins over [w_min, w_max]


@dataclass
class NetworkSpec:
    name: str
    dt: float                      # ms
    n_steps: int                   # default run length
    seed: int
    instances: int
    backend: str
    device: str
    populations: List[PopulationSpec]
    projections: List[ProjectionSpec]
    connectivity: Connectivity
    monitors: List[MonitorSpec]
    source_file: Optional[str] = None
    sections: Dict[str, Any] = field(default_factory=dict)
    modulators: Dict[str, Any] = field(default_factory=dict)

    @property
    def on_hardware(self) -> bool:
        return any(p.hardware is not None for p in self.projections)

    @property
    def plastic(self) -> bool:
        return any(p.plasticity is not None for p in self.projections)

    @property
    def n_total(self) -> int:
        return self.populations[-1].stop if self.populations else 0

    @property
    def n_slots(self) -> int:
        return N_SLOTS * self.n_total

    @property
    def ring_length(self) -> int:
        """D = max delay + 1 steps."""
        d = self.connectivity.delay
        return int(d.max()) + 1 if d.size else 2

    def population(self, name: str) -> PopulationSpec:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(f"no population {name!r}; populations: "
                       f"{', '.join(p.name for p in self.populations)}")

    def projection(self, name: str) -> ProjectionSpec:
        for p in self.projections:
            if p.name == name:
                return p
        raise KeyError(f"no projection {name!r}; projections: "
                       f"{', '.join(p.name for p in self.projections)}")

    def runtime_bytes(self, instances: int, per_instance_weights: bool = False) -> int:
        """Memory the backend state takes (ring, state, weights), in bytes."""
        n, nnz = self.n_total, self.connectivity.nnz
        ring = self.ring_length * instances * self.n_slots * 8
        state = 2 * N_STATE * instances * n * 4
        synapses = nnz * (8 // 2 + 4 + 2 + 2) + (self.n_total + 1) * 8
        weights = nnz * 4 * (instances if per_instance_weights else 1)
        return ring + state + synapses + weights
