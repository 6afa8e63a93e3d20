"""Named plasticity presets: ``plasticity: {preset: NAME, ...}`` fills in defaults.

Values written beside ``preset`` win over the preset's.
"""
from __future__ import annotations

from typing import Any, Dict

PRESETS: Dict[str, Dict[str, Any]] = {
    # Izhikevich (2007), "Solving the distal reward problem through linkage of STDP
    # and dopamine signaling", Cereb. Cortex 17:2443: STDP (A+ = 1, A- = 1.5,
    # tau = 20 ms) feeds an eligibility trace c with tau_c = 1 s; dw/dt = c·d, with
    # dopamine d decaying with tau_d = 0.2 s (a `reward` modulator). Weights in mV,
    # bounded to [0, 4]. The paper scales the STDP amplitudes by 0.1 of w_max; we
    # keep them in weight units: a_plus = 0.1, a_minus = 0.15.
    "rstdp_izhikevich2007": {
        "rule": "three_factor", "eligibility": "stdp", "tau_plus": 20.0, "tau_minus": 20.0,
        "a_plus": 0.1, "a_minus": 0.15, "tau_eligibility": 1000.0, "eta": 1.0,
        "w_min": 0.0, "w_max": 4.0,
    },
    # Error-modulated, attention-gated readout learning (docs/plasticity.md):
    # eligibility = filtered presynaptic spikes, modulator = per-output error
    # (target - output), gate = attention window. dw/dt = eta · gate · (t_j - y_j) · x_i.
    "error_hebbian_readout": {
        "rule": "three_factor", "eligibility": "pre", "tau_plus": 20.0, "tau_minus": 20.0,
        "tau_eligibility": 20.0, "eta": 0.01,
    },
}


def apply_preset(data: dict) -> dict:
    """Merge the named preset under the values written in the file."""
    name = data.get("preset")
    if name is None:
        return data
    if name not in PRESETS:
        raise ValueError(f"unknown plasticity preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    merged = dict(PRESETS[name])
    merged.update(data)
    return merged
