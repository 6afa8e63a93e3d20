"""Izhikevich (2003) neuron, "Simple model of spiking neurons", IEEE TNN 14:1569.

    dv/dt = 0.04 v^2 + 5 v + 140 - u + I      (v in mV, t in ms)
    du/dt = a (b v - u)
    if v >= v_peak: v <- c, u <- u + d

I = i_offset + i_noise·ξ + i_syn_E + i_syn_I is in the model's own units
(mV/ms, i.e. pA with C = 1 pF as in the paper); ξ is a fresh standard normal
number per neuron and step (the paper's random thalamic input, 5·randn for
excitatory and 2·randn for inhibitory neurons), drawn from the counter-based
generator (Box-Muller), so both backends see the same noise.

Synaptic currents decay with tau_syn_E/I; with
tau_syn = 0 (the default) a delivered weight acts as a current for exactly one
step, as the summed S(:, fired) term in the paper's code does.

Integration schemes (option ``scheme``):
- ``izhikevich2003`` (default): the paper's code, v advanced in two half steps
  of dt/2, then u with one step of dt using the new v;
- ``euler``: forward Euler for v and u from the old values (Brian2's
  ``method='euler'``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from spiking.models.base import N_STATE, ModelInfo, Param, StateVar, f32, register_model
from spiking.models.kernel import RECEIVES, UNIFORM, at, collect, first_nonfinite, take_input
from spiking.rng import normals

A, B, C, D, V_PEAK, I_OFFSET, P_EE, P_II, DT, SCHEME, NOISE = range(11)
N_COEF = 11
V, U, I_E, I_I = range(4)
EULER, IZHIKEVICH2003 = 0.0, 1.0
SCHEMES = {"izhikevich2003": IZHIKEVICH2003, "euler": EULER}

K2 = np.float32(0.04)
K1 = np.float32(5.0)
K0 = np.float32(140.0)
HALF = np.float32(0.5)


def prepare(params: dict, options: dict, dt: float) -> np.ndarray:
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    n = p["a"].shape[0]
    coef = np.empty((N_COEF, n), dtype=np.float64)
    for row, name in ((A, "a"), (B, "b"), (C, "c"), (D, "d"), (V_PEAK, "v_peak"),
                      (I_OFFSET, "i_offset"), (NOISE, "i_noise")):
        coef[row] = p[name]
    for row, name in ((P_EE, "tau_syn_E"), (P_II, "tau_syn_I")):
        tau = p[name]
        coef[row] = np.where(tau > 0, np.exp(-dt / np.where(tau > 0, tau, 1.0)), 0.0)
    coef[DT] = dt
    coef[SCHEME] = SCHEMES[options.get("scheme", "izhikevich2003")]
    return f32(coef)


def initial_state(params: dict, initial: dict) -> np.ndarray:
    n = len(params["a"])
    state = np.zeros((N_STATE, n), dtype=np.float64)
    state[V] = initial.get("v", np.full(n, -65.0))
    state[U] = initial.get("u", np.asarray(params["b"]) * state[V])
    state[I_E] = initial.get("i_syn_E", 0.0)
    state[I_I] = initial.get("i_syn_I", 0.0)
    return f32(state)


INFO = register_model(ModelInfo(
    name="izhikevich",
    kind="neuron",
    doc=__doc__,
    params={
        "a": Param("dimensionless", 0.02, "recovery time scale (1/ms)"),
        "b": Param("dimensionless", 0.2, "recovery sensitivity to v"),
        "c": Param("voltage", -65.0, "reset potential (mV)"),
        "d": Param("dimensionless", 8.0, "recovery increment after a spike (mV/ms)"),
        "v_peak": Param("voltage", 30.0, "spike cut-off (mV)"),
        "i_offset": Param("dimensionless", 0.0, "constant input current (mV/ms)"),
        "i_noise": Param("dimensionless", 0.0, "std of a white-noise current drawn each step", low=0.0),
        "tau_syn_E": Param("time", 0.0, "excitatory current decay (ms); 0: one step", low=0.0),
        "tau_syn_I": Param("time", 0.0, "inhibitory current decay (ms); 0: one step", low=0.0),
    },
    state={
        "v": StateVar("voltage", -65.0, "membrane potential (mV)"),
        "u": StateVar("dimensionless", "b*v", "recovery variable"),
        "i_syn_E": StateVar("dimensionless", 0.0, "excitatory current"),
        "i_syn_I": StateVar("dimensionless", 0.0, "inhibitory current"),
    },
    receptors=("excitatory", "inhibitory", "v"),
    receptor_dimensions={"excitatory": "dimensionless", "inhibitory": "dimensionless",
                         "v": "voltage"},
    options={"scheme": ("izhikevich2003", "euler")},
    prepare=prepare,
    initial_state=initial_state,
    state_rows={"v": V, "u": U, "i_syn_E": I_E, "i_syn_I": I_I},
    model_id=2,
))


@njit(cache=True, nogil=True, inline="always")
def _dvdt(v, u, i):
    return K2 * v * v + K1 * v + K0 - u + i


@njit(cache=True, nogil=True)
def _integrate(state, ring, b, lo, n, slot, n_total, fired, mode, z, dt,
               half_steps, a, b_, c, d, v_peak, i_offset, p_ee, p_ii, noise):
    """Pass 1 over neurons [lo, lo + n) of instance b, in place as
    :func:`spiking.models.lif._integrate`; coefficients are scalars or rows from lo
    (see :func:`spiking.models.kernel.at`); z: this step's standard normals, or an
    empty row when no neuron is noisy. Returns True if v or u is not finite."""
    use_e, use_i, use_v = mode & RECEIVES[0], mode & RECEIVES[1], mode & RECEIVES[2]
    bad = False
    for j in range(np.uint64(n)):
        k = np.uint64(lo) + j
        i_e = state[I_E, b, k] + take_input(ring, slot, b, k, use_e)
        i_i = state[I_I, b, k] + take_input(ring, slot, b, np.uint64(n_total) + k, use_i)
        v = state[V, b, k] + take_input(ring, slot, b, np.uint64(2 * n_total) + k, use_v)
        u = state[U, b, k]
        current = at(i_offset, j) + i_e + i_i
        if at(noise, j) > 0:
            current = current + at(noise, j) * np.float32(z[j])
        if half_steps:
            h = dt * HALF
            v = v + h * _dvdt(v, u, current)
            v = v + h * _dvdt(v, u, current)
            u = u + dt * (at(a, j) * (at(b_, j) * v - u))
        else:
            v_old = v
            v = v + dt * _dvdt(v, u, current)
            u = u + dt * (at(a, j) * (at(b_, j) * v_old - u))
        spiked = v >= at(v_peak, j)
        v = at(c, j) if spiked else v
        u = u + at(d, j) if spiked else u
        state[V, b, k] = v
        state[U, b, k] = u
        state[I_E, b, k] = i_e * at(p_ee, j)
        state[I_I, b, k] = i_i * at(p_ii, j)
        fired[j] = spiked
        bad |= not (abs(v) < np.inf and abs(u) < np.inf)
    return bad


@njit(cache=True, nogil=True)
def _noise(i_noise, keys, t, b):
    """This step's standard normals for the population (float64 [n]), or an
    empty row when i_noise is 0 everywhere; keys: the population's normal keys."""
    if i_noise.max() <= 0:
        return np.empty(0, np.float64)
    z = np.empty(i_noise.shape[0], np.float64)
    normals(keys, t, b, z)
    return z


