"""Batched torch backend: B network instances in lockstep, on CUDA or the CPU.

Each step runs the same float32 operations as the numba kernel, so a
deterministic network gives identical spikes on both (on the CPU). Spike
propagation gathers the padded synapse rows (:class:`EventTables`) of all
spiking (instance, neuron) pairs and scatters weight × count into the flattened
float64 ring buffer, so its cost follows spikes × fan-out; dense products
(:class:`DensePath`) replace it where they are cheaper (and, on the CPU, exact).
Neuron steps may be fused by ``torch.compile`` (:class:`CompiledStep`,
:func:`compile_wanted`).
"""
from __future__ import annotations

import os
import warnings
from typing import Optional

import numpy as np
import torch

from spiking.backends.base import ArrayBackend, ChunkRecord, bytes_per_instance, padded_rows
from spiking.errors import SimulationError
from spiking.models import get_model
from spiking.models.sources import EXP_MINUS_LAM, LAM, POISSON_ID, START_STEP, STOP_STEP
from spiking.rng import index_keys, normal_keys, torch_normals, torch_poisson, torch_uniform
from spiking.synapses.array_read import read_torch

_DTYPES = {np.float32: torch.float32, np.float64: torch.float64, np.int64: torch.int64,
           np.int32: torch.int32, np.int16: torch.int16, np.uint8: torch.uint8}


def resolve_device(device: Optional[str]) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is an error."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SimulationError(f"device {device!r} asked for, but CUDA is not available here; "
                              f"use device: auto or cpu (the torch backend runs on the CPU too)")
    return dev


