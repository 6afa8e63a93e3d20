"""Batched torch backend: B network instances in lockstep, on CUDA or the CPU.

Each step runs the same float32 operations as the numba kernel, so a
deterministic network gives identical spikes on both (on the CPU). Spike
propagation gathers the CSR rows of all spiking (instance, neuron) pairs and
scatters weight × count into the flattened float64 ring buffer with
``index_add_``, so its cost follows spikes × fan-out.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from spiking.backends.base import ArrayBackend, ChunkRecord, bytes_per_instance
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
DENSE_MIN_DENSITY = 0.01    # below this share of nonzero entries, stay sparse


class DensePath:
    """Propagation as matrix products, one per delay value: for the neurons with
    outgoing synapses of delay d (rows) and the input slots they reach (cols),
    ``ring[t + d][:, cols] += counts[:, rows] @ W_d``. Chosen when weights are
    shared by all instances and density makes the product cheaper than
    scattering events (``propagation: auto`` picks it on CUDA). Exact when every
    weight is representable in bfloat16 (then tensor cores are used, with float32
    accumulation); otherwise float32 matmul, whose summation order differs from
    the sparse path's exact float64 sums (results agree statistically)."""

    def __init__(self, backend, groups):
        self.groups = groups  # [(delay, rows, cols, W)]

    @classmethod
    def build(cls, backend):
        spec, dev = backend.spec, backend.torch_device
        conn = spec.connectivity
        if conn.nnz == 0 or backend.weight.shape[0] > 1 or backend.arrays:
            return None
        pre = conn.pre_index()
        groups, total = [], 0
        for d in np.unique(conn.delay):
            sel = np.flatnonzero(conn.delay == d)
            rows, row_of = np.unique(pre[sel], return_inverse=True)
            cols, col_of = np.unique(conn.target[sel], return_inverse=True)
            size = rows.size * cols.size
            total += size * 4
            if total > DENSE_MAX_BYTES or sel.size < DENSE_MIN_DENSITY * size:
                return None
            dense = np.zeros((rows.size, cols.size), np.float32)
            np.add.at(dense, (row_of, col_of), conn.weight[sel])
            exact = np.array_equal(dense.astype(np.float64),
                                   torch.from_numpy(dense).to(torch.bfloat16).float().numpy())
            dtype = torch.bfloat16 if exact and dev.type == "cuda" else torch.float32
            groups.append((int(d), torch.from_numpy(rows).to(dev), torch.from_numpy(cols.astype(np.int64)).to(dev),
                           torch.from_numpy(dense).to(dev, dtype)))
        return cls(backend, groups)

    def propagate(self, ring, counts, slot, depth):
        for d, rows, cols, w in self.groups:
            x = counts[:, rows].to(w.dtype)
            arrive = (slot + d) % depth
            ring[arrive][:, cols] += (x @ w).to(torch.float64)


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
        dev = self.torch_device
        self.plans = []
        for k, p in enumerate(self.spec.populations):
            plan = {"index": k, "lo": p.offset, "hi": p.stop, "model_id": p.model_id, "pop": p}
            if p.kind == "neuron":
                plan["step"] = _step_function(p.model)
                noisy = "i_noise" in p.params and bool((p.params["i_noise"] > 0).any())
                plan["noise_keys"] = (self._array(normal_keys(self.pop_key[k], p.size))
                                      if noisy else None)
            elif p.model_id == POISSON_ID:
                src = self.src[:, p.offset:p.stop]
                plan["lam"] = src[LAM]
                plan["exp_minus_lam"] = src[EXP_MINUS_LAM]
                plan["start"] = src[START_STEP]
                plan["stop"] = src[STOP_STEP]
                plan["keys"] = self._array(index_keys(self.pop_key[k], p.size))
            else:
                plan["col"] = self.ext_cols[p.name]
            self.plans.append(plan)
        self.instance_ids = torch.arange(self.instances, device=dev, dtype=torch.int64)[:, None]
        self.mon_every_host = self.to_numpy(self.mon_every)
        self.mon_row_host = self.to_numpy(self.mon_row)
        self.mon_neuron_host = self.to_numpy(self.mon_neuron)
        self.indptr_next = self.indptr[1:]
        self.hw_table_t = self._array(self.hw_table)
        self.dense = None
        if self.propagation == "dense" or (self.propagation == "auto" and dev.type == "cuda"
                                           and not self.learns):
            self.dense = DensePath.build(self)
            if self.dense is None and self.propagation == "dense":
                raise SimulationError("propagation: dense needs weights shared by all instances "
                                      "(no plasticity or hardware arrays) and dense matrices "
                                      f"under {DENSE_MAX_BYTES >> 30} GiB")
        if self.learns:
            from spiking.plasticity.learner import TorchLearner
            self.learner = TorchLearner(self)

    # -- one chunk --------------------------------------------------------------------------
    def _run_chunk(self, t0, n_steps, ext, signals, rec: ChunkRecord) -> None:
        B, n, depth = self.instances, self.spec.n_total, self.depth
        learner = self.learner if self.learns else None
        recorded = []
        first_error = torch.full((B, 2), -1, dtype=torch.int64, device=self.torch_device)
        for tt in range(n_steps):
            t = t0 + tt
            slot = t % depth
            if learner is not None:
                learner.begin_step(signals[tt])
            delivered = self.ring[slot].to(torch.float32).view(B, 3, n)
            self.ring[slot].zero_()
            counts = torch.zeros((B, n), dtype=torch.int32, device=self.torch_device)
            for plan in self.plans:
                lo, hi = plan["lo"], plan["hi"]
                if "step" in plan:
                    noise = None
                    if plan["noise_keys"] is not None:
                        noise = (lambda keys=plan["noise_keys"], t=t, n=hi - lo:
                                 torch_normals(t, self.instance_ids, keys, n))
                    spiked = plan["step"](self.state[:, :, lo:hi], self.coef[:, lo:hi],
                                          delivered[:, 0, lo:hi], delivered[:, 1, lo:hi],
                                          delivered[:, 2, lo:hi], plan["pop"].options, noise)
                    counts[:, lo:hi] = spiked.to(torch.int32)
                    bad = ~torch.isfinite(self.state[0, :, lo:hi]).all(dim=1)
                    newly = bad & (first_error[:, 0] < 0)
                    first_error[:, 0] = torch.where(newly, t, first_error[:, 0])
                    first_error[:, 1] = torch.where(newly, plan["index"], first_error[:, 1])
                elif "keys" in plan:
                    counts[:, lo:hi] = self._poisson(plan, t)
                else:
                    col = plan["col"]
                    counts[:, lo:hi] = ext[tt, :, col: col + hi - lo].to(torch.int32)
                rec.pop_counts[tt, :, plan["index"]] = counts[:, lo:hi].sum(dim=1, dtype=torch.int32)
            self._t = t
            self._propagate(counts, slot, learner)
            if learner is not None:
                learner.after_propagation(counts)
            self.spike_counts += counts
            hits = torch.nonzero(counts * self.record_flag, as_tuple=False)
            if hits.numel():
                recorded.append((hits, t))
            self._record_state(rec, tt, t)
        self._store_spikes(rec, recorded)
        rec.error.copy_(first_error)

    def _poisson(self, plan, t):
        u = torch_uniform(t, self.instance_ids, plan["keys"])
        k = torch_poisson(u, plan["exp_minus_lam"], plan["lam"])
        active = (plan["start"] <= t) & (t < plan["stop"]) & (plan["lam"] > 0)
        return torch.where(active, k, torch.zeros_like(k))

    def _propagate(self, counts, slot, learner=None) -> None:
        if self.dense is not None:
            self.dense.propagate(self.ring, counts, slot, self.depth)
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
            learner.on_pre(b_rep, syn, self.target[syn].to(torch.int64) % self.spec.n_total)

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


def _step_function(model: str):
    info = get_model(model)
    if info.name == "lif":
        from spiking.models.lif import step_torch
    elif info.name == "izhikevich":
        from spiking.models.izhikevich import step_torch
    else:
        raise SimulationError(f"model {model!r} has no torch step")
    return step_torch
