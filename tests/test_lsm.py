"""Liquid state machines: the NALSM defaults, the branching factor, feature
extraction, readouts, train/evaluate with resume, and bad input.

Tiny liquids on a tiny synthetic event data set keep these fast; one test
reads the real recordings (skipped without them, an error under CI).
"""
import json
from pathlib import Path

import numpy as np
import pytest

from spiking.cli import main as cli
from spiking.data.events import make_events, write_events
from spiking.errors import ConfigError

# A tiny liquid on 100 ms samples: fast to build and run.
TINY = """
name: tiny
seed: 3
lsm:
  liquid: {{shape: [4, 4, 4], scale: 0.5}}
  input: {{density: 0.2}}
  plasticity: {{rule: {rule}}}
  init: {{windows: 12, window: 20 ms, checkpoint_every: 4}}
  features: {{batch_size: 8, branching: 16}}
  data: {{window: 100 ms, val_fraction: 0.25}}
readout: {{type: {readout}, epochs: 15, weight_decay: [0.0, 0.001], penalties: [0.1, 10.0]}}
"""


def write_config(folder: Path, rule: str = "astrocyte", readout: str = "softmax",
                 name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(TINY.format(rule=rule, readout=readout))
    return path


def make_dataset(root: Path, train_per_class: int = 6, test_per_class: int = 2,
                 classes=range(10), seed: int = 0) -> Path:
    """N-MNIST layout; class c fires pixels in columns 3c..3c+2 during the first 100 ms."""
    rng = np.random.default_rng(seed)
    for split, per_class in (("Train", train_per_class), ("Test", test_per_class)):
        for c in classes:
            for k in range(per_class):
                n = 300
                x = rng.integers(3 * c, 3 * c + 3, n)
                y = rng.integers(0, 34, n)
                t = np.sort(rng.integers(0, 100_000, n))
                p = rng.integers(0, 2, n)
                path = root / split / str(c) / f"{c * 100 + k + 1:05d}.bin"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_events(path, make_events(x, y, t, p))
    return root


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPIKING_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("SPIKING_LSM_INTERRUPT_AFTER", raising=False)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tiny") / "nmnist")


# ----------------------------------------------------------------------------- config
def test_defaults_reproduce_nalsm1000(tmp_path):
    from networks.lsm import LiquidStateMachine, load_lsm_config

    path = tmp_path / "nalsm.yaml"
    path.write_text("lsm: {}\n")
    config, tree = load_lsm_config(path)
    assert tree == {"lsm": {}}
    assert config.dt == 1.0 and config.duration == 250.0
    pops = config.populations
    assert (pops["inp"].size, pops["E"].size, pops["I"].size) == (2312, 800, 200)
    machine = LiquidStateMachine(config, progress=False)
    spec = machine.spec
    lif = spec.population("E").params
    for key, value in (("tau_m", 64.0), ("v_thresh", 20.0), ("v_reset", 0.0), ("tau_refrac", 2.0),
                       ("tau_syn_E", 1.0), ("tau_syn_I", 1.0), ("cm", 0.64)):
        np.testing.assert_allclose(lif[key], value)
    assert spec.population("E").options["refractory"] == "free"
    # E and I share the 1000 sites of the grid
    sites = np.concatenate([spec.population(p).positions for p in ("E", "I")])
    assert len({tuple(s) for s in sites}) == 1000
    conn = spec.connectivity
    w = {p.name: conn.weight[conn.projection == p.index] for p in spec.projections}
    for name in ("EE", "EI"):
        assert np.all(w[name] == 3.0)
    for name in ("IE", "II"):
        assert np.all(w[name] == -3.0)
    inputs = np.concatenate([w["inE"], w["inI"]])
    assert set(np.unique(inputs)) == {-3.0, 3.0}
    assert abs((inputs > 0).mean() - 0.5) < 0.01
    assert abs(inputs.size / (2312 * 1000) - 0.15) < 0.002
    # distance-dependent EE probability: C exp(-(d / 3)^2) at d = 1
    E = spec.population("E")
    ee = conn.projection == spec.projection("EE").index
    pre = conn.pre_index()[ee] - E.offset
    post = conn.target[ee] % spec.n_total - E.offset
    d = np.linalg.norm(E.positions[:, None] - E.positions[None], axis=2)
    near = np.isclose(d, 1.0)
    made = np.zeros((E.size, E.size), bool)
    made[pre, post] = True
    assert abs(made[near].mean() - 0.2 * np.exp(-1 / 9)) < 0.02
    # NALSM's STDP: (LR1, LR2) = (eta, -A) for E and input, (-A, eta) for I presynaptic
    rules = {p.name: p.plasticity for p in spec.projections}
    assert rules["EE"].a_plus == 0.15 and rules["EE"].a_minus.modulator == "astro"
    assert rules["inE"].w_min == -3 and rules["inE"].w_max == 3
    assert rules["IE"].a_plus.modulator == "astro" and rules["IE"].a_plus.scale == -1
    assert rules["IE"].a_minus == -0.15 and (rules["IE"].w_min, rules["IE"].w_max) == (-3, 0)
    assert (rules["EI"].w_min, rules["EI"].w_max) == (0, 3)
    np.testing.assert_allclose(rules["EE"].trace_increment, 0.1 * np.exp(-0.1))
    assert rules["EE"].tau_plus == rules["EE"].tau_minus == 10.0
    assert rules["EE"].lr_decay == 0.99
    astro = spec.modulators["astro"]
    assert (astro.tau, astro.weight, astro.bias, astro.initial, astro.lr_decay) == \
        (100.0, 0.015, 0.15, 0.15, 0.99)


@pytest.mark.parametrize("name", ["lsm_nmnist.yaml", "lsm_stdp_nmnist.yaml", "nalsm_nmnist.yaml",
                                  "nalsm8000_nmnist.yaml"])
def test_shipped_configs_load(name):
    from networks.lsm import load_lsm_config

    config, _ = load_lsm_config(Path(__file__).parents[1] / "configs" / name)
    lsm = config.sections["lsm"]
    assert lsm.plasticity.rule == {"lsm_nmnist.yaml": "none", "lsm_stdp_nmnist.yaml": "stdp"}.get(
        name, "astrocyte")
    assert config.populations["E"].size + config.populations["I"].size == \
        (8000 if "8000" in name else 1000)
    if lsm.plasticity.rule == "astrocyte":   # NALSM's astrocyte weight for its liquid size
        assert lsm.plasticity.astrocyte.weight == (0.0075 if "8000" in name else 0.015)


@pytest.mark.parametrize("text, where, message", [
    ("lsm:\n  liquid: {shap: [2, 2, 2]}\n", "lsm.liquid.shap", "did you mean 'shape'"),
    ("lsm:\n  liquid: {shape: [2, 0, 2]}\n", "lsm.liquid.shape", "3 positive integers"),
    ("lsm:\n  plasticity: {rule: hebb}\n", "lsm.plasticity.rule", "none"),
    ("lsm:\n  plasticity: {projections: [EX]}\n", "lsm.plasticity.projections", "unknown projection"),
    ("lsm:\n  input: {density: 1.5}\n", "lsm.input.density", "1"),
    ("lsm: {}\nreadout: {type: svm}\n", "readout.type", "softmax"),
    ("lsm:\n  data: {augment: {shift: -1}}\n", "lsm.data.augment.shift", "0"),
    ("lsm: {}\npopulations: {E: {size: 1, model: lif}}\n", "populations", "lsm:"),
])
def test_bad_lsm_files(tmp_path, text, where, message):
    from networks.lsm import load_lsm_config

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_lsm_config(path)
    assert where in str(error.value) and message in str(error.value)
    assert str(path) in str(error.value)


# ----------------------------------------------------------------------------- branching factor
def _reference_bf(spikes, pre, post, n, T, trim=25, window=4):
    """Straight from the definition, one spike at a time."""
    per_sample = []
    for b in sorted({s[0] for s in spikes}):
        mine = [(t, i) for (bb, t, i) in spikes if bb == b]
        ratios = {}
        for t, i in mine:
            if not trim + window <= t < T - trim - window:
                continue
            ins = [p for p, q in zip(pre, post) if q == i]      # a synapse listed twice counts twice
            outs = [q for p, q in zip(pre, post) if p == i]
            before = sum(ins.count(j) for (u, j) in mine if t - window <= u < t)
            after = sum(outs.count(j) for (u, j) in mine if t + 1 <= u < t + 1 + window)
            ratios.setdefault(i, []).append(after / max(before, 1))
        values = [np.mean(r) for r in ratios.values()]
        per_sample.append(np.mean(values) if values else np.nan)
    return per_sample


def test_branching_factor_hand_made():
    from spiking.metrics import branching_factor

    pre, post = [0, 1, 0], [1, 2, 2]       # 0 -> 1, 1 -> 2, 0 -> 2
    # sample 0: 0 at 40 drives 1 at 41 and 2 at 43: bf_0 = 2 (pre clipped to 1);
    # 1 at 41: pre = 1 (0 at 40), post = 1 (2 at 43); 2 at 43: pre = 2, post = 0.
    # BF = (2 + 1 + 0) / 3 = 1. A spike at t = 10 (trimmed) counts for nothing.
    spikes = [(0, 10, 0), (0, 40, 0), (0, 41, 1), (0, 43, 2)]
    # sample 1: a lone spike of 1 (bf 0) and a later 0 -> 1 pair (bf_0 = 1, 1 again 0):
    # bf_1 = mean(0, 0) = 0, bf_0 = 1 -> BF = 0.5
    spikes += [(1, 60, 1), (1, 100, 0), (1, 102, 1)]
    inst, step, neuron = (np.array(x) for x in zip(*spikes))
    values = branching_factor(inst, step, neuron, pre, post, n_neurons=3, n_steps=250,
                              per_instance=True)
    np.testing.assert_allclose(values, [1.0, 0.5])
    assert branching_factor(inst, step, neuron, pre, post, 3, 250) == pytest.approx(0.75)
    # order of the spikes does not matter; no spikes gives NaN
    shuffled = np.random.default_rng(0).permutation(len(inst))
    np.testing.assert_allclose(branching_factor(inst[shuffled], step[shuffled], neuron[shuffled],
                                                pre, post, 3, 250, per_instance=True), [1.0, 0.5])
    assert np.isnan(branching_factor([], [], [], pre, post, 3, 250, n_instances=2,
                                     per_instance=True)).all()


def test_branching_factor_matches_reference_on_random_spikes():
    from spiking.metrics import branching_factor

    rng = np.random.default_rng(5)
    n, T = 12, 120
    pre = rng.integers(0, n, 40)
    post = rng.integers(0, n, 40)
    spikes = sorted({(int(b), int(t), int(i)) for b, t, i in zip(rng.integers(0, 3, 400),
                                                                  rng.integers(0, T, 400),
                                                                  rng.integers(0, n, 400))})
    inst, step, neuron = (np.array(x) for x in zip(*spikes))
    got = branching_factor(inst, step, neuron, pre, post, n, T, per_instance=True)
    np.testing.assert_allclose(got, _reference_bf(spikes, list(pre), list(post), n, T))


# ----------------------------------------------------------------------------- features
def _machine(tmp_path, rule="astrocyte", **kwargs):
    from networks.lsm import LiquidStateMachine

    return LiquidStateMachine.from_file(write_config(tmp_path, rule), progress=False, **kwargs)


def _splits(machine, root):
    from networks.lsm import open_splits

    return open_splits(machine.lsm, root, machine.dt, progress=False)


def test_features_fixed_liquid_same_on_both_backends(tmp_path, tiny_data):
    machine = _machine(tmp_path, "none")
    splits = _splits(machine, tiny_data)
    a = machine.extract(splits.train, splits.train_index[:10])
    assert a.counts.shape == (10, 64) and a.counts.dtype == np.uint16
    assert a.counts.sum() > 0
    assert np.isfinite(a.branching).all()          # all 10 within features.branching = 16
    torch_machine = _machine(tmp_path, "none", backend="torch", device="cpu", batch_size=4)
    b = torch_machine.extract(splits.train, splits.train_index[:10])
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_allclose(a.branching, b.branching)


def test_plastic_features_restore_weights_for_every_batch(tmp_path, tiny_data):
    machine = _machine(tmp_path, "astrocyte")
    splits = _splits(machine, tiny_data)
    index = splits.train_index
    weights = machine.initialise(splits.train, index)
    assert not np.array_equal(weights, machine.initial_weights)   # initialisation learned
    # the same sample in two batches (positions 0 and 8, batch size 8) gives the same counts
    order = np.concatenate([index[:8], index[:1]])
    f = machine.extract(splits.train, order, weights=weights)
    np.testing.assert_array_equal(f.counts[0], f.counts[8])
    # plasticity during the sample changes the features
    static = machine.extract(splits.train, order, weights=weights, plastic=False)
    assert not np.array_equal(static.counts, f.counts)
    # binned counts add up to the plain ones
    binned = _machine(tmp_path, "astrocyte")
    binned.lsm.features.bins = 3
    g = binned.extract(splits.train, order[:4], weights=weights)
    assert g.counts.shape == (4, 3 * 64)
    np.testing.assert_array_equal(g.counts.reshape(4, 3, 64).sum(1), f.counts[:4])


def test_initialisation_resumes_to_the_same_weights(tmp_path, tiny_data):
    machine = _machine(tmp_path, "astrocyte")
    splits = _splits(machine, tiny_data)
    seen = {}
    full = machine.initialise(splits.train, splits.train_index,
                              checkpoint=lambda done, w: seen.setdefault(done, w.copy()))
    assert sorted(seen) == [4, 8, 12]
    resumed = machine.initialise(splits.train, splits.train_index, start=4, weights=seen[4])
    np.testing.assert_array_equal(full, resumed)
    # bounds hold: E weights in [0, 3 * scale], I in [-3 * scale, 0], input in [-3, 3]
    conn = machine.spec.connectivity
    for proj in machine.spec.projections:
        w = full[conn.projection == proj.index]
        low, high = {"E": (0, 1.5), "I": (-1.5, 0), "inp": (-3, 3)}[proj.pre]
        assert w.min() >= low - 1e-6 and w.max() <= high + 1e-6


# ----------------------------------------------------------------------------- readouts
@pytest.mark.parametrize("kind", ["softmax", "ridge", "logistic"])
def test_readouts_learn_and_select_on_validation(kind):
    from networks.readout import ReadoutSection, train_readout

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (10, 20))
    y = np.repeat(np.arange(10), 30)
    x = np.abs(centres[y] + rng.normal(0, 1, (300, 20))) * 5
    cfg = ReadoutSection(type=kind, epochs=10, optimizer="adam" if kind == "softmax" else "adadelta",
                         lr=0.05 if kind == "softmax" else None, weight_decay=[0.0, 1e-3],
                         penalties=[0.1, 10.0])
    fit = train_readout(cfg, x[::2], y[::2], x[1::2], y[1::2])
    assert fit.readout.accuracy(x[1::2], y[1::2]) > 0.9
    assert len(fit.selection) == (len(cfg.weight_decay) if kind == "softmax" else len(cfg.penalties))
    again = train_readout(cfg, x[::2], y[::2], x[1::2], y[1::2])
    np.testing.assert_array_equal(fit.readout.weight, again.readout.weight)


