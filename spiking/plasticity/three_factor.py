"""Three-factor rules: dW = eta · G(t) · M(t) · e(t), applied every step.

- e(t), the eligibility, per synapse: ``eligibility: stdp`` (the STDP pairing of
  :mod:`spiking.plasticity.stdp` accumulates into e, as in Izhikevich 2007),
  ``hebbian`` (both orders of pairing add, a coincidence detector) or ``pre``
  (e is the presynaptic trace itself, so the rule is a delta rule when M is an
  error). e decays with ``tau_eligibility``.
- M(t), the modulator: a per-instance reward (dopamine), a signal given from
  Python, a per-output error (target - output), or the astrocyte.
- G(t), the gate: optional, a reward or signal modulator (an attention window).

Per step and instance, for every synapse of a three-factor projection:
``w += ((eta · lr) · G) · M · e``, clipped to [w_min, w_max] (clips counted),
then ``e *= exp(-dt / tau_eligibility)``; on a hardware projection each change is
a device write (:mod:`spiking.synapses.array_write`). This costs the projection's synapse
count per step: meant for readouts and small plastic projections.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from spiking.plasticity.layout import (E_DECAY, ELIG, ELIG_PRE, ETA, GATE, KIND, M_COL, M_POP_LO,
                                       M_SIZE, MOD, PRE_LO, SYN_HI, SYN_LO, THREE_FACTOR, W_MAX,
                                       W_MIN, X_OFF)
from spiking.plasticity.stdp import clip
from spiking.synapses.array_write import ON, write


@njit(cache=True, nogil=True)
def apply(weight, wb, elig, b, rule_f, rule_i, plastic_syn, plastic_pre, plastic_post, traces,
          mod_state, mod_i, lr, clips,
          hw_learn, hw_proj, hw_table, hw_key, hw_g, hw_level, hw_writes, hw_frozen):
    for k in range(rule_i.shape[0]):
        if rule_i[k, KIND] != THREE_FACTOR:
            continue
        gate = rule_i[k, GATE]
        g = mod_state[b, mod_i[gate, M_COL]] if gate >= 0 else np.float32(1.0)
        base = rule_f[k, ETA] * lr[b, k] * g
        mod = rule_i[k, MOD]
        col, size, pop_lo = mod_i[mod, M_COL], mod_i[mod, M_SIZE], mod_i[mod, M_POP_LO]
        from_trace = rule_i[k, ELIG] == ELIG_PRE
        decay = rule_f[k, E_DECAY]
        lo, hi = rule_i[k, SYN_LO], rule_i[k, SYN_HI]
        if base == 0 or (size == 1 and mod_state[b, col] == 0):  # no change this step
            if not from_trace:
                for p in range(lo, hi):
                    elig[b, plastic_syn[p]] *= decay
            continue
        on_array = hi > lo and hw_learn and hw_table[hw_proj[plastic_syn[lo]], ON] > 0
        x_base = rule_i[k, X_OFF] - rule_i[k, PRE_LO]
        w_min, w_max = rule_f[k, W_MIN], rule_f[k, W_MAX]
        for p in range(lo, hi):
            s = plastic_syn[p]
            if from_trace:
                e = traces[b, x_base + plastic_pre[p]]
            else:
                e = elig[b, s]
                elig[b, s] = e * decay
            m = mod_state[b, col] if size == 1 else mod_state[b, col + plastic_post[p] - pop_lo]
            if m != 0 and e != 0:
                value = clip(weight[wb, s] + base * m * e, w_min, w_max, clips, b, k)
                if on_array:
                    write(weight, wb, b, s, value, hw_proj, hw_table, hw_key, hw_g, hw_level,
                          hw_writes, hw_frozen)
                else:
                    weight[wb, s] = value


def apply_torch(learner):
    """Batched :func:`apply` over instances; same operations in the same order."""
    import torch

    ri, rf = learner.rule_i_host, learner.rule_f
    for k in learner.three_factor_rules:
        lo, hi = int(ri[k, SYN_LO]), int(ri[k, SYN_HI])
        syn = learner.plastic_syn[lo:hi]
        gate = int(ri[k, GATE])
        g = learner.mod_state[:, int(learner.mod_i_host[gate, M_COL])] if gate >= 0 else None
        base = rf[k, ETA] * learner.lr[:, k]
        if g is not None:
            base = base * g
        mod = int(ri[k, MOD])
        col, size, pop_lo = (int(x) for x in learner.mod_i_host[mod, [M_COL, M_SIZE, M_POP_LO]])
        if size == 1:
            m = learner.mod_state[:, col:col + 1]
        else:
            m = learner.mod_state[:, col + learner.plastic_post[lo:hi] - pop_lo]
        if int(ri[k, ELIG]) == ELIG_PRE:
            x_idx = int(ri[k, X_OFF]) + learner.plastic_pre[lo:hi] - int(ri[k, PRE_LO])
            e = learner.traces[:, x_idx]
        else:
            e = learner.elig[:, syn]
            learner.elig[:, syn] = e * rf[k, E_DECAY]
        wb = slice(None) if learner.weight.shape[0] > 1 else slice(0, 1)
        w = learner.weight[wb, syn]
        delta = base[:, None] * m * e
        active = (base[:, None] != 0) & (m != 0) & (e != 0)
        new = torch.where(active, w + delta, w)
        learner.store_rows(syn, learner.clip_weights(new, active, k), active)
