"""Cross-checks of the simulation core against Brian2 (runtime mode, numpy target).

How our semantics map onto Brian2 (each point is exercised below):
- our minimum delay is one step: a spike emitted in step t arrives in step t + d;
  Brian2's synaptic effects are applied in the "synapses" slot of the step the
  spike was emitted in (delay 0), so Brian2 delay = ours - dt;
- threshold ``v >= v_thresh``; LIF refractoriness: clamped for
  round(tau_refrac / dt) - 1 steps after the spike step, as Brian2's
  ``(unless refractory)`` with ``refractory=tau_refrac``;
- LIF: exact integration (Brian2 ``method='exact'``), currents in nA into cm in nF;
  CUBA's voltage drive ge (mV) = i * tau_m / cm;
- Izhikevich with tau_syn = 0: a delivered weight is a current during the arrival
  step only. In Brian2 that is a variable ``Isyn`` that ``on_pre`` adds to and
  that is cleared after the state update (``run_regularly(..., when='after_groups')``).
  It is *not* ``on_pre='v += w*dt'``: that jump is applied before the next Euler
  step (so u and v's quadratic term see it), ours is added by that step.
- Recording: our state in step t is the state after step t (after reset), i.e.
  Brian2's StateMonitor with ``when='end'`` for v and u, except that Brian2's
  value also holds the synaptic effects applied in that step's synapses slot,
  which are ours of step t + 1 (v jumps are taken out before comparing);
  synaptic currents are compared ``when='before_synapses'``.

Our state is float32 and Brian2's float64, so traces agree to float32 rounding
(amplified where the dynamics are unstable, e.g. the Izhikevich upstroke);
spike steps agree exactly in these tests (a crossing within float32 rounding of
the threshold could move a spike by one step; none occurs here).

Network tests compare rates with the same statistics but different random
draws (Brian2's RNG is not ours); the Brian2 models are the ones the benchmark
uses (benchmarks/bench_core.py), so these tests also validate the benchmark.
"""
from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import numpy as np
import pytest

import brian2 as b2
from brian2 import mV, ms, nA, nF

import spiking

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def brian2_numpy():
    """Brian2 runtime mode, numpy target (no compilation), fresh scope."""
    old = b2.prefs.codegen.target
    b2.prefs.codegen.target = "numpy"
    b2.start_scope()
    yield
    b2.prefs.codegen.target = old


def _ours(tmp_path, text: str, name: str = "net.yaml"):
    path = Path(tmp_path) / name
    path.write_text(textwrap.dedent(text))
    return spiking.load(str(path)).run(progress=False)