def test_softmax_selection_breaks_accuracy_ties_by_validation_loss():
    """Separable classes: validation accuracy reaches 100 % early and stays there, so
    the chosen epoch is the one of least validation cross-entropy among those epochs
    (not the first of them), and the candidate chosen across weight decays likewise."""
    import torch

    from networks.readout import ReadoutSection, _scores, train_readout

    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(0, 1, (120, 6)) + 6 * np.eye(3, 6)[y]
    cfg = ReadoutSection(type="softmax", classes=3, epochs=30, weight_decay=[0.0, 1e-2],
                         select="accuracy")
    fit = train_readout(cfg, x[::2], y[::2], x[1::2], y[1::2])
    acc, losses = np.array(fit.history["validation"]), np.array(fit.history["validation_loss"])
    tied = np.flatnonzero(acc == acc.max())            # (history: the chosen candidate's)
    assert tied.size > 1, "the test needs tied epochs"
    assert fit.chosen["epochs"] == tied[np.argmin(losses[tied])] + 1 > tied[0] + 1
    best = max(fit.selection, key=lambda p: (p["validation"], -p["validation_loss"]))
    assert fit.chosen == {"weight_decay": best["weight_decay"], "epochs": best["epoch"]}
    # the loss is the mean cross-entropy of each candidate side by side
    w = torch.from_numpy(rng.normal(0, 1, (6, 6)).astype(np.float32))
    b = torch.zeros(6)
    xs, ys = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
    acc, loss = _scores(w, b, xs, ys, 3)
    for i in range(2):
        logits = xs @ w[:, 3 * i:3 * i + 3]
        assert loss[i] == pytest.approx(torch.nn.functional.cross_entropy(logits, ys).item(), rel=1e-5)
        assert acc[i] == pytest.approx((logits.argmax(1) == ys).double().mean().item())


