"""The Python entry point: ``net = spiking.load("configs/cuba.yaml"); result = net.run()``."""
from __future__ import annotations

import time
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from spiking.build.builder import build_spec
from spiking.engine import RunResult, Simulator


class Network:
    """A validated network description, built on first use and run on a backend."""

    def __init__(self, config, backend: Optional[str] = None, instances: Optional[int] = None,
                 device: Optional[str] = None, per_instance_weights: bool = False,
                 propagation: str = "auto"):
        self.config = config
        self.backend_name = backend or config.backend
        self.instances = int(instances or config.instances)
        self.device = device or config.device
        self.per_instance_weights = per_instance_weights
        self.propagation = propagation
        self.spec = None
        self.sim: Optional[Simulator] = None
        self.timing = {}

    def build(self) -> "Network":
        if self.sim is None:
            began = time.perf_counter()
            self.spec = build_spec(self.config, self.instances)
            self.sim = Simulator(self.spec, self.backend_name, self.instances, self.device,
                                 self.per_instance_weights, self.propagation)
            self.timing["build_s"] = time.perf_counter() - began
        return self

    def run(self, duration: Union[float, str, None] = None,
            inputs: Optional[Mapping[str, np.ndarray]] = None,
            progress: Optional[bool] = None,
            signals: Optional[Mapping[str, np.ndarray]] = None,
            count_bins: int = 1) -> RunResult:
        """Run for ``duration`` (ms, or a string with a unit such as "10 s";
        default: the file's ``duration``). Time continues from the last run.
        ``inputs`` feed event sources, ``signals`` signal/error modulators;
        both are indexed from the start of this run (row 0 = its first step).
        ``count_bins``: spike counts per neuron in that many time bins as well
        (``result.counts(pop, binned=True)``)."""
        self.build()
        if duration is None:
            steps = self.spec.n_steps
        else:
            from spiking.config.units import parse_quantity
            steps = int(round(parse_quantity(duration, "time") / self.spec.dt))
        result = self.sim.run(steps, inputs=inputs, progress=progress, signals=signals,
                              count_bins=count_bins)
        result.timing["build_s"] = self.timing.get("build_s", 0.0)
        return result

    def reset(self, weights: bool = False, epoch: Optional[int] = None) -> None:
        """Back to step 0 and the initial state; ``weights=True`` also restores
        the initial weights (learned weights are kept otherwise). Each reset
        starts a new noise epoch, so the next trial draws fresh noise (Poisson
        sources, noise currents); ``epoch=k`` picks epoch k instead (0: the
        noise of the first run). Same seed and calls: same numbers."""
        self.build().sim.reset(weights=weights, epoch=epoch)

    def modulate(self, name: str, amount) -> None:
        """Add to a reward modulator (scalar or one value per instance)."""
        self.backend.modulate(name, amount)

    def set_signal(self, name: str, value) -> None:
        """Hold a signal or error-target modulator at ``value``."""
        self.build().sim.set_signal(name, value)

    def modulator(self, name: str) -> np.ndarray:
        return self.backend.modulator(name)

    def hardware_report(self) -> dict:
        """Row reads, synaptic events, energy (pJ) and latency (ns) of each
        projection on a resistive array, since the last reset."""
        return self.backend.hardware_report()

    @property
    def backend(self):
        return self.build().sim.backend

    def get_state(self, population: str, variable: str) -> np.ndarray:
        return self.backend.get_state(population, variable)

    def set_state(self, population: str, variable: str, values) -> None:
        self.backend.set_state(population, variable, values)

    def weights(self, projection: str) -> np.ndarray:
        return self.backend.get_weights(projection)

    def set_weights(self, projection: str, values) -> None:
        self.backend.set_weights(projection, values)

    @property
    def n_synapses(self) -> int:
        return self.build().spec.connectivity.nnz


def load(path: str, overrides: Union[Sequence[str], Mapping, None] = None,
         backend: Optional[str] = None, instances: Optional[int] = None,
         device: Optional[str] = None) -> Network:
    """Load and validate a network file; ``overrides`` as ``["key.path=value"]`` or a dict."""
    from spiking.config import load_config
    return Network(load_config(path, overrides), backend, instances, device)
