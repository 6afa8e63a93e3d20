"""Learning rules: the STDP window, pairing variants, three-factor rules, the
astrocyte, backend parity and bad input."""
import json

import numpy as np
import pytest

import spiking
from netfiles import LIF_NET, write
from spiking import cli
from spiking.errors import ConfigError

TAU_PLUS, TAU_MINUS, A_PLUS, A_MINUS, INC = 16.8, 33.7, 0.01, 0.012, 0.5

# One plastic synapse pre -> post per instance. The event source kicks the pre
# neuron's synapse (channel 0) and forces the post neuron to spike (channel 1,
# a large jump of v one step later).
PAIR_NET = f"""
dt: 1 ms
duration: 200 ms
populations:
  ev: {{size: 2, model: event_source}}
  post: {{size: 1, model: lif, params: {{tau_m: 10 ms, v_rest: 0 mV, v_reset: 0 mV, v_thresh: 10 mV, tau_refrac: 1 ms}}}}
projections:
  plastic:
    pre: ev
    post: post
    receptor_type: excitatory
    connector: {{type: from_list, pre: [0], post: [0]}}
    weight: 0.5 nA
    delay: 1 ms
    plasticity: {{rule: stdp, tau_plus: {TAU_PLUS} ms, tau_minus: {TAU_MINUS} ms, a_plus: {A_PLUS},
                 a_minus: {A_MINUS}, trace_increment: {INC}, w_min: 0, w_max: 1, update: UPDATE, pairing: PAIRING}}
  kick: {{pre: ev, post: post, receptor_type: v, connector: {{type: from_list, pre: [1], post: [0]}}, weight: 50 mV, delay: 1 ms}}
monitors:
  - {{type: spikes, population: post}}
"""


def pair_run(tmp_path, deltas, backend="numba", update="additive", pairing="all_to_all", extra_pre=None):
    """Δw per instance for a pre spike at 100 ms and a post spike at 100 + Δ ms."""
    path = write(tmp_path, PAIR_NET, UPDATE=update, PAIRING=pairing)
    net = spiking.load(str(path), backend=backend, instances=len(deltas), device="cpu")
    events = np.zeros((200, len(deltas), 2), np.uint8)
    for b, d in enumerate(deltas):
        events[100, b, 0] = 1
        events[100 + d - 1, b, 1] = 1      # kick at t arrives at t + 1: post spikes at 100 + Δ
        if extra_pre is not None:
            events[100 + extra_pre, b, 0] = 1
    w0 = net.weights("plastic").copy()
    res = net.run(inputs={"ev": events}, progress=False)
    post_t = res.spikes["post"]
    for b, d in enumerate(deltas):
        assert post_t["t"][post_t["instance"] == b].tolist() == [100.0 + d], "post must spike once, at 100 + Δ"
    return (net.weights("plastic") - w0)[:, 0], net


def analytic(d):
    if d > 0:
        return A_PLUS * INC * np.exp(-d / TAU_PLUS)
    if d < 0:
        return -A_MINUS * INC * np.exp(d / TAU_MINUS)
    return 0.0


DELTAS = [-60, -30, -10, -3, -1, 0, 1, 2, 5, 10, 20, 40, 80]


def test_stdp_window_matches_analytic(tmp_path):
    dw, _ = pair_run(tmp_path, DELTAS)
    expected = np.array([analytic(d) for d in DELTAS])
    # float32 weights near 0.5 resolve 6e-8
    np.testing.assert_allclose(dw, expected, rtol=1e-4, atol=2e-7)
    assert dw[DELTAS.index(1)] > dw[DELTAS.index(10)] > 0 > dw[DELTAS.index(-30)] > dw[DELTAS.index(-1)]


def test_stdp_window_same_on_torch(tmp_path):
    a, _ = pair_run(tmp_path, DELTAS, backend="numba", update="multiplicative")
    b, _ = pair_run(tmp_path, DELTAS, backend="torch", update="multiplicative")
    np.testing.assert_array_equal(a, b)


def test_multiplicative_scales_with_distance_to_bounds(tmp_path):
    dw, _ = pair_run(tmp_path, [10, -10], update="multiplicative")
    # w = 0.5: potentiation times (w_max - w) = 0.5, depression times (w - w_min) = 0.5
    np.testing.assert_allclose(dw, [0.5 * analytic(10), 0.5 * analytic(-10)], rtol=1e-4, atol=2e-7)