def free_bytes(device: torch.device) -> int:
    """Memory free for tensors on ``device`` (CUDA: the driver's figure; CPU: MemAvailable)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    from spiking.build.builder import available_memory
    return available_memory()


def plan_instances(spec, device=None, requested=None, per_instance_weights=False,
                   headroom: float = 0.8) -> int:
    """How many instances fit on ``device`` (a requested number is checked, not
    changed): a batch that cannot fit is refused before anything is allocated."""
    dev = resolve_device(device)
    per = bytes_per_instance(spec, per_instance_weights or spec.plastic or spec.on_hardware)
    shared = spec.connectivity.nnz * 16 + spec.n_total * 64
    budget = free_bytes(dev) * headroom - shared
    fits = int(budget // per) if budget > 0 else 0
    if requested is None:
        if fits < 1:
            raise SimulationError(f"not even one instance fits on {dev}: {per / 2**20:.0f} MiB each, "
                                  f"{max(budget, 0) / 2**20:.0f} MiB free after the shared synapses")
        return fits
    if requested > fits:
        raise SimulationError(f"{requested} instances need {requested * per / 2**30:.2f} GiB on {dev} "
                              f"but {max(budget, 0) / 2**30:.2f} GiB is free; at most {max(fits, 0)} fit "
                              f"(lower the batch size, or leave it to the planner)")
    return int(requested)


DENSE_MAX_BYTES = 2 << 30   # dense propagation matrices, all delays together
DENSE_MIN_DENSITY = 0.01    # CUDA: below this share of nonzero entries, stay sparse
# CPU cost model of one step (measured on NALSM1000, one thread): a dense product
# costs ~0.03 ns per multiply-add and an event-table synapse ~8 ns; neurons are
# assumed to fire at ASSUMED_HZ to compare the two
CPU_NS_PER_MAC, CPU_NS_PER_EVENT, ASSUMED_HZ = 0.03, 8.0, 20.0
TABLE_MAX_WASTE = 4         # event tables: padded entries at most this many times the synapses
TABLE_MERGE = 1.5           # consecutive populations share a table when their widths are this close
SOURCE_MAX_COUNT = 255      # spikes a source may emit in one step (uint8 input rows)


def exact_sums(weights: np.ndarray, fan_in: int, max_count: int) -> tuple:
    """Whether sums of up to ``fan_in`` of ``weights`` × counts (≤ ``max_count``) are
    exact in float32 whatever their order, and whether each weight also fits
    bfloat16's 8 significant bits: (float32, bfloat16). Exact when every weight is
    an integer multiple of 2**q and the largest possible sum stays below 2**(24 + q)."""
    w = np.abs(np.asarray(weights, np.float32)).astype(np.float64)
    w = w[w > 0]
    if w.size == 0:
        return True, True
    mant, exp = np.frexp(w)
    m = np.ldexp(mant, 24).astype(np.int64)                   # 24-bit integer mantissas
    low = int(np.min(exp - 24 + np.log2(m & -m).astype(np.int64)))   # every weight is k 2**low
    exact = fan_in * max_count * w.max() < 2.0 ** (24 + low)
    return bool(exact), bool(exact and int(exp.max()) - low <= 8 and max_count <= 256)


class DensePath:
    """Propagation as matrix products, one per delay value: for the neurons with
    outgoing synapses of delay d (rows) and the input slots they reach (cols),
    ``ring[t + d][:, cols] += counts[:, rows] @ W_d``. Needs weights shared by all
    instances. ``propagation: auto`` picks it on CUDA when the matrices are dense
    enough (≥ DENSE_MIN_DENSITY), on the CPU when the cost model says it is cheaper
    than the event tables and its sums are exact. Exact sums (:func:`exact_sums`)
    give the sparse path's results bit for bit (on CUDA in bfloat16 on tensor
    cores, float32 accumulation); otherwise float32 matmul, whose rounding depends
    on the summation order (results agree statistically)."""

    def __init__(self, groups, exact: bool, cost_ns: float):
        self.groups = groups  # [(delay, rows, cols, W)]
        self.exact = exact
        self.cost_ns = cost_ns  # modelled CPU time of one step

    @classmethod
    def build(cls, backend, automatic: bool = False):
        """The matrices, or None when they do not fit in DENSE_MAX_BYTES (or, when
        ``automatic``, are not the cheaper path: see the class text)."""
        spec, dev = backend.spec, backend.torch_device
        conn = spec.connectivity
        if conn.nnz == 0 or backend.weight.shape[0] > 1 or backend.arrays:
            return None
        pre = conn.pre_index()
        plan, total = [], 0
        for d in np.unique(conn.delay):
            sel = np.flatnonzero(conn.delay == d)
            rows, row_of = np.unique(pre[sel], return_inverse=True)
            cols, col_of = np.unique(conn.target[sel], return_inverse=True)
            plan.append((int(d), sel, rows, row_of, cols, col_of))
            total += rows.size * cols.size * 4
        if total > DENSE_MAX_BYTES:
            return None
        source = np.zeros(spec.n_total, bool)
        for p in spec.populations:
            source[p.slice] = p.kind != "neuron"
        fan_in = int(np.bincount(conn.target).max())
        exact, bf16 = exact_sums(conn.weight, fan_in, SOURCE_MAX_COUNT if source[pre].any() else 1)
        path = cls([], exact, backend.instances * total / 4 * CPU_NS_PER_MAC)
        if automatic and (not path.cheaper_on_cpu(spec, backend.instances) if dev.type == "cpu" else
                          any(sel.size < DENSE_MIN_DENSITY * rows.size * cols.size
                              for _, sel, rows, _, cols, _ in plan)):
            return None
        dtype = torch.bfloat16 if bf16 and dev.type == "cuda" else torch.float32
        for d, sel, rows, row_of, cols, col_of in plan:
            dense = np.zeros((rows.size, cols.size), np.float32)
            np.add.at(dense, (row_of, col_of), conn.weight[sel])
            path.groups.append((d, torch.from_numpy(rows).to(dev), torch.from_numpy(cols.astype(np.int64)).to(dev),
                                torch.from_numpy(dense).to(dev, dtype)))
        return path

    def cheaper_on_cpu(self, spec, instances: int) -> bool:
        """The cost model's choice on the CPU (only exact products qualify)."""
        events = instances * ASSUMED_HZ * spec.dt / 1000.0 * spec.connectivity.nnz * CPU_NS_PER_EVENT
        return self.exact and self.cost_ns < events

    def propagate(self, ring, counts, slot, depth):
        for d, rows, cols, w in self.groups:
            x = counts[:, rows].to(w.dtype)
            arrive = (slot + d) % depth
            ring[arrive][:, cols] += (x @ w).to(torch.float64)


