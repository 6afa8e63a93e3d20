"""The time loop: chunks of steps on a backend, external input in, records out.

This is the only time loop in the project; models on top (LSM, reservoir,
hardware sweeps) drive it through :class:`Simulator`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

import numpy as np

from spiking.backends.base import ArrayBackend, ChunkRecord
from spiking.build.spec import NetworkSpec
from spiking.errors import SimulationError
from spiking.inputs import ExternalSpikes, SpikeCounts
from spiking.models.sources import ARRAY_ID, EVENT_ID
from spiking.plasticity.weight_monitor import WeightSampler
from spiking.rng import GOLDEN, mix64_host

PROGRESS_AFTER_S = 2.0  # show a progress bar on runs expected to take longer


def make_backend(spec: NetworkSpec, backend: Optional[str] = None, instances: Optional[int] = None,
                 device: Optional[str] = None, per_instance_weights: bool = False,
                 propagation: str = "auto") -> ArrayBackend:
    """``propagation`` (torch only): auto, sparse or dense (see torch_backend.DensePath)."""
    name = backend or spec.backend
    if name == "numba":
        from spiking.backends.numba_backend import NumbaBackend
        return NumbaBackend(spec, instances, per_instance_weights)
    if name == "torch":
        from spiking.backends.torch_backend import TorchBackend
        return TorchBackend(spec, instances, per_instance_weights, device or spec.device, propagation)
    raise SimulationError(f"unknown backend {name!r}; backends: numba, torch")


def count_bin_edges(n_steps: int, bins: int) -> np.ndarray:
    """Steps at which the time bins of ``run(count_bins=bins)`` start, and the run's
    end: round(n_steps * k / bins), k = 0..bins (int64 [bins + 1])."""
    return np.linspace(0, n_steps, bins + 1).round().astype(np.int64)


def _in_order(major: np.ndarray, middle: np.ndarray, minor: np.ndarray) -> bool:
    """Whether the rows (major, middle, minor) are in lexical order already (a run of
    one chunk on the numba backend records them so): an O(n) check instead of a sort."""
    if major.size < 2:
        return True
    a, b, c = (np.diff(k.astype(np.int64)) for k in (major, middle, minor))
    return bool(np.all((a > 0) | ((a == 0) & ((b > 0) | ((b == 0) & (c >= 0))))))


@dataclass
class RunResult:
    """What a run recorded. Times in ms, rates in Hz."""

    spec: NetworkSpec
    instances: int
    t_start: int                      # first step of the run
    n_steps: int
    spikes: Dict[str, Dict[str, np.ndarray]]   # pop -> {"instance", "t", "i"}
    pop_counts: np.ndarray            # int32 [T, B, P]
    states: Dict[str, Dict[str, np.ndarray]]   # pop -> {"t": [S], var: [S, B, n]}
    spike_counts: np.ndarray          # int64 [B, N] per neuron over this run
    binned_counts: Optional[np.ndarray] = None   # int64 [B, bins, N] (run(count_bins=...))
    timing: Dict[str, float] = field(default_factory=dict)
    weights: Dict[str, Dict[str, np.ndarray]] = field(default_factory=dict)  # weight monitors

    @property
    def duration_ms(self) -> float:
        return self.n_steps * self.spec.dt

    def counts(self, population: str, binned: bool = False) -> np.ndarray:
        """[B, n] spikes per neuron of one population during this run; with
        ``binned``, [B, bins, n] per time bin of ``run(count_bins=bins)``
        (:func:`count_bin_edges`)."""
        where = self.spec.population(population).slice
        if binned:
            counts = self.spike_counts[:, None] if self.binned_counts is None else self.binned_counts
            return counts[:, :, where]
        return self.spike_counts[:, where]

    def rate(self, population: str, bin_ms: Optional[float] = None) -> np.ndarray:
        """Population rate per neuron [B, n_bins] in Hz."""
        p = self.spec.populations.index(self.spec.population(population))
        steps = max(1, int(round((bin_ms or self.spec.dt) / self.spec.dt)))
        counts = self.pop_counts[:, :, p]
        n_bins = counts.shape[0] // steps
        binned = counts[: n_bins * steps].reshape(n_bins, steps, -1).sum(1).T
        size = self.spec.population(population).size
        return binned / (size * steps * self.spec.dt / 1000.0)

    def population_summary(self) -> Dict[str, dict]:
        """Per population: size, spikes (all instances) and mean rate (Hz)."""
        out = {}
        seconds = self.duration_ms / 1000.0
        for k, p in enumerate(self.spec.populations):
            total = int(self.pop_counts[:, :, k].sum())
            out[p.name] = {"size": p.size, "spikes": total,
                           "rate_hz": total / (p.size * self.instances * seconds) if seconds > 0 else 0.0}
        return out


def epoch_key(key: np.uint64, epoch: int) -> np.uint64:
    """The stream key of a population in noise epoch ``epoch``: the key itself
    in epoch 0 (so a first run is what it always was), else a SplitMix64 hash
    of (key, epoch), computed on the host once per reset."""
    if epoch == 0:
        return np.uint64(key)
    with np.errstate(over="ignore"):
        return np.uint64(mix64_host(np.uint64(key) + GOLDEN * np.uint64(epoch)))


def set_stream_epoch(backend: ArrayBackend, epoch: int) -> None:
    """Re-key the run-time streams of every population, and the arrays' read noise,
    for ``epoch``."""
    backend.set_stream_keys(np.array([epoch_key(p.stream_key, epoch)
                                      for p in backend.spec.populations], np.uint64))
    backend.hw_key = epoch_key(backend.hw_read_key, epoch)


class Simulator:
    """A built network on one backend. ``run`` may be called repeatedly; time goes on."""

    def __init__(self, spec: NetworkSpec, backend: Optional[str] = None,
                 instances: Optional[int] = None, device: Optional[str] = None,
                 per_instance_weights: bool = False, propagation: str = "auto"):
        self.spec = spec
        self.backend = make_backend(spec, backend, instances, device, per_instance_weights,
                                    propagation)
        self.instances = self.backend.instances
        self.epoch = 0
        self._own_inputs: Dict[str, Optional[SpikeCounts]] = {}   # see _own_spikes

    def reset(self, weights: bool = False, epoch: Optional[int] = None) -> None:
        """Initial state, step 0 (see ``ArrayBackend.reset``), and a new noise
        epoch: the counter-based streams (noise currents, Poisson sources) are
        keyed by the step since the reset *and* by the epoch, so the trials
        after successive resets draw fresh noise. ``epoch`` None: the next one
        (the simulator starts in epoch 0, reset k gives epoch k); an int: that
        epoch (``epoch=0`` replays the first run's noise). The same seed and
        the same calls give the same numbers, on numba and torch."""
        if epoch is not None and int(epoch) < 0:
            raise SimulationError(f"epoch must be >= 0, got {epoch}")
        self.backend.reset(weights=weights)
        self.epoch = self.epoch + 1 if epoch is None else int(epoch)
        set_stream_epoch(self.backend, self.epoch)

    def run(self, n_steps: Optional[int] = None, inputs: Optional[Mapping[str, np.ndarray]] = None,
            progress: Optional[bool] = None,
            signals: Optional[Mapping[str, np.ndarray]] = None,
            count_bins: int = 1) -> RunResult:
        """Advance ``n_steps`` (default: the spec's duration).

        inputs: event_source name -> counts [T, n] or [T, B, n] (uint8 or
        integers 0..255), or the same as :class:`spiking.inputs.SpikeCounts`
        (only its nonzero cells: the cheaper form for event data); signals:
        signal/error modulator name -> values [T], [T, B] or [T, B, n]. Both
        are indexed from the start of this call: row 0 is the first step this
        run simulates, whatever ran before it (since the last reset or not).
        Rows past ``n_steps`` are not used; an input shorter than the run is
        silent afterwards, a signal keeps its last value. (Event data given in
        the file and spike arrays are timed from the last reset.)
        Shows a tqdm bar when ``progress`` is True, or (None) when the run is
        expected to take longer than a few seconds. ``count_bins`` > 1 also counts
        each neuron's spikes in that many time bins of the run
        (``RunResult.counts(pop, binned=True)``; edges: :func:`count_bin_edges`),
        in the same pass, rather than one run per bin.
        """
        n_steps = self.spec.n_steps if n_steps is None else int(n_steps)
        if isinstance(count_bins, bool) or not isinstance(count_bins, (int, np.integer)) \
                or count_bins < 1:
            raise SimulationError(f"count_bins must be a positive integer, got {count_bins!r}")
        bin_of_step = np.repeat(np.arange(count_bins),
                                np.diff(count_bin_edges(n_steps, int(count_bins))))
        external = self._external(self._check_inputs(inputs or {}), n_steps)
        signals = self._check_signals(signals or {}, n_steps)
        backend = self.backend
        t_start = backend.t
        backend.begin_counts(int(count_bins))
        records: List[ChunkRecord] = []
        bar = None
        began = time.perf_counter()
        done = 0
        weight_monitors = [m for m in self.spec.monitors if m.type == "weights"]
        sampler = (WeightSampler(backend, weight_monitors, t_start, n_steps)
                   if weight_monitors else None)
        while done < n_steps:
            chunk = backend.chunk_steps(n_steps - done)
            if sampler is not None:
                chunk = sampler.limit(chunk)
            rec = backend.advance(chunk, external.chunk(done, chunk),
                                  self._signals(backend.t - t_start, chunk, signals),
                                  bin_of_step[done:done + chunk])
            self._check_error(rec, backend.t - chunk)
            records.append(rec)
            done += chunk
            if sampler is not None:
                sampler.sample()
            elapsed = time.perf_counter() - began
            if bar is None and progress is not False and done < n_steps and (
                    progress or elapsed * n_steps / done > PROGRESS_AFTER_S):
                from tqdm import tqdm
                bar = tqdm(total=n_steps, initial=done, unit="step", desc=self.spec.name,
                           leave=False, dynamic_ncols=True)
            elif bar is not None:
                bar.update(chunk)
        if bar is not None:
            bar.close()
        run_s = time.perf_counter() - began
        binned, counts = backend.end_counts()
        result = self._collect(records, t_start, n_steps, counts)
        if count_bins > 1:
            result.binned_counts = binned
        result.timing["run_s"] = run_s
        if sampler is not None:
            result.weights = sampler.result()
        return result

    # -- inputs ---------------------------------------------------------------------------
    def _check_inputs(self, inputs: Mapping[str, object]) -> Dict[str, SpikeCounts]:
        out = {}
        for name, arr in inputs.items():
            pop = self.spec.population(name)
            if pop.model_id != EVENT_ID:
                raise SimulationError(f"input {name!r}: population is a {pop.model}, "
                                      f"only event_source populations take inputs")
            shape = arr.shape if isinstance(arr, SpikeCounts) else np.shape(arr)
            if len(shape) == 2:
                shape = (shape[0], 1, shape[1])
            if len(shape) != 3 or shape[2] != pop.size or shape[1] not in (1, self.instances):
                raise SimulationError(f"input {name!r}: expected [T, {pop.size}] or "
                                      f"[T, {self.instances}, {pop.size}], got {tuple(shape)}")
            try:
                out[name] = arr if isinstance(arr, SpikeCounts) else SpikeCounts.from_dense(arr)
            except SimulationError as error:
                raise SimulationError(f"input {name!r}: {error}") from None
        return out

    def set_signal(self, name: str, value) -> None:
        """Hold a signal (or error target) at ``value`` (scalar, [B] or [B, n])."""
        col, size = self._signal_column(name)
        held = np.broadcast_to(np.asarray(value, np.float32), (self.instances, size)
                               if np.ndim(value) else (1, size))
        backend = self.backend
        if held.shape[0] != backend.signal_held.shape[0]:
            backend.signal_held = np.repeat(backend.signal_held[:1], held.shape[0], axis=0)
        backend.signal_held[:, col:col + size] = held

    def _signal_column(self, name: str):
        cols = self.backend.layout.signal_cols
        if name not in cols:
            raise SimulationError(f"no signal or error modulator {name!r}; signals: "
                                  f"{', '.join(cols) or 'none'}")
        return cols[name]

    def _check_signals(self, signals, n_steps: int) -> Dict[str, np.ndarray]:
        out = {}
        for name, values in signals.items():
            col, size = self._signal_column(name)
            arr = np.asarray(values, dtype=np.float32)
            if arr.ndim == 1:
                arr = arr[:, None, None]
            elif arr.ndim == 2:
                arr = arr[:, :, None]
            if arr.ndim != 3 or arr.shape[1] not in (1, self.instances) or arr.shape[2] not in (1, size):
                raise SimulationError(f"signal {name!r}: expected [T], [T, B] or [T, B, {size}] "
                                      f"values, got {np.shape(values)}")
            out[name] = np.broadcast_to(arr, (arr.shape[0], arr.shape[1], size))
        return out

    def _signals(self, t0: int, n: int, signals: Dict[str, np.ndarray]) -> np.ndarray:
        """float32 [n, Bs, n_signal_cols] for steps [t0, t0 + n) of this run; a
        signal keeps its last value after its array ends."""
        backend = self.backend
        per_instance = backend.signal_held.shape[0] > 1 or any(a.shape[1] > 1 for a in signals.values())
        width = backend.signal_held.shape[1]
        out = np.empty((n, self.instances if per_instance else 1, width), np.float32)
        out[:] = backend.signal_held[None]
        for name, arr in signals.items():
            col, size = backend.layout.signal_cols[name]
            part = arr[t0: t0 + n]
            out[: part.shape[0], :, col:col + size] = part
            if 0 < part.shape[0] < n:        # the array ends in this chunk: hold its last row
                out[part.shape[0]:, :, col:col + size] = part[-1]
        if signals:
            backend.signal_held = out[-1].copy()
        return out

    def _external(self, inputs: Dict[str, SpikeCounts], n_steps: int) -> ExternalSpikes:
        """The spikes of array/event sources over this run's ``n_steps`` steps:
        ``inputs`` count from the run's first step, the file's events and spike
        arrays from the last reset."""
        t0 = self.backend.t
        parts = []
        for p in self.backend.ext_pops:
            data, first = inputs.get(p.name), 0
            if data is None:
                data, first = self._own_spikes(p), t0
            if data is None:
                continue
            if data.n_instances == 1:   # one input for all: cells in step order, a slice of them
                lo, hi = np.searchsorted(data.cell, np.array([first, first + n_steps]) * data.size)
                row, neuron = np.divmod(data.cell[lo:hi], data.size)
                row -= first
                count = data.count[lo:hi]
            else:                                                # this run's steps of it
                instance, step, neuron = data.coordinates()
                step -= first
                now = (step >= 0) & (step < n_steps)
                row, neuron, count = (instance * n_steps + step)[now], neuron[now], data.count[now]
            parts.append((data.n_instances == 1, row, neuron + p.offset, count))
        return ExternalSpikes.combine(parts, n_steps, self.instances, self.spec.n_total)

    def _own_spikes(self, p) -> Optional[SpikeCounts]:
        """The spikes a source population carries itself, timed from the reset: a spike
        array's, or an event file's (converted once); None for neither."""
        if p.name not in self._own_inputs:
            if p.model_id == ARRAY_ID:
                steps = p.spike_steps
                self._own_inputs[p.name] = SpikeCounts.from_spikes(
                    steps, p.spike_index, int(steps.max()) + 1 if steps.size else 0, p.size)
            else:
                self._own_inputs[p.name] = (None if p.events is None
                                            else SpikeCounts.from_dense(p.events))
        return self._own_inputs[p.name]

    # -- records --------------------------------------------------------------------------
    def _check_error(self, rec: ChunkRecord, t0: int) -> None:
        bad = np.flatnonzero(rec.error[:, 0] >= 0)
        if bad.size:
            b = int(bad[0])
            step, p = int(rec.error[b, 0]), int(rec.error[b, 1])
            raise SimulationError(
                f"NaN or Inf in population {self.spec.populations[p].name!r} at step {step} "
                f"(t = {step * self.spec.dt:g} ms), instance {b}; check parameters, weights and dt")

    def _collect(self, records: List[ChunkRecord], t_start: int, n_steps: int,
                 spike_counts: np.ndarray) -> RunResult:
        spec = self.spec
        B = self.instances
        steps_all, neurons_all, inst_all = [], [], []
        for rec in records:
            for b in range(B):
                k = int(rec.spike_n[b])
                steps_all.append(rec.spike_t[b, :k])
                neurons_all.append(rec.spike_i[b, :k])
                inst_all.append(np.full(k, b, np.int32))
        steps = np.concatenate(steps_all) if steps_all else np.zeros(0, np.int32)
        neurons = np.concatenate(neurons_all) if neurons_all else np.zeros(0, np.int32)
        inst = np.concatenate(inst_all) if inst_all else np.zeros(0, np.int32)
        if not _in_order(inst, steps, neurons):
            order = np.lexsort((neurons, steps, inst))
            steps, neurons, inst = steps[order], neurons[order], inst[order]
        spikes = {}
        for m in spec.monitors:
            if m.type != "spikes":
                continue
            pop = spec.population(m.population)
            monitored = np.zeros(spec.n_total, bool)
            monitored[m.neurons] = True
            keep = monitored[neurons]
            spikes[m.population] = {"instance": inst[keep], "t": steps[keep] * spec.dt,
                                    "i": (neurons[keep] - pop.offset).astype(np.int32)}
        pop_counts = (np.concatenate([r.pop_counts for r in records]) if records
                      else np.zeros((0, B, len(spec.populations)), np.int32))
        states = self._collect_states(records, t_start)
        return RunResult(spec, B, t_start, n_steps, spikes, pop_counts, states, spike_counts)

    def _collect_states(self, records: List[ChunkRecord], t_start: int):
        spec = self.spec
        if not records or records[0].state.shape[2] == 0:
            return {}
        state = np.concatenate([r.state for r in records])  # [T, B, M]
        steps = np.arange(t_start, t_start + state.shape[0])
        out: Dict[str, Dict[str, np.ndarray]] = {}
        col = 0
        for m in spec.monitors:
            if m.type != "state":
                continue
            take = steps % m.every == 0
            entry = out.setdefault(m.population, {})
            entry["t"] = steps[take] * spec.dt
            entry["neurons"] = m.neurons - spec.population(m.population).offset
            for var in m.variables:
                entry[var] = state[take][:, :, col: col + m.neurons.size]
                col += m.neurons.size
        return out
