"""The backend interface and the array layout both backends share.

A backend holds the network's run-time state for B instances and advances it
a chunk of steps at a time. Everything host-side (laying out the spec as flat
arrays, sizing record buffers, reading and writing state and weights) lives
here once; a backend supplies array creation and its chunk kernel.

Layout (see docs/architecture.md):
- state  [N_STATE, B, N] float32, coef [N_COEF, N] float32 (per neuron)
- ring   [D, B, N_SLOTS * N] float64, D = max delay + 1: slot t % D holds what
  arrives at step t. Accumulating in float64 makes the sum of float32 weights
  independent of the order spikes are added in, so results are the same on
  every backend and thread count.
- CSR    indptr [N + 1] int64, target [nnz] int32 (slot), delay [nnz] int16,
  weight [Bw, nnz] float32 with Bw = 1 (shared) or B (per instance).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from spiking.build.spec import NetworkSpec
from spiking.inputs import ExternalSpikes
from spiking.models.base import N_SLOTS, N_STATE, get_model
from spiking.models.izhikevich import N_COEF as IZH_COEF
from spiking.models.kernel import pop_mode
from spiking.models.lif import N_COEF as LIF_COEF
from spiking.models.sources import ARRAY_ID, EVENT_ID, N_SOURCE_COEF, POISSON_ID
from spiking.plasticity.layout import M_INITIAL
from spiking.rng import index_keys, normal_keys, stream_key
from spiking.synapses import array_write

N_COEF = max(LIF_COEF, IZH_COEF)
RECORD_BUDGET = 1 << 22   # spike records per instance per chunk
MAX_CHUNK = 2000          # steps per chunk (progress-bar granularity)


def _row_constant(indptr: np.ndarray, values: np.ndarray, missing) -> np.ndarray:
    """Per CSR row: the value all its entries share, else (or for an empty row) ``missing``."""
    out = np.full(indptr.size - 1, missing, dtype=np.result_type(values, np.asarray(missing)))
    rows = np.nonzero(np.diff(indptr) > 0)[0]
    if rows.size:
        starts = indptr[rows]
        low = np.minimum.reduceat(values, starts)
        high = np.maximum.reduceat(values, starts)
        out[rows] = np.where(low == high, low, missing)
    return out


def row_delays(indptr: np.ndarray, delay: np.ndarray) -> np.ndarray:
    """Per presynaptic neuron: the delay (steps) all its synapses share, or -1
    when they differ or it has none (the kernels' fast path needs one delay per row)."""
    return _row_constant(indptr, delay.astype(np.int64), -1)


def padded_rows(ptr: np.ndarray, lo: int, hi: int, width: int) -> tuple:
    """Rows [lo, hi) of a CSR-like pointer array laid side by side in [hi - lo, width]
    tables (ELL): (valid mask, positions; padding points at 0)."""
    ptr = np.asarray(ptr, np.int64)
    valid = np.arange(width)[None, :] < np.diff(ptr)[lo:hi, None]
    return valid, np.where(valid, ptr[lo:hi, None] + np.arange(width), 0)


def row_weights(indptr: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per presynaptic neuron: the weight all its synapses share (float64), or NaN."""
    return _row_constant(indptr, weight.astype(np.float64), np.nan)


@dataclass
class ChunkRecord:
    """What one chunk recorded, on the host (numpy)."""

    spike_t: np.ndarray     # int32 [B, cap] step of each recorded spike
    spike_i: np.ndarray     # int32 [B, cap] global neuron
    spike_n: np.ndarray     # int64 [B] records used
    pop_counts: np.ndarray  # int32 [T, B, P] spikes per population and step
    state: np.ndarray       # float32 [T, B, M] monitored state (valid at sampled steps)
    error: np.ndarray       # int64 [B, 2] (step, population) of a NaN, else -1


def bytes_per_instance(spec: NetworkSpec, per_instance_weights: bool, eligibility: bool = False) -> int:
    """Device memory one more instance takes: ring buffer, state, counts, its
    weights (and eligibilities) when instances differ, and room for one step's
    spike propagation (events × 32 bytes, at most every synapse once)."""
    n, nnz = spec.n_total, spec.connectivity.nnz
    ring = spec.ring_length * spec.n_slots * 8
    state = (N_STATE * 4 + 8 + 4 + 4) * n
    weights = nnz * 4 if per_instance_weights else 0
    elig = nnz * 4 if eligibility else 0
    events = min(nnz, 64 * n) * 32
    return ring + state + weights + elig + events


class ArrayBackend:
    """Shared layout and host logic; subclasses provide arrays and ``_run_chunk``."""

    name = "base"

    def __init__(self, spec: NetworkSpec, instances: Optional[int] = None,
                 per_instance_weights: bool = False, device: Optional[str] = None):
        from spiking.plasticity.layout import build_layout

        self.spec = spec
        self.instances = int(instances or spec.instances)
        # each instance learns its own weights / has its own programmed devices
        self.per_instance_weights = per_instance_weights or spec.plastic or spec.on_hardware
        self.device = device
        self.layout = build_layout(spec)
        self.learns = self.layout.active
        self._layout(spec)
        self.reset(weights=True)

    # -- array creation (overridden by torch) --------------------------------------------
    def _array(self, x, dtype=None):
        raise NotImplementedError

    def _zeros(self, shape, dtype):
        raise NotImplementedError

    def to_numpy(self, x) -> np.ndarray:
        raise NotImplementedError

    def _run_chunk(self, t0: int, n_steps: int, ext, signals, count_bin: np.ndarray,
                   rec: ChunkRecord) -> None:
        raise NotImplementedError

    # -- layout ---------------------------------------------------------------------------
    def _layout(self, spec: NetworkSpec) -> None:
        n, B = spec.n_total, self.instances
        pops = spec.populations
        self.pop_model = np.array([p.model_id for p in pops], dtype=np.int64)
        self.pop_lo = np.array([p.offset for p in pops], dtype=np.int64)
        self.pop_hi = np.array([p.stop for p in pops], dtype=np.int64)
        self.ext_pops = [p for p in pops if p.model_id in (ARRAY_ID, EVENT_ID)]
        # each source neuron's column when their spikes are laid out densely (torch)
        self.ext_column = np.full(n, -1, dtype=np.int64)
        col = 0
        for p in self.ext_pops:
            self.ext_column[p.offset:p.stop] = np.arange(col, col + p.size)
            col += p.size
        self.n_ext = col
        coef = np.zeros((N_COEF, n), dtype=np.float32)
        src = np.zeros((N_SOURCE_COEF, n), dtype=np.float64)
        self.state0 = np.zeros((N_STATE, n), dtype=np.float32)
        for p in pops:
            if p.coef is not None:
                coef[: p.coef.shape[0], p.slice] = p.coef
                self.state0[:, p.slice] = p.state0
            if p.model_id == POISSON_ID:
                src[:, p.slice] = p.source_table
        self.coef = self._array(coef)
        self.src = self._array(src)
        # per-index random-stream keys (numba): population p owns [2 lo, 2 hi); Poisson
        # sources use one per neuron, noise currents two (rng.normal_keys)
        self.stream_keys = np.zeros(2 * n, np.uint64)
        self.set_stream_keys(np.array([p.stream_key for p in pops], dtype=np.uint64))
        c = spec.connectivity
        slot, neuron = np.divmod(c.target.astype(np.int64), n)
        self.pop_mode = np.array([
            pop_mode((coef if p.coef is not None else src)[:, p.slice], [bool(np.any((slot == k) & (neuron >= p.offset)
                                                     & (neuron < p.stop))) for k in range(N_SLOTS)])
            for p in pops], dtype=np.int64)
        self.indptr = self._array(c.indptr, np.int64)
        self.target = self._array(c.target, np.int32)
        self.delay = self._array(c.delay, np.int16)
        self.row_delay = self._array(row_delays(c.indptr, c.delay), np.int64)
        w = c.weight[None, :]
        if self.per_instance_weights:
            w = np.repeat(w, B, axis=0)
        self.arrays = []
        self.hw_table = np.zeros((max(len(spec.projections), 1), 3), np.float32)
        self.hw_write_table = np.zeros((max(len(spec.projections), 1), array_write.N_WRITE))
        self.hw_devices0 = None   # device state right after programming (plastic arrays)
        if spec.on_hardware:
            from hardware.integration import program, read_table, write_state
            self.arrays = program(spec, w, B)
            self.hw_table = read_table(spec, self.arrays)
            self.hw_write_table, self.hw_devices0 = write_state(spec, self.arrays, B)
        # read noise: keyed by step and by the noise epoch (engine.set_stream_epoch)
        self.hw_read_key = np.uint64(stream_key(spec.seed, "hardware", "read"))
        self.hw_key = self.hw_read_key
        self.syn_projection = self._array(c.projection, np.int16)
        self.initial_weight = w
        self.depth = spec.ring_length
        # monitors
        flag = np.zeros(n, dtype=np.uint8)
        neurons, rows, every = [], [], []
        for m in spec.monitors:
            if m.type == "spikes":
                flag[m.neurons] = 1
            elif m.type == "state":
                for row in m.rows:
                    neurons.append(m.neurons)
                    rows.append(np.full(m.neurons.size, row))
                    every.append(np.full(m.neurons.size, m.every))
        self.n_recorded = int(flag.sum())
        self.record_flag = self._array(flag)
        cat = (lambda xs: np.concatenate(xs).astype(np.int64) if xs else np.zeros(0, np.int64))
        self.mon_neuron, self.mon_row, self.mon_every = (self._array(cat(x)) for x in (neurons, rows, every))
        self.n_state_monitors = int(sum(x.size for x in neurons))
        self.scratch_idx = self._zeros((B, max(n, 1)), np.int32)
        self.scratch_cnt = self._zeros((B, max(n, 1)), np.int32)

    def set_stream_keys(self, keys: np.ndarray) -> None:
        """Key each population's run-time random stream (uint64 [populations]);
        the engine re-keys them for every noise epoch."""
        self.pop_key = np.asarray(keys, np.uint64)
        for p, key in zip(self.spec.populations, self.pop_key):
            if p.model_id == POISSON_ID:
                per_index = index_keys(key, p.size)
            elif p.kind == "neuron":
                per_index = normal_keys(key, p.size)
            else:
                continue
            self.stream_keys[2 * p.offset: 2 * p.offset + per_index.size] = per_index.view(np.uint64)

    def reset(self, weights: bool = False) -> None:
        """Initial state, empty ring buffer, step 0, spike counts zeroed; learning
        traces, eligibilities and modulators back to their start. With
        ``weights``, the weights too (learned weights are kept otherwise)."""
        from spiking.plasticity import modulators
        from spiking.plasticity.stdp import trace_decay_table

        self._settle_pending(discard=weights)
        B = self.instances
        self.state = self._array(np.repeat(self.state0[:, None, :], B, axis=1))
        self.ring = self._cleared(getattr(self, "ring", None), (self.depth, B, 3 * self.spec.n_total),
                                  np.float64)
        self.spike_counts = self._zeros((B, self.spec.n_total), np.int64)
        self.t = 0
        if weights:
            if self.learns and getattr(self, "_weight", None) is not None:
                self._restore_initial_weights()
            else:
                self.weight = self._array(self.initial_weight.copy(), np.float32)
            self._reset_devices()
        self.hw_writes_at_reset = np.array(self.to_numpy(self.hw_write["writes"]))
        L = self.layout
        K, M = max(L.n_rules, 1), max(len(L.mod_names), 1)
        mod_state, mod_aux = modulators.initial_state(L, B)
        old = getattr(self, "learning", {})
        self.learning = {
            "traces": self._cleared(old.get("traces"), (B, max(L.n_traces, 1)), np.float32),
            "trace_decay": self._array(trace_decay_table(L)),
            "elig": self._zeros((B, self.spec.connectivity.nnz) if L.needs_eligibility else (1, 1), np.float32),
            "lr": self._array(np.ones((B, K), np.float32)),
            "clips": self._zeros((B, K), np.int64),
            "amp": self._zeros((B, K, 2), np.float32),
            "mod_state": self._array(mod_state),
            "mod_aux": self._array(mod_aux),
            "astro_drive": self._zeros((B, M), np.int64),
            # deferred STDP (numba): per post neuron, the sum P of stdp.py's "Deferred", and
            # per instance the steps since it was last settled (0: nothing pending)
            "defer_sum": self._cleared(old.get("defer_sum"), (B, max(L.n_psum, 1))
                                       if L.deferred_span else (1, 1), np.float64),
            "defer_age": self._zeros((B,), np.int64),
        }
        self.signal_held = np.zeros((1, max(L.n_signal_cols, 1)), np.float32)
        for name, (col, size) in L.signal_cols.items():
            self.signal_held[:, col:col + size] = L.mod_f[L.mod_names.index(name), M_INITIAL]

    def _cleared(self, current, shape, dtype, zero: bool = True):
        """``current`` (zeroed in place unless not ``zero``) when it has ``shape``, else a
        new zero array (big buffers are reused across resets: new ones cost page faults
        every time)."""
        if current is not None and tuple(current.shape) == tuple(shape):
            if zero:
                current[...] = 0
            return current
        return self._zeros(shape, dtype)

    # -- chunks ---------------------------------------------------------------------------
    def chunk_steps(self, steps_left: int) -> int:
        """Steps per chunk so that record buffers stay within budget."""
        per_step = max(self.n_recorded, 1)
        return int(max(1, min(steps_left, MAX_CHUNK, RECORD_BUDGET // per_step)))

    def new_record(self, n_steps: int) -> ChunkRecord:
        B = self.instances
        cap = max(1, self.n_recorded * n_steps)
        return ChunkRecord(
            spike_t=self._zeros((B, cap), np.int32), spike_i=self._zeros((B, cap), np.int32),
            spike_n=self._zeros((B,), np.int64),
            pop_counts=self._zeros((n_steps, B, len(self.spec.populations)), np.int32),
            state=self._zeros((n_steps, B, max(self.n_state_monitors, 0)), np.float32),
            error=self._array(np.full((B, 2), -1, dtype=np.int64)),
        )

    def begin_counts(self, bins: int) -> None:
        """Start counting spikes per neuron for a run, in ``bins`` time bins:
        ``run_counts`` int64 [B, bins, N], zeroed."""
        self.run_counts = self._cleared(getattr(self, "run_counts", None),
                                        (self.instances, bins, self.spec.n_total), np.int64)

    def end_counts(self) -> Tuple[np.ndarray, np.ndarray]:
        """The run's counts per bin (int64 [B, bins, N]) and over the run ([B, N]), on
        the host; the latter is added to the counts since the last reset."""
        total = self.run_counts.sum(1)
        self.spike_counts += total
        return np.array(self.to_numpy(self.run_counts)), np.asarray(self.to_numpy(total))

    def advance(self, n_steps: int, ext: ExternalSpikes, signals: np.ndarray,
                count_bin: np.ndarray) -> ChunkRecord:
        """Run ``n_steps`` from the current step with the spikes of event and array
        sources ``ext`` (the chunk's) and modulator signals (float32
        [n_steps, Bs, n_signal_cols]); each step's spikes go to its bin of
        ``run_counts`` (``count_bin``, int [n_steps]). Returns the chunk's
        record on the host."""
        rec = self.new_record(n_steps)
        self._run_chunk(self.t, n_steps, ext, self._array(signals),
                        np.ascontiguousarray(count_bin, np.int64), rec)
        self.t += n_steps
        return ChunkRecord(*(self.to_numpy(x) for x in (
            rec.spike_t, rec.spike_i, rec.spike_n, rec.pop_counts, rec.state, rec.error)))

    # -- state and weights ----------------------------------------------------------------
    @property
    def weight(self):
        """float32 [Bw, nnz] weights in CSR order, with the learning a backend holds
        back (see :meth:`_settle_pending`) applied first."""
        self._settle_pending()
        return self._weight

    @weight.setter
    def weight(self, values) -> None:
        self._weight = values

    def _restore_initial_weights(self) -> None:
        """Learned weights back to the initial ones, in place: a fresh copy per reset
        costs its page faults (weights are copied wherever they are handed out, and no
        row-weight cache serves learning)."""
        self._weight[...] = self._array(self.initial_weight)

    def _settle_pending(self, discard: bool = False) -> None:
        """Apply (or, with ``discard``, drop) weight changes that runs leave pending:
        none here; the numba backend's deferred STDP settles lazily."""

    def get_state(self, population: str, variable: str) -> np.ndarray:
        """[B, n] float32 copy of a state variable."""
        pop = self.spec.population(population)
        row = get_model(pop.model).state_rows[variable]
        return np.array(self.to_numpy(self.state[row, :, pop.slice]))

    def set_state(self, population: str, variable: str, values) -> None:
        pop = self.spec.population(population)
        row = get_model(pop.model).state_rows[variable]
        values = np.broadcast_to(np.asarray(values, dtype=np.float32), (self.instances, pop.size))
        self.state[row, :, pop.slice] = self._array(np.ascontiguousarray(values))

    def synapse_index(self, projection: str) -> np.ndarray:
        """Positions in the CSR of a projection's synapses (int64)."""
        proj = self.spec.projection(projection)
        return np.flatnonzero(self.spec.connectivity.projection == proj.index)

    def get_weights(self, projection: str) -> np.ndarray:
        """[Bw, n_synapses] float32 weights of one projection, in CSR order."""
        idx = self.synapse_index(projection)
        return np.array(self.to_numpy(self.weight))[:, idx]

    def set_weights(self, projection: str, values) -> None:
        """Set a projection's weights; on a plastic hardware projection they are written
        into its devices as learning writes them (noise, levels, counts, endurance)."""
        idx = self.synapse_index(projection)
        w = np.array(self.to_numpy(self.weight))
        w[:, idx] = np.broadcast_to(np.asarray(values, dtype=np.float32), (w.shape[0], idx.size))
        if self.hw_write_table[self.spec.projection(projection).index, array_write.ON]:
            return self._write_devices(idx, w[:, idx])
        self.weight = self._array(w)

    # -- learning -------------------------------------------------------------------------
    def modulate(self, name: str, amount) -> None:
        """Add ``amount`` (scalar or [B]) to a reward modulator (e.g. dopamine)."""
        from spiking.plasticity.layout import M_COL, M_KIND, REWARD

        L = self.layout
        if name not in L.mod_names:
            raise KeyError(f"no modulator {name!r}; modulators: {', '.join(L.mod_names) or 'none'}")
        m = L.mod_names.index(name)
        if L.mod_i[m, M_KIND] != REWARD:
            raise ValueError(f"modulator {name!r} is not a reward; set signals with set_signal")
        col = int(L.mod_i[m, M_COL])
        state = np.array(self.to_numpy(self.learning["mod_state"]))
        state[:, col] += np.broadcast_to(np.asarray(amount, np.float32), (self.instances,))
        self.learning["mod_state"] = self._array(state)

    def modulator(self, name: str) -> np.ndarray:
        """Current value of a modulator, [B] or [B, n]."""
        from spiking.plasticity.layout import M_COL, M_SIZE

        L = self.layout
        m = L.mod_names.index(name)
        col, size = int(L.mod_i[m, M_COL]), int(L.mod_i[m, M_SIZE])
        values = np.array(self.to_numpy(self.learning["mod_state"]))[:, col:col + size]
        return values[:, 0] if size == 1 else values

    # -- hardware -------------------------------------------------------------------------
    def _reset_devices(self) -> None:
        """Devices of plastic hardware projections back to their first programming
        (see spiking.synapses.array_write)."""
        plastic = bool(self.hw_write_table[:, array_write.ON].any())
        state = self.hw_devices0 if plastic else {
            "g": np.zeros((1, 1, 2)), "level": np.zeros((1, 1, 2)),
            "writes": np.zeros((1, 1, 2), np.int32), "frozen": np.zeros((1, 1, 2), np.uint8)}
        self.hw_write = {"learn": plastic, "proj": self.syn_projection,
                         "table": self._array(self.hw_write_table),
                         "key": np.uint64(stream_key(self.spec.seed, "hardware", "write"))}
        self.hw_write.update({name: self._array(values.copy()) for name, values in state.items()})

    def _write_devices(self, synapses: np.ndarray, values: np.ndarray) -> None:
        """Write weights [B, n] into the devices of ``synapses`` (array_write.write_torch on
        the backend's arrays; numpy arrays are shared with torch, not copied)."""
        import torch

        def tensor(x):
            return torch.from_numpy(x) if isinstance(x, np.ndarray) else x

        hw = {name: tensor(v) for name, v in self.hw_write.items()}
        device = hw["g"].device
        b = torch.arange(self.instances, device=device).repeat_interleave(len(synapses))
        syn = torch.as_tensor(synapses, device=device).repeat(self.instances)
        array_write.write_torch(tensor(self.weight), hw, b, b, syn,
                                torch.as_tensor(values.reshape(-1), device=device))

    def hardware_writes(self) -> tuple:
        """The numba kernel's re-programming arguments, in array_write.FIELDS order."""
        return tuple(self.hw_write[name] for name in array_write.FIELDS)

    def device_writes(self, projection: str) -> np.ndarray:
        """int32 [B, n_synapses, 2] writes of each device (G⁺, G⁻) of a plastic hardware
        projection since manufacture (the first programming counts one)."""
        if not self.hw_write["learn"]:
            raise ValueError("no plastic projection on hardware arrays")
        writes = np.array(self.to_numpy(self.hw_write["writes"]))
        return writes[:, self.synapse_index(projection)]

    def hardware_report(self) -> dict:
        """Row reads, synaptic events, device writes, energy and latency per hardware
        projection since the last reset (see hardware.integration.energy_report)."""
        if not self.arrays:
            return {}
        from hardware.integration import energy_report, plastic_arrays
        writes = {}
        if self.hw_write["learn"]:
            now = np.array(self.to_numpy(self.hw_write["writes"]))
            for a in plastic_arrays(self.spec, self.arrays):
                writes[a.name] = ((now - self.hw_writes_at_reset)[:, a.synapses],
                                  now[:, a.synapses])
        return energy_report(self.spec, self.arrays, self.get_spike_counts(), writes)

    def clip_counts(self) -> dict:
        """Weight clips per plastic projection since the last reset (all instances)."""
        self._settle_pending()
        clips = np.array(self.to_numpy(self.learning["clips"])).sum(axis=0)
        plastic = [p.name for p in self.spec.projections if p.plasticity is not None]
        return {name: int(clips[k]) for k, name in enumerate(plastic)}

    def get_spike_counts(self) -> np.ndarray:
        """[B, N] spikes per neuron since the last reset (up to the last ended run)."""
        return np.array(self.to_numpy(self.spike_counts))
