"""Neuromodulators: global or per-neuron factors that learning rules read.

Declared once under ``modulators:`` and named by rules (``modulator:``,
``gate:``, or an amplitude ``{modulator: NAME}``). Values are float32
``mod_state[B, cols]``, updated once per step:

- at the start of a step: ``signal`` columns take this step's value from
  Python; ``error`` columns become target - y, with y the population's spike
  trace;
- at the end: ``reward`` relaxes to its baseline by exp(-dt/tau) (Python adds
  rewards with ``net.modulate``); the ``astrocyte`` integrates the step's spikes.

Astrocyte (NALSM, Ivanov & Michmizos 2021; the authors' NALSM_ASTRO.py,
``update_astro_state``): with r = dt / tau_astro,
    A <- A + r · (w_astro · (liquid spikes - input spikes) + b_astro - A),
one A per instance (initially A(0)), and with ``lr_decay`` f < 1, A, w_astro
and b_astro are multiplied by f per ms (their ``decay_astro_*``). A serves as
the STDP depression amplitude: ``a_minus: {modulator: astro}``.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from spiking.plasticity.layout import (ASTROCYTE, ERROR, M_BASELINE, M_BIAS, M_COL, M_DECAY, M_INITIAL,
                                       M_KIND, M_LR_DECAY, M_POP_LO, M_RATE, M_SIGNAL_COL,
                                       M_SIZE, M_TRACE_OFF, M_WEIGHT, REWARD, SIGNAL)


def initial_state(layout, instances: int):
    """mod_state [B, cols] and astrocyte parameters mod_aux [B, M, 2] (weight, bias)."""
    state = np.zeros((instances, max(layout.n_mod_cols, 1)), np.float32)
    aux = np.zeros((instances, max(len(layout.mod_names), 1), 2), np.float32)
    for m in range(len(layout.mod_names)):
        col, size = layout.mod_i[m, M_COL], layout.mod_i[m, M_SIZE]
        state[:, col:col + size] = layout.mod_f[m, M_INITIAL]
        aux[:, m, 0] = layout.mod_f[m, M_WEIGHT]
        aux[:, m, 1] = layout.mod_f[m, M_BIAS]
    return state, aux


@njit(cache=True, nogil=True)
def begin_step(b, sb, tt, mod_state, mod_i, signal_in, traces):
    for m in range(mod_i.shape[0]):
        kind = mod_i[m, M_KIND]
        if kind != SIGNAL and kind != ERROR:
            continue
        col, size, sig = mod_i[m, M_COL], mod_i[m, M_SIZE], mod_i[m, M_SIGNAL_COL]
        for i in range(size):
            value = signal_in[tt, sb, sig + i]
            if kind == ERROR:
                value = value - traces[b, mod_i[m, M_TRACE_OFF] + i]
            mod_state[b, col + i] = value


@njit(cache=True, nogil=True)
def on_spikes(b, spikes, counts, n_spikes, mod_i, astro_sign, astro_drive, traces):
    """This step's spikes (``counts[q]`` spikes of neuron ``spikes[q]``): astrocyte
    drive, and +1 on the error trace of a neuron."""
    for m in range(mod_i.shape[0]):
        kind = mod_i[m, M_KIND]
        for q in range(n_spikes):
            j = spikes[q]
            if kind == ASTROCYTE:
                astro_drive[m] += astro_sign[m, j] * counts[q]
            elif kind == ERROR:
                lo = mod_i[m, M_POP_LO]
                if lo <= j < lo + mod_i[m, M_SIZE]:
                    i = mod_i[m, M_TRACE_OFF] + j - lo
                    traces[b, i] = traces[b, i] + np.float32(1.0)


@njit(cache=True, nogil=True)
def end_step(b, mod_state, mod_aux, mod_i, mod_f, astro_drive):
    for m in range(mod_i.shape[0]):
        kind = mod_i[m, M_KIND]
        col = mod_i[m, M_COL]
        if kind == REWARD:
            base = mod_f[m, M_BASELINE]
            mod_state[b, col] = base + (mod_state[b, col] - base) * mod_f[m, M_DECAY]
        elif kind == ASTROCYTE:
            a = mod_state[b, col]
            drive = mod_aux[b, m, 0] * np.float32(astro_drive[m]) + mod_aux[b, m, 1]
            a = a + mod_f[m, M_RATE] * (drive - a)
            f = mod_f[m, M_LR_DECAY]
            mod_state[b, col] = a * f
            mod_aux[b, m, 0] = mod_aux[b, m, 0] * f
            mod_aux[b, m, 1] = mod_aux[b, m, 1] * f
        astro_drive[m] = 0


# ----------------------------------------------------------------------------- torch
def begin_step_torch(learner, signal_row):
    """signal_row: float32 [Bs, n_signal_cols] for this step."""
    for m in learner.signal_mods:
        col, size, sig, kind, off = m
        value = signal_row[:, sig:sig + size]
        if kind == ERROR:
            value = value - learner.traces[:, off:off + size]
        learner.mod_state[:, col:col + size] = value


def on_spikes_torch(learner, counts):
    """counts: int32 [B, N] spikes of this step."""
    import torch

    for m, col, lo, size, off in learner.error_mods:
        learner.traces[:, off:off + size] += (counts[:, lo:lo + size] > 0).to(torch.float32)
    for m in learner.astro_mods:
        learner.astro_drive[:, m] = (counts.to(torch.int64) * learner.astro_sign[m]).sum(dim=1)


def end_step_torch(learner):
    import torch

    for m, col, decay in learner.reward_mods:
        base = learner.mod_f[m, M_BASELINE]
        learner.mod_state[:, col] = base + (learner.mod_state[:, col] - base) * decay
    for m in learner.astro_mods:
        col = int(learner.mod_i_host[m, M_COL])
        a = learner.mod_state[:, col]
        drive = learner.mod_aux[:, m, 0] * learner.astro_drive[:, m].to(torch.float32) + learner.mod_aux[:, m, 1]
        a = a + learner.mod_f[m, M_RATE] * (drive - a)
        f = learner.mod_f[m, M_LR_DECAY]
        learner.mod_state[:, col] = a * f
        learner.mod_aux[:, m, 0] = learner.mod_aux[:, m, 0] * f
        learner.mod_aux[:, m, 1] = learner.mod_aux[:, m, 1] * f