def test_nearest_pairing_forgets_earlier_spikes(tmp_path):
    # a second pre spike 20 ms before the first: all-to-all pairs both, nearest only one
    all_pairs, _ = pair_run(tmp_path, [10], extra_pre=-20)
    nearest, _ = pair_run(tmp_path, [10], pairing="nearest", extra_pre=-20)
    np.testing.assert_allclose(nearest, [analytic(10)], rtol=1e-4, atol=2e-7)
    np.testing.assert_allclose(all_pairs, [analytic(10) + analytic(30)], rtol=1e-4, atol=2e-7)


def test_lr_decay_and_clip_counting(tmp_path):
    path = write(tmp_path, PAIR_NET.replace("pairing: PAIRING}", "pairing: all_to_all, lr_decay: 0.99}"),
                 UPDATE="additive")
    net = spiking.load(str(path), instances=1)
    events = np.zeros((200, 1, 2), np.uint8)
    events[100, 0, 0] = 1
    events[109, 0, 1] = 1
    w0 = net.weights("plastic").copy()
    net.run(inputs={"ev": events}, progress=False)
    # learning rate at the post spike (step 110) has decayed by 0.99^110
    np.testing.assert_allclose(net.weights("plastic") - w0, [[analytic(10) * 0.99 ** 110]], rtol=1e-4)
    # a huge amplitude drives w into its bound: clipped and counted
    path = write(tmp_path, PAIR_NET.replace(f"a_plus: {A_PLUS}", "a_plus: 100"), UPDATE="additive",
                 PAIRING="all_to_all", name="big.yaml")
    net = spiking.load(str(path), instances=1)
    net.run(inputs={"ev": events}, progress=False)
    assert net.weights("plastic")[0, 0] == 1.0
    assert net.backend.clip_counts() == {"plastic": 1}


STDP_RULE = {"projections.EE.plasticity": {
    "rule": "stdp", "a_plus": 0.02, "a_minus": 0.021, "w_min": 0, "w_max": 1, "update": "multiplicative"}}


def test_stdp_network_parity_and_learning(tmp_path):
    results = {}
    for backend in ("numba", "torch"):
        net = spiking.load(str(write(tmp_path, LIF_NET)), STDP_RULE, backend=backend, instances=2,
                           device="cpu")
        w0 = net.weights("EE").copy()
        res = net.run(progress=False)
        results[backend] = (net.weights("EE"), res.counts("E"))
    np.testing.assert_array_equal(results["numba"][0], results["torch"][0])
    np.testing.assert_array_equal(results["numba"][1], results["torch"][1])
    w = results["numba"][0]
    assert not np.array_equal(w, np.broadcast_to(w0, w.shape)), "weights must change"
    assert not np.array_equal(w[0], w[1]), "each instance learns its own weights"
    assert w.min() >= 0 and w.max() <= 1


def test_weights_restored_only_when_asked(tmp_path):
    net = spiking.load(str(write(tmp_path, LIF_NET)), STDP_RULE)
    w0 = net.weights("EE").copy()
    net.run("50 ms", progress=False)
    learned = net.weights("EE").copy()
    net.reset()
    np.testing.assert_array_equal(net.weights("EE"), learned)
    net.reset(weights=True)
    np.testing.assert_array_equal(net.weights("EE"), w0)