class EventTables:
    """Event-driven propagation through padded row tables (ELL), one per population
    with outgoing synapses (consecutive populations of similar largest fan-out
    share one): row j's synapses laid side by side in a [rows, width] table
    (width = the largest fan-out; padding weighs 0). Per step
    and table: the spiking (instance, neuron) pairs, one gather of their rows and
    one ``index_add_`` into the flat ring buffer. Sums are float64, exact, so the
    result equals the numba backend's. Shared weights are gathered into the table
    once (again whenever the weight tensor changes); per-instance weights are
    gathered per event."""

    def __init__(self, backend, tables):
        self.backend = backend
        self.tables = tables
        self._weights_of = None

    @classmethod
    def build(cls, backend):
        """The tables, or None when padding would exceed TABLE_MAX_WASTE × the synapses."""
        spec, conn = backend.spec, backend.spec.connectivity
        fan = np.diff(conn.indptr)
        arr = backend._array
        B, S = backend.instances, 3 * spec.n_total
        ranges = []   # [lo, hi, width, counts]: consecutive populations of similar fan-out share one
        for p in spec.populations:
            width = int(fan[p.slice].max()) if p.size else 0
            counts = p.kind != "neuron"   # sources may emit several spikes per step
            last = ranges[-1] if ranges else None
            if (width and last and last[1] == p.offset and last[3] == counts
                    and max(last[2], width) <= TABLE_MERGE * min(last[2], width)):
                last[1], last[2] = p.stop, max(last[2], width)
            elif width:
                ranges.append([p.offset, p.stop, width, counts])
        tables, padded = [], 0
        for lo, hi, width, counts in ranges:
            valid, syn = padded_rows(conn.indptr, lo, hi, width)
            delay = conn.delay[syn].astype(np.int64)
            one_delay = int(delay[valid].min()) if delay[valid].min() == delay[valid].max() else 0
            offset = conn.target[syn].astype(np.int64) + (0 if one_delay else delay * B * S)
            tables.append({"lo": lo, "hi": hi, "syn": arr(syn), "valid": arr(valid),
                           "offset": arr(np.where(valid, offset, 0)), "delay": one_delay,
                           "counts": counts})
            padded += valid.size
        if padded > TABLE_MAX_WASTE * conn.nnz + 64 * spec.n_total:
            return None
        return cls(backend, tables)

    def _shared_weights(self):
        """float64 [rows, width] weights of each table (padding 0), from the current weights
        (gathered again when the weight tensor is replaced or changed in place)."""
        w = self.backend.weight
        if self._weights_of is None or self._weights_of[0] is not w or self._weights_of[1] != w._version:
            for tab in self.tables:
                tab["w"] = torch.where(tab["valid"], w[0, tab["syn"]].to(torch.float64), 0.0)
            self._weights_of = (w, w._version)

    def propagate(self, ring, counts, slot, learner=None, multiple=True, inputs=None) -> None:
        """``multiple``: whether a source may have emitted more than one spike this
        step (else its weights are not multiplied by its counts); ``inputs``: the
        uint8 input rows [B, hi - lo] of tables fed by one external input, by (lo, hi)
        (their spikes are found there, 8 bytes at a time)."""
        be = self.backend
        B, S, depth = be.instances, ring.shape[2], be.depth
        flat_ring = ring.view(-1)
        shared = be.weight.shape[0] == 1 and not be.arrays
        if shared:
            self._shared_weights()
        for tab in self.tables:
            spikes = counts[:, tab["lo"]:tab["hi"]]
            given = inputs.get((tab["lo"], tab["hi"])) if inputs else None
            b, j = sparse_nonzero(given) if given is not None else torch.nonzero(spikes, as_tuple=True)
            if b.numel() == 0:
                continue
            arrive = (slot + tab["delay"]) % depth if tab["delay"] else slot
            flat = tab["offset"].index_select(0, j).add_((b * S).add_(arrive * B * S)[:, None])
            if not tab["delay"]:
                flat.remainder_(flat_ring.numel())
            if shared:
                values = tab["w"].index_select(0, j)
            else:
                syn, valid = tab["syn"].index_select(0, j), tab["valid"].index_select(0, j)
                values = take_at(be.weight, b[:, None], syn)
                if be.arrays:
                    values = read_torch(values, be.hw_table_t, be.syn_projection[syn].to(torch.int64),
                                        be.hw_key, be._t, b[:, None].expand_as(syn), syn)
                values = torch.where(valid, values.to(torch.float64), 0.0)
            if tab["counts"] and multiple:
                values = values * spikes[b, j].to(torch.float64)[:, None]
            flat_ring.scatter_add_(0, flat.view(-1), values.view(-1))
            if learner is not None:
                valid = tab["valid"].index_select(0, j)
                learner.on_pre(b[:, None].expand_as(valid)[valid], tab["syn"].index_select(0, j)[valid])