@njit(cache=True, nogil=True)
def step_numba(state, coef, ring, slot, b, lo, hi, n_total, spikes, n_spikes, t, stream_keys,
               mode, fired, fired_words):
    """Advance neurons [lo, hi) of instance b by one step (see lif.step_numba); the
    population's stream keys ``stream_keys[2 lo:2 hi]`` drive its noise current
    (``normal_keys``)."""
    n = hi - lo
    shared = (state, ring, b, lo, n, slot, n_total, fired, mode,
            _noise(coef[NOISE, lo:hi], stream_keys[2 * lo:2 * hi], t, b), coef[DT, lo],
            coef[SCHEME, lo] > 0)
    if mode & UNIFORM:
        bad = _integrate(*shared, coef[A, lo], coef[B, lo], coef[C, lo], coef[D, lo],
                         coef[V_PEAK, lo], coef[I_OFFSET, lo], coef[P_EE, lo], coef[P_II, lo],
                         coef[NOISE, lo])
    else:
        bad = _integrate(*shared, coef[A, lo:hi], coef[B, lo:hi], coef[C, lo:hi], coef[D, lo:hi],
                         coef[V_PEAK, lo:hi], coef[I_OFFSET, lo:hi], coef[P_EE, lo:hi],
                         coef[P_II, lo:hi], coef[NOISE, lo:hi])
    if bad:
        nan_v = first_nonfinite(state[V, b, lo:hi], lo, n)
        return nan_v if nan_v < 0 else first_nonfinite(state[U, b, lo:hi], lo, n)
    return collect(fired_words, fired, lo, n, spikes, n_spikes)


def _dvdt_torch(v, u, i):
    return v * float(K2) * v + v * float(K1) + float(K0) - u + i


def step_torch(state, coef, syn_e, syn_i, syn_v, options, noise):
    """One step of a [B, n] block: returns the new state [N_STATE, B, n] (rows V, U,
    I_E, I_I), the spike mask [B, n] and, per instance, whether a v or u is not
    finite [B]. Pure (``state`` is not changed), as the LIF step.
    noise: None, or (when any neuron has i_noise > 0) this step's standard
    normals [B, n] (float64).
    Same operations, in the same order, as :func:`step_numba`."""
    import torch

    i_e = state[I_E] + syn_e
    i_i = state[I_I] + syn_i
    v = state[V] + syn_v
    u = state[U]
    dt = coef[DT]
    current = coef[I_OFFSET] + i_e + i_i
    if noise is not None:
        current = current + coef[NOISE] * noise.to(torch.float32)
    if options.get("scheme", "izhikevich2003") == "izhikevich2003":
        h = dt * float(HALF)
        v = v + h * _dvdt_torch(v, u, current)
        v = v + h * _dvdt_torch(v, u, current)
        u = u + dt * (coef[A] * (coef[B] * v - u))
    else:
        v_old = v
        v = v + dt * _dvdt_torch(v, u, current)
        u = u + dt * (coef[A] * (coef[B] * v_old - u))
    spiked = v >= coef[V_PEAK]
    v = torch.where(spiked, coef[C].expand_as(v), v)
    u = torch.where(spiked, u + coef[D], u)
    new = torch.stack([v, u, i_e * coef[P_EE], i_i * coef[P_II]])   # rows V, U, I_E, I_I
    return new, spiked, ~(torch.isfinite(v) & torch.isfinite(u)).all(dim=1)