@pytest.mark.parametrize("text, message", [
    ("plasticity: {rule: stdp}", "w_min"),
    ("plasticity: {rule: stdp, w_min: 1, w_max: 0}", "w_min"),
    ("plasticity: {rule: three_factor, w_min: 0, w_max: 1}", "modulator"),
    ("plasticity: {rule: three_factor, modulator: nope, w_min: 0, w_max: 1}", "nope"),
    ("plasticity: {rule: stdp, a_minus: {modulator: nope}, w_min: 0, w_max: 1}", "nope"),
    ("plasticity: {rule: hebb, w_min: 0, w_max: 1}", "rule"),
    ("plasticity: {preset: nope}", "preset"),
    ("plasticity: {rule: stdp, w_min: 0, w_max: 1, tau_plus: -3 ms}", "tau_plus"),
    ("plasticity: {rule: stdp, w_min: 0, w_max: 1, update: multiplicative, schedule: deferred}",
     "schedule"),
    ("plasticity: {rule: three_factor, modulator: r, w_min: 0, w_max: 1, schedule: deferred}",
     "schedule"),
])
def test_bad_rules_are_rejected_at_validation(tmp_path, text, message):
    lines = PAIR_NET.splitlines()
    at = next(k for k, line in enumerate(lines) if "plasticity:" in line)
    end = next(k for k in range(at, len(lines)) if lines[k].rstrip().endswith("}"))
    bad = "\n".join(lines[:at] + [f"    {text}"] + lines[end + 1:])
    with pytest.raises(ConfigError, match=message) as err:
        spiking.load(str(write(tmp_path, bad, UPDATE="additive", PAIRING="all_to_all")))
    assert f"net.yaml:{at + 1}" in str(err.value) and "projections.plastic.plasticity" in str(err.value)


def test_deferred_schedule_window_matches_analytic(tmp_path):
    # Δ = 0 (pre and post in one step) goes through the same-step path, the others
    # through the sums settled at the next pre spike or the end of the run
    path = write(tmp_path, PAIR_NET.replace("pairing: PAIRING}", "pairing: all_to_all, schedule: deferred}"),
                 UPDATE="additive")
    net = spiking.load(str(path), instances=len(DELTAS))
    events = np.zeros((200, len(DELTAS), 2), np.uint8)
    for b, d in enumerate(DELTAS):
        events[100, b, 0] = 1
        events[100 + d - 1, b, 1] = 1
        events[130, b, 0] = 1          # a second pre spike settles the pending potentiation
    w0 = net.weights("plastic").copy()
    net.run(inputs={"ev": events}, progress=False)
    path = write(tmp_path, PAIR_NET.replace("pairing: PAIRING}", "pairing: all_to_all}"),
                 UPDATE="additive", name="eager.yaml")
    eager = spiking.load(str(path), instances=len(DELTAS))
    eager.run(inputs={"ev": events}, progress=False)
    dw = (net.weights("plastic") - w0)[:, 0]
    np.testing.assert_allclose(dw, (eager.weights("plastic") - w0)[:, 0], rtol=1e-5, atol=2e-7)
    expected = [analytic(d) + analytic(d - 30) for d in DELTAS]   # both pre spikes pair
    np.testing.assert_allclose(dw, expected, rtol=1e-4, atol=2e-7)


DEFERRED = {"rule": "stdp", "a_plus": 0.3, "a_minus": 0.32, "w_min": 0, "w_max": 1,
            "tau_plus": "2 ms", "tau_minus": "5 ms"}   # settles every 320 steps; clips often


def test_deferred_schedule_equals_eager(tmp_path):
    """Deferred potentiation gives the eager weights up to float rounding, with
    settlements inside a run and between chunks, clipping at both bounds, a
    negative a_plus (inhibitory), and on torch (which runs the rule eagerly)."""
    results = {}
    for backend, schedule in (("numba", "eager"), ("numba", "deferred"), ("torch", "deferred")):
        rules = {"projections.EE.plasticity": dict(DEFERRED, schedule=schedule),
                 "projections.dE.plasticity": dict(DEFERRED, schedule=schedule, a_plus=0.05),
                 "projections.IE.plasticity": dict(DEFERRED, schedule=schedule, a_plus=-0.3,
                                                   a_minus=-0.2, w_min=-1.5, w_max=0)}
        net = spiking.load(str(write(tmp_path, LIF_NET)), rules, backend=backend, instances=2,
                           device="cpu")
        first = net.run(progress=False)
        second = net.run("37 ms", progress=False)
        results[backend, schedule] = ({p: net.weights(p) for p in ("EE", "dE", "IE")},
                                      first.counts("E"), second.counts("E"),
                                      net.backend.clip_counts())
    eager = results["numba", "eager"]
    for key in (("numba", "deferred"), ("torch", "deferred")):
        weights, first, second, clips = results[key]
        for p, w in weights.items():
            np.testing.assert_allclose(w, eager[0][p], atol=4e-6, err_msg=f"{key} {p}")
        np.testing.assert_array_equal(first, eager[1])
        np.testing.assert_array_equal(second, eager[2])
    assert eager[3]["EE"] > 0 and eager[3]["dE"] > 0, "the rules must clip"
    deferred_clips = results["numba", "deferred"][3]
    assert all(0 < deferred_clips[p] <= eager[3][p] for p in ("EE", "dE")), "clips counted once per sum"


