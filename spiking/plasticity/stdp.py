"""Pair-based STDP in trace form, event-triggered (numba and torch side by side).

Each plastic projection keeps a presynaptic trace x (time constant tau_plus)
and a postsynaptic trace y (tau_minus), both float32, decayed once per step
and raised by ``trace_increment`` on a spike (``pairing: all_to_all``) or set
to it (``nearest``). Within a step, in this order:

1. on each presynaptic spike, every plastic synapse of its row gets
   ``d = a_minus · y_post`` (``· (w - w_min)`` when multiplicative) subtracted;
2. on each postsynaptic spike, every plastic synapse into it gets
   ``d = a_plus · x_pre`` (``· (w_max - w)`` when multiplicative) added;
3. the spikes of this step raise the traces.

So a pre spike at t_pre and a post spike at t_post = t_pre + Δ (Δ > 0 steps)
change w by ``a_plus · inc · exp(-Δ·dt/tau_plus)``; with Δ < 0 by
``-a_minus · inc · exp(-|Δ|·dt/tau_minus)``; simultaneous spikes do not pair.
Weights are clipped to [w_min, w_max] after every change and each clip is
counted; on a hardware projection the new weight is then written into its
devices (:func:`spiking.synapses.array_write.write`, the ``hw_*`` state). Cost follows
spikes × plastic fan-out, not synapses × steps.

For three-factor rules (:mod:`spiking.plasticity.three_factor`) the same
pairing changes the eligibility trace instead of w.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from spiking.synapses.array_write import ON, write
from spiking.plasticity.layout import (ELIG, ELIG_HEBBIAN, ELIG_PRE, ELIG_STDP, INC, KIND, MULT,
                                       NEAREST, POST_HI, POST_LO, PRE_HI, PRE_LO, STDP, W_MAX,
                                       W_MIN, X_DECAY, X_OFF, Y_DECAY, Y_OFF)


@njit(cache=True, nogil=True, inline="always")
def clip(value, low, high, counts, b, k):
    if value < low:
        counts[b, k] += 1
        return low
    if value > high:
        counts[b, k] += 1
        return high
    return value


@njit(cache=True, nogil=True)
def decay_traces(traces, trace_decay, b):
    for i in range(traces.shape[1]):
        traces[b, i] = traces[b, i] * trace_decay[i]


@njit(cache=True, nogil=True, inline="always")
def _run_end(rules, start, end):
    """End of the run of equal entries of ``rules`` that begins at ``start``."""
    stop = start + 1
    while stop < end and rules[stop] == rules[start]:
        stop += 1
    return stop


@njit(cache=True, nogil=True)
def pre_spike(weight, wb, elig, b, lo, hi, target, n_total, syn_rule, rule_f, rule_i, traces,
              amp_minus, clips, hw):
    """A presynaptic spike: step 1 at the plastic synapses of its CSR row [lo, hi),
    one run of synapses of the same rule at a time. hw: the hardware-write state
    (:mod:`spiking.synapses.array_write`) as one tuple."""
    s0 = lo
    while s0 < hi:
        s1 = _run_end(syn_rule, s0, hi)
        k = syn_rule[s0]
        if k >= 0:
            _depress(weight, wb, elig, b, s0, s1, k, target, n_total, rule_f, rule_i, traces,
                     amp_minus[k], clips, hw)
        s0 = s1


@njit(cache=True, nogil=True)
def _depress(weight, wb, elig, b, s0, s1, k, target, n_total, rule_f, rule_i, traces, amp,
             clips, hw):
    """Step 1 for synapses [s0, s1) of rule k (one projection, so one receptor slot)."""
    kind = rule_i[k, KIND]
    mode = rule_i[k, ELIG]
    if kind != STDP and mode == ELIG_PRE:
        return
    pairing = kind == STDP or mode == ELIG_STDP
    mult = rule_i[k, MULT] > 0
    w_min, w_max = rule_f[k, W_MIN], rule_f[k, W_MAX]
    learn, proj, table, key, g, level, writes, frozen = hw
    on_array = learn and table[proj[s0], ON] > 0   # one projection: all or none
    # trace index of the post neuron: y_off + (target - slot * n_total) - post_lo
    y_base = rule_i[k, Y_OFF] - rule_i[k, POST_LO] - (target[s0] // n_total) * n_total
    for s in range(s0, s1):
        y = traces[b, y_base + target[s]]
        if y == 0:
            continue
        d = amp * y
        if not pairing:  # Hebbian eligibility
            elig[b, s] = elig[b, s] + d
            continue
        if mult:
            d = d * (weight[wb, s] - w_min)
        if kind != STDP:
            elig[b, s] = elig[b, s] - d
        elif on_array:
            write(weight, wb, b, s, clip(weight[wb, s] - d, w_min, w_max, clips, b, k), proj,
                  table, key, g, level, writes, frozen)
        else:
            weight[wb, s] = clip(weight[wb, s] - d, w_min, w_max, clips, b, k)


@njit(cache=True, nogil=True)
def post_spike(weight, wb, elig, b, j, csc_ptr, csc_syn, csc_pre, csc_rule, rule_f, rule_i,
               traces, amp_plus, clips, hw):
    """A postsynaptic spike of neuron j: step 2 at its incoming plastic synapses,
    one run of synapses of the same rule at a time."""
    q0, end = csc_ptr[j], csc_ptr[j + 1]
    while q0 < end:
        q1 = _run_end(csc_rule, q0, end)
        k = csc_rule[q0]
        _potentiate(weight, wb, elig, b, q0, q1, k, csc_syn, csc_pre, rule_f, rule_i, traces,
                    amp_plus[k], clips, hw)
        q0 = q1


@njit(cache=True, nogil=True)
def _potentiate(weight, wb, elig, b, q0, q1, k, csc_syn, csc_pre, rule_f, rule_i, traces, amp,
                clips, hw):
    """Step 2 for the incoming synapses csc_syn[q0:q1] of rule k."""
    kind = rule_i[k, KIND]
    if kind != STDP and rule_i[k, ELIG] == ELIG_PRE:
        return
    mult = rule_i[k, MULT] > 0
    w_min, w_max = rule_f[k, W_MIN], rule_f[k, W_MAX]
    x_base = rule_i[k, X_OFF] - rule_i[k, PRE_LO]
    learn, proj, table, key, g, level, writes, frozen = hw
    on_array = learn and table[proj[csc_syn[q0]], ON] > 0   # one projection: all or none
    for q in range(q0, q1):
        x = traces[b, x_base + csc_pre[q]]
        if x == 0:
            continue
        s = csc_syn[q]
        d = amp * x
        if mult:
            d = d * (w_max - weight[wb, s])
        if kind != STDP:
            elig[b, s] = elig[b, s] + d
        elif on_array:
            write(weight, wb, b, s, clip(weight[wb, s] + d, w_min, w_max, clips, b, k), proj,
                  table, key, g, level, writes, frozen)
        else:
            weight[wb, s] = clip(weight[wb, s] + d, w_min, w_max, clips, b, k)


@njit(cache=True, nogil=True)
def bump_traces(traces, b, j, rule_f, rule_i):
    """Raise the traces of neuron j for every rule it is pre or post of."""
    for k in range(rule_i.shape[0]):
        inc = rule_f[k, INC]
        nearest = rule_i[k, NEAREST] > 0
        if rule_i[k, PRE_LO] <= j < rule_i[k, PRE_HI]:
            i = rule_i[k, X_OFF] + j - rule_i[k, PRE_LO]
            traces[b, i] = inc if nearest else traces[b, i] + inc
        if rule_i[k, POST_LO] <= j < rule_i[k, POST_HI]:
            i = rule_i[k, Y_OFF] + j - rule_i[k, POST_LO]
            traces[b, i] = inc if nearest else traces[b, i] + inc


def trace_decay_table(layout) -> np.ndarray:
    """Per-trace decay factor (float32 [n_traces]), from the rule and modulator tables."""
    from spiking.plasticity.layout import M_TRACE_DECAY, M_TRACE_OFF, M_SIZE

    decay = np.ones(max(layout.n_traces, 1), np.float32)
    for k in range(layout.n_rules):
        r = layout.rule_i[k]
        decay[r[X_OFF]: r[X_OFF] + r[PRE_HI] - r[PRE_LO]] = layout.rule_f[k, X_DECAY]
        decay[r[Y_OFF]: r[Y_OFF] + r[POST_HI] - r[POST_LO]] = layout.rule_f[k, Y_DECAY]
    for m in range(len(layout.mod_names)):
        off = layout.mod_i[m, M_TRACE_OFF]
        if off >= 0:
            decay[off: off + layout.mod_i[m, M_SIZE]] = layout.mod_f[m, M_TRACE_DECAY]
    return decay


# ----------------------------------------------------------------------------- torch
def on_pre_torch(learner, b_rep, syn, post):
    """Batched :func:`pre_spike` for the (instance, synapse) pairs of this step's pre spikes."""
    import torch

    k = learner.syn_rule[syn].to(torch.int64)
    keep = k >= 0
    if not bool(keep.any()):
        return
    b_rep, syn, post, k = b_rep[keep], syn[keep], post[keep], k[keep]
    ri, rf = learner.rule_i, learner.rule_f
    kind, mode = ri[k, KIND], ri[k, ELIG]
    active = (kind == STDP) | (mode != ELIG_PRE)
    y = learner.traces[b_rep, ri[k, Y_OFF] + post - ri[k, POST_LO]]
    active = active & (y != 0)
    d = learner.amp_minus[b_rep, k] * y
    wb = b_rep if learner.weight.shape[0] > 1 else torch.zeros_like(b_rep)
    w = learner.weight[wb, syn]
    stdp_like = (kind == STDP) | (mode == ELIG_STDP)
    d = torch.where(stdp_like & (ri[k, MULT] > 0), d * (w - rf[k, W_MIN]), d)
    learner.update(active, kind == STDP, stdp_like, b_rep, wb, syn, k, w, -d, d)