def _bench():
    spec = importlib.util.spec_from_file_location("bench_core", ROOT / "benchmarks" / "bench_core.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------- LIF
LIF_DT = 0.1
LIF_T = 200.0
LIF = dict(cm=0.25, tau_m=15.0, v_rest=-65.0, v_thresh=-52.0, v_reset=-68.0, tau_refrac=3.0,
           tau_syn_E=3.0, tau_syn_I=8.0, i_offset=0.18)           # v_inf = -54.2 mV: input makes it fire
EXC = [10, 12, 14, 40, 41, 42, 43, 80, 81, 82, 83, 84, 85, 120, 121, 150.3, 151, 152, 153, 154, 155, 156]
INH = [45, 46, 90, 91, 92, 130]
KICK = [60, 100, 175]                                             # onto v (one source each), outside refractory periods
W_E, W_I, W_V = 0.45, -0.6, [3.0, -4.0, 2.5]                      # nA, nA, mV
D_E, D_I, D_V = 1.0, 0.1, 0.5                                     # ms (ours)


def test_lif_matches_brian2_exact(tmp_path):
    p = LIF
    res = _ours(tmp_path, f"""
        dt: {LIF_DT} ms
        duration: {LIF_T} ms
        populations:
          src: {{size: 5, model: spike_source_array, params: {{spike_times: [{EXC}, {INH}, {KICK[:1]}, {KICK[1:2]}, {KICK[2:]}]}}}}
          n:
            size: 1
            model: lif
            params: {{cm: {p['cm']} nF, tau_m: {p['tau_m']} ms, v_rest: {p['v_rest']} mV,
                      v_thresh: {p['v_thresh']} mV, v_reset: {p['v_reset']} mV,
                      tau_refrac: {p['tau_refrac']} ms, tau_syn_E: {p['tau_syn_E']} ms,
                      tau_syn_I: {p['tau_syn_I']} ms, i_offset: {p['i_offset']} nA}}
        projections:
          e: {{pre: src, post: n, receptor_type: excitatory, connector: {{type: from_list, pre: [0], post: [0]}}, weight: {W_E} nA, delay: {D_E} ms}}
          i: {{pre: src, post: n, receptor_type: inhibitory, connector: {{type: from_list, pre: [1], post: [0]}}, weight: {W_I} nA, delay: {D_I} ms}}
          k: {{pre: src, post: n, receptor_type: v, connector: {{type: from_list, pre: [2, 3, 4], post: [0, 0, 0], weight: {W_V}}}, delay: {D_V} ms}}
        monitors:
          - {{type: spikes, population: n}}
          - {{type: state, population: n, variables: [v, i_syn_E, i_syn_I]}}
        """)
    ours_v = res.states["n"]["v"][:, 0, 0].astype(np.float64)
    ours_ie = res.states["n"]["i_syn_E"][:, 0, 0].astype(np.float64)
    ours_ii = res.states["n"]["i_syn_I"][:, 0, 0].astype(np.float64)
    ours_steps = np.rint(res.spikes["n"]["t"] / LIF_DT).astype(int)

    b2.defaultclock.dt = LIF_DT * ms
    eqs = """dv/dt = (v_rest - v) / tau_m + (ie + ii + i_offset) / C_m : volt (unless refractory)
             die/dt = -ie / tau_e : amp
             dii/dt = -ii / tau_i : amp"""
    ns = dict(v_rest=p["v_rest"] * mV, tau_m=p["tau_m"] * ms, C_m=p["cm"] * nF,
              tau_e=p["tau_syn_E"] * ms, tau_i=p["tau_syn_I"] * ms, i_offset=p["i_offset"] * nA,
              v_thresh=p["v_thresh"] * mV, v_reset=p["v_reset"] * mV)
    G = b2.NeuronGroup(1, eqs, threshold="v >= v_thresh", reset="v = v_reset",
                       refractory=p["tau_refrac"] * ms, method="exact", namespace=ns)
    G.v = p["v_rest"] * mV
    idx = [0] * len(EXC) + [1] * len(INH) + [2, 3, 4]
    times = np.rint(np.array(EXC + INH + KICK) / LIF_DT) * LIF_DT
    src = b2.SpikeGeneratorGroup(5, idx, times * ms)
    se = b2.Synapses(src, G, on_pre=f"ie += {W_E} * nA", delay=(D_E - LIF_DT) * ms)
    se.connect(i=0, j=0)
    si = b2.Synapses(src, G, on_pre=f"ii += {W_I} * nA", delay=(D_I - LIF_DT) * ms)
    si.connect(i=1, j=0)
    sv = b2.Synapses(src, G, "w : volt", on_pre="v += w", delay=(D_V - LIF_DT) * ms)
    sv.connect(i=[2, 3, 4], j=0)
    sv.w = np.array(W_V) * mV
    M = b2.StateMonitor(G, "v", record=0, when="end")
    Mi = b2.StateMonitor(G, ["ie", "ii"], record=0, when="before_synapses")
    S = b2.SpikeMonitor(G)
    b2.run(LIF_T * ms)
    b2_v = np.asarray(M.v[0] / mV)
    # Brian2 applies a jump emitted in step t in that step's synapses slot (its 'end' value
    # includes it); ours adds it at the start of step t + 1. Take it back out of Brian2's
    # value at the end of the step before our arrival step.
    arrive = np.rint(np.array(KICK) / LIF_DT).astype(int) + int(round(D_V / LIF_DT))
    b2_v[arrive - 1] -= W_V
    b2_steps = np.rint(np.asarray(S.t / ms) / LIF_DT).astype(int)

    assert ours_steps.size >= 4                       # the input makes it fire, several times
    np.testing.assert_array_equal(ours_steps, b2_steps)
    assert ours_v.shape == b2_v.shape == (int(LIF_T / LIF_DT),)
    assert np.abs(ours_v - b2_v).max() < 1e-3         # mV; float32 rounding (seen: ~1.3e-4)
    assert np.abs(ours_ie - np.asarray(Mi.ie[0] / nA)).max() < 1e-5   # nA
    assert np.abs(ours_ii - np.asarray(Mi.ii[0] / nA)).max() < 1e-5
    # refractoriness: v held at v_reset for round(3 ms / dt) - 1 = 29 steps after the spike step
    s = ours_steps[0]
    assert np.all(ours_v[s: s + 30] == np.float32(p["v_reset"]))
    assert ours_v[s + 30] != np.float32(p["v_reset"])


def test_lif_v_input_during_refractory_is_dropped(tmp_path):
    """A voltage jump that arrives while the neuron is clamped is lost, in ours as in
    Brian2 (``(unless refractory)`` makes writes to v conditional on not_refractory).
    (Before commit 98ec0ab ours added it to the clamped v, which raised Brunel's rates
    by ~3 %.) Not covered: with tau_refrac < 1.5 dt (no clamped step) a jump arriving
    in the step after the spike is kept by ours but lost in Brian2, whose reset runs
    after its synapses slot."""
    res = _ours(tmp_path, """
        dt: 0.1 ms
        duration: 20 ms
        populations:
          src: {size: 2, model: spike_source_array, params: {spike_times: [[10 ms], [10.5 ms]]}}
          n: {size: 1, model: lif, params: {tau_m: 20 ms, v_rest: 0 mV, v_thresh: 15 mV, v_reset: 5 mV, tau_refrac: 2 ms}}
        projections:
          a: {pre: src, post: n, receptor_type: v, connector: {type: from_list, pre: [0], post: [0]}, weight: 20 mV, delay: 0.1 ms}
          b: {pre: src, post: n, receptor_type: v, connector: {type: from_list, pre: [1], post: [0]}, weight: 2 mV, delay: 0.1 ms}
        monitors:
          - {type: spikes, population: n}
          - {type: state, population: n, variables: [v]}
        """)
    ours_v = res.states["n"]["v"][:, 0, 0].astype(np.float64)
    b2.defaultclock.dt = 0.1 * ms
    G = b2.NeuronGroup(1, "dv/dt = -v / (20 * ms) : volt (unless refractory)", threshold="v >= 15 * mV",
                       reset="v = 5 * mV", refractory=2 * ms, method="exact")
    src = b2.SpikeGeneratorGroup(2, [0, 1], [10, 10.5] * ms)
    S = b2.Synapses(src, G, "w : volt", on_pre="v += w")
    S.connect(i=[0, 1], j=0)
    S.w = [20, 2] * mV
    M = b2.StateMonitor(G, "v", record=0, when="end")
    spikes = b2.SpikeMonitor(G)
    b2.run(20 * ms)
    b2_v = np.asarray(M.v[0] / mV)
    # both: the 20 mV kick (arriving in step 101) fires the neuron in step 101
    assert np.allclose(res.spikes["n"]["t"], [10.1]) and np.allclose(spikes.t / ms, [10.1])
    # the 2 mV kick arrives in step 106, inside the refractory period (steps 102..120)
    assert b2_v[110] == pytest.approx(5.0)          # Brian2: dropped, v held at v_reset
    # (Brian2's value at the end of step 100 already holds the 20 mV kick: compare from 101)
    assert np.abs(ours_v[101:] - b2_v[101:]).max() < 1e-3   # ours: v = 7 mV from step 106 on


# ----------------------------------------------------------------------------- Izhikevich
IZH = {"regular_spiking": dict(a=0.02, b=0.2, c=-65.0, d=8.0, i_offset=10.0),
       "chattering": dict(a=0.02, b=0.2, c=-50.0, d=2.0, i_offset=10.0)}
IZH_EXC, IZH_INH = [50, 51, 52, 120, 200, 240], [70, 150, 151, 260]
IZH_W_E, IZH_W_I = 40.0, -60.0
IZH_T = 300.0


@pytest.mark.parametrize("cell", sorted(IZH))
@pytest.mark.parametrize("dt,tau_e", [(0.1, 0.0), (0.5, 0.0), (0.5, 2.0)])
def test_izhikevich_euler_matches_brian2(tmp_path, cell, dt, tau_e):
    p = IZH[cell]
    res = _ours(tmp_path, f"""
        dt: {dt} ms
        duration: {IZH_T} ms
        populations:
          src: {{size: 2, model: spike_source_array, params: {{spike_times: [{IZH_EXC}, {IZH_INH}]}}}}
          n:
            size: 1
            model: izhikevich
            params: {{a: {p['a']}, b: {p['b']}, c: {p['c']} mV, d: {p['d']}, i_offset: {p['i_offset']},
                      tau_syn_E: {tau_e} ms, scheme: euler}}
        projections:
          e: {{pre: src, post: n, receptor_type: excitatory, connector: {{type: from_list, pre: [0], post: [0]}}, weight: {IZH_W_E}, delay: 1 ms}}
          i: {{pre: src, post: n, receptor_type: inhibitory, connector: {{type: from_list, pre: [1], post: [0]}}, weight: {IZH_W_I}, delay: {dt} ms}}
        monitors:
          - {{type: spikes, population: n}}
          - {{type: state, population: n, variables: [v, u]}}
        """)
    ours_v = res.states["n"]["v"][:, 0, 0].astype(np.float64)
    ours_u = res.states["n"]["u"][:, 0, 0].astype(np.float64)
    ours_steps = np.rint(res.spikes["n"]["t"] / dt).astype(int)

    b2.defaultclock.dt = dt * ms
    eqs = """dv/dt = (0.04 * v**2 + 5 * v + 140 - u + I_offset + Ie + Ii) / ms : 1
             du/dt = a * (b * v - u) / ms : 1
             Ie : 1
             Ii : 1"""
    ns = dict(a=p["a"], b=p["b"], c=p["c"], d=p["d"], I_offset=p["i_offset"],
              pe=float(np.exp(-dt / tau_e)) if tau_e > 0 else 0.0)
    G = b2.NeuronGroup(1, eqs, threshold="v >= 30", reset="v = c; u += d", method="euler",
                       namespace=ns)
    G.v = -65
    G.u = p["b"] * -65
    # the currents of this step were used by the Euler step: decay (tau_syn_E) or clear (0)
    G.run_regularly("Ie = pe * Ie\nIi = 0", when="after_groups")
    src = b2.SpikeGeneratorGroup(2, [0] * len(IZH_EXC) + [1] * len(IZH_INH),
                                 np.array(IZH_EXC + IZH_INH) * ms)
    se = b2.Synapses(src, G, on_pre=f"Ie_post += {IZH_W_E}", delay=1 * ms - dt * ms)
    se.connect(i=0, j=0)
    si = b2.Synapses(src, G, on_pre=f"Ii_post += {IZH_W_I}", delay=0 * ms)
    si.connect(i=1, j=0)
    M = b2.StateMonitor(G, ["v", "u"], record=0, when="end")
    S = b2.SpikeMonitor(G)
    b2.run(IZH_T * ms)
    b2_v, b2_u = np.asarray(M.v[0]), np.asarray(M.u[0])
    b2_steps = np.rint(np.asarray(S.t / ms) / dt).astype(int)

    assert ours_steps.size >= 5
    np.testing.assert_array_equal(ours_steps, b2_steps)
    dv = np.abs(ours_v - b2_v)
    # float32 rounding grows during the upstroke (d(dv/dt)/dv = 0.08 v + 5 > 0 above
    # -62.5 mV) and is reset by the spike; seen: max 0.018 mV at dt = 0.1 ms (v ~ 0 mV),
    # 1.5e-3 mV below -40 mV, du 2.5e-5
    assert dv.max() < 0.05
    assert dv[b2_v < -40].max() < 5e-3
    assert np.abs(ours_u - b2_u).max() < 2e-4


# ----------------------------------------------------------------------------- networks
def _brian2_rates(network: str, duration_ms: float, seed: int):
    bench = _bench()
    b2.start_scope()
    model = bench.brian2_model(network, seed=seed)
    net = b2.Network(*model["objects"])
    net.run(duration_ms * ms)
    return bench._brian2_rates(model, duration_ms)


def _our_rates(network: str, duration_ms: float, seed: int):
    net = spiking.load(str(ROOT / "configs" / f"{network}.yaml"),
                       overrides=[f"duration={duration_ms} ms", f"seed={seed}"])
    s = net.run(progress=False).population_summary()
    return s["E"]["rate_hz"], s["I"]["rate_hz"]


def test_cuba_rates_match_brian2():
    """configs/cuba.yaml against Brian2's CUBA example (same sizes, p, weights, initial
    distribution; other draws), 1 s. A single 1 s run's E rate varies by about +-7 %
    between seeds in both simulators (seen 5.4-6.3 Hz; the rate fluctuates by 10 % between
    250 ms windows), so we average 6 seeds of ours (0.3 s each) and 3 of Brian2 (numpy
    target, ~7 s each); the means agree to ~2 % (ours 5.67/5.65 Hz, Brian2 5.74/5.65 Hz)."""
    ours = np.mean([_our_rates("cuba", 1000.0, seed) for seed in range(1, 7)], axis=0)
    ref = np.mean([_brian2_rates("cuba", 1000.0, seed) for seed in range(1, 4)], axis=0)
    print("cuba rates E/I: ours", ours, "brian2", ref)
    assert np.all((ref > 3) & (ref < 10))            # the asynchronous irregular regime
    np.testing.assert_allclose(ours, ref, rtol=0.10)


def test_izhikevich2003_rates_match_brian2():
    """configs/izhikevich2003.yaml against the same network written for Brian2 (the
    paper's half-step scheme in run_regularly code, 1 ms steps, thalamic noise from
    Brian2's randn), 1 s, one seed each: rates are set by the noise, so a single
    second of 1000 neurons is stable (seed to seed within a few %)."""
    ours = np.array(_our_rates("izhikevich2003", 1000.0, 1))
    ref = np.array(_brian2_rates("izhikevich2003", 1000.0, 1))
    print("izhikevich2003 rates E/I: ours", ours, "brian2", ref)
    assert np.all((ref > 3) & (ref < 30))
    np.testing.assert_allclose(ours, ref, rtol=0.10)


@pytest.mark.slow
def test_brunel2000_rates_match_brian2():
    """configs/brunel2000.yaml (regime C) against Brian2 (PoissonInput N=1000 at 20 Hz,
    delay 1.4 ms = ours 1.5 ms), 200 ms: most of the time is building 15.6 M synapses
    twice. The rate fluctuates by +-4 % between 50 ms windows, so 200 ms are needed
    for a few per cent (seen: ours 36.7/36.9 Hz, Brian2 37.1/37.2 Hz; over 500 ms and
    three seeds each: ours 36.6-37.0 Hz, Brian2 36.8-37.1 Hz)."""
    ours = np.array(_our_rates("brunel2000", 200.0, 1))
    ref = np.array(_brian2_rates("brunel2000", 200.0, 1))
    print("brunel2000 rates E/I: ours", ours, "brian2", ref)
    assert np.all((ref > 20) & (ref < 60))
    np.testing.assert_allclose(ours, ref, rtol=0.10)