def test_deferred_sums_stay_pending_until_weights_are_read(tmp_path):
    """What a deferred rule has pending at the end of a run is settled when weights are
    read or a reset keeps them, and dropped by reset(weights=True); so a run split in
    two learns the same weights, bit for bit, as one run, and so does a run after
    reset(weights=True)."""
    rules = {"projections.EE.plasticity": dict(DEFERRED, schedule="deferred")}

    def net():
        return spiking.load(str(write(tmp_path, LIF_NET)), rules, instances=2)

    one, split, kept = net(), net(), net()
    w0 = one.weights("EE").copy()
    one.run("100 ms", progress=False)
    eager = spiking.load(str(write(tmp_path, LIF_NET)),
                         {"projections.EE.plasticity": DEFERRED}, instances=2)
    eager.run("100 ms", progress=False)
    np.testing.assert_allclose(one.weights("EE"), eager.weights("EE"), atol=4e-6)
    split.run("60 ms", progress=False)
    assert split.backend.learning["defer_age"].min() > 0, "pending after the run"
    split.run("40 ms", progress=False)
    np.testing.assert_array_equal(split.weights("EE"), one.weights("EE"))
    assert split.backend.learning["defer_age"].max() == 0, "settled by the read"
    kept.run("100 ms", progress=False)
    clips = kept.backend.clip_counts()
    kept.reset()
    np.testing.assert_array_equal(kept.weights("EE"), one.weights("EE"))
    assert clips == one.backend.clip_counts() and clips["EE"] > 0
    kept.run("30 ms", progress=False)
    kept.reset(weights=True)
    assert kept.backend.learning["defer_age"].max() == 0
    np.testing.assert_array_equal(kept.weights("EE"), w0)
    # a run right after reset(weights=True) starts from the initial weights (restored
    # by each instance in the kernel: nothing read them in between); epoch 0: the noise
    # of the first run
    kept.run("30 ms", progress=False)
    kept.reset(weights=True, epoch=0)
    kept.run("100 ms", progress=False)
    np.testing.assert_array_equal(kept.weights("EE"), one.weights("EE"))


def test_rules_share_a_trace_when_population_decay_increment_and_pairing_agree(tmp_path):
    """E -> E and E -> I learn from one pre trace of E, E -> E and I -> E from one post
    trace (and that is E's pre trace too: the same tau); a different increment gets its
    own. Each spike bumps a shared trace once: after a run it holds the sum over the
    neuron's spikes of increment * decay ** (steps since the spike)."""
    from spiking.plasticity.layout import T_BASE, X_OFF, Y_OFF

    tau = {"tau_plus": "50 ms", "tau_minus": "50 ms"}
    rules = {"projections.EE.plasticity": dict(DEFERRED, **tau),
             "projections.EI.plasticity": dict(DEFERRED, **tau),
             "projections.IE.plasticity": dict(DEFERRED, **tau, a_plus=-0.3, a_minus=-0.2,
                                               w_min=-1.5, w_max=0),
             "projections.dE.plasticity": dict(DEFERRED, trace_increment=0.5)}
    net = spiking.load(str(write(tmp_path, LIF_NET)), rules, instances=2)
    L = net.backend.layout
    k = {p.name: i for i, p in enumerate(q for q in net.spec.projections if q.plasticity)}
    assert L.rule_i[k["EE"], X_OFF] == L.rule_i[k["EI"], X_OFF] == L.rule_i[k["EE"], Y_OFF]
    assert L.rule_i[k["EE"], Y_OFF] == L.rule_i[k["IE"], Y_OFF]
    assert L.rule_i[k["EI"], Y_OFF] == L.rule_i[k["IE"], X_OFF]
    assert L.rule_i[k["dE"], Y_OFF] != L.rule_i[k["EE"], Y_OFF], "another increment"
    size = {p: net.spec.population(p).size for p in ("E", "I", "drive")}
    assert L.trace_i.shape[0] == 4 and L.n_traces == 2 * size["E"] + size["I"] + size["drive"]
    res = net.run(progress=False)
    traces = net.backend.learning["traces"]
    n_steps = net.backend.t
    for pop, off in (("E", L.rule_i[k["EE"], X_OFF]), ("I", L.rule_i[k["IE"], X_OFF])):
        decay = float(net.backend.learning["trace_decay"][off])
        u = np.flatnonzero(L.trace_i[:, T_BASE] + net.spec.population(pop).offset == off)
        inc = float(L.trace_inc[u[0]])
        spikes = res.spikes[pop]
        expected = np.zeros((2, size[pop]))
        steps = np.rint(spikes["t"] / net.spec.dt).astype(int)
        np.add.at(expected, (spikes["instance"], spikes["i"]),
                  inc * decay ** (n_steps - 1 - steps))
        assert expected.max() > inc / 2, "the neurons must spike"
        np.testing.assert_allclose(traces[:, off:off + size[pop]], expected, rtol=2e-4,
                                   atol=1e-6, err_msg=pop)


