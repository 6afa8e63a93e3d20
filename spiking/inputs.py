"""Sparse spike input: the nonzero cells of an event source's counts.

A dense input is ``uint8 [T, B, n]``: spikes per step, instance and neuron. For
event data nearly all of it is 0 (N-MNIST at 1 ms: 0.5 %), so
:class:`SpikeCounts` keeps only the nonzero cells, ordered instance by instance
(each instance's steps in turn, as the numba kernel reads them). A batch is then
its samples' cells one after the other, and a run reads a few bytes per spike
instead of every cell of the grid.

:class:`ExternalSpikes` is what a run hands its backend: the spikes of all of
the network's event and array sources in global neuron indices, with a pointer
per (instance, step).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

from spiking.errors import SimulationError


@dataclass(frozen=True)
class SpikeCounts:
    """``count[e]`` spikes in cell ``cell[e] = (instance * T + step) * n + neuron``
    (cells strictly ascending, counts 1..255) of an input shaped ``(T, B, n)``
    like its dense equivalent; ``B`` 1 means one input shared by all instances."""

    cell: np.ndarray     # int64 [E]
    count: np.ndarray    # uint8 [E]
    shape: Tuple[int, int, int]

    def __post_init__(self):
        cell = np.ascontiguousarray(self.cell, np.int64)
        count = np.ascontiguousarray(self.count, np.uint8)
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 3 or min(shape) < 0:
            raise SimulationError(f"SpikeCounts: shape must be (T, B, n), got {self.shape}")
        if cell.ndim != 1 or cell.shape != count.shape:
            raise SimulationError(f"SpikeCounts: cell and count must be 1-D of one length, got "
                                  f"{np.shape(self.cell)} and {np.shape(self.count)}")
        if cell.size and (cell[0] < 0 or cell[-1] >= np.prod(shape, dtype=np.int64)
                          or np.any(cell[1:] <= cell[:-1])):
            raise SimulationError(f"SpikeCounts: cells must ascend strictly within "
                                  f"0..{np.prod(shape, dtype=np.int64) - 1} (shape {shape})")
        if count.size and count.min() == 0:
            raise SimulationError("SpikeCounts: counts must be 1..255 (a cell without spikes "
                                  "is left out)")
        object.__setattr__(self, "cell", cell)
        object.__setattr__(self, "count", count)
        object.__setattr__(self, "shape", shape)

    @classmethod
    def from_dense(cls, counts) -> "SpikeCounts":
        """From counts ``[T, n]`` (shared by all instances) or ``[T, B, n]``, 0..255."""
        counts = np.asarray(counts)
        if counts.ndim == 2:
            counts = counts[:, None, :]
        if counts.ndim != 3:
            raise SimulationError(f"expected counts [T, n] or [T, B, n], got {counts.shape}")
        if counts.dtype != np.uint8 and counts.size and (counts.min() < 0 or counts.max() > 255):
            raise SimulationError("counts must lie in 0..255")
        by_instance = counts.transpose(1, 0, 2).reshape(-1)
        cell = np.flatnonzero(by_instance)
        return cls(cell, by_instance[cell].astype(np.uint8), counts.shape)

    @classmethod
    def from_samples(cls, samples: Sequence[Tuple[np.ndarray, np.ndarray]], n_steps: int,
                     size: int, n_instances: int = 0) -> "SpikeCounts":
        """One instance per sample: ``(flat, count)`` with ``flat = step * size + neuron``
        ascending (as :class:`spiking.data.NMNIST` caches them). ``n_instances`` larger
        than ``len(samples)`` adds silent instances."""
        per_instance = n_steps * size
        cells = [np.asarray(flat, np.int64) + b * per_instance for b, (flat, _) in enumerate(samples)]
        counts = [np.asarray(count, np.uint8) for _, count in samples]
        return cls(np.concatenate(cells) if cells else np.zeros(0, np.int64),
                   np.concatenate(counts) if counts else np.zeros(0, np.uint8),
                   (n_steps, max(n_instances, len(samples)), size))

    @classmethod
    def from_spikes(cls, step, neuron, n_steps: int, size: int) -> "SpikeCounts":
        """One input for all instances from (step, neuron) spikes in any order; the
        spikes of one neuron in one step add up (to at most 255)."""
        cell, count = np.unique(np.asarray(step, np.int64) * size + np.asarray(neuron, np.int64),
                                return_counts=True)
        return cls(cell, np.minimum(count, 255), (n_steps, 1, size))

    @property
    def n_steps(self) -> int:
        return self.shape[0]

    @property
    def n_instances(self) -> int:
        return self.shape[1]

    @property
    def size(self) -> int:
        return self.shape[2]

    def coordinates(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(instance, step, neuron) of every cell, int64."""
        instance_step, neuron = np.divmod(self.cell, self.size)
        instance, step = np.divmod(instance_step, self.n_steps)
        return instance, step, neuron

    def to_dense(self) -> np.ndarray:
        """The counts as ``uint8 [T, B, n]``."""
        dense = np.zeros((self.n_instances, self.n_steps, self.size), np.uint8)
        dense.reshape(-1)[self.cell] = self.count
        return dense.transpose(1, 0, 2).copy()

    def with_instances(self, n_instances: int) -> "SpikeCounts":
        """The same input with silent instances appended up to ``n_instances``."""
        if n_instances < self.n_instances:
            raise SimulationError(f"cannot shrink {self.n_instances} instances to {n_instances}")
        return SpikeCounts(self.cell, self.count, (self.n_steps, n_instances, self.size))


