"""Learning on the torch backend: the state and the per-step order of the numba
kernel (``spiking.backends.numba_backend.run_chunk``), batched over instances.

The rule arithmetic lives beside its numba twin in ``stdp.py``,
``three_factor.py`` and ``modulators.py``; this class holds the tensors and
runs the steps in order.
"""
from __future__ import annotations

import numpy as np
import torch

from spiking.plasticity import modulators, stdp, three_factor
from spiking.synapses.array_write import store_torch
from spiking.plasticity.layout import (A_MINUS, A_PLUS, AM_MOD, AM_SCALE, AP_MOD, AP_SCALE,
                                       ASTROCYTE, ERROR, KIND, LR_DECAY, M_COL, M_DECAY, M_KIND,
                                       M_POP_LO, M_SIGNAL_COL, M_SIZE, M_TRACE_OFF, REWARD,
                                       SIGNAL, THREE_FACTOR, W_MAX, W_MIN)


class TorchLearner:
    def __init__(self, backend):
        L = backend.layout
        self.backend = backend
        arr = backend._array
        self.rule_f = arr(L.rule_f)
        self.rule_i = arr(L.rule_i)
        self.rule_i_host = L.rule_i
        conn = backend.spec.connectivity
        tables = stdp.tables_torch(L, conn.target.astype(np.int64) % backend.spec.n_total, arr)
        self.synapse_tables, self.incoming = tables["synapse"], tables["incoming"]
        self.plastic_syn = arr(L.plastic_syn)
        self.plastic_pre, self.plastic_post = arr(L.plastic_pre), arr(L.plastic_post)
        self.mod_i_host = L.mod_i
        self.mod_f = arr(L.mod_f)
        self.astro_sign = arr(L.astro_sign.astype(np.int64))
        self.three_factor_rules = [k for k in range(L.n_rules) if L.rule_i[k, KIND] == THREE_FACTOR]
        mi = L.mod_i
        kinds = [int(mi[m, M_KIND]) for m in range(len(L.mod_names))]
        self.signal_mods = [(int(mi[m, M_COL]), int(mi[m, M_SIZE]), int(mi[m, M_SIGNAL_COL]), k,
                             int(mi[m, M_TRACE_OFF])) for m, k in enumerate(kinds) if k in (SIGNAL, ERROR)]
        self.error_mods = [(m, int(mi[m, M_COL]), int(mi[m, M_POP_LO]), int(mi[m, M_SIZE]),
                            int(mi[m, M_TRACE_OFF])) for m, k in enumerate(kinds) if k == ERROR]
        self.reward_mods = [(m, int(mi[m, M_COL]), self.mod_f[m, M_DECAY]) for m, k in enumerate(kinds)
                            if k == REWARD]
        self.astro_mods = [m for m, k in enumerate(kinds) if k == ASTROCYTE]
        self.amp_sources = []
        for k in range(L.n_rules):
            for which, amp_col, mod_col, scale_col in ((0, A_PLUS, AP_MOD, AP_SCALE),
                                                       (1, A_MINUS, AM_MOD, AM_SCALE)):
                mod = int(L.rule_i[k, mod_col])
                self.amp_sources.append((k, which, amp_col, scale_col,
                                         int(mi[mod, M_COL]) if mod >= 0 else -1))

    # the backend's learning state (replaced on reset, so always looked up)
    def __getattr__(self, name):
        learning = self.__dict__["backend"].learning
        if name in learning:
            return learning[name]
        if name == "weight":
            return self.__dict__["backend"].weight
        raise AttributeError(name)

    def begin_step(self, signal_row) -> None:
        traces = self.traces
        traces.mul_(self.trace_decay)
        modulators.begin_step_torch(self, signal_row)
        amp, lr, rf = self.amp, self.lr, self.rule_f
        for k, which, amp_col, scale_col, col in self.amp_sources:
            if col >= 0:
                amp[:, k, which] = rf[k, scale_col] * self.mod_state[:, col]
            else:
                amp[:, k, which] = rf[k, amp_col] * lr[:, k]

    @property
    def amp_plus(self):
        return self.amp[:, :, 0]

    @property
    def amp_minus(self):
        return self.amp[:, :, 1]

    def on_pre(self, b_rep, syn) -> None:
        stdp.on_pre_torch(self, b_rep, syn)

    def after_propagation(self, counts) -> None:
        b_idx, j_idx = torch.nonzero(counts, as_tuple=True)
        if b_idx.numel():
            stdp.on_post_torch(self, b_idx, j_idx)
            self._bump_traces(counts)
        modulators.on_spikes_torch(self, counts)
        if self.three_factor_rules:
            three_factor.apply_torch(self)
        modulators.end_step_torch(self)
        self.lr.mul_(self.rule_f[:, LR_DECAY])

    def _bump_traces(self, counts) -> None:
        """Each trace of the layout's trace table (rules may share one) once."""
        from spiking.plasticity.layout import T_BASE, T_NEAREST, T_POP

        spiked = counts > 0
        L = self.backend.layout
        for row, inc in zip(L.trace_i, L.trace_inc):
            pop = self.backend.spec.populations[int(row[T_POP])]
            base = int(row[T_BASE])
            part = self.traces[:, base + pop.offset: base + pop.stop]
            hit = spiked[:, pop.offset:pop.stop]
            if row[T_NEAREST]:
                part[hit] = float(inc)
            else:
                part += hit.to(torch.float32) * inc

    def weight_at(self, b_rep, syn):
        """The weights of (instance, synapse) pairs (shared weights: row 0)."""
        from spiking.backends.torch_backend import take_at

        return take_at(self.weight, b_rep, syn)

    def update(self, to_weight, stdp_like, b_rep, syn, k, w, dw, d_abs) -> None:
        """Apply one batch of active pairings: weights (STDP, clipped to the synapse's
        bounds) where ``to_weight``, eligibilities (three-factor) elsewhere.
        stdp_like: None when every pair is STDP-like."""
        if not bool(to_weight.all()):
            self._update_elig(~to_weight, stdp_like, b_rep, syn, dw, d_abs)
            b_rep, syn, k, w, dw = (x[to_weight] for x in (b_rep, syn, k, w, dw))
        if syn.numel() == 0:
            return
        tab = self.synapse_tables
        new = self.clip_pairs(w + dw, b_rep, k, tab["w_min"].index_select(0, syn),
                              tab["w_max"].index_select(0, syn))
        wb = b_rep if self.weight.shape[0] > 1 else torch.zeros_like(b_rep)
        if self.backend.hw_write["learn"]:
            store_torch(self.weight, self.backend.hw_write, b_rep, wb, syn, new)
        else:
            self.weight.view(-1).index_copy_(0, wb * self.weight.shape[1] + syn, new)

    def _update_elig(self, elig_rows, stdp_like, b_rep, syn, dw, d_abs) -> None:
        if not bool(elig_rows.any()):
            return
        stdp_like = torch.ones_like(elig_rows) if stdp_like is None else stdp_like
        e = self.elig[b_rep[elig_rows], syn[elig_rows]]
        delta = torch.where(stdp_like[elig_rows], dw[elig_rows], d_abs[elig_rows])
        self.elig[b_rep[elig_rows], syn[elig_rows]] = e + delta

    def store_rows(self, syn, values, active) -> None:
        """Set the [B, n] weights of synapses ``syn`` where ``active`` (three-factor rules),
        through the devices on a plastic hardware projection."""
        if self.backend.hw_write["learn"]:
            b, j = torch.nonzero(active, as_tuple=True)
            store_torch(self.weight, self.backend.hw_write, b, b, syn[j], values[b, j])
        else:
            wb = slice(None) if self.weight.shape[0] > 1 else slice(0, 1)
            self.weight[wb, syn] = values

    def clip_pairs(self, values, b_rep, k, low, high):
        """``values`` clipped to [low, high], counting clips per (instance, rule k)."""
        out = (values < low) | (values > high)
        if bool(out.any()):
            self.clips.index_put_((b_rep[out], k[out]), torch.ones_like(b_rep[out]), accumulate=True)
        return torch.minimum(torch.maximum(values, low), high)

    def clip_weights(self, values, active, k):
        """Clip [B, n] weights of rule k where ``active``, counting clips per instance."""
        low, high = self.rule_f[k, W_MIN], self.rule_f[k, W_MAX]
        out = active & ((values < low) | (values > high))
        self.clips[:, k] += out.sum(dim=1)
        clipped = torch.minimum(torch.maximum(values, low), high)
        return torch.where(active, clipped, values)
