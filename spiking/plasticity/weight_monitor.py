"""Weight monitors: the mean weight and a weight histogram of a plastic
projection, sampled between chunks of a run (``monitors: [{type: weights,
projection: EE, every: 10 ms, bins: 50}]``).

Samples are taken at the start of a run, every ``every`` steps after it
(default: 20 samples per run) and at its end; the engine cuts its chunks at
those steps. A sample costs one gather of the projection's weights, so keep
``every`` well above a step for large plastic projections.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

SAMPLES_PER_RUN = 20


class WeightSampler:
    """Samples the weight monitors of one run; ``result()`` gives, per
    projection, {"t": [S] ms, "mean": [S, Bw], "hist": [S, Bw, bins],
    "edges": [bins + 1]} (weights in the receptor's unit; Bw = 1 when weights
    are shared by the instances)."""

    def __init__(self, backend, monitors, t_start: int, n_steps: int):
        self.backend, self.t_start, self.t_end = backend, t_start, t_start + n_steps
        self.monitors = monitors
        self.every = [m.every or max(1, -(-n_steps // SAMPLES_PER_RUN)) for m in monitors]
        spec = backend.spec
        self.index = [backend._array(backend.synapse_index(m.projection)) for m in monitors]
        self.edges = []
        for m in monitors:
            rule = spec.projection(m.projection).plasticity
            self.edges.append(np.linspace(rule.w_min, rule.w_max, m.bins + 1))
        self.t: List[List[float]] = [[] for _ in monitors]
        self.mean: List[list] = [[] for _ in monitors]
        self.hist: List[list] = [[] for _ in monitors]
        self.sample()

    def limit(self, chunk: int) -> int:
        """``chunk`` shortened to end at the next sample step."""
        t = self.backend.t
        nxt = min(t + e - (t - self.t_start) % e for e in self.every)
        return max(1, min(chunk, nxt - t))

    def sample(self) -> None:
        """Sample the monitors that are due at the current step (and all at the end)."""
        backend, t = self.backend, self.backend.t
        for k, m in enumerate(self.monitors):
            if (t - self.t_start) % self.every[k] and t != self.t_end:
                continue
            if self.t[k] and self.t[k][-1] == t * backend.spec.dt:
                continue
            w = np.asarray(backend.to_numpy(backend.weight[:, self.index[k]]), np.float64)
            self.t[k].append(t * backend.spec.dt)
            self.mean[k].append(w.mean(axis=1))
            self.hist[k].append(np.stack([np.histogram(row, self.edges[k])[0] for row in w]))

    def result(self) -> Dict[str, Dict[str, np.ndarray]]:
        return {m.projection: {"t": np.asarray(self.t[k]), "mean": np.stack(self.mean[k]),
                               "hist": np.stack(self.hist[k]), "edges": self.edges[k]}
                for k, m in enumerate(self.monitors)}