def test_softmax_selection_by_loss_takes_the_least_validation_cross_entropy():
    """select: loss (the default) chooses, per candidate and across them, the epoch of
    least validation cross-entropy, whatever the accuracy there."""
    from networks.readout import ReadoutSection, train_readout

    rng = np.random.default_rng(5)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(0, 1, (120, 6)) + 1.5 * np.eye(3, 6)[y]   # overlapping classes
    cfg = ReadoutSection(type="softmax", classes=3, epochs=40, weight_decay=[0.0, 1e-1])
    assert cfg.select == "loss"
    fit = train_readout(cfg, x[::2], y[::2], x[1::2], y[1::2])
    losses = np.array(fit.history["validation_loss"])
    assert fit.chosen["epochs"] == np.argmin(losses) + 1
    best = min(fit.selection, key=lambda p: p["validation_loss"])
    assert fit.chosen == {"weight_decay": best["weight_decay"], "epochs": best["epoch"]}


def test_softmax_scores_every_epoch_even_at_zero_validation_accuracy():
    """Validation labels that the readout never gets right (accuracy 0.0 at every epoch)
    still give a curve of every epoch, and selection by loss still runs over them."""
    from networks.readout import ReadoutSection, train_readout

    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(0, 1, (120, 6)) + 6 * np.eye(3, 6)[y]
    cfg = ReadoutSection(type="softmax", classes=3, epochs=12, weight_decay=[0.0])
    fit = train_readout(cfg, x[::2], y[::2], x[1::2], (y[1::2] + 1) % 3)
    assert fit.history["validation"] == [0.0] * 12
    assert len(fit.history["validation_loss"]) == 12
    assert fit.chosen["epochs"] == np.argmin(fit.history["validation_loss"]) + 1


