"""Leaky integrate-and-fire neuron with exponential current synapses (PyNN IF_curr_exp).

    dv/dt   = (v_rest - v) / tau_m + (i_syn_E + i_syn_I + i_offset) / cm
    di_X/dt = -i_X / tau_syn_X

Units: ms, mV, nA, nF (nA / nF = mV / ms). Integration is exact over each step
(the linear system has a closed-form propagator), so the result does not depend
on dt beyond spike-time discretisation. Refractoriness: a neuron that spikes in
step s integrates again in step s + round(tau_refrac / dt); in between, v is
held at v_reset (``refractory: clamp``, as PyNN and Brian2 do; voltage jumps
arriving meanwhile are dropped, as NEST does) or keeps
integrating without being able to spike (``refractory: free``, as the NALSM
liquid does). Synaptic currents keep decaying and receiving input throughout.

Both backends run the same float32 operations in the same order, so
deterministic networks produce identical spikes on numba and torch.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from spiking.models.base import N_STATE, ModelInfo, Param, StateVar, f32, register_model
from spiking.models.kernel import RECEIVES, UNIFORM, at, collect, first_nonfinite, take_input

# Coefficient rows (per neuron, float32).
P_VV, C_V, P_VE, P_VI, P_EE, P_II, V_THRESH, V_RESET, REF_STEPS, CLAMP = range(10)
N_COEF = 10
# State rows.
V, I_E, I_I, REF_LEFT = range(4)


def _decay_current_into_v(dt, tau_m, tau_s, cm):
    """Voltage at the end of a step per unit initial current, exact (mV/nA)."""
    same = np.isclose(tau_s, tau_m, rtol=1e-9)
    safe_tau_s = np.where(same, tau_s + 1.0, tau_s)
    general = tau_m * safe_tau_s / (safe_tau_s - tau_m) * (
        np.exp(-dt / safe_tau_s) - np.exp(-dt / tau_m)) / cm
    limit = dt * np.exp(-dt / tau_m) / cm
    return np.where(same, limit, general)


def prepare(params: dict, options: dict, dt: float) -> np.ndarray:
    """Per-neuron propagator coefficients, float32 [N_COEF, n]."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    tau_m, cm = p["tau_m"], p["cm"]
    p_vv = np.exp(-dt / tau_m)
    v_inf = p["v_rest"] + p["i_offset"] * tau_m / cm
    ref_steps = np.maximum(np.rint(p["tau_refrac"] / dt), 1.0) - 1.0
    clamp = 1.0 if options.get("refractory", "clamp") == "clamp" else 0.0
    n = tau_m.shape[0]
    coef = np.empty((N_COEF, n), dtype=np.float64)
    coef[P_VV] = p_vv
    coef[C_V] = v_inf * (1.0 - p_vv)
    coef[P_VE] = _decay_current_into_v(dt, tau_m, p["tau_syn_E"], cm)
    coef[P_VI] = _decay_current_into_v(dt, tau_m, p["tau_syn_I"], cm)
    coef[P_EE] = np.exp(-dt / p["tau_syn_E"])
    coef[P_II] = np.exp(-dt / p["tau_syn_I"])
    coef[V_THRESH] = p["v_thresh"]
    coef[V_RESET] = p["v_reset"]
    coef[REF_STEPS] = ref_steps
    coef[CLAMP] = clamp
    return f32(coef)


def initial_state(params: dict, initial: dict) -> np.ndarray:
    n = len(params["v_rest"])
    state = np.zeros((N_STATE, n), dtype=np.float64)
    state[V] = initial.get("v", params["v_rest"])
    state[I_E] = initial.get("i_syn_E", 0.0)
    state[I_I] = initial.get("i_syn_I", 0.0)
    return f32(state)


INFO = register_model(ModelInfo(
    name="lif",
    kind="neuron",
    doc=__doc__,
    params={
        "cm": Param("capacitance", 1.0, "membrane capacitance (nF)", low=0.0, low_exclusive=True),
        "tau_m": Param("time", 20.0, "membrane time constant (ms)", low=0.0, low_exclusive=True),
        "v_rest": Param("voltage", -65.0, "resting potential (mV)"),
        "v_reset": Param("voltage", -65.0, "reset potential (mV)"),
        "v_thresh": Param("voltage", -50.0, "spike threshold (mV)"),
        "tau_refrac": Param("time", 0.1, "refractory period (ms)", low=0.0),
        "tau_syn_E": Param("time", 5.0, "excitatory synaptic time constant (ms)", low=0.0, low_exclusive=True),
        "tau_syn_I": Param("time", 5.0, "inhibitory synaptic time constant (ms)", low=0.0, low_exclusive=True),
        "i_offset": Param("current", 0.0, "constant injected current (nA)"),
    },
    state={
        "v": StateVar("voltage", "v_rest", "membrane potential (mV)"),
        "i_syn_E": StateVar("current", 0.0, "excitatory synaptic current (nA)"),
        "i_syn_I": StateVar("current", 0.0, "inhibitory synaptic current (nA)"),
    },
    receptors=("excitatory", "inhibitory", "v"),
    receptor_dimensions={"excitatory": "current", "inhibitory": "current", "v": "voltage"},
    options={"refractory": ("clamp", "free")},
    prepare=prepare,
    initial_state=initial_state,
    state_rows={"v": V, "i_syn_E": I_E, "i_syn_I": I_I},
    model_id=1,
))