class TorchBackend(ArrayBackend):
    name = "torch"

    def __init__(self, spec, instances=None, per_instance_weights=False, device=None,
                 propagation: str = "auto"):
        self.torch_device = resolve_device(device)
        self.propagation = propagation
        plan_instances(spec, self.torch_device, int(instances or spec.instances), per_instance_weights)
        super().__init__(spec, instances, per_instance_weights, str(self.torch_device))
        self._prepare_steps()

    # -- arrays ---------------------------------------------------------------------------
    def _array(self, x, dtype=None):
        if isinstance(x, torch.Tensor):
            return x.to(self.torch_device)
        arr = np.ascontiguousarray(np.asarray(x, dtype=dtype) if dtype is not None else np.asarray(x))
        return torch.from_numpy(arr.copy()).to(self.torch_device)

    def _zeros(self, shape, dtype):
        return torch.zeros(shape, dtype=_DTYPES[np.dtype(dtype).type], device=self.torch_device)

    def to_numpy(self, x):
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    # -- per-population step plans ----------------------------------------------------------
    def set_stream_keys(self, keys: np.ndarray) -> None:
        super().set_stream_keys(keys)
        for plan in getattr(self, "plans", ()):
            size = plan["hi"] - plan["lo"]
            key = self.pop_key[plan["index"]]
            if plan.get("noise_keys") is not None:
                plan["noise_keys"] = self._array(normal_keys(key, size))
            if plan.get("keys") is not None:
                plan["keys"] = self._array(index_keys(key, size))

    def _prepare_steps(self) -> None:
        """One plan per population, except that consecutive neuron populations of one
        model with the same options and no noise current share one step (``members``)."""
        dev = self.torch_device
        self.plans = []
        for k, p in enumerate(self.spec.populations):
            plan = {"index": k, "lo": p.offset, "hi": p.stop, "model_id": p.model_id, "pop": p}
            if p.kind == "neuron":
                noisy = "i_noise" in p.params and bool((p.params["i_noise"] > 0).any())
                last = self.plans[-1] if self.plans else {}
                if ("step" in last and last["pop"].model == p.model and last["pop"].options == p.options
                        and not (noisy or last["noisy"])):
                    last["hi"] = p.stop
                    last["members"].append((k, p))
                    continue
                plan.update(step=p.model, noisy=noisy, members=[(k, p)],
                            noise_keys=self._array(normal_keys(self.pop_key[k], p.size)) if noisy else None)
            elif p.model_id == POISSON_ID:
                src = self.src[:, p.offset:p.stop]
                plan["lam"] = src[LAM]
                plan["exp_minus_lam"] = src[EXP_MINUS_LAM]
                plan["start"] = src[START_STEP]
                plan["stop"] = src[STOP_STEP]
                plan["keys"] = self._array(index_keys(self.pop_key[k], p.size))
            else:
                plan["col"] = int(self.ext_column[p.offset])
            self.plans.append(plan)
        for plan in self.plans:   # coefficient rows as a tuple of views: no tensor op to index them
            plan["coef"] = tuple(self.coef[:, plan["lo"]:plan["hi"]])
            if "step" in plan:
                size = self.instances * (plan["hi"] - plan["lo"])
                plan["step"] = _step_function(plan["step"], compile_wanted(dev, size))
        self.instance_ids = torch.arange(self.instances, device=dev, dtype=torch.int64)[:, None]
        self.mon_every_host = self.to_numpy(self.mon_every)
        self.mon_row_host = self.to_numpy(self.mon_row)
        self.mon_neuron_host = self.to_numpy(self.mon_neuron)
        self.indptr_next = self.indptr[1:]
        self.hw_table_t = self._array(self.hw_table)
        self.dense = self.events = None
        if self.propagation in ("auto", "dense") and not self.learns:
            self.dense = DensePath.build(self, automatic=self.propagation == "auto")
            if self.dense is None and self.propagation == "dense":
                raise SimulationError("propagation: dense needs weights shared by all instances "
                                      "(no plasticity or hardware arrays) and dense matrices "
                                      f"under {DENSE_MAX_BYTES >> 30} GiB")
        if self.dense is None:
            self.events = EventTables.build(self)
        if self.learns:
            from spiking.plasticity.learner import TorchLearner
            self.learner = TorchLearner(self)

    # -- one chunk --------------------------------------------------------------------------
    def _run_chunk(self, t0, n_steps, ext, signals, count_bin, rec: ChunkRecord) -> None:
        B, n, depth = self.instances, self.spec.n_total, self.depth
        learner = self.learner if self.learns else None
        recorded = []
        counts = torch.zeros((B, n), dtype=torch.int32, device=self.torch_device)  # every step fills it all
        bad = torch.zeros((n_steps, B, len(self.spec.populations)), dtype=torch.bool, device=self.torch_device)
        multiple = any("keys" in plan for plan in self.plans) or ext.max_count() > 1
        ext = self._external_rows(ext)
        for tt in range(n_steps):
            t = t0 + tt
            slot = t % depth
            if learner is not None:
                learner.begin_step(signals[tt])
            arriving = self.ring[slot].view(B, 3, n)
            inputs = {}   # (lo, hi) -> this step's uint8 rows of an external input
            for plan in self.plans:
                lo, hi, k = plan["lo"], plan["hi"], plan["index"]
                if "step" in plan:
                    # this step's input slots (only neurons receive synapses), cleared once read
                    delivered = arriving[:, :, lo:hi]
                    noise = None
                    if plan["noise_keys"] is not None:
                        noise = torch_normals(t, self.instance_ids, plan["noise_keys"], hi - lo)
                    spiked, bad[tt, :, k] = plan["step"](
                        self.state[:, :, lo:hi], plan["coef"], delivered, plan["pop"].options, noise)
                    delivered.zero_()
                    counts[:, lo:hi] = spiked
                    for m, pop in plan["members"]:
                        rec.pop_counts[tt, :, m] = counts[:, pop.offset:pop.stop].sum(dim=1, dtype=torch.int32)
                    continue
                if "keys" in plan:
                    counts[:, lo:hi] = self._poisson(plan, t)
                else:
                    col = plan["col"]
                    rows = ext[tt, :, col: col + hi - lo]
                    counts[:, lo:hi] = rows
                    if rows.shape[0] == B:
                        inputs[(lo, hi)] = rows
                rec.pop_counts[tt, :, k] = counts[:, lo:hi].sum(dim=1, dtype=torch.int32)
            self._t = t
            self._propagate(counts, slot, learner, multiple, inputs)
            if learner is not None:
                learner.after_propagation(counts)
            self.run_counts[:, int(count_bin[tt])] += counts
            if self.n_recorded:
                hits = torch.nonzero(counts * self.record_flag, as_tuple=False)
                if hits.numel():
                    recorded.append((hits, t))
            self._record_state(rec, tt, t)
        self._store_spikes(rec, recorded)
        rec.error.copy_(self._blame(first_error(bad, t0)))

    def _external_rows(self, ext) -> "torch.Tensor":
        """The chunk's external spikes as uint8 rows [n_steps, Bx, n_ext] on the device,
        filled there from the (small) list of spikes."""
        width = max(self.n_ext, 1)
        flat, count = ext.cells(self.ext_column, width)
        rows = torch.zeros(ext.n_steps * ext.ptr.shape[0] * width, dtype=torch.uint8,
                           device=self.torch_device)
        rows[self._array(flat)] = self._array(count)
        return rows.view(ext.n_steps, ext.ptr.shape[0], width)

    def _blame(self, error):
        """A shared step's error names the first of its populations whose state is not
        finite at the end of the chunk (its first population if none is)."""
        host = self.to_numpy(error).copy()
        for b in np.flatnonzero(host[:, 0] >= 0):
            members = next(plan["members"] for plan in self.plans if plan["index"] == host[b, 1])
            for k, pop in members:
                if not torch.isfinite(self.state[:, b, pop.offset:pop.stop]).all():
                    host[b, 1] = k
                    break
        return torch.from_numpy(host)

    def _poisson(self, plan, t):
        u = torch_uniform(t, self.instance_ids, plan["keys"])
        k = torch_poisson(u, plan["exp_minus_lam"], plan["lam"])
        active = (plan["start"] <= t) & (t < plan["stop"]) & (plan["lam"] > 0)
        return torch.where(active, k, torch.zeros_like(k))

    def _propagate(self, counts, slot, learner=None, multiple=True, inputs=None) -> None:
        """Add this step's spikes to the ring: dense products, event tables, or (when
        tables would waste memory on uneven fan-outs) each spike's CSR row expanded;
        ``multiple`` and ``inputs``: see :meth:`EventTables.propagate`."""
        if self.dense is not None:
            self.dense.propagate(self.ring, counts, slot, self.depth)
            return
        if self.events is not None:
            self.events.propagate(self.ring, counts, slot, learner, multiple, inputs)
            return
        b_idx, j_idx = torch.nonzero(counts, as_tuple=True)
        if b_idx.numel() == 0:
            return
        start = self.indptr[j_idx]
        length = self.indptr_next[j_idx] - start
        syn, row = expand_rows(start, length)
        if syn.numel() == 0:
            return
        b_rep = b_idx[row]
        arrive = self.delay[syn].to(torch.int64) + slot
        arrive = torch.where(arrive >= self.depth, arrive - self.depth, arrive)
        n_slots = self.ring.shape[2]
        flat = (arrive * self.instances + b_rep) * n_slots + self.target[syn].to(torch.int64)
        w_rows = b_rep if self.weight.shape[0] > 1 else torch.zeros_like(b_rep)
        delivered = self.weight[w_rows, syn]
        if self.arrays:
            delivered = read_torch(delivered, self.hw_table_t, self.syn_projection[syn].to(torch.int64),
                                   self.hw_key, self._t, b_rep, syn)
        values = delivered.to(torch.float64) * counts[b_idx, j_idx][row].to(torch.float64)
        self.ring.view(-1).index_add_(0, flat, values)
        if learner is not None:
            learner.on_pre(b_rep, syn)

    def _record_state(self, rec, tt, t) -> None:
        if self.mon_every_host.size == 0:
            return
        take = np.flatnonzero(t % self.mon_every_host == 0)
        if take.size:
            rows = torch.from_numpy(self.mon_row_host[take]).to(self.torch_device)
            neurons = torch.from_numpy(self.mon_neuron_host[take]).to(self.torch_device)
            cols = torch.from_numpy(take).to(self.torch_device)
            rec.state[tt][:, cols] = self.state[rows, :, neurons].T

    def _store_spikes(self, rec, recorded) -> None:
        """Per-instance record arrays from the (instance, neuron) hits of each step."""
        if not recorded:
            return
        hits = torch.cat([h for h, _ in recorded])
        steps = torch.cat([torch.full((h.shape[0],), t, dtype=torch.int32, device=h.device)
                           for h, t in recorded])
        inst = hits[:, 0]
        order = torch.sort(inst, stable=True).indices
        inst, steps, neurons = inst[order], steps[order], hits[order, 1].to(torch.int32)
        per_instance = torch.bincount(inst, minlength=self.instances)
        first = torch.cumsum(per_instance, 0) - per_instance
        pos = torch.arange(inst.shape[0], device=inst.device) - first[inst]
        rec.spike_t[inst, pos] = steps
        rec.spike_i[inst, pos] = neurons
        rec.spike_n.copy_(per_instance)


