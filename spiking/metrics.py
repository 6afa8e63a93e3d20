"""Measures of network activity computed from recorded spikes.

:func:`branching_factor` follows the NALSM authors' ``compute_branching_factor.py``
(Ivanov & Michmizos, NeurIPS 2021): for every liquid neuron n and each of its
spikes at step t (away from the ends of the sample),

    pre  = spikes of n's presynaptic liquid neurons in [t - w, t), at least 1
    post = spikes of n's postsynaptic liquid neurons in [t + 1, t + 1 + w)

with w = 4 steps; n's branching ratio is the mean of post / pre over its spikes,
and a sample's branching factor is the mean over the neurons that spiked. A
value near 1 marks a critical network (each spike causes about one spike);
above 1 activity grows, below 1 it dies out.

The computation takes spikes as flat arrays (instance, step, neuron) and the
connectivity as (pre, post) pairs, so any network can use it; it runs in a
numba kernel, in parallel over samples, in time proportional to spikes x
degree. :func:`liquid_synapses` extracts the pairs from a built network.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from numba import njit, prange

TRIM_STEPS = 25     # steps left out at each end of a sample (25 ms at dt = 1 ms)
WINDOW_STEPS = 4    # steps counted before (presynaptic) and after (postsynaptic) a spike


def _csr(rows: np.ndarray, cols: np.ndarray, n: int) -> Tuple[np.ndarray, np.ndarray]:
    order = np.argsort(rows, kind="stable")
    ptr = np.zeros(n + 1, np.int64)
    np.add.at(ptr, rows + 1, 1)
    return np.cumsum(ptr), cols[order].astype(np.int64)


@njit(cache=True, parallel=True, nogil=True)
def _branching(inst_ptr, steps, neurons, in_ptr, in_idx, out_ptr, out_idx, n_neurons,
               n_steps, lo, hi, window, out):
    n_inst = inst_ptr.shape[0] - 1
    for b in prange(n_inst):
        first, last = inst_ptr[b], inst_ptr[b + 1]
        if last == first:
            out[b] = np.nan
            continue
        # cum[t, m]: spikes of neuron m in steps [0, t)
        cum = np.zeros((n_steps + 1, n_neurons), np.int32)
        for k in range(first, last):
            cum[steps[k] + 1, neurons[k]] += 1
        for t in range(1, n_steps + 1):
            for m in range(n_neurons):
                cum[t, m] += cum[t - 1, m]
        total = np.zeros(n_neurons, np.float64)
        count = np.zeros(n_neurons, np.int64)
        for k in range(first, last):
            t = steps[k]
            if t < lo or t >= hi:
                continue
            n = neurons[k]
            pre = 0
            for q in range(in_ptr[n], in_ptr[n + 1]):
                m = in_idx[q]
                pre += cum[t, m] - cum[t - window, m]
            if pre < 1:
                pre = 1
            post = 0
            for q in range(out_ptr[n], out_ptr[n + 1]):
                m = out_idx[q]
                post += cum[t + 1 + window, m] - cum[t + 1, m]
            total[n] += post / pre
            count[n] += 1
        s = 0.0
        c = 0
        for n in range(n_neurons):
            if count[n] > 0:
                s += total[n] / count[n]
                c += 1
        out[b] = s / c if c > 0 else np.nan


def branching_factor(instance: np.ndarray, step: np.ndarray, neuron: np.ndarray,
                     pre: np.ndarray, post: np.ndarray, n_neurons: int, n_steps: int,
                     n_instances: Optional[int] = None, trim: int = TRIM_STEPS,
                     window: int = WINDOW_STEPS, per_instance: bool = False):
    """Branching factor of recorded liquid activity.

    instance, step, neuron: one entry per spike (sample index, time step within
    the sample, liquid neuron index 0..n_neurons-1), in any order.
    pre, post: the liquid-to-liquid synapses as neuron index pairs (a pair
    listed twice counts twice). n_steps: steps per sample. Spikes at steps
    [trim + window, n_steps - trim - window) are scored.

    Returns the mean over samples of each sample's branching factor (NaN
    where no neuron spiked in the scored part), or with ``per_instance`` the
    array [n_instances] of per-sample values.
    """
    instance = np.asarray(instance, np.int64)
    step = np.asarray(step, np.int64)
    neuron = np.asarray(neuron, np.int64)
    if not (instance.shape == step.shape == neuron.shape):
        raise ValueError("instance, step and neuron must have the same length")
    n_instances = int(instance.max() + 1 if instance.size else 0) if n_instances is None \
        else int(n_instances)
    if step.size and (step.min() < 0 or step.max() >= n_steps):
        raise ValueError(f"spike steps must lie in [0, {n_steps})")
    if neuron.size and (neuron.min() < 0 or neuron.max() >= n_neurons):
        raise ValueError(f"spike neurons must lie in [0, {n_neurons})")
    if instance.size and (instance.min() < 0 or instance.max() >= n_instances):
        raise ValueError(f"spike instances must lie in [0, {n_instances})")
    pre = np.asarray(pre, np.int64)
    post = np.asarray(post, np.int64)
    order = np.argsort(instance, kind="stable")
    inst_ptr = np.zeros(n_instances + 1, np.int64)
    np.add.at(inst_ptr, instance + 1, 1)
    inst_ptr = np.cumsum(inst_ptr)
    in_ptr, in_idx = _csr(post, pre, n_neurons)
    out_ptr, out_idx = _csr(pre, post, n_neurons)
    out = np.full(n_instances, np.nan)
    lo, hi = trim + window, n_steps - trim - window
    if n_instances and hi > lo:
        _branching(inst_ptr, step[order], neuron[order], in_ptr, in_idx, out_ptr, out_idx,
                   int(n_neurons), int(n_steps), int(lo), int(hi), int(window), out)
    if per_instance:
        return out
    finite = out[np.isfinite(out)]
    return float(finite.mean()) if finite.size else float("nan")


def liquid_synapses(spec, populations: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """(pre, post) pairs of the synapses among ``populations`` of a built network
    (``net.spec``), as indices into the populations laid end to end in the
    order given (the liquid's own numbering for :func:`branching_factor`)."""
    pops = [spec.population(p) for p in populations]
    local = np.full(spec.n_total, -1, np.int64)
    start = 0
    for p in pops:
        local[p.offset:p.stop] = np.arange(start, start + p.size)
        start += p.size
    conn = spec.connectivity
    pre = local[conn.pre_index()]
    post = local[conn.target.astype(np.int64) % spec.n_total]
    keep = (pre >= 0) & (post >= 0)
    return pre[keep], post[keep]