@njit(cache=True, nogil=True)
def _integrate(state, ring, b, lo, n, slot, n_total, fired, mode,
               p_vv, c_v, p_ve, p_vi, p_ee, p_ii, v_thresh, v_reset, ref_steps, clamp):
    """Pass 1 over neurons [lo, lo + n) of instance b, reading and clearing their entries
    of ring slot ``slot`` (indexed in place: array views, one per row and step, would
    cost numba's reference counting); coefficients are scalars or rows from lo (see
    :func:`spiking.models.kernel.at`). Returns True if a v is not finite."""
    use_e, use_i, use_v = mode & RECEIVES[0], mode & RECEIVES[1], mode & RECEIVES[2]
    bad = False
    for j in range(np.uint64(n)):
        k = np.uint64(lo) + j
        i_e = state[I_E, b, k] + take_input(ring, slot, b, k, use_e)
        i_i = state[I_I, b, k] + take_input(ring, slot, b, np.uint64(n_total) + k, use_i)
        v_old = state[V, b, k]
        v = v_old + take_input(ring, slot, b, np.uint64(2 * n_total) + k, use_v)
        ref = state[REF_LEFT, b, k]
        refractory = ref > 0
        integrated = v * at(p_vv, j) + at(c_v, j) + i_e * at(p_ve, j) + i_i * at(p_vi, j)
        # held while refractory: jumps arriving now are dropped, as in NEST and Brian2
        v = v_old if refractory and clamp else integrated
        spiked = v >= at(v_thresh, j) and not refractory
        v = at(v_reset, j) if spiked else v
        state[REF_LEFT, b, k] = at(ref_steps, j) if spiked else (ref - 1 if refractory else ref)
        state[V, b, k] = v
        state[I_E, b, k] = i_e * at(p_ee, j)
        state[I_I, b, k] = i_i * at(p_ii, j)
        fired[j] = spiked
        bad |= not abs(v) < np.inf
    return bad


@njit(cache=True, nogil=True)
def step_numba(state, coef, ring, slot, b, lo, hi, n_total, spikes, n_spikes, t, stream_keys,
               mode, fired, fired_words):
    """Advance neurons [lo, hi) of instance b by one step.

    Reads and clears this step's ring-buffer slot, appends spiking neuron
    indices to ``spikes`` and returns the new count, or -1 - j if neuron j
    became NaN or infinite. stream_keys: every neuron's random-stream keys, two per
    neuron (unused by LIF); mode: the population's mode word
    (:mod:`spiking.models.kernel`); fired: uint8 scratch of at least hi - lo bytes,
    the bytes of ``fired_words`` (uint64; :func:`spiking.models.kernel.collect`).
    """
    n = hi - lo
    clamp = coef[CLAMP, lo] > 0
    if mode & UNIFORM:
        bad = _integrate(state, ring, b, lo, n, slot, n_total, fired, mode, coef[P_VV, lo],
                         coef[C_V, lo], coef[P_VE, lo], coef[P_VI, lo], coef[P_EE, lo],
                         coef[P_II, lo], coef[V_THRESH, lo], coef[V_RESET, lo],
                         coef[REF_STEPS, lo], clamp)
    else:
        bad = _integrate(state, ring, b, lo, n, slot, n_total, fired, mode, coef[P_VV, lo:hi],
                         coef[C_V, lo:hi], coef[P_VE, lo:hi], coef[P_VI, lo:hi],
                         coef[P_EE, lo:hi], coef[P_II, lo:hi], coef[V_THRESH, lo:hi],
                         coef[V_RESET, lo:hi], coef[REF_STEPS, lo:hi], clamp)
    if bad:
        return first_nonfinite(state[V, b, lo:hi], lo, n)
    return collect(fired_words, fired, lo, n, spikes, n_spikes)


def step_torch(state, coef, syn_e, syn_i, syn_v, options, noise):
    """One step of a [B, n] block: returns the new state [N_STATE, B, n] (rows V,
    I_E, I_I, REF_LEFT), the spike mask [B, n] and, per instance, whether a v is not
    finite [B].

    state: [N_STATE, B, n] float32 (not changed); coef: [N_COEF, n] (or a tuple of
    its rows); syn_*: this step's delivered input, float32 [B, n]; options: the
    population's options; noise: unused (the signature is shared by all models).
    Same operations, in the same order, as :func:`step_numba`. Pure, so
    ``torch.compile`` fuses it into one loop that writes the new state once
    (``spiking.backends.torch_backend.CompiledStep``; an in-place version compiles
    to several passes, about 3x slower).
    """
    import torch

    ref = state[REF_LEFT]                                   # whole steps left, >= 0
    free = ref <= 0
    i_e = state[I_E] + syn_e
    i_i = state[I_I] + syn_i
    v = (state[V] + syn_v) * coef[P_VV] + coef[C_V] + i_e * coef[P_VE] + i_i * coef[P_VI]
    if options.get("refractory", "clamp") == "clamp":
        v = torch.where(free, v, state[V])
    ref = ref.clamp(min=1.0) - 1.0                          # ref - 1 while refractory
    spiked = (v >= coef[V_THRESH]) & free
    v = torch.where(spiked, coef[V_RESET], v)
    new = torch.stack([v, i_e * coef[P_EE], i_i * coef[P_II], torch.where(spiked, coef[REF_STEPS], ref)])
    return new, spiked, ~torch.isfinite(v).all(dim=1)