def sparse_nonzero(x):
    """``torch.nonzero(x, as_tuple=True)`` of a 2-D tensor, in the same order; faster
    on the CPU for a contiguous uint8 tensor with few nonzero entries (event input
    rows), which is scanned 8 bytes at a time, and only its nonzero words byte by
    byte (torch's own nonzero costs ~1 ns per entry there)."""
    if x.device.type != "cpu" or x.dtype != torch.uint8 or not x.is_contiguous() or x.numel() % 8:
        return torch.nonzero(x, as_tuple=True)
    flat_x = x.view(-1)
    words = torch.nonzero(flat_x.view(torch.int64)).view(-1)
    within = torch.nonzero(flat_x.view(-1, 8).index_select(0, words).view(-1)).view(-1)
    flat = words.index_select(0, within.div(8, rounding_mode="floor")).mul_(8).add_(within.remainder(8))
    width = x.shape[1]
    return flat.div(width, rounding_mode="floor"), flat.remainder_(width)


def take_at(table, b, col):
    """table[b, col] for broadcasting instance and column indices, one flat gather
    (a table of one row, such as shared weights [1, nnz], serves every instance)."""
    return table.view(-1).take(b * table.shape[1] + col if table.shape[0] > 1 else col)


def first_error(bad, t0: int):
    """(step, population) of each instance's first non-finite state, else (-1, -1):
    int64 [B, 2] from the flags bad [steps, B, populations] of a chunk starting at t0."""
    any_bad = bad.any(dim=2)
    step = any_bad.to(torch.uint8).argmax(dim=0)                # the first True
    pop = bad[step, torch.arange(bad.shape[1], device=bad.device)].to(torch.uint8).argmax(dim=1)
    found = any_bad.any(dim=0)
    return torch.where(found[:, None], torch.stack([step + t0, pop], dim=1), -1)