@dataclass(frozen=True)
class ExternalSpikes:
    """The spikes of a run's event and array sources: entries ``ptr[b, s]`` up to
    ``ptr[b, s + 1]`` are the spikes of instance ``b`` (0 for all when
    ``ptr.shape[0]`` is 1) at step ``s`` of the chunk, as global neuron index
    ``neuron`` (int32, ascending within a step) and count ``count`` (uint8)."""

    neuron: np.ndarray   # int32 [E]
    count: np.ndarray    # uint8 [E]
    ptr: np.ndarray      # int64 [Bx, n_steps + 1]

    @classmethod
    def combine(cls, parts: Sequence[Tuple[bool, np.ndarray, np.ndarray, np.ndarray]],
                n_steps: int, n_instances: int, n_total: int) -> "ExternalSpikes":
        """From (shared, row, neuron, count) parts: ``row = instance * n_steps + step``
        ascending (int64), global ``neuron`` ascending within a row, ``count`` uint8.
        A shared part (one input for all instances, instance 0) is repeated for every
        instance when some other part is not shared."""
        per_instance = n_instances > 1 and not all(shared for shared, *_ in parts)
        Bx = n_instances if per_instance else 1
        rows, neurons, counts = [], [], []
        for shared, row, neuron, count in parts:
            if per_instance and shared:
                row = (np.arange(Bx, dtype=np.int64)[:, None] * n_steps + row).reshape(-1)
                neuron, count = np.tile(neuron, Bx), np.tile(count, Bx)
            rows.append(row)
            neurons.append(neuron)
            counts.append(count)
        row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        neuron = np.concatenate(neurons).astype(np.int32) if neurons else np.zeros(0, np.int32)
        count = np.concatenate(counts).astype(np.uint8) if counts else np.zeros(0, np.uint8)
        if sum(r.size > 0 for r in rows) > 1:
            order = np.argsort(row * n_total + neuron, kind="stable")
            row, neuron, count = row[order], neuron[order], count[order]
        starts = np.zeros(Bx * n_steps + 1, np.int64)   # first entry of each row
        np.cumsum(np.bincount(row, minlength=Bx * n_steps), out=starts[1:])
        ptr = starts[np.arange(Bx)[:, None] * n_steps + np.arange(n_steps + 1)]
        return cls(neuron, count, ptr)

    def chunk(self, start: int, n: int) -> "ExternalSpikes":
        """Steps [start, start + n) of the run (the pointers are a view's copy)."""
        return ExternalSpikes(self.neuron, self.count,
                              np.ascontiguousarray(self.ptr[:, start:start + n + 1]))

    @property
    def n_steps(self) -> int:
        return self.ptr.shape[1] - 1

    def max_count(self) -> int:
        """The largest count of the run (so at least the chunk's largest); 0 if none."""
        return int(self.count.max()) if self.count.size else 0

    def cells(self, column: np.ndarray, width: int) -> Tuple[np.ndarray, np.ndarray]:
        """The chunk's spikes laid out densely: their flat indices into
        ``[n_steps, Bx, width]`` (at ``column[neuron]``) and counts."""
        Bx, n = self.ptr.shape[0], self.n_steps
        # an instance's spikes are entries ptr[b, 0]:ptr[b, n], step after step
        entry = np.concatenate([np.arange(lo, hi) for lo, hi in self.ptr[:, [0, n]]])
        b, step = np.divmod(np.repeat(np.arange(Bx * n), np.diff(self.ptr, axis=1).reshape(-1)), n)
        return (step * Bx + b) * width + column[self.neuron[entry]], self.count[entry]
