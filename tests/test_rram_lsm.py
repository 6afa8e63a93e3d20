"""The RRAM zero-shot LSM (networks/rram_lsm.py) and the noise sweep (hardware/sweep.py),
on tiny liquids and synthetic inputs."""
import math

import numpy as np
import pytest

from hardware import sweep as hw_sweep
from networks.rram_lsm import RramLiquid, RramLsmConfig, compare, random_weights
from spiking.errors import ConfigError


def tiny(**kw):
    base = dict(n_liquid=24, crop=4, steps=12, dt=2.0, w_in=6.0, w_rec=1.0, batch_size=4,
                readout={"type": "logistic", "classes": 2, "penalties": [0.1, 1.0]})
    base.update(kw)
    return RramLsmConfig(**base)


def two_classes(n, steps=12, n_in=16, seed=0):
    """Class 0 drives the first half of the inputs, class 1 the second half."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = np.zeros((steps, n, n_in), np.uint8)
    for i, c in enumerate(y):
        half = slice(0, n_in // 2) if c == 0 else slice(n_in // 2, n_in)
        x[:, i, half] = rng.random((steps, n_in // 2)) < 0.5
    return x, y


def test_weights_are_switched_conductance_differences():
    cfg = tiny()
    w_in, w_rec = random_weights(cfg)
    assert w_in.shape == (16, 24) and w_rec.shape == (24, 24)
    assert np.all(np.diag(w_rec) == 0)
    assert np.abs(w_in).max() <= cfg.w_in + 1e-6
    # SET ~ 0.8, RESET ~ 0.05 of the window: differences cluster near 0 and +-0.75 w_max
    big = np.abs(w_in) > 0.4 * cfg.w_in
    assert 0.3 < big.mean() < 0.7
    assert (w_in[big] > 0).mean() == pytest.approx(0.5, abs=0.2)
    again = random_weights(cfg)
    np.testing.assert_array_equal(w_in, again[0])
    assert not np.array_equal(w_in, random_weights(tiny(seed=5))[0])
    assert cfg.tau_m == pytest.approx(-2.0 / math.log(0.9))


def test_ideal_and_rram_liquids():
    cfg = tiny()
    liquid = RramLiquid(cfg)
    x, _ = two_classes(6)
    ideal = liquid.features(x)
    np.testing.assert_array_equal(ideal, liquid.features(x))      # deterministic
    assert ideal.shape == (6, 24) and ideal.sum() > 0
    rram = liquid.features(x, {"device": "rram"}, seed=1)
    np.testing.assert_array_equal(rram, liquid.features(x, {"device": "rram"}, seed=1))
    assert not np.array_equal(rram, ideal)
    # same nominal weights: the activity stays close
    assert abs(rram.mean() - ideal.mean()) < 0.3 * ideal.mean() + 1
    net = liquid.network(2, {"device": "rram"}, seed=1)
    assert not np.array_equal(net.weights("in")[0], net.weights("in")[1])


def test_compare_separates_two_classes():
    cfg = tiny()
    data = [two_classes(n, seed=s) for n, s in ((24, 0), (8, 1), (12, 2))]
    r = compare(cfg, data)
    assert r.ideal >= 0.9 and r.rram >= 0.9


def test_sweep_parsing_and_hardware_keys():
    assert hw_sweep.parse_vary(["read_noise=0,0.02", "prog_noise=1"]) == [
        ("read_noise", [0.0, 0.02]), ("prog_noise", [1.0])]
    hw = hw_sweep.hardware_setting({"device": "rram"}, {"prog_noise": 0.5, "read_noise": 0.02})
    assert hw == {"device": "rram", "programming_scale": 0.5, "read_noise": 0.02}
    with pytest.raises(ConfigError):
        hw_sweep.hardware_setting({"device": "rram"}, {"read_nosie": 0.1})
    with pytest.raises(ConfigError):
        hw_sweep.parse_vary(["read_noise"])


def test_sweep_table_and_plot(tmp_path):
    import argparse

    cfg = tiny()
    data = [two_classes(n, seed=s) for n, s in ((16, 0), (8, 1), (8, 2))]
    vary = [("read_noise", [0.0, 0.2]), ("prog_noise", [1.0])]
    rows = hw_sweep.sweep(cfg, data, vary, seeds=2, progress=None)
    assert len(rows) == 2
    for r in rows:
        assert r["min"] <= r["mean"] <= r["max"] and len(r["accuracies"]) == 2
    paths = hw_sweep.write_outputs(rows, ["read_noise", "prog_noise"], tmp_path)
    assert paths["png"].stat().st_size > 1000
    assert "read_noise" in paths["csv"].read_text().splitlines()[0]
    # the parser the CLI hooks in
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    hw_sweep.add_parser(sub)
    args = parser.parse_args(["sweep", "c.yaml", "--vary", "read_noise=0,0.05", "--seeds", "2"])
    assert args.func is hw_sweep.run and args.vary == ["read_noise=0,0.05"] and args.seeds == 2


def test_zero_shot_heads_transfer_to_unseen_classes():
    from networks.zero_shot import ZeroShotConfig, clip_loss, zero_shot
    import torch

    # identical embeddings score a lower loss than shuffled ones
    a = torch.randn(8, 4)
    scale = torch.tensor(2.0)
    assert clip_loss(a, a, scale) < clip_loss(a, a[torch.randperm(8)], scale)
    # two "modalities": different random maps of the same per-class latent + noise
    rng = np.random.default_rng(0)
    n_cls, per, d = 6, 30, 8
    proto = rng.normal(size=(n_cls, d)) * 2
    y = np.repeat(np.arange(n_cls), per)
    z = proto[y] + 0.3 * rng.normal(size=(len(y), d))
    ev = np.abs(z @ rng.normal(size=(d, 20)))
    im = np.abs(z @ rng.normal(size=(d, 30)))
    cfg = ZeroShotConfig(seen=(0, 1, 2, 3), unseen=(4, 5), epochs=60, hidden=32, embed=16)
    r = zero_shot(ev, im, y, cfg)
    assert r.n_train == 4 * per and r.n_unseen == 2 * per
    assert r.history["loss"][-1] < r.history["loss"][0]
    assert r.seen_pair > 0.8 and r.prototype > 0.6


def test_zero_shot_epoch_selection_uses_seen_classes_only():
    from networks.zero_shot import ZeroShotConfig, zero_shot

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(6), 20)
    z = rng.normal(size=(6, 6))[y] * 2 + 0.3 * rng.normal(size=(len(y), 6))
    ev, im = np.abs(z @ rng.normal(size=(6, 12))), np.abs(z @ rng.normal(size=(6, 14)))
    cfg = ZeroShotConfig(seen=(0, 1, 2, 3), unseen=(4, 5), hidden=16, embed=8,
                         epoch_candidates=(5, 40), val_classes=(2, 3))
    r = zero_shot(ev, im, y, cfg)
    assert r.history["epochs"] in (5, 40)
    assert len(r.history["loss"]) == r.history["epochs"]


def test_zero_shot_cli_writes_metrics(tmp_path, monkeypatch):
    """``spiking train configs/rram_zero_shot.yaml`` reaches the zero-shot trainer, finds the
    MNIST images beside N-MNIST and writes metrics.json (the liquids and heads replaced by a
    stub here; the real run is benchmarks/bench_rram_lsm.py)."""
    import json
    from pathlib import Path

    from conftest import require_data
    from networks import zero_shot
    from spiking.cli import main

    nmnist = require_data("nmnist-small")
    seen = {}

    def stub(root, mnist_root, event_cfg, image_cfg, zcfg):
        seen.update(root=Path(root), mnist=Path(mnist_root))
        return zero_shot.ZeroShotResult(0.8, 0.9, 1.0, 10, 4, {"epochs": 30})

    monkeypatch.setattr(zero_shot, "run_zero_shot", stub)
    config = Path(__file__).resolve().parents[1] / "configs" / "rram_zero_shot.yaml"
    assert main(["train", str(config), "--out", str(tmp_path / "zs"), "--data", str(nmnist)]) == 0
    assert seen == {"root": nmnist, "mnist": nmnist.parent / "mnist"}
    metrics = json.loads((tmp_path / "zs" / "metrics.json").read_text())
    assert metrics["kind"] == "rram_zero_shot" and metrics["pair"] == 0.9
    assert metrics["unseen"] == [8, 9]