def expand_rows(start, length):
    """CSR rows -> (synapse index, row number) for every synapse of the rows.

    The ranges [start[r], start[r] + length[r]) laid end to end, computed with
    two cumulative sums (``repeat_interleave`` is slow on the CPU).
    """
    keep = length > 0
    start, length = start[keep], length[keep]
    rows = torch.nonzero(keep, as_tuple=True)[0]
    total = int(length.sum()) if length.numel() else 0
    if total == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=start.device)
        return empty, empty
    first = torch.cumsum(length, 0) - length
    step = torch.ones(total, dtype=torch.int64, device=start.device)
    step[0] = start[0]
    step[first[1:]] = start[1:] - (start[:-1] + length[:-1] - 1)
    syn = torch.cumsum(step, 0)
    mark = torch.zeros(total, dtype=torch.int64, device=start.device)
    mark[first[1:]] = 1
    return syn, rows[torch.cumsum(mark, 0)]


CPU_COMPILE_MIN = 16384   # neuron-instances of a step from which the CPU compiles it by default


def compile_wanted(device: torch.device, size: int = 0) -> bool:
    """Whether a neuron step over ``size`` neuron-instances (B × n) goes through
    ``torch.compile``: environment variable SPIKING_TORCH_COMPILE=1 (yes) or 0 (no);
    unset (or ``auto``): on CUDA always, on the CPU from CPU_COMPILE_MIN. On the
    CPU the fused LIF step takes about half the time of the ~15 eager operations
    (~10 % against ~20 % of NALSM1000 feature extraction at batch 64) but costs
    10-60 s of compilation per new network, which small networks and short runs
    never repay."""
    value = os.environ.get("SPIKING_TORCH_COMPILE", "").strip().lower()
    if value in ("", "auto"):
        return device.type == "cuda" or size >= CPU_COMPILE_MIN
    if value not in ("0", "1", "false", "true", "no", "yes", "off", "on"):
        raise SimulationError(f"SPIKING_TORCH_COMPILE={value!r}: use 1 or 0 (or leave it unset)")
    return value in ("1", "true", "yes", "on")