def test_deferred_schedule_not_on_hardware(tmp_path):
    with pytest.raises(ConfigError, match="deferred"):
        spiking.load(str(write(tmp_path, LIF_NET)),
                     {"projections.EE.plasticity": dict(DEFERRED, schedule="deferred"),
                      "projections.EE.hardware": {"device": "ideal"}})


def test_deferred_schedule_needs_initial_weights_within_bounds(tmp_path):
    """A deferred rule keeps its weights within bounds, so it refuses initial weights
    outside them, naming the projection and the key."""
    net = spiking.load(str(write(tmp_path, LIF_NET)),
                       {"projections.EE.plasticity": dict(DEFERRED, schedule="deferred", w_min=50,
                                                          w_max=60)})
    with pytest.raises(ConfigError, match="within the rule's bounds") as err:
        net.run("1 ms", progress=False)
    assert "'EE'" in str(err.value) and "projections.EE.plasticity.schedule" in str(err.value)


def test_weight_monitor_records_mean_and_histogram(tmp_path):
    """A weights monitor samples the mean and histogram of a plastic projection;
    `spiking run` writes them to weights.npz, weights.png and metrics.json."""
    text = LIF_NET.replace("monitors:\n",
                           "monitors:\n  - {type: weights, projection: EE, every: 10 ms, bins: 20}\n")
    path = write(tmp_path, text)
    net = spiking.load(str(path), STDP_RULE, instances=2)
    res = net.run("50 ms", progress=False)
    w = res.weights["EE"]
    np.testing.assert_allclose(w["t"], np.arange(0, 51, 10.0))
    assert w["mean"].shape == (6, 2) and w["hist"].shape == (6, 2, 20)
    assert (w["hist"].sum(axis=2) == net.weights("EE").shape[1]).all()
    np.testing.assert_allclose(w["mean"][-1], net.weights("EE").mean(axis=1), rtol=1e-6)
    assert not np.allclose(w["mean"][0], w["mean"][-1]), "the weights learn"
    # the CLI writes the files and a summary
    out = tmp_path / "run"
    assert cli.main(["run", str(path), "--set", "duration=30 ms", "--set",
                     "projections.EE.plasticity=" + json.dumps(STDP_RULE["projections.EE.plasticity"]),
                     "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["weights"]["EE"]) == {"mean_start", "mean_end", "clips"}
    assert (out / "weights.png").stat().st_size > 0
    with np.load(out / "weights.npz") as f:
        assert f["EE/hist"].shape[2] == 20


def test_weight_monitor_needs_a_plastic_projection(tmp_path):
    text = LIF_NET.replace("monitors:\n", "monitors:\n  - {type: weights, projection: EE}\n")
    with pytest.raises(ConfigError, match="no plasticity") as err:
        spiking.load(str(write(tmp_path, text)))
    assert "monitors.0.projection" in str(err.value)
    with pytest.raises(ConfigError, match="unknown projection"):
        spiking.load(str(write(tmp_path, text.replace("projection: EE", "projection: XX"))))