def on_post_torch(learner, b_idx, post_idx):
    """Batched :func:`post_spike` for this step's post spikes (instance, neuron)."""
    import torch

    from spiking.backends.torch_backend import expand_rows

    start = learner.csc_ptr[post_idx]
    length = learner.csc_ptr[post_idx + 1] - start
    pos, row = expand_rows(start, length)
    if pos.numel() == 0:
        return
    syn = learner.csc_syn[pos]
    b_rep = b_idx[row]
    k = learner.syn_rule[syn].to(torch.int64)
    pre = learner.csc_pre[pos]
    ri, rf = learner.rule_i, learner.rule_f
    kind, mode = ri[k, KIND], ri[k, ELIG]
    x = learner.traces[b_rep, ri[k, X_OFF] + pre - ri[k, PRE_LO]]
    active = ((kind == STDP) | (mode != ELIG_PRE)) & (x != 0)
    d = learner.amp_plus[b_rep, k] * x
    wb = b_rep if learner.weight.shape[0] > 1 else torch.zeros_like(b_rep)
    w = learner.weight[wb, syn]
    d = torch.where(ri[k, MULT] > 0, d * (rf[k, W_MAX] - w), d)
    learner.update(active, kind == STDP, torch.ones_like(active), b_rep, wb, syn, k, w, d, d)