class PlainStep:
    """A model's pure ``step_torch`` on the delivered input (the float64 ring slots
    [B, 3, n] of this step, rounded to float32 as the numba kernel reads them and
    split into the excitatory, inhibitory and voltage channels); the new state is
    copied into the population's rows. Returns (spikes [B, n], not finite [B])."""

    def __init__(self, plain):
        self.plain = plain

    def __call__(self, state, coef, delivered, options, noise):
        new, spiked, bad = _advance(self.plain, state, coef, delivered, options, noise)
        state.copy_(new)
        return spiked, bad


def _advance(step, state, coef, delivered, options, noise):
    """``step`` (a model's pure ``step_torch``) on the float32-rounded ring slots."""
    return step(state, coef, *delivered.to(torch.float32).unbind(1), options, noise)


class CompiledStep(PlainStep):
    """:class:`PlainStep` through ``torch.compile``: one fused loop per population and
    step, which reads the ring slots and writes the new state once (an in-place
    update of a view would copy the whole state tensor); the spikes come out as
    int32 (a bool output is stored element by element on the CPU). When compiling
    fails (no C++ compiler or Triton, an unsupported platform) it warns once and
    every step, of every network, runs the plain function."""

    failed = False
    _compiled: dict = {}

    def __init__(self, plain):
        super().__init__(plain)
        if plain not in CompiledStep._compiled:
            def fused(state, coef, delivered, options, noise):
                new, spiked, bad = _advance(plain, state, coef, delivered, options, noise)
                return new, spiked.to(torch.int32), bad
            CompiledStep._compiled[plain] = torch.compile(fused)
        self.compiled = CompiledStep._compiled[plain]

    def __call__(self, state, coef, delivered, options, noise):
        if not CompiledStep.failed:
            try:
                new, spiked, bad = self.compiled(state, coef, delivered, options, noise)
                state.copy_(new)
                return spiked, bad
            except Exception as e:  # noqa: BLE001 - any compiler failure falls back
                CompiledStep.failed = True
                warnings.warn(f"torch.compile of the neuron steps failed ({type(e).__name__}: "
                              f"{str(e)[:200]}); running plain torch steps (set "
                              f"SPIKING_TORCH_COMPILE=0 to skip the attempt)", RuntimeWarning)
        return super().__call__(state, coef, delivered, options, noise)


def _step_function(model: str, compiled: bool):
    """The model's torch step, through :class:`CompiledStep` when ``compiled``."""
    step = _plain_step(model)
    return CompiledStep(step) if compiled else PlainStep(step)


def _plain_step(model: str):
    info = get_model(model)
    if info.name == "lif":
        from spiking.models.lif import step_torch
    elif info.name == "izhikevich":
        from spiking.models.izhikevich import step_torch
    else:
        raise SimulationError(f"model {model!r} has no torch step")
    return step_torch
