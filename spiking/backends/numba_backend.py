"""CPU backend: one compiled kernel runs a chunk of steps for all instances.

Instances are independent, so the kernel runs them in parallel (``prange``);
each instance walks the time loop of :mod:`spiking.engine` in the order of
``docs/architecture.md``: deliver + integrate + detect (per population), then
propagate spikes through the CSR into the ring buffer, then record. Kernels are
compiled once and cached on disk (numba ``cache=True``), so they serve every
network without recompiling.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from spiking.backends.base import ArrayBackend
from spiking.models import izhikevich, lif
from spiking.models.sources import (ARRAY_ID, EVENT_ID, EXP_MINUS_LAM, LAM, POISSON_ID,
                                    START_STEP, STOP_STEP)
from spiking.rng import poisson_from_uniform, uniform

LIF_ID, IZH_ID = lif.INFO.model_id, izhikevich.INFO.model_id


@njit(cache=True, nogil=True)
def _sources(model, lo, hi, b, bx, t, tt, col, key, src, ext, spikes, counts, n_spikes):
    """Emit the spikes of source neurons [lo, hi) for step t."""
    for j in range(lo, hi):
        c = 0
        if model == POISSON_ID:
            if src[START_STEP, j] <= t < src[STOP_STEP, j] and src[LAM, j] > 0:
                u = uniform(key, t, b, j - lo)
                c = poisson_from_uniform(u, src[EXP_MINUS_LAM, j], src[LAM, j])
        else:
            c = ext[tt, bx, col + j - lo]
        if c > 0:
            spikes[n_spikes] = j
            counts[n_spikes] = c
            n_spikes += 1
    return n_spikes


@njit(cache=True, parallel=True, nogil=True)
def run_chunk(t0, n_steps, pop_model, pop_lo, pop_hi, pop_col, pop_key,
              state, coef, src, ext, ring, indptr, target, delay, weight,
              record_flag, rec_t, rec_i, rec_n, spike_counts, pop_counts,
              mon_neuron, mon_row, mon_every, mon_out, error, scratch_idx, scratch_cnt):
    """Advance every instance by ``n_steps`` steps starting at step ``t0``.

    error[b] = (step, population) of the first NaN/Inf, else (-1, -1).
    """
    n_inst = state.shape[1]
    n_total = state.shape[2]
    depth = ring.shape[0]
    n_pop = pop_model.shape[0]
    per_instance_weights = weight.shape[0] > 1
    per_instance_input = ext.shape[1] > 1
    for b in prange(n_inst):
        wb = np.int64(b) if per_instance_weights else np.int64(0)
        bx = np.int64(b) if per_instance_input else np.int64(0)
        spikes = scratch_idx[b]
        counts = scratch_cnt[b]
        for tt in range(n_steps):
            t = t0 + tt
            slot = t % depth
            n_spikes = 0
            failed = False
            for p in range(n_pop):
                start = n_spikes
                model = pop_model[p]
                if model == LIF_ID:
                    n_spikes = lif.step_numba(state, coef, ring, slot, b, pop_lo[p], pop_hi[p],
                                              n_total, spikes, n_spikes, t, pop_key[p])
                elif model == IZH_ID:
                    n_spikes = izhikevich.step_numba(state, coef, ring, slot, b, pop_lo[p],
                                                     pop_hi[p], n_total, spikes, n_spikes, t,
                                                     pop_key[p])
                else:
                    n_spikes = _sources(model, pop_lo[p], pop_hi[p], b, bx, t, tt, pop_col[p],
                                        pop_key[p], src, ext, spikes, counts, n_spikes)
                if n_spikes < 0:
                    error[b, 0] = t
                    error[b, 1] = p
                    failed = True
                    break
                if model == LIF_ID or model == IZH_ID:
                    for s in range(start, n_spikes):
                        counts[s] = 1
                total = 0
                for s in range(start, n_spikes):
                    total += counts[s]
                pop_counts[tt, b, p] = total
            if failed:
                break
            # propagate: each spike walks its CSR row into the ring buffer
            for s in range(n_spikes):
                j = spikes[s]
                c = counts[s]
                spike_counts[b, j] += c
                if record_flag[j]:
                    n = rec_n[b]
                    rec_t[b, n] = t
                    rec_i[b, n] = j
                    rec_n[b] = n + 1
                for k in range(indptr[j], indptr[j + 1]):
                    arrive = slot + delay[k]
                    if arrive >= depth:
                        arrive -= depth
                    ring[arrive, b, target[k]] += weight[wb, k] * c
            # record sub-sampled state
            for m in range(mon_neuron.shape[0]):
                if t % mon_every[m] == 0:
                    mon_out[tt, b, m] = state[mon_row[m], b, mon_neuron[m]]


class NumbaBackend(ArrayBackend):
    """Runs on the CPU with numpy arrays; the default backend."""

    name = "numba"

    def _array(self, x, dtype=None):
        return np.ascontiguousarray(x if dtype is None else np.asarray(x, dtype=dtype))

    def _zeros(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def to_numpy(self, x):
        return x

    def _run_chunk(self, t0, n_steps, ext, rec):
        run_chunk(t0, n_steps, self.pop_model, self.pop_lo, self.pop_hi, self.pop_col,
                  self.pop_key, self.state, self.coef, self.src, ext, self.ring,
                  self.indptr, self.target, self.delay, self.weight,
                  self.record_flag, rec.spike_t, rec.spike_i, rec.spike_n, self.spike_counts,
                  rec.pop_counts, self.mon_neuron, self.mon_row, self.mon_every, rec.state,
                  rec.error, self.scratch_idx, self.scratch_cnt)
