"""Astrocyte-modulated STDP (NALSM): in a super-critical liquid it drives the
branching factor down, monotonically in w_astro; the same on both backends."""
import re

import numpy as np

import spiking
from netfiles import write
from spiking.metrics import branching_factor, liquid_synapses

# 294 LIF neurons in a 7x7x6 grid with strong distance-dependent excitation: the
# static liquid is super-critical (branching factor ~1.5, saturated rates).
LIQUID = """
dt: 1 ms
seed: 3
grids: {cube: {shape: [7, 7, 6], spacing: 1 um}}
populations:
  inp: {size: 100, model: event_source}
  E: {size: 240, model: lif, positions: {grid: cube}, params: &cell {tau_m: 64 ms, cm: 0.64 nF, v_rest: 0 mV, v_reset: 0 mV, v_thresh: 20 mV, tau_refrac: 2 ms, refractory: free, tau_syn_E: 1 ms, tau_syn_I: 1 ms}}
  I: {size: 54, model: lif, positions: {grid: cube}, params: *cell}
modulators:
  astro: {type: astrocyte, tau: 100 ms, weight: W_ASTRO, bias: 0.15, initial: 0.15, liquid: [E, I], input: [inp]}
projections:
  inE: {pre: inp, post: E, connector: {type: fixed_probability, p: 0.15}, weight: 3 nA, plasticity: {rule: stdp, tau_plus: 10 ms, tau_minus: 10 ms, trace_increment: 0.1, a_plus: 0.02, a_minus: {modulator: astro}, w_min: -3, w_max: 3}}
  EE: {pre: E, post: E, connector: {type: distance, c: 0.25, lambda: 3 um}, weight: 3 nA, plasticity: {rule: stdp, tau_plus: 10 ms, tau_minus: 10 ms, trace_increment: 0.1, a_plus: 0.02, a_minus: {modulator: astro}, w_min: 0, w_max: 3}}
  EI: {pre: E, post: I, connector: {type: distance, c: 0.1, lambda: 3 um}, weight: 3 nA}
  IE: {pre: I, post: E, receptor_type: inhibitory, connector: {type: distance, c: 0.3, lambda: 3 um}, weight: -3 nA}
monitors:
  - {type: spikes, population: E}
  - {type: spikes, population: I}
"""
INSTANCES, SCORED = 4, 500


def branching(tmp_path, w_astro, plastic=True, ms=3000, backend="numba"):
    text = LIQUID.replace("W_ASTRO", str(w_astro))
    if not plastic:
        text = re.sub(r", plasticity: \{[^}]*\{[^}]*\}[^}]*\}", "", text)
    net = spiking.load(str(write(tmp_path, text)), instances=INSTANCES, backend=backend, device="cpu")
    events = (np.random.default_rng(1).random((ms, INSTANCES, 100)) < 0.02).astype(np.uint8)
    res = net.run(float(ms), inputs={"inp": events}, progress=False)
    parts = []
    for pop, offset in (("E", 0), ("I", 240)):
        s = res.spikes[pop]
        keep = s["t"] >= ms - SCORED
        parts.append((s["instance"][keep], np.rint(s["t"][keep] - (ms - SCORED)).astype(int),
                      s["i"][keep] + offset))
    inst, step, neuron = (np.concatenate(x) for x in zip(*parts))
    pre, post = liquid_synapses(net.spec, ["E", "I"])
    return branching_factor(inst, step, neuron, pre, post, 294, SCORED, n_instances=INSTANCES), net


def test_astrocyte_lowers_branching_monotonically(tmp_path):
    static, _ = branching(tmp_path, 0.0, plastic=False)
    assert static > 1.3, "the test liquid must be super-critical"
    values = [branching(tmp_path, w)[0] for w in (0.0, 0.01, 0.03, 0.06)]
    assert values[0] < static
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert values[-1] < 1.2, values


def test_astrocyte_parity(tmp_path):
    a, net_a = branching(tmp_path, 0.03, ms=300, backend="numba")
    b, net_b = branching(tmp_path, 0.03, ms=300, backend="torch")
    assert a == b
    np.testing.assert_array_equal(net_a.weights("EE"), net_b.weights("EE"))
    np.testing.assert_array_equal(net_a.modulator("astro"), net_b.modulator("astro"))
