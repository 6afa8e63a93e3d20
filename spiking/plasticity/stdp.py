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

Deferred (``schedule: deferred``, additive STDP, numba backend). Step 2 walks
every incoming synapse of a post spike, which is most of the cost when the
fan-in is large (a liquid's 2312 input pixels). A deferred rule instead keeps,
per post neuron j, the float64 sum P_j of a_plus(tau) · h(tau) over its spikes
at steps tau, with h(tau) = x_decay ** (tau - ref) and ref the last
settlement, and per synapse the value ``snap`` of P_j when the synapse was last
brought up to date. Between two spikes of its pre neuron i, x_i only decays
(x_i(tau) = x_i(t) · h(tau) / h(t)), so all the potentiations a synapse got
since i's last spike sum to x_i(t) / h(t) · (P_j - snap), which is added
(and clipped) when i spikes again, before the spike is propagated: the
propagated weight, the depression and its order are those of the eager
schedule. Potentiation by a post spike in the same step as the pre spike
(which pairs with x_i before its bump) is applied directly after the
depression, as in step 2. Every ``deferred_span`` steps all pending sums are
settled and P restarts from 0, which bounds h's range (layout.DEFERRED_RANGE);
what is pending at the end of a run stays so until the backend's weights are
read (or a reset keeps them), and a reset with weights drops it unsettled, so
runs whose learned weights are thrown away (an LSM's feature phase) never pay
for it. The settling schedule does not depend on how a run is cut into chunks.
The result equals the eager schedule's up to float rounding, and up to the
order of clipping when a modulated a_plus changes sign between two spikes of
a pre neuron; clips are counted once per settled sum. A deferred rule keeps
its weights within [w_min, w_max] (the layout refuses initial weights outside
them; a weight set outside them later is clipped at its pre neuron's next
spike, before delivery), so its loops need no selects: a change of 0 leaves
a weight as it is. The torch backend runs deferred rules eagerly.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from spiking.models.base import N_SLOTS
from spiking.models.kernel import ring_slot
from spiking.synapses.array_write import ON, write
from spiking.plasticity.layout import (DEFER, ELIG, ELIG_HEBBIAN, ELIG_PRE, ELIG_STDP, KIND, MULT,
                                       P_OFF, POST_HI, POST_LO, POST_POP, PRE_HI, PRE_LO, STDP,
                                       T_BASE, T_NEAREST, T_POP, TARGET_OFF, W_MAX, W_MIN, X_DECAY,
                                       X_OFF, Y_DECAY, Y_OFF)


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
def _post_trace_base(rule_i, k):
    """Offset that turns a target of rule k's synapses (receptor slot · n_total + post
    neuron; one projection, so one slot: TARGET_OFF) into the index of its post trace."""
    return rule_i[k, Y_OFF] - rule_i[k, POST_LO] - rule_i[k, TARGET_OFF]


@njit(cache=True, nogil=True, inline="always")
def _post_sum_base(rule_i, k):
    """As :func:`_post_trace_base`, for the index of the post neuron's sum P of deferred
    rule k."""
    return rule_i[k, P_OFF] - rule_i[k, POST_LO] - rule_i[k, TARGET_OFF]


@njit(cache=True, nogil=True, inline="always")
def _run_end(rules, start, end):
    """End of the run of equal entries of ``rules`` that begins at ``start``."""
    stop = start + 1
    while stop < end and rules[stop] == rules[start]:
        stop += 1
    return stop


@njit(cache=True, nogil=True)
def pre_spikes(weight, wb, elig, b, spikes, n_spikes, row_run, run_lo, target,
               run_rule, rule_f, rule_i, traces, amp_minus, clips, hw):
    """This step's presynaptic spikes (after their propagation): step 1 at the eager
    plastic synapses of each CSR row, one run of synapses of the same rule at a time
    (``row_run``, ``run_lo``: layout.rule_runs); deferred rules had theirs in
    :func:`propagate_deferred`. One call per step: a call per spike would cost numba's
    reference counting of every array argument. hw: the hardware-write state
    (:mod:`spiking.synapses.array_write`) as one tuple."""
    for q in range(n_spikes):
        j = spikes[q]
        for r in range(row_run[j], row_run[j + 1]):
            s0, s1 = run_lo[r], run_lo[r + 1]
            k = run_rule[r]
            if k >= 0 and not rule_i[k, DEFER]:
                _depress(weight, wb, elig, b, s0, s1, k, target, rule_f, rule_i,
                         traces, amp_minus[k], clips, hw)


@njit(cache=True, nogil=True, inline="always")
def _depress(weight, wb, elig, b, s0, s1, k, target, rule_f, rule_i, traces, amp,
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
    y_base = _post_trace_base(rule_i, k)
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
def post_spikes(weight, wb, elig, b, spikes, n_spikes, csc_ptr, csc_syn, csc_pre, csc_rule,
                rule_f, rule_i, traces, amp_plus, clips, hw):
    """This step's postsynaptic spikes: step 2 at the incoming plastic synapses of
    each (eager rules), one run of synapses of the same rule at a time."""
    for q in range(n_spikes):
        j = spikes[q]
        q0, end = csc_ptr[j], csc_ptr[j + 1]
        while q0 < end:
            q1 = _run_end(csc_rule, q0, end)
            k = csc_rule[q0]
            if not rule_i[k, DEFER]:
                _potentiate(weight, wb, elig, b, q0, q1, k, csc_syn, csc_pre, rule_f, rule_i,
                            traces, amp_plus[k], clips, hw)
            q0 = q1


@njit(cache=True, nogil=True, inline="always")
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
def bump_traces(traces, b, first, spikes, trace_i, trace_inc, rule_i, amp_plus, psum, h):
    """Raise each trace (layout.trace_i: rules may share one) of this step's spiking
    neurons; a post spike of a deferred rule adds its term a_plus · h to the rule's P.
    Traces and rules cover whole populations; population p's spikes are
    spikes[first[p]:first[p + 1]]."""
    for u in range(trace_i.shape[0]):
        p, base, inc = trace_i[u, T_POP], trace_i[u, T_BASE], trace_inc[u]
        nearest = trace_i[u, T_NEAREST] > 0
        for q in range(first[p], first[p + 1]):
            i = base + spikes[q]
            traces[b, i] = inc if nearest else traces[b, i] + inc
    for k in range(rule_i.shape[0]):
        term = amp_plus[k] * h[k]
        if rule_i[k, DEFER] and term != 0:
            p, base = rule_i[k, POST_POP], rule_i[k, P_OFF] - rule_i[k, POST_LO]
            for q in range(first[p], first[p + 1]):
                psum[b, base + spikes[q]] += term


# ----------------------------------------------------------------------------- deferred
@njit(cache=True, nogil=True)
def deferred_factors(rule_f, rule_i, age, h, inv_h):
    """h[k] = x_decay_k ** age (float64) and its inverse, for the deferred rules."""
    for k in range(rule_i.shape[0]):
        if rule_i[k, DEFER]:
            h[k] = np.float64(rule_f[k, X_DECAY]) ** age
            inv_h[k] = 1.0 / h[k]


@njit(cache=True, nogil=True)
def propagate_deferred(weight, wb, b, spikes, counts, n_spikes, row_delay, delay, slot, ring,
                       row_run, run_lo, target, run_rule, rule_f, rule_i, traces, psum,
                       snap, h, inv_h, amp_minus, amp_plus, spiked, clips):
    """This step's spikes through their CSR rows when deferred rules learn (one call
    per step: a call per spike would cost numba's reference counting of every array
    argument). At each synapse of a deferred rule, in one pass: the potentiations
    pending since the pre neuron's last spike, the delivery into the ring buffer,
    step 1 and the same-step potentiation; the other synapses are delivered.
    ``spiked`` (uint8, the ring's width: N_SLOTS * n_total, all 0) marks this step's
    spikes meanwhile, in every receptor slot, so a synapse's target indexes it."""
    n_total = spiked.shape[0] // N_SLOTS
    for q in range(n_spikes):
        for o in range(0, spiked.shape[0], n_total):
            spiked[o + spikes[q]] = 1
    depth, stride, b_off = ring.shape[0], ring.shape[1] * ring.shape[2], b * ring.shape[2]
    ring_flat = ring.reshape(-1)   # offsets from _ring_at
    for q in range(n_spikes):
        j = spikes[q]
        if row_delay[j] >= 0:   # one delay for the row: its ring offset, the same for all
            at = ring_slot(slot, row_delay[j], depth) * stride + b_off
            _deferred_row(weight, wb, b, j, counts[q], at, True, delay, slot, depth, stride,
                          b_off, ring_flat, row_run, run_lo, target, run_rule, rule_f, rule_i,
                          traces, psum, snap, h, inv_h, amp_minus, amp_plus, spiked, clips)
        else:
            _deferred_row(weight, wb, b, j, counts[q], 0, False, delay, slot, depth, stride,
                          b_off, ring_flat, row_run, run_lo, target, run_rule, rule_f, rule_i,
                          traces, psum, snap, h, inv_h, amp_minus, amp_plus, spiked, clips)
    for q in range(n_spikes):
        for o in range(0, spiked.shape[0], n_total):
            spiked[o + spikes[q]] = 0


@njit(cache=True, nogil=True, inline="always")
def _deferred_row(weight, wb, b, j, c, at, uniform, delay, slot, depth, stride, b_off, ring_flat,
                  row_run, run_lo, target, run_rule, rule_f, rule_i, traces, psum, snap, h, inv_h,
                  amp_minus, amp_plus, spiked, clips):
    """Pre neuron j's spike (count c) through its row, one run of a rule at a time.
    ``uniform``: a constant at each (inlined) call, so the per-synapse loops are
    compiled for rows of one delay and for the others apart."""
    for r in range(row_run[j], row_run[j + 1]):
        s0, s1 = run_lo[r], run_lo[r + 1]
        k = run_rule[r]
        if k >= 0 and rule_i[k, DEFER]:
            _deferred_spike(weight, wb, b, j, c, s0, s1, k, at, uniform, delay, slot, depth,
                            stride, b_off, ring_flat, target, rule_f, rule_i, traces, psum, snap,
                            h[k], inv_h[k], amp_minus[k], amp_plus[k], spiked, clips)
        else:
            for s in range(s0, s1):
                ring_flat[np.uint64(_ring_at(at, uniform, delay, s, slot, depth, stride, b_off)
                                    + target[s])] += weight[wb, s] * c


@njit(cache=True, nogil=True, inline="always")
def _ring_at(at, uniform, delay, s, slot, depth, stride, b_off):
    """Flat offset of synapse s's ring row: ``at`` when the spike's row has one delay
    (``uniform``), else from its own delay. (Indices here are cast unsigned where they go
    into arrays: numba's wraparound of negative indices costs instructions per synapse.)"""
    if uniform:
        return at
    return ring_slot(slot, delay[s], depth) * stride + b_off


@njit(cache=True, nogil=True, inline="always")
def _deferred_spike(weight, wb, b, j, c, s0, s1, k, at, uniform, delay, slot, depth, stride,
                    b_off, ring_flat, target, rule_f, rule_i, traces, psum, snap, h, inv_h,
                    amp_minus, amp_plus, spiked, clips):
    """Synapses [s0, s1) of deferred rule k at pre neuron j's spike: w += x_j / h ·
    (P_post - snap) (the pending potentiations), then w is propagated, then step 1,
    then step 2 where the post neuron spiked in this step too (x_j before its bump);
    snap becomes P_post, past that same-step term. Branch-free on data except for
    that same-step term (a few % of synapses: a branch costs less than its arithmetic
    at every synapse)."""
    w_min, w_max = rule_f[k, W_MIN], rule_f[k, W_MAX]
    y_base = _post_trace_base(rule_i, k)
    p_base = _post_sum_base(rule_i, k)
    x = traces[b, rule_i[k, X_OFF] + j - rule_i[k, PRE_LO]]
    factor = x * inv_h
    up = amp_plus * x
    term = amp_plus * h
    n_clip = 0
    for s in range(np.uint64(s0), np.uint64(s1)):
        post = target[s]
        yp = np.uint64(y_base + post)
        p = psum[b, np.uint64(p_base + post)]
        w, clipped = _pending(weight[wb, s], factor, p, snap[b, s], w_min, w_max)
        ring_flat[np.uint64(_ring_at(at, uniform, delay, s, slot, depth, stride, b_off) + post)] += w * c
        w, clipped_down = _bounded(w - amp_minus * traces[b, yp], w_min, w_max)
        n_clip += clipped + clipped_down
        if spiked[np.uint64(post)]:   # the post neuron spiked in this step too (rare)
            w, clipped_up = _bounded(w + up, w_min, w_max)
            n_clip += clipped_up
            p += term
        weight[wb, s] = w
        snap[b, s] = p
    clips[b, k] += n_clip


@njit(cache=True, nogil=True, inline="always")
def _settle_run(weight, wb, b, s0, s1, k, target, rule_f, rule_i, factor, psum,
                snap, clips):
    """Synapses [s0, s1) of deferred rule k: their pending potentiations, with snap
    reset to 0 for P's restart. Branch-free, as :func:`_deferred_spike`."""
    w_min, w_max = rule_f[k, W_MIN], rule_f[k, W_MAX]
    p_base = _post_sum_base(rule_i, k)
    n_clip = 0
    for s in range(np.uint64(s0), np.uint64(s1)):
        weight[wb, s], clipped = _pending(weight[wb, s], factor,
                                          psum[b, np.uint64(p_base + target[s])], snap[b, s],
                                          w_min, w_max)
        n_clip += clipped
        snap[b, s] = 0.0
    clips[b, k] += n_clip


@njit(cache=True, nogil=True, inline="always")
def _pending(w, factor, p, snap, w_min, w_max):
    """w plus the potentiations pending since snap was taken, factor · (P - snap),
    bounded (:func:`_bounded`)."""
    return _bounded(np.float32(w + factor * (p - snap)), w_min, w_max)


@njit(cache=True, nogil=True, inline="always")
def _bounded(v, w_min, w_max):
    """(v clipped to [w_min, w_max], whether it was clipped). Branch-free; a change of 0
    leaves a weight within its bounds as it is, uncounted, so no select is needed."""
    bounded = min(max(v, w_min), w_max)
    return bounded, bounded != v


@njit(cache=True, nogil=True)
def settle(weight, wb, b, row_run, run_lo, target, run_rule, rule_f, rule_i, traces,
           psum, snap, inv_h, clips):
    """Settle every pending potentiation of the deferred rules (synapses whose pre
    trace is 0 have none), then restart P from 0."""
    for k in range(rule_i.shape[0]):
        if not rule_i[k, DEFER]:
            continue
        for i in range(rule_i[k, PRE_LO], rule_i[k, PRE_HI]):
            x = traces[b, rule_i[k, X_OFF] + i - rule_i[k, PRE_LO]]
            if x == 0:
                continue
            for r in range(row_run[i], row_run[i + 1]):
                s0, s1 = run_lo[r], run_lo[r + 1]
                if run_rule[r] == k:
                    _settle_run(weight, wb, b, s0, s1, k, target, rule_f, rule_i,
                                x * inv_h[k], psum, snap, clips)
    for k in range(rule_i.shape[0]):
        if rule_i[k, DEFER]:
            lo = rule_i[k, P_OFF]
            psum[b, lo:lo + rule_i[k, POST_HI] - rule_i[k, POST_LO]] = 0.0


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
def tables_torch(layout, post_of: np.ndarray, arr) -> dict:
    """What the torch pairings read, gathered once from the rule tables. ``synapse``:
    per synapse (CSR order; post_of: its post neuron), its rule (0 when static), the
    index of its post trace, whether a pre spike pairs (``pre_gate``: plastic, and STDP
    or an eligibility rule other than pre-only), whether the depression is
    multiplicative, w_min and w_max, whether it writes the weight (STDP, else an
    eligibility) and whether it is STDP-like. ``incoming`` (None without plastic
    synapses): the incoming plastic synapses of the post neurons [lo, hi) as padded
    [rows, width] tables (padding: gate False) of synapse, rule, pre trace index,
    gate, multiplicative and writes-weight. ``arr``: numpy -> backend tensor."""
    from spiking.backends.base import padded_rows

    ri, rf = layout.rule_i, layout.rule_f
    rule = layout.syn_rule.astype(np.int64)
    k = np.maximum(rule, 0)
    kind, mode = ri[k, KIND], ri[k, ELIG]
    stdp_like = (kind == STDP) | (mode == ELIG_STDP)
    out = {"incoming": None, "synapse": {
        "k": arr(k), "y": arr(np.where(rule >= 0, ri[k, Y_OFF] + post_of - ri[k, POST_LO], 0)),
        "pre_gate": arr((rule >= 0) & ((kind == STDP) | (mode != ELIG_PRE))),
        "pre_mult": arr(stdp_like & (ri[k, MULT] > 0)),
        "w_min": arr(rf[k, W_MIN]), "w_max": arr(rf[k, W_MAX]),
        "to_weight": arr(kind == STDP), "stdp_like": arr(stdp_like)}}
    ptr = layout.csc_ptr
    fan = np.diff(ptr)
    rows = np.flatnonzero(fan)
    if rows.size:
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        valid, pos = padded_rows(ptr, lo, hi, int(fan.max()))
        syn = layout.csc_syn[pos].astype(np.int64)
        kk = np.where(valid, np.maximum(layout.syn_rule[syn].astype(np.int64), 0), 0)
        kind = ri[kk, KIND]
        out["incoming"] = {
            "lo": lo, "hi": hi, "syn": arr(syn), "k": arr(kk),
            "x": arr(np.where(valid, ri[kk, X_OFF] + layout.csc_pre[pos] - ri[kk, PRE_LO], 0)),
            "gate": arr(valid & ((kind == STDP) | (ri[kk, ELIG] != ELIG_PRE))),
            "mult": arr(ri[kk, MULT] > 0), "to_weight": arr(kind == STDP)}
    return out


def on_pre_torch(learner, b_rep, syn):
    """Batched :func:`pre_spikes` for the (instance, synapse) pairs of this step's pre
    spikes: pairs with a post trace of 0 or a rule that does not pair are dropped first."""
    import torch

    from spiking.backends.torch_backend import take_at

    tab = learner.synapse_tables
    y = take_at(learner.traces, b_rep, tab["y"].index_select(0, syn))
    keep = torch.nonzero(tab["pre_gate"].index_select(0, syn) & (y != 0), as_tuple=True)[0]
    if keep.numel() == 0:
        return
    b_rep, syn, y = b_rep[keep], syn[keep], y[keep]
    k = tab["k"].index_select(0, syn)
    d = learner.amp_minus[b_rep, k] * y
    w = learner.weight_at(b_rep, syn)
    d = torch.where(tab["pre_mult"].index_select(0, syn), d * (w - tab["w_min"].index_select(0, syn)), d)
    learner.update(tab["to_weight"].index_select(0, syn), tab["stdp_like"].index_select(0, syn),
                   b_rep, syn, k, w, -d, d)


def on_post_torch(learner, b_idx, post_idx):
    """Batched :func:`post_spikes` for this step's post spikes (instance, neuron), through
    the padded incoming tables; pairs with a pre trace of 0 are dropped first."""
    import torch

    from spiking.backends.torch_backend import take_at

    tab = learner.incoming
    if tab is None:
        return
    inside = torch.nonzero((post_idx >= tab["lo"]) & (post_idx < tab["hi"]), as_tuple=True)[0]
    b, r = b_idx[inside], post_idx[inside] - tab["lo"]
    x = take_at(learner.traces, b[:, None], tab["x"].index_select(0, r))
    rows, cols = torch.nonzero(tab["gate"].index_select(0, r) & (x != 0), as_tuple=True)
    if rows.numel() == 0:
        return
    b_rep = b.index_select(0, rows)
    entry = r.index_select(0, rows) * x.shape[1] + cols      # flat position in the tables
    x = x.view(-1).take(rows * x.shape[1] + cols)
    syn, k = tab["syn"].view(-1).take(entry), tab["k"].view(-1).take(entry)
    d = learner.amp_plus[b_rep, k] * x
    w = learner.weight_at(b_rep, syn)
    d = torch.where(tab["mult"].view(-1).take(entry),
                    d * (learner.synapse_tables["w_max"].index_select(0, syn) - w), d)
    learner.update(tab["to_weight"].view(-1).take(entry), None, b_rep, syn, k, w, d, d)
