"""Three-factor learning: an error-modulated readout learns a timed target that
plain Hebbian learning does not; modulators behave as documented; parity."""
import numpy as np
import pytest

import spiking
from netfiles import write

# 40 "clock" inputs fire in sequence (a burst every 5 ms); one LIF readout.
TIMES = "[" + ", ".join(f"[{5 * k + 1} ms, {5 * k + 2} ms, {5 * k + 3} ms]" for k in range(40)) + "]"
READOUT_NET = f"""
dt: 1 ms
duration: 200 ms
seed: 5
populations:
  clock: {{size: 40, model: spike_source_array, params: {{spike_times: {TIMES}}}}}
  out: {{size: 1, model: lif, params: {{tau_m: 20 ms, v_rest: 0 mV, v_reset: 0 mV, v_thresh: 1 mV, tau_refrac: 2 ms}}}}
modulators:
  err: {{type: error, population: out, tau: 20 ms}}
  constant: {{type: signal, initial: 1}}
projections:
  readout:
    pre: clock
    post: out
    connector: {{type: all_to_all}}
    weight: {{distribution: uniform, low: 0.0, high: 0.06}}
    plasticity: RULE
monitors:
  - {{type: spikes, population: out}}
"""
ERROR_RULE = "{preset: error_hebbian_readout, modulator: err, eta: 0.01, w_min: -1, w_max: 1, tau_plus: 10 ms}"
HEBBIAN_RULE = ("{rule: three_factor, eligibility: hebbian, modulator: constant, eta: 0.01, a_plus: 1, "
                "a_minus: 1, tau_eligibility: 20 ms, w_min: -1, w_max: 1, tau_plus: 10 ms, tau_minus: 10 ms}")
WINDOW = (100, 120)


def train(tmp_path, rule, trials=30, backend="numba"):
    net = spiking.load(str(write(tmp_path, READOUT_NET, RULE=rule)), backend=backend, device="cpu")
    target = np.zeros((200, 1, 1), np.float32)
    target[WINDOW[0]:WINDOW[1]] = 3.0       # ~ the error trace of one spike every 7 ms
    for _ in range(trials):
        net.reset()
        result = net.run(signals={"err": target}, progress=False)
    return result.spikes["out"]["t"], net


def test_error_modulated_readout_learns_timed_target(tmp_path):
    spikes, _ = train(tmp_path, ERROR_RULE)
    assert spikes.size >= 3, "the readout must fire around the target"
    assert np.all((spikes >= WINDOW[0] - 10) & (spikes < WINDOW[1] + 5)), spikes


def test_plain_hebbian_does_not(tmp_path):
    spikes, _ = train(tmp_path, HEBBIAN_RULE)
    inside = (spikes >= WINDOW[0] - 10) & (spikes < WINDOW[1] + 5)
    assert spikes.size > 0 and inside.mean() < 0.5, spikes


def test_three_factor_parity(tmp_path):
    (a, net_a), (b, net_b) = (train(tmp_path, ERROR_RULE, trials=5, backend=k) for k in ("numba", "torch"))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(net_a.weights("readout"), net_b.weights("readout"))


def test_reward_relaxes_to_baseline_and_signals_hold(tmp_path):
    path = write(tmp_path, """
dt: 1 ms
populations:
  n: {size: 2, model: lif}
modulators:
  da: {type: reward, tau: 100 ms, baseline: 0.1, initial: 0.1}
  sig: {type: signal}
projections: {}
""")
    net = spiking.load(str(path), instances=2)
    net.modulate("da", [1.0, 0.0])
    net.run("100 ms", progress=False)
    np.testing.assert_allclose(net.modulator("da"), [0.1 + 1.0 * np.exp(-1), 0.1], rtol=1e-4)
    net.run("5 ms", signals={"sig": np.array([[1.0, 2.0]] * 5)}, progress=False)
    net.run("5 ms", progress=False)
    np.testing.assert_allclose(net.modulator("sig"), [1.0, 2.0])
    with pytest.raises(ValueError, match="not a reward"):
        net.modulate("sig", 1.0)


DOPAMINE_NET = """
dt: 1 ms
seed: 11
populations:
  inp: {size: 40, model: poisson_source, params: {rate: 2 Hz}}
  post: {size: 1, model: izhikevich, params: {i_noise: 3, i_offset: 2}}
modulators:
  dopamine: {type: reward, tau: 200 ms, initial: 0.01, baseline: 0.01}
projections:
  syn:
    pre: inp
    post: post
    connector: {type: all_to_all}
    weight: 1.0
    delay: 1 ms
    plasticity: {preset: rstdp_izhikevich2007, modulator: dopamine, eta: 0.03}
monitors:
  - {type: spikes, population: post}
  - {type: spikes, population: inp, neurons: [0]}
"""


def test_izhikevich2007_rewarded_synapse_grows(tmp_path):
    """Izhikevich (2007): reward (dopamine +0.5, delayed 0.2-1 s) follows every
    post spike within 10 ms after a spike of input 0. Only that synapse's
    eligibility is systematically positive when dopamine arrives, so it alone
    grows, although all 40 synapses are plastic and fire at random."""
    instances, chunk_ms, seconds = 3, 100.0, 500
    net = spiking.load(str(write(tmp_path, DOPAMINE_NET)), instances=instances)
    rng = np.random.default_rng(0)
    pending = [[] for _ in range(instances)]
    last_pre = np.full(instances, -1e9)
    now = 0.0
    for _ in range(int(seconds * 1000 / chunk_ms)):
        res = net.run(chunk_ms, progress=False)
        for b in range(instances):
            pre = res.spikes["inp"]["t"][res.spikes["inp"]["instance"] == b]
            post = res.spikes["post"]["t"][res.spikes["post"]["instance"] == b]
            for t, is_post in sorted([(t, 0) for t in pre] + [(t, 1) for t in post]):
                if not is_post:
                    last_pre[b] = t
                elif 0 < t - last_pre[b] <= 10:
                    pending[b].append(t + rng.uniform(200, 1000))
                    last_pre[b] = -1e9
        now += chunk_ms
        due = np.array([sum(d <= now for d in p) for p in pending], np.float32)
        pending = [[d for d in p if d > now] for p in pending]
        if due.any():
            net.modulate("dopamine", 0.5 * due)
    w = net.weights("syn")
    for b in range(instances):
        rewarded, others = w[b, 0], w[b, 1:]
        assert rewarded > 2.5 and rewarded > others.max() and rewarded > 5 * others.mean(), (b, w[b])
