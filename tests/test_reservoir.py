"""The what/when reservoir (networks/reservoir.py, force.py, analysis.py,
reservoir_cli.py): config, task generator, FORCE, analysis helpers, and small,
short versions of the benchmark's figures (benchmarks/bench_reservoir.py has
the full-size ones)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from networks.analysis import (WhatWhenAnalysis, first_sustained, linear_fit, peak,
                               principal_angles)
from networks.force import RLSReadout
from networks.reservoir import TaskGenerator, WhatWhenExperiment, load_reservoir_config
from spiking.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "reservoir_what_when.yaml"

# A 300-neuron reservoir (E 240, I 60) with the in-degrees of the full one.
SMALL = {
    "populations.E.size": 240, "populations.I.size": 60,
    "projections.EE.connector.p": 0.333, "projections.EI.connector.p": 0.333,
    "projections.IE.connector.p": 0.333, "projections.II.connector.p": 0.333,
    "task.readout.neurons": 4, "task.test_trials": 16,
}


def small(**extra):
    ov = dict(SMALL)
    ov.update({k.replace("__", "."): v for k, v in extra.items()})
    return ov


# ----------------------------------------------------------------------------- config
def test_config_adds_cue_readouts_and_modulators():
    config, task = load_reservoir_config(CONFIG)
    pops = config.populations
    assert pops["E"].size == 800 and pops["I"].size == 200      # 1000 neurons, 80/20
    assert pops["cue"].size == task.cue.neurons * task.identities
    assert pops["what"].size == pops["when"].size == task.readout.neurons * task.identities
    for name in ("E_what", "E_when"):
        rule = config.projections[name].plasticity
        assert rule.rule == "three_factor" and rule.eligibility == "pre"
        assert rule.modulator.startswith("err_") and rule.gate.startswith("gate_")
    assert config.modulators["err_when"].type == "error"
    assert config.modulators["gate_what"].type == "signal"
    assert task.instances == 4 and [c.probability for c in task.conditions] == [(0.25,), (0.5,), (0.75,), (1.0,)]
    plain, _ = load_reservoir_config(CONFIG, readouts=False)
    assert "what" not in plain.populations and "cue" in plain.populations


@pytest.mark.parametrize("override, match", [
    ({"task.latency": "700 ms"}, "task.trial.length"),
    ({"task.mapping": [0, 0, 1]}, "task.mapping"),
    ({"task.switches": [{"trial": 900, "latency": "300 ms"}]}, "task.switches.0.trial"),
    ({"task.probability": 1.5}, "task.probability"),
    ({"task.readout.source": "X"}, "task.readout.source"),
    ({"task.gate.cue_for": ["where"]}, "task.gate.cue_for"),
    ({"task.reservoir": ["E", "J"]}, "task.reservoir"),
    ({"task.latncy": "300 ms"}, "did you mean 'latency'"),
])
def test_bad_task_sections_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_reservoir_config(CONFIG, override)


def test_generated_names_may_not_be_taken(tmp_path):
    text = CONFIG.read_text().replace("  noise:\n", "  what:\n", 1).replace("pre: noise", "pre: what")
    path = tmp_path / "clash.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="generated"):
        load_reservoir_config(path)


# ----------------------------------------------------------------------------- task
def test_task_generator_switches_and_probabilities():
    _, task = load_reservoir_config(CONFIG, {
        "task.conditions": None, "task.probability": [0.3, 0.8], "task.latency": ["200 ms", "300 ms"],
        "task.switches": [{"trial": 1000, "mapping": [1, 0]}, {"trial": 2000, "latency": "150 ms"},
                          {"trial": 3000, "probability": 1.0}], "task.trials": 4000})
    gen = TaskGenerator(task, instances=2, seed=3)
    tr = gen.draw(4000)
    assert [t for t, _ in gen.switch_kinds()] == [1000, 2000, 3000]
    assert [k for _, k in gen.switch_kinds()] == [["mapping"], ["latency"], ["probability"]]
    first = slice(0, 1000)
    assert np.array_equal(tr.identity[first], tr.cue[first])                 # cue k -> identity k
    assert np.array_equal(tr.identity[1000:2000], 1 - tr.cue[1000:2000])     # swapped
    assert set(np.unique(tr.latency[:1000][tr.identity[:1000] == 1])) == {300.0}
    assert set(np.unique(tr.latency[2000:3000])) == {150.0}
    for k, p in ((0, 0.3), (1, 0.8)):
        sel = tr.identity[:2000] == k
        assert abs(tr.occurred[:2000][sel].mean() - p) < 0.04
    assert tr.occurred[3000:].all()
    # identity, latency and probability are independent: other probabilities, same cues
    _, task2 = load_reservoir_config(CONFIG, {"task.conditions": None, "task.probability": 0.5,
                                              "task.switches": [], "task.trials": 4000})
    tr2 = TaskGenerator(task2, instances=2, seed=3).draw(4000)
    assert np.array_equal(tr2.cue, tr.cue)
    assert not np.array_equal(tr.cue[:, 0], tr.cue[:, 1])                    # instances draw apart


def test_conditions_fix_the_instances():
    _, task = load_reservoir_config(CONFIG)
    gen = TaskGenerator(task, instances=4, seed=1)
    assert [gen.phase(0, b).probability[0] for b in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert [gen.phase(450, b).probability[0] for b in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert gen.phase(250, 2).latency[0] == 350.0
    with pytest.raises(ConfigError, match="4 conditions"):
        TaskGenerator(task, instances=3, seed=1)


# ----------------------------------------------------------------------------- FORCE
def test_rls_blocks_equal_one_at_a_time_and_ridge():
    rng = np.random.default_rng(0)
    x = rng.random((300, 2, 20)).astype(np.float32)
    f = rng.random((300, 2, 3))
    one = RLSReadout(20, 3, 2, alpha=2.0, every=3, block=1)
    many = RLSReadout(20, 3, 2, alpha=2.0, every=3, block=17)
    one.run(x[:150], f[:150]); one.run(x[150:], f[150:])
    many.run(x[:150], f[:150]); many.run(x[150:], f[150:])
    np.testing.assert_allclose(one.W, many.W, atol=1e-10)
    X = np.concatenate([x, np.ones((300, 2, 1), np.float32)], axis=2)[::3, 1].astype(float)
    ridge = np.linalg.solve(X.T @ X + 2.0 * np.eye(21), X.T @ f[::3, 1])
    np.testing.assert_allclose(one.W[1], ridge, atol=1e-8)


def test_rls_without_reset_follows_a_change_slowly():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 1, 10))
    w1, w2 = rng.normal(size=(10, 1)), rng.normal(size=(10, 1))
    keep, reset = RLSReadout(10, 1, 1, bias=False, every=1), RLSReadout(10, 1, 1, bias=False, every=1,
                                                                        reset_at_switches=True)
    for r in (keep, reset):
        r.run(x[:1000], x[:1000] @ w1)
        r.switch()
        r.run(x[1000:1100], x[1000:1100] @ w2)
    err = {name: np.abs(r.W[0] - w2).max() for name, r in (("keep", keep), ("reset", reset))}
    assert err["reset"] < 0.1 and err["keep"] > 0.5, err
    assert reset.resets == 1 and keep.resets == 0


# ----------------------------------------------------------------------------- analysis
def test_analysis_helpers():
    t = np.arange(600.0)
    trace = np.exp(-0.5 * ((t - 250) / 20) ** 2)
    assert peak(trace)[0] == pytest.approx(250, abs=1)
    assert linear_fit([0.25, 0.5, 0.75, 1.0], [0.5, 1.0, 1.5, 2.0])["r2"] == pytest.approx(1.0)
    e = np.eye(5)
    np.testing.assert_allclose(principal_angles(e[:, :2], e[:, 2:4]), [90, 90])
    np.testing.assert_allclose(principal_angles(e[:, :2], e[:, 1:3]), [0, 90], atol=1e-6)
    assert first_sustained(np.array([0, 1, 0, 1, 1, 1, 0]), 3) == 3
    assert first_sustained(np.array([0, 0, 1, 1]), 3) == 2      # holds to the end
    assert first_sustained(np.zeros(5), 2) is None


def test_adaptation_counts_trials_after_a_switch():
    """Synthetic log: the peak moves from 250 to 350 ms linearly over 20 trials."""
    N, W = 100, 600
    t = np.arange(W)
    centre = np.where(np.arange(N) < 50, 250, np.minimum(350, 250 + 5 * (np.arange(N) - 50)))
    when = np.exp(-0.5 * ((t[None] - centre[:, None]) / 20) ** 2)[:, None]
    log = {"cue": np.zeros((N, 1), int), "identity": np.zeros((N, 1), int),
           "occurred": np.ones((N, 1), bool), "probability": np.ones((N, 1)),
           "latency": np.where(np.arange(N) < 50, 250.0, 350.0)[:, None],
           "when": {"three_factor": when}, "what": {"three_factor": np.zeros((N, 1, 2))}}
    a = WhatWhenAnalysis(log, 1.0, [(50, ["latency"])], window=1, tolerance=0.1, hold=3, steady=20)
    # within 10 % of 350 ms from 315 ms on: trial 50 + 13, the 14th of the new phase
    assert a.adaptation("three_factor", 50, ["latency"], N)["latency"] == [14]
    probes = WhatWhenAnalysis({k: (v[1::4] if not isinstance(v, dict) else {m: x[1::4] for m, x in v.items()})
                               for k, v in log.items()}, 1.0, [(50, ["latency"])], window=4, tolerance=0.1,
                              hold=8, steady=20, n_trials=N, trial_index=np.arange(N)[1::4])
    assert probes.window == 1 and probes.hold == 2
    assert probes.adaptation("three_factor", 50, ["latency"], N)["latency"] == [16]   # probe after trial 65
    s = a.summary()["three_factor"]
    assert s["phases"][0]["peaks"]["error"][0] < 0.01 and s["phases"][1]["peaks"]["peak_ms"][0] == 350


def test_probability_switch_readapts_when_the_code_is_back():
    """Synthetic log, four instances p = .25/.5/.75/1 reversed at trial 50;
    amplitude = 2p + 0.3 before. One method moves to its new amplitudes
    linearly over 20 trials (times a gain of 1.3: a drifting gain is allowed),
    the other only halfway (as RLS without reset does): the first re-adapts
    once the code against the new p has half its old slope (at 3/4 of the
    way), the second never (its code stays flat)."""
    N, W, B = 120, 400, 4
    t = np.arange(W)
    p_old = np.array([0.25, 0.5, 0.75, 1.0])
    p_new = p_old[::-1]
    n = np.arange(N)[:, None]
    frac = np.clip((n - 50) / 20.0, 0, 1) * (n >= 50)
    bump = np.exp(-0.5 * ((t - 250) / 20) ** 2)
    gain = np.where(n >= 50, 1.3, 1.0)
    amp = {"three_factor": gain * (2 * (p_old + frac * (p_new - p_old)) + 0.3),
           "force": 2 * (p_old + 0.5 * frac * (p_new - p_old)) + 0.3}
    prob = np.where(n < 50, p_old, p_new)
    log = {"cue": np.zeros((N, B), int), "identity": np.zeros((N, B), int),
           "occurred": np.ones((N, B), bool), "probability": prob, "latency": np.full((N, B), 250.0),
           "when": {m: a[:, :, None] * bump for m, a in amp.items()},
           "what": {m: np.zeros((N, B, 2)) for m in amp}}
    a = WhatWhenAnalysis(log, 1.0, [(50, ["probability"])], window=1, tolerance=0.1, hold=5, steady=20)
    # slope vs p_new: 1.3 * 2 * (2 f - 1) >= 0.5 * 2  <=>  f >= 0.69: trial 50 + 14, the 15th
    assert a.adaptation("three_factor", 50, ["probability"], N)["probability"] == [15]
    assert a.adaptation("force", 50, ["probability"], N)["probability"] == [None]
    s = a.summary()
    assert s["force"]["switches"][0]["code_end"]["slope"] == pytest.approx(0, abs=0.05)
    assert s["three_factor"]["switches"][0]["code_end"]["slope"] == pytest.approx(2.6, rel=0.03)
    # one condition: per instance, against a_old * p_new / p_old
    one = {k: (v[:, 1:2] if not isinstance(v, dict) else {m: x[:, 1:2] for m, x in v.items()})
           for k, v in log.items()}
    a1 = WhatWhenAnalysis(one, 1.0, [(50, ["probability"])], window=1, tolerance=0.1, hold=5, steady=20)
    assert a1.adaptation("force", 50, ["probability"], N)["probability"] == [None]


# ----------------------------------------------------------------------------- small runs
def probe_analysis(exp, switches=()):
    return WhatWhenAnalysis(exp.probe_log.arrays(), exp.dt, list(switches), window=20, tolerance=0.1,
                            hold=12, steady=50, n_trials=exp.trial, trial_index=np.array(exp.probe_trials))


REVERSED = [{"probability": p} for p in (1.0, 0.75, 0.5, 0.25)]


@pytest.fixture(scope="module")
def probability_run():
    """Four instances, p = 0.25 ... 1, one latency, 200 trials with a probe
    trial (no learning) after every second one; the probabilities reversed at
    trial 100; FORCE with and without reset on the same spikes."""
    config, task = load_reservoir_config(CONFIG, small(**{
        "task.switches": [{"trial": 100, "conditions": REVERSED}], "task.trials": 200,
        "task.trial.length": "600 ms", "task.probe_every": 2, "task.test_trials": 0}))
    exp = WhatWhenExperiment(config, task)
    exp.train()
    return exp, probe_analysis(exp, exp.generator.switch_kinds())


PHASES = [(50, 100), (150, 200)]     # the last 50 trials before the switch and of the run


def test_small_when_readout_peaks_at_the_latency(probability_run):
    exp, a = probability_run
    for lo, hi in PHASES:
        pk = a.phase_peaks("three_factor", lo, hi)
        # p >= 0.5: at p = 0.25 the small reservoir's peak is a few spikes (the
        # benchmark reports all four at full size)
        errors = [e for e, p in zip(pk["error"], pk["probability"]) if p >= 0.5]
        assert max(errors) <= 0.10, (lo, pk)


def test_small_peak_amplitude_is_linear_in_probability(probability_run):
    """Trial-averaged probe output (learning frozen in each probe) over the
    last 50 trials of each phase: amplitude ~ p with r2 >= 0.9."""
    exp, a = probability_run
    for lo, hi in PHASES:
        coding = a.probability_coding("three_factor", lo, hi)
        assert coding["r2"] >= 0.9 and coding["slope"] > 0, (lo, coding)


def test_small_probability_switch_three_factor_recodes_force_without_reset_does_not(probability_run):
    """After the reversal the three-factor readout's amplitude ~ p code is back
    (no reset) by the end of the phase; FORCE without reset, having fitted 100
    trials of the old probabilities, has lost its code (slope under half the
    old one) and never meets the re-adaptation criterion; FORCE with reset
    recodes."""
    exp, a = probability_run
    sw = {m: e["switches"][0] for m, e in a.summary().items()}
    tf, keep, reset = sw["three_factor"], sw["force"], sw["force_reset"]
    for entry in (tf, reset):
        assert entry["code_end"]["r2"] >= 0.9 and entry["code_end"]["slope"] >= 0.5 * entry["code_before"]["slope"], entry
    assert keep["code_end"]["slope"] < 0.5 * keep["code_before"]["slope"], keep
    assert keep["trials_to_readapt"]["probability"] == [None], keep
    assert reset["trials_to_readapt"]["probability"][0] is not None, reset


def test_small_what_readout_names_the_identity(probability_run):
    exp, a = probability_run
    acc = a.what_accuracy("three_factor", 50, 100)
    assert acc[-1] >= 0.8, acc           # p = 1
    acc = a.what_accuracy("three_factor", 150, 200)
    assert acc[0] >= 0.8, acc            # p = 1 after the reversal


def test_small_what_and_when_subspaces_are_near_orthogonal(probability_run):
    from networks.reservoir_cli import angles

    exp, _ = probability_run
    ang = angles(exp)["three_factor"]
    assert ang["min_what_when"] > 45, ang


def test_small_latency_switch_three_factor_readapts_force_without_reset_does_not():
    """Two instances (p = 1): latency 250 -> 350 ms at trial 100. The three-factor
    readout moves its peak within the phase, no reset; FORCE without a reset
    still peaks at the old latency (it fits all 100 old trials too)."""
    config, task = load_reservoir_config(CONFIG, small(**{
        "task.conditions": None, "task.switches": [{"trial": 100, "latency": "350 ms"}],
        "task.trials": 200, "task.probe_every": 2, "task.test_trials": 0}))
    exp = WhatWhenExperiment(config, task, instances=2)
    exp.train()
    a = probe_analysis(exp, exp.generator.switch_kinds())
    tf = a.adaptation("three_factor", 100, ["latency"], 200)["latency"]
    keep = a.adaptation("force", 100, ["latency"], 200)["latency"]
    reset = a.adaptation("force_reset", 100, ["latency"], 200)["latency"]
    assert all(n is not None and n <= 100 for n in tf), (tf, keep, reset)
    assert all(n is not None for n in reset), reset
    assert all(k is None or k > n for k, n in zip(keep, tf)), (tf, keep)
    end = a.phase_peaks("force", 150, 200)
    assert max(end["error"]) > 0.2, end          # FORCE without reset: still near 250 ms


def test_cli_train_writes_metrics_and_plots(tmp_path):
    from spiking.cli import main

    out = tmp_path / "run"
    sets = [f"{k}={json.dumps(v)}" for k, v in small(**{
        "task.trials": 24, "task.switches.0.trial": 8, "task.switches.1.trial": 16,
        "task.test_trials": 4, "task.probe_every": 2, "task.analysis.steady": 8,
        "task.trial.length": "600 ms", "task.latency": "200 ms", "task.switches.0.latency": "250 ms"}).items()]
    args = ["train", str(CONFIG), "--out", str(out), "--no-progress"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["trials"] == 24 and m["instances"] == 4 and len(m["tests"]) == 3
    assert set(m["methods"]) == {"three_factor", "force", "force_reset"}
    assert [s["trial"] for s in m["switches"]] == [8, 16]
    assert "latency@8" in m["must_show"]["trials_to_readapt"]
    assert m["speed"]["reservoir"]["realtime_factor_cpu"] > 0
    for name in ("switch_traces.png", "adaptation.png", "probability.png", "test_traces.png",
                 "weights.npz", "log.npz", "probes.npz"):
        assert (out / name).stat().st_size > 0, name


def test_cli_run_with_a_task_block_runs_the_task(tmp_path, capsys, monkeypatch):
    """``spiking run FILE`` on a file with a task: block trains and analyses
    like ``spiking train`` (no --out: nothing written)."""
    from spiking.cli import main

    monkeypatch.chdir(tmp_path)
    sets = [f"{k}={json.dumps(v)}" for k, v in small(**{
        "task.trials": 6, "task.switches": [], "task.conditions": None, "task.test_trials": 0,
        "task.probe_every": 2, "task.trial.length": "600 ms", "task.force.enabled": False}).items()]
    args = ["run", str(CONFIG), "--no-progress", "--json"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "6 trials" in out and "three-factor" in out and "principal angles" in out
    must = json.loads(out.strip().splitlines()[-1])
    assert "what_when_min_angle_deg" in must and must["realtime_factor_reservoir_cpu"] > 0
    assert not list(tmp_path.iterdir()), "nothing is written without --out"


def test_cli_reports_config_errors(tmp_path, capsys):
    from spiking.cli import main

    rc = main(["train", str(CONFIG), "--out", str(tmp_path / "x"), "--set", "task.latency=900 ms"])
    assert rc == 2
    assert "task.trial.length" in capsys.readouterr().err