def test_softmax_candidates_side_by_side_learn_as_each_alone_and_as_autograd():
    """The written-out gradient of the side-by-side softmax training against torch's
    autograd of cross-entropy + wd |w|^2, one candidate at a time, same minibatches."""
    import torch

    from networks.readout import ReadoutSection, _softmax_train

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 25)
    x = torch.from_numpy((rng.normal(0, 1, (100, 12)) + y[:, None] * 0.5).astype(np.float32))
    y = torch.from_numpy(y)
    none = torch.zeros((0, 12)), torch.zeros(0, dtype=torch.int64)
    cfg = ReadoutSection(type="softmax", classes=4, batch_size=16)
    both = _softmax_train(x, y, *none, cfg, [0.0, 0.05], 6, False, "")
    for i, wd in enumerate([0.0, 0.05]):
        alone = _softmax_train(x, y, *none, cfg, [wd], 6, False, "")
        assert alone[0][0]["train"] == both[0][i]["train"]     # the same accuracy curve
        for a, b in zip(alone[2][0], both[2][i]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
        # autograd reference: the loss written the usual way, the same optimizer and order
        w = torch.zeros(12, 4, requires_grad=True)
        b = torch.zeros(4, requires_grad=True)
        opt = torch.optim.Adadelta([w, b], lr=1.0)
        generator = torch.Generator().manual_seed(cfg.seed)
        for _ in range(6):
            order = torch.randperm(100, generator=generator)
            for start in range(0, 100, 16):
                idx = order[start:start + 16]
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(x[idx] @ w + b, y[idx]) + wd * (w * w).sum()
                loss.backward()
                opt.step()
        np.testing.assert_allclose(both[2][i][0], w.detach(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(both[2][i][1], b.detach(), rtol=1e-4, atol=1e-6)
        assert np.abs(w.detach().numpy()).max() > 0.01                # it learned something


def test_readout_adadelta_is_torchs():
    """The readout's fused Adadelta step gives torch.optim.Adadelta's parameters, step after
    step, to float rounding, for two parameters and a learning rate != 1."""
    import torch

    from networks.readout import _Adadelta

    gen = torch.Generator().manual_seed(3)
    ours = [torch.randn(50, 16, generator=gen), torch.randn(16, generator=gen)]
    ref = [p.clone().requires_grad_() for p in ours]
    start = [p.clone() for p in ours]
    opt, reference = _Adadelta(ours, lr=0.5), torch.optim.Adadelta(ref, lr=0.5)
    for _ in range(20):
        grads = [torch.randn(p.shape, generator=gen) for p in ours]
        opt.step(grads)
        for p, g in zip(ref, grads):
            p.grad = g.clone()
        reference.step()
        for a, b in zip(ours, ref):
            torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-7)
    assert all((a - s).abs().max() > 1e-3 for a, s in zip(ours, start))   # it moved


def test_softmax_padded_width_and_adam():
    """The side-by-side weights are padded to a multiple of 16 columns; with Adam (torch's
    optimizer behind the readout's step) each candidate still gets its own learned
    columns."""
    import torch

    from networks.readout import ReadoutSection, _padded, _softmax_train

    assert [_padded(c) for c in (1, 10, 16, 17, 30)] == [16, 16, 16, 32, 32]
    rng = np.random.default_rng(4)
    y = torch.from_numpy(np.repeat(np.arange(3), 10))
    x = torch.from_numpy(rng.normal(0, 1, (30, 5)).astype(np.float32))
    cfg = ReadoutSection(type="softmax", classes=3, batch_size=8, optimizer="adam")
    history, best, last = _softmax_train(x, y, x, y, cfg, [0.0, 0.1], 3, False, "")
    assert len(last) == 2 and all(w.shape == (5, 3) and b.shape == (3,) for w, b in last)
    assert all(np.abs(w.numpy()).max() > 0 for w, _ in last)


# ----------------------------------------------------------------------------- commands
def _train(config, data, out, *extra):
    return cli(["train", str(config), "--data", str(data), "--out", str(out), "--no-progress", *extra])


def _same_run(a: Path, b: Path):
    ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
    assert ma["accuracy"] == mb["accuracy"]
    assert ma["branching_factor"] == mb["branching_factor"]
    for name in ("liquid.npz", "readout.npz"):
        with np.load(a / name) as x, np.load(b / name) as y:
            for key in x.files:
                np.testing.assert_array_equal(x[key], y[key])
    for split in ("train", "validation", "test"):
        with np.load(a / "features" / f"{split}.npz") as x, np.load(b / "features" / f"{split}.npz") as y:
            np.testing.assert_array_equal(x["counts"], y["counts"])


@pytest.mark.parametrize("stop_after", [2, 5])
def test_interrupted_training_resumes_to_the_same_result(tmp_path, tiny_data, monkeypatch, capsys,
                                                         stop_after):
    config = write_config(tmp_path, "astrocyte")
    assert _train(config, tiny_data, tmp_path / "whole") == 0
    monkeypatch.setenv("SPIKING_LSM_INTERRUPT_AFTER", str(stop_after))
    assert _train(config, tiny_data, tmp_path / "cut") == 130      # "interrupted"
    assert not (tmp_path / "cut" / "model.json").exists()
    assert any((tmp_path / "cut" / "checkpoints").iterdir())
    monkeypatch.delenv("SPIKING_LSM_INTERRUPT_AFTER")
    assert _train(config, tiny_data, tmp_path / "cut") == 0
    assert "resuming" in capsys.readouterr().out
    _same_run(tmp_path / "whole", tmp_path / "cut")


def test_killed_training_resumes_to_the_same_result(tmp_path, tiny_data):
    """A real kill (SIGTERM) of a `spiking train` process, then the same command again."""
    import signal
    import subprocess
    import sys
    import time

    config = write_config(tmp_path, "astrocyte")
    text = config.read_text().replace("windows: 12,", "windows: 400,")
    config.write_text(text)
    assert _train(config, tiny_data, tmp_path / "whole") == 0
    command = [sys.executable, "-m", "spiking", "train", str(config), "--data", str(tiny_data),
               "--out", str(tmp_path / "cut"), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    checkpoint = tmp_path / "cut" / "checkpoints" / "init.npz"
    deadline = time.time() + 120
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err.decode()
    assert b"interrupted" in err
    assert not (tmp_path / "cut" / "model.json").exists()
    assert subprocess.run(command, capture_output=True).returncode == 0
    _same_run(tmp_path / "whole", tmp_path / "cut")


def test_train_writes_model_metrics_and_plots_then_evaluate(tmp_path, tiny_data, capsys):
    config = write_config(tmp_path, "none", readout="ridge")
    out = tmp_path / "run"
    assert _train(config, tiny_data, out) == 0
    for name in ("model.json", "config.yaml", "liquid.npz", "readout.npz", "metrics.json",
                 "accuracy.png", "confusion.png", "raster.png", "features/train.npz"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["accuracy"]) == {"train", "validation", "test"}
    assert metrics["accuracy"]["test"] > 0.5           # ten well separated classes
    assert metrics["samples_per_s"]["features"] > 0
    assert metrics["branching_factor"]["train"] is not None
    assert metrics["data"] == {"root": str(tiny_data), "origin": "explicit", "synthetic": False,
                               "train": 40, "validation": 20, "test": 20}
    # a second run of the same command reads the cached features and gives the same result
    assert _train(config, tiny_data, out) == 0
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    # another readout on the same features: no simulation needed
    capsys.readouterr()
    assert cli(["evaluate", str(out), "--data", str(tiny_data), "--split", "Test",
                "--no-progress"]) == 0
    result = json.loads((out / "evaluate_Test.json").read_text())
    assert result["accuracy"] == pytest.approx(metrics["accuracy"]["test"])
    assert result["samples"] == 20
    printed = capsys.readouterr().out
    assert json.loads(printed.strip().splitlines()[-1])["accuracy"] == result["accuracy"]
    assert cli(["evaluate", str(out), "--data", str(tiny_data), "--split", "Train",
                "--out", str(tmp_path / "train.json"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "train.json").read_text())["samples"] == 60


def test_augmented_readout_learns_from_translated_copies_of_train_only(tmp_path, tiny_data, capsys):
    from spiking.data import Copies, Translate

    config = write_config(tmp_path, "none", readout="ridge")
    out = tmp_path / "run"
    assert _train(config, tiny_data, out, "--set", "lsm.data.augment.shift=1") == 0
    assert "+ 320 translated copies" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["train"] == 40 and metrics["data"]["augmented"] == 8 * 40
    assert metrics["data"]["validation"] == 20 and metrics["data"]["test"] == 20   # never moved
    with np.load(out / "features" / "augmented.npz") as f:
        counts, labels = f["counts"], f["labels"]
    with np.load(out / "features" / "train.npz") as f:
        train_counts, train_labels = f["counts"], f["labels"]
    # one block of 40 per move, in train order: the labels repeat, the counts do not
    np.testing.assert_array_equal(labels, np.tile(train_labels, 8))
    assert not np.array_equal(counts[:40], train_counts)
    # block 0 is the first move, (-1, -1), of the same samples
    from networks.lsm import LiquidStateMachine, open_splits
    machine = LiquidStateMachine.from_file(config, ["lsm.data.augment.shift=1"], progress=False)
    splits = open_splits(machine.lsm, tiny_data, machine.dt, progress=False)
    assert isinstance(splits.augmented, Copies)
    assert splits.augmented.datasets[0].transform == Translate(-1, -1)
    first = machine.extract(splits.augmented, np.arange(8))
    np.testing.assert_array_equal(first.counts, counts[:8])
    # the readout saw the copies: its fit differs from one on train alone
    assert _train(config, tiny_data, tmp_path / "plain") == 0
    with np.load(out / "readout.npz") as a, np.load(tmp_path / "plain" / "readout.npz") as b:
        assert not np.array_equal(a["weight"], b["weight"])


def test_new_readout_reuses_features_and_other_liquid_is_refused(tmp_path, tiny_data, capsys):
    out = tmp_path / "run"
    assert _train(write_config(tmp_path, "none", "ridge"), tiny_data, out) == 0
    cached = (out / "features" / "train.npz").stat().st_mtime_ns
    # only the readout differs: the features are read back, not simulated again
    assert _train(write_config(tmp_path, "none", "logistic", name="b.yaml"), tiny_data, out) == 0
    assert (out / "features" / "train.npz").stat().st_mtime_ns == cached
    assert json.loads((out / "metrics.json").read_text())["readout"]["type"] == "logistic"
    # another liquid: refused unless --restart
    other = write_config(tmp_path, "stdp", "ridge", name="c.yaml")
    capsys.readouterr()
    assert _train(other, tiny_data, out) == 2
    assert "--restart" in capsys.readouterr().err
    assert _train(other, tiny_data, out, "--restart") == 0
    assert json.loads((out / "metrics.json").read_text())["plasticity"] == "stdp"


def test_wrong_layout_and_missing_classes(tmp_path, tiny_data, capsys):
    config = write_config(tmp_path, "none", "ridge")
    flat = tmp_path / "flat" / "Train"
    flat.mkdir(parents=True)
    (flat / "00001.bin").write_bytes(b"\0" * 10)
    assert _train(config, tmp_path / "flat", tmp_path / "out1") == 2
    assert "wrong folder layout" in capsys.readouterr().err
    assert _train(config, tmp_path / "nowhere", tmp_path / "out2") == 2
    assert "no N-MNIST data" in capsys.readouterr().err
    partial = make_dataset(tmp_path / "partial", 3, 1, classes=[0, 1, 2, 4, 5, 6, 7, 8, 9])
    assert _train(config, partial, tmp_path / "out3") == 2
    assert "class(es) 3" in capsys.readouterr().err


def test_evaluate_bad_folders(tmp_path, tiny_data, capsys):
    config = write_config(tmp_path, "none", "ridge")
    out = tmp_path / "run"
    assert _train(config, tiny_data, out) == 0
    capsys.readouterr()
    # data folder with the wrong layout
    bad = tmp_path / "bad" / "Test" / "seven"
    bad.mkdir(parents=True)
    (bad / "00001.bin").write_bytes(b"\0" * 10)
    assert cli(["evaluate", str(out), "--data", str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "wrong folder layout" in capsys.readouterr().err
    # a model folder whose config builds another liquid
    text = (out / "config.yaml").read_text().replace("- 4\n", "- 5\n", 1)
    (out / "config.yaml").write_text(text)
    assert cli(["evaluate", str(out), "--data", str(tiny_data), "--no-progress"]) == 1
    assert "incompatible model folder" in capsys.readouterr().err
    # a config this version cannot read
    (out / "config.yaml").write_text("lsm: {liquid: {colour: red}}\n")
    assert cli(["evaluate", str(out), "--data", str(tiny_data), "--no-progress"]) == 1
    assert "not valid with this version" in capsys.readouterr().err
    # an older model format
    meta = json.loads((out / "model.json").read_text())
    (out / "model.json").write_text(json.dumps(dict(meta, format="spiking-lsm/0")))
    assert cli(["evaluate", str(out), "--data", str(tiny_data), "--no-progress"]) == 1
    assert "spiking-lsm/1" in capsys.readouterr().err
    # not a model folder at all
    assert cli(["evaluate", str(tmp_path), "--data", str(tiny_data), "--no-progress"]) == 1
    assert "not a trained model folder" in capsys.readouterr().err


def test_disk_full_keeps_earlier_checkpoints(tmp_path, tiny_data, monkeypatch, capsys):
    import errno

    import spiking.results

    config = write_config(tmp_path, "astrocyte")
    out = tmp_path / "run"
    real = spiking.results.atomic_write_bytes
    calls = {"n": 0}

    def failing(path, data):
        calls["n"] += 1
        if calls["n"] > 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(spiking.results, "atomic_write_bytes", failing)
    assert _train(config, tiny_data, out) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "kept" in err
    saved = np.load(out / "checkpoints" / "init.npz")
    assert int(saved["done"]) > 0                      # the last good checkpoint is intact
    assert not list(out.glob("**/.tmp-*"))             # no half-written files left
    monkeypatch.setattr(spiking.results, "atomic_write_bytes", real)
    assert _train(config, tiny_data, out) == 0


# ----------------------------------------------------------------------------- real data
def test_nalsm1000_liquid_on_real_recordings(tmp_path):
    from conftest import require_data
    from networks.lsm import LiquidStateMachine, load_lsm_config, open_splits

    root = require_data("nmnist-small")
    config, _ = load_lsm_config(Path(__file__).parents[1] / "configs" / "lsm_nmnist.yaml",
                                ["lsm.data.augment.shift=0"])   # test recordings only: no copies
    machine = LiquidStateMachine(config, progress=False, batch_size=8)
    splits = open_splits(machine.lsm, root, machine.dt, progress=False)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (809, 91, 100)
    f = machine.extract(splits.test, np.arange(8))
    rates = f.rates_hz(250.0, 800, 200)
    assert 5 < rates["E"] < 150 and 5 < rates["I"] < 150
    assert 0.5 < np.nanmean(f.branching) < 3
