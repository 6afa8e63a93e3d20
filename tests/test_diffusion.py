"""Spiking diffusion models: neurons, U-Net, DDPM/DDIM, training, configs, metrics.

Everything runs on tiny models and synthetic 28x28 images, except the metric
classifier test, which needs MNIST (skipped without it; a failure when CI is set).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from networks.diffusion import cli
from networks.diffusion import train as train_module
from networks.diffusion.checkpoint import load_weights, read_checkpoint
from networks.diffusion.config import ModelConfig, ScheduleConfig, load_config
from networks.diffusion.ddpm import GaussianDiffusion
from networks.diffusion.energy import operation_counting
from networks.diffusion.metrics import frechet_distance, save_grid
from networks.diffusion.sampling import load_run, select_delta
from networks.diffusion.train import Trainer, is_tsm_gain
from networks.diffusion.unet import UNet
from spiking.errors import ConfigError, DataError, SimulationError, SpikingError
from spiking.surrogate import (NeuronParameters, SpikingNeuron, atan_spike, neuron_multistep, neuron_step,
                               spike_monitoring, spiking_neurons, threshold_scaled)

REPO = Path(__file__).resolve().parents[1]

TINY_CONFIG = """\
name: tiny
seed: 3
diffusion:
  model: {neuron: lif, time_steps: 2, base_channels: 4, channel_mult: [1, 2], num_res_blocks: 1}
  schedule: {timesteps: 50}
  train: {steps: 4, batch_size: 4, lr: 1.0e-3, warmup_steps: 2, checkpoint_every: 2,
          sample_every: null, grid_samples: 4, ema_decay: 0.9, device: cpu}
  sample: {ddim_steps: 5}
"""


def tiny_model_config(**changes) -> ModelConfig:
    settings = dict(neuron="lif", time_steps=2, base_channels=4, channel_mult=[1, 2], num_res_blocks=1)
    return ModelConfig(**{**settings, **changes})


def write_config(folder: Path, text: str = TINY_CONFIG, name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def pixels() -> torch.Tensor:
    """16 synthetic 28x28 "digits": a bright bar on black, at random rows."""
    generator = torch.Generator().manual_seed(0)
    images = torch.zeros(16, 28, 28, dtype=torch.uint8)
    rows = torch.randint(4, 24, (16,), generator=generator)
    for image, row in zip(images, rows):
        image[row:row + 3, 6:22] = 255
    return images


def trainer(config_path: Path, out: Path, pixels: torch.Tensor, overrides=(), **kwargs) -> Trainer:
    return Trainer(load_config(config_path, overrides), out, pixels=pixels, progress=False, **kwargs)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ neurons

def test_surrogate_forward_is_heaviside_and_backward_is_atan():
    x = torch.tensor([-2.0, -1e-6, 0.0, 1e-6, 3.0], requires_grad=True)
    spikes = atan_spike(x, alpha=2.0)
    assert spikes.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    spikes.sum().backward()
    expected = 2.0 / 2 / (1 + (math.pi / 2 * 2.0 * x.detach()) ** 2)
    assert torch.allclose(x.grad, expected)
    assert x.grad[2] == pytest.approx(1.0)  # alpha / 2 at the threshold


@pytest.mark.parametrize("params", [NeuronParameters(), NeuronParameters(tau=None),
                                    NeuronParameters(tau=3.0, v_reset=0.2, detach_reset=False)])
def test_fused_multistep_matches_looped_step_function(params):
    x = (1.5 * torch.randn(6, 40, generator=torch.Generator().manual_seed(1))).double().requires_grad_()
    weights = torch.randn(6, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    fused = neuron_multistep(x, params, threshold=1.1)
    (fused * weights).sum().backward()
    fused_grad, x.grad = x.grad.clone(), None
    v, looped = torch.full((40,), params.v_reset, dtype=torch.float64), []
    for x_step in x:
        spikes, v = neuron_step(x_step, v, params, threshold=1.1)
        looped.append(spikes)
    (torch.stack(looped) * weights).sum().backward()
    assert 0 < fused.mean() < 1
    assert torch.equal(fused, torch.stack(looped))
    assert torch.allclose(fused_grad, x.grad, atol=1e-12)


def test_lif_integrates_leaks_and_resets():
    params = NeuronParameters(tau=2.0, v_threshold=1.0)
    spikes = neuron_multistep(torch.full((4, 1), 0.8), params)
    # v: 0.4, 0.6, 0.7, 0.75 -> never reaches 1 with input 0.8 (steady state 0.8)
    assert spikes.flatten().tolist() == [0.0, 0.0, 0.0, 0.0]
    spikes = neuron_multistep(torch.full((4, 1), 1.5), params)
    # v: 0.75, 1.125 (spike, reset to 0), 0.75, 1.125 (spike)
    assert spikes.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]
    if_spikes = neuron_multistep(torch.full((4, 1), 0.5), NeuronParameters(tau=None))
    assert if_spikes.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]


def test_threshold_scaling_changes_spikes_and_is_restored():
    layer = SpikingNeuron(NeuronParameters(tau=None))
    x = torch.full((4, 1), 0.5)
    with threshold_scaled(torch.nn.Sequential(layer), 1.5):
        assert layer.threshold == 1.5
        assert layer(x).sum() == 1  # v reaches 1.5 only at the third step
    assert layer.threshold == 1.0 and layer(x).sum() == 2


# ------------------------------------------------------------------ U-Net

@pytest.mark.parametrize("changes, size", [({}, 28), ({"neuron": "relu", "time_steps": 1}, 28),
                                           ({"neuron": "if", "channel_mult": [1, 2, 2, 2], "tsm": True}, 32)])
def test_unet_output_shape(changes, size):
    model = UNet(tiny_model_config(**changes))
    x, t = torch.randn(3, 1, size, size), torch.tensor([0, 17, 999])
    assert model(x, t).shape == (3, 1, size, size)


def test_gradient_flows_through_every_spiking_layer():
    torch.manual_seed(0)
    model = UNet(tiny_model_config(tsm=True))
    outputs = {}

    def keep(name):
        def hook(module, inputs, output):
            output.retain_grad()
            outputs[name] = output
        return hook

    for name, layer in spiking_neurons(model):
        layer.register_forward_hook(keep(name))
    with spike_monitoring(model) as rates:
        loss = model(torch.randn(4, 1, 28, 28), torch.randint(0, 1000, (4,))).pow(2).mean()
    loss.backward()
    assert len(outputs) == len(rates) >= 10
    for name, spikes in outputs.items():
        assert spikes.grad is not None and spikes.grad.abs().sum() > 0, f"no gradient at {name}"
        assert 0.0 <= rates[name] <= 1.0
    assert any(rate > 0 for rate in rates.values())
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"no gradient for {name}"


def test_bfloat16_training_keeps_float32_weights_norms_and_membranes(tmp_path, pixels):
    runs = {}
    for precision in ("float32", "bfloat16"):
        run = trainer(write_config(tmp_path), tmp_path / precision, pixels, [f"diffusion.train.precision={precision}"])
        membranes = []
        for _, layer in spiking_neurons(run.model):
            layer.register_forward_pre_hook(lambda module, inputs: membranes.append(inputs[0].dtype))
        norms = [m for m in run.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        norm_inputs = []
        for norm in norms:
            norm.register_forward_pre_hook(lambda module, inputs: norm_inputs.append(inputs[0].dtype))
        runs[precision] = run.train_step()
        assert set(membranes) == set(norm_inputs) == {torch.float32}
        assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in run.model.parameters())
    assert runs["bfloat16"] == pytest.approx(runs["float32"], rel=0.05)   # same batch, rounded convolutions


def test_tsm_initialised_at_one_equals_no_tsm():
    torch.manual_seed(0)
    plain = UNet(tiny_model_config(tsm=False))
    with_tsm = UNet(tiny_model_config(tsm=True))
    load_weights(with_tsm, plain.state_dict(), "plain", allow_missing=is_tsm_gain)
    gains = [p for name, p in with_tsm.named_parameters() if is_tsm_gain(name)]
    assert gains and all(torch.equal(g, torch.ones_like(g)) for g in gains)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([5, 500])
    for mode in ("train", "eval"):
        getattr(plain, mode)(), getattr(with_tsm, mode)()
        assert torch.equal(plain(x, t), with_tsm(x, t))
    plain.train(), with_tsm.train()
    with torch.no_grad():
        for gain in gains:
            gain[0] = 3.0
    assert not torch.allclose(plain(x, t), with_tsm(x, t))


def test_input_skip_starts_as_no_skip_and_learns_gains():
    torch.manual_seed(0)
    plain = UNet(tiny_model_config())
    skipped = UNet(tiny_model_config(input_skip=2))
    load_weights(skipped, plain.state_dict(), "plain", allow_missing=lambda key: key.startswith("skip_"))
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([5, 500])
    for mode in ("train", "eval"):
        getattr(plain, mode)(), getattr(skipped, mode)()
        assert torch.equal(plain(x, t), skipped(x, t))
    skipped.train()
    skipped(x, t).pow(2).mean().backward()
    assert skipped.skip_gain.bias.grad.abs().sum() > 0  # the gains leave 0 at the first step
    with torch.no_grad():
        skipped.skip_gain.bias.fill_(1.0)
    plain.train()
    assert not torch.allclose(plain(x, t), skipped(x, t))


def test_checkpoint_from_before_a_new_model_key_still_resumes(tmp_path, pixels):
    config = write_config(tmp_path)
    trainer(config, tmp_path / "run", pixels, overrides=["diffusion.train.steps=2"]).run()
    path = tmp_path / "run" / "checkpoint.pt"
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["config"]["diffusion"]["model"]["input_skip"]  # as written before the key existed
    torch.save(checkpoint, path)
    assert trainer(config, tmp_path / "run", pixels).step == 2
    with pytest.raises(SpikingError, match="model.input_skip: checkpoint 0, config 2"):
        trainer(config, tmp_path / "run", pixels, overrides=["diffusion.model.input_skip=2"])


def test_energy_counts_accumulates_for_spikes_and_macs_for_the_ann():
    torch.manual_seed(0)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([1, 900])
    snn, ann = UNet(tiny_model_config()).eval(), UNet(tiny_model_config(neuron="relu", time_steps=1)).eval()
    with torch.no_grad(), operation_counting(snn) as snn_ops, operation_counting(ann) as ann_ops:
        snn(x, t), ann(x, t)
    mac_layers = {name for name, entry in snn_ops["layers"].items() if entry["macs"]}
    assert mac_layers == {"stem", "embedding_in.0"}  # only real-valued inputs multiply
    assert snn_ops["acs"] > 0 and ann_ops["acs"] == 0
    assert snn_ops["evaluations"] == ann_ops["evaluations"] == 2
    stem_macs = 28 * 28 * 4 * 9  # outputs x fan-in per image
    assert snn_ops["layers"]["stem"]["macs"] == ann_ops["layers"]["stem"]["macs"] == stem_macs
    assert ann_ops["energy_pj"] == pytest.approx(4.6 * ann_ops["macs"])


# ------------------------------------------------------------------ diffusion

def test_seeded_ddim_sample_is_deterministic():
    torch.manual_seed(0)
    model = UNet(tiny_model_config()).eval()
    diffusion = GaussianDiffusion(ScheduleConfig(timesteps=50))

    def draw(seed):
        return diffusion.sample(model, (3, 1, 28, 28), torch.Generator().manual_seed(seed), "ddim", 10)

    first, second, other = draw(7), draw(7), draw(8)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
    assert first.abs().max() <= 1.0 + 1e-6


def test_ddpm_sampler_and_schedule():
    diffusion = GaussianDiffusion(ScheduleConfig())
    assert diffusion.betas[0] == pytest.approx(1e-4) and diffusion.betas[-1] == pytest.approx(0.02)
    assert diffusion.alphas_cumprod[-1] < 1e-4  # x_T is almost pure noise
    small = GaussianDiffusion(ScheduleConfig(timesteps=20))
    model = UNet(tiny_model_config(neuron="relu", time_steps=1)).eval()
    images = small.sample(model, (2, 1, 28, 28), torch.Generator().manual_seed(0), "ddpm")
    assert images.shape == (2, 1, 28, 28) and torch.isfinite(images).all()


# ------------------------------------------------------------------ training

def test_ddpm_sampler_with_all_steps_is_the_posterior_and_respaces_with_fewer():
    schedule = ScheduleConfig(timesteps=20)
    diffusion = GaussianDiffusion(schedule)
    model = lambda x, t: 0.3 * x  # noqa: E731
    shape = (3, 1, 8, 8)
    images = diffusion.sample(model, shape, torch.Generator().manual_seed(5), "ddpm")
    # textbook ancestral sampling (Ho et al. 2020, eq. 6-7) with the same draws
    generator = torch.Generator().manual_seed(5)
    betas = diffusion.betas
    abar = diffusion.alphas_cumprod
    x = torch.randn(shape, generator=generator, dtype=torch.float32).double()
    for t in range(schedule.timesteps - 1, -1, -1):
        abar_prev = abar[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)
        x0 = ((x - (1 - abar[t]).sqrt() * 0.3 * x) / abar[t].sqrt()).clamp(-1, 1)
        mean = (betas[t] * abar_prev.sqrt() * x0 + (1 - abar_prev) * (1 - betas[t]).sqrt() * x) / (1 - abar[t])
        x = mean
        if t > 0:
            x = x + (betas[t] * (1 - abar_prev) / (1 - abar[t])).sqrt() * torch.randn(shape, generator=generator)
    assert torch.allclose(images.double(), x, atol=1e-4)
    assert diffusion.sampling_steps("ddpm", 5).tolist() == [19, 14, 10, 5, 0]
    assert len(diffusion.sampling_steps("ddim")) == 20 and len(GaussianDiffusion(ScheduleConfig()).sampling_steps("ddim")) == 50
    respaced = diffusion.sample(model, shape, torch.Generator().manual_seed(5), "ddpm", steps=5)
    assert respaced.shape == shape and torch.isfinite(respaced).all()
    with pytest.raises(SpikingError, match="between 1 and T = 20"):
        diffusion.sampling_steps("ddpm", 21)


def test_resumed_training_matches_uninterrupted(tmp_path, pixels, monkeypatch):
    config = write_config(tmp_path)
    straight = trainer(config, tmp_path / "straight", pixels)
    straight.run()

    original_step = Trainer.train_step

    def interrupted_step(self):
        if self.step == 3:
            raise KeyboardInterrupt
        return original_step(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        trainer(config, tmp_path / "resumed", pixels).run()
    assert read_checkpoint(tmp_path / "resumed")["step"] == 2
    monkeypatch.setattr(Trainer, "train_step", original_step)
    resumed = trainer(config, tmp_path / "resumed", pixels)
    assert resumed.step == 2
    resumed.run()
    for name, value in straight.state()["model"].items():
        assert torch.equal(value, resumed.state()["model"][name]), name
    for name, value in straight.state()["ema"].items():
        assert torch.equal(value, resumed.state()["ema"][name]), name
    assert straight.losses == resumed.losses


def test_learning_rate_warms_up_holds_then_anneals_over_the_last_steps(tmp_path, pixels):
    overrides = ["diffusion.train.steps=10", "diffusion.train.decay_steps=4"]
    run = trainer(write_config(tmp_path), tmp_path / "run", pixels, overrides)
    rates = []
    for step in range(10):
        run.step = step
        rates.append(run._learning_rate() / 1e-3)
    assert rates[:6] == pytest.approx([0.5, 1, 1, 1, 1, 1])        # warm-up of 2 steps, then constant
    assert rates[6:] == pytest.approx([0.5 * (1 + math.cos(math.pi * k / 5)) for k in (1, 2, 3, 4)])
    assert 0 < rates[-1] < 0.1
    with pytest.raises(ConfigError, match="decay_steps"):
        load_config(write_config(tmp_path), ["diffusion.train.decay_steps=3"])   # + 2 warm-up > 4 steps


def test_ema_batchnorm_statistics_are_re_estimated_for_the_averaged_weights(tmp_path, pixels):
    config = write_config(tmp_path)
    runs = {}
    for batches in (0, 3):
        run = trainer(config, tmp_path / f"bn{batches}", pixels, overrides=[f"diffusion.train.bn_batches={batches}"])
        run.run()
        runs[batches] = run
    raw = dict(runs[3].model.named_buffers())
    kept = dict(runs[0].ema.model.named_buffers())
    re_estimated = dict(runs[3].ema.model.named_buffers())
    means = [name for name in raw if name.endswith("running_mean")]
    assert means and all(torch.equal(kept[name], dict(runs[0].model.named_buffers())[name]) for name in means)
    assert any(not torch.equal(re_estimated[name], raw[name]) for name in means)
    assert all(int(re_estimated[name.replace("running_mean", "num_batches_tracked")]) == 3 for name in means)
    saved = read_checkpoint(tmp_path / "bn3")["ema"]
    assert all(torch.equal(saved[name], re_estimated[name]) for name in means)
    assert all(not module.training for module in runs[3].ema.model.modules())


def test_nan_loss_stops_without_overwriting_the_last_checkpoint(tmp_path, pixels, monkeypatch):
    config = write_config(tmp_path)
    run = trainer(config, tmp_path / "run", pixels)
    original_loss = run.diffusion.loss

    def poisoned(model, x0, t, noise):
        loss = original_loss(model, x0, t, noise)
        return loss * float("nan") if run.step == 2 else loss

    monkeypatch.setattr(run.diffusion, "loss", poisoned)
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    with pytest.raises(SimulationError, match="step 3.*last good checkpoint \\(step 2\\)"):
        run.run()
    saved = read_checkpoint(checkpoint)
    assert saved["step"] == 2
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())


def test_checkpoint_of_a_different_architecture_is_refused(tmp_path, pixels):
    config = write_config(tmp_path)
    trainer(config, tmp_path / "run", pixels, overrides=["diffusion.train.steps=2"]).run()
    with pytest.raises(SpikingError, match="different architecture: model.base_channels: checkpoint 4, config 8"):
        trainer(config, tmp_path / "run", pixels, overrides=["diffusion.model.base_channels=8"])
    with pytest.raises(SpikingError, match="different architecture: model.channel_mult"):
        trainer(config, tmp_path / "other", pixels,
                overrides=["diffusion.model.channel_mult=[1, 1]", f"diffusion.train.init_from={tmp_path / 'run'}"])
    junk = tmp_path / "junk.pt"
    torch.save({"weights": 1}, junk)
    with pytest.raises(SpikingError, match="not a spiking diffusion checkpoint"):
        cli.sample(str(junk), n=2, out=str(tmp_path / "g.png"), progress=False)


def test_tsm_fine_tuning_starts_from_a_run_without_tsm(tmp_path, pixels):
    config = write_config(tmp_path)
    base = trainer(config, tmp_path / "base", pixels, overrides=["diffusion.train.steps=2"])
    base.run()
    tuned = trainer(config, tmp_path / "tsm", pixels, overrides=[
        "diffusion.model.tsm=true", f"diffusion.train.init_from={tmp_path / 'base' / 'checkpoint.pt'}"])
    assert tuned.step == 0
    for name, value in base.model.state_dict().items():
        assert torch.equal(value, tuned.model.state_dict()[name]), name
    tuned.run()
    gains = [p for name, p in tuned.model.named_parameters() if is_tsm_gain(name)]
    assert gains and any(not torch.equal(g, torch.ones_like(g)) for g in gains)


def test_cli_train_then_sample_writes_grid_and_metrics(tmp_path, pixels, monkeypatch, capsys):
    monkeypatch.setattr(train_module, "training_images", lambda data_config, root: pixels)
    config = write_config(tmp_path)
    out = tmp_path / "run"
    assert cli.main(["train", str(config), "--out", str(out), "--set", "diffusion.train.sample_every=4"]) == 0
    assert (out / "samples" / "step_000004.png").exists() and (out / "config.yaml").exists()
    assert json.loads((out / "model.json").read_text())["kind"] == "diffusion"
    assert json.loads((out / "metrics.json").read_text())["train"]["steps"] == 4
    assert cli.main(["train", str(config), "--out", str(out)]) == 0  # already done: resumes at the end
    assert "resuming" in capsys.readouterr().out
    grid = tmp_path / "grid.png"
    assert cli.main(["sample", str(out), "--n", "6", "--out", str(grid), "--seed", "1"]) == 0
    image = __import__("matplotlib.image").image.imread(grid)
    assert image.shape[:2] == (2 * 30 + 2, 3 * 30 + 2)  # 6 images: 3 columns, 2 rows
    first = file_digest(grid)
    cli.main(["sample", str(out), "--n", "6", "--out", str(grid), "--seed", "1"])
    assert file_digest(grid) == first
    assert cli.main(["sample", str(tmp_path / "missing"), "--out", str(grid)]) == 1
    assert "no checkpoint" in capsys.readouterr().err


def test_select_delta_keeps_the_lowest_fid_and_reports_the_steps_it_used(tmp_path, pixels):
    out = tmp_path / "run"
    trainer(write_config(tmp_path), out, pixels).run()
    run = load_run(out, "cpu")
    asked = []

    def row(run_, metric, delta, n, sampler, seed, steps, progress):
        asked.append((delta, n, sampler, steps))
        return {"delta": delta, "fid": (delta - 0.08) ** 2, "confident_fraction": 0.5, "class_entropy": 2.0}

    selection = select_delta(run, None, [-0.1, 0.0, 0.1], 7, progress=False, row=row)
    assert selection["best_delta"] == 0.1 and [entry["delta"] for entry in selection["table"]] == [-0.1, 0.0, 0.1]
    assert asked == [(-0.1, 7, "ddim", None), (0.0, 7, "ddim", None), (0.1, 7, "ddim", None)]
    assert selection["steps"] == 5   # the config's ddim_steps, resolved
    assert select_delta(run, None, [0.0], 7, "ddpm", progress=False, row=row)["steps"] == 50   # all T


# ------------------------------------------------------------------ configs

def test_image_size_that_does_not_divide_is_a_config_error(tmp_path):
    text = TINY_CONFIG.replace("channel_mult: [1, 2]", "channel_mult: [1, 2, 2, 2]")
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "image size 28 does not divide by the down-sampling factor 8" in message
    assert str(path) in message and "diffusion.data.image_size" in message
    assert load_config(path, ["diffusion.data.image_size=32"]).diffusion.data.image_size == 32


def test_config_errors_name_file_line_and_key(tmp_path):
    path = write_config(tmp_path, TINY_CONFIG.replace("time_steps: 2", "time_steps: 2, spikes: 3"))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert (error.value.file, error.value.line, error.value.path) == (str(path), 4, "diffusion.model.spikes")
    with pytest.raises(ConfigError, match="relu .*time_steps: 1"):
        load_config(write_config(tmp_path), ["diffusion.model.neuron=relu"])
    with pytest.raises(ConfigError, match="--set: diffusion.train.lr"):
        load_config(write_config(tmp_path), ["diffusion.train.lr=-1"])


@pytest.mark.parametrize("name", ["sdm_mnist.yaml", "sdm_mnist_ann.yaml", "sdm_mnist_gpu.yaml"])
def test_shipped_configs_load(name):
    config = load_config(REPO / "configs" / name)
    assert config.diffusion.data.image_size % config.diffusion.model.downsampling_factor == 0


def test_ann_twin_has_the_same_budget_and_architecture():
    snn = load_config(REPO / "configs" / "sdm_mnist.yaml").diffusion
    ann = load_config(REPO / "configs" / "sdm_mnist_ann.yaml").diffusion
    assert ann.model.neuron == "relu" and snn.model.spiking
    assert ann.train == snn.train and ann.schedule == snn.schedule
    same = ("base_channels", "channel_mult", "num_res_blocks")
    assert all(getattr(ann.model, key) == getattr(snn.model, key) for key in same)


# ------------------------------------------------------------------ metrics

def test_frechet_distance_and_grid(tmp_path):
    rng = np.random.default_rng(0)
    sigma = np.cov(rng.normal(size=(500, 4)), rowvar=False)
    mu = np.zeros(4)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(mu, sigma, mu + 2.0, sigma) == pytest.approx(16.0, abs=1e-6)
    path = save_grid(torch.rand(5, 1, 28, 28), tmp_path / "grid.png", columns=5)
    assert __import__("matplotlib.image").image.imread(path).shape[:2] == (32, 5 * 30 + 2)


def require_mnist() -> None:
    from networks.diffusion.data import data_root
    try:
        data_root()
    except DataError as error:
        if os.environ.get("CI"):
            pytest.fail(f"the metric classifier test needs MNIST: {error}")
        pytest.skip(str(error))


@pytest.mark.data
@pytest.mark.slow
def test_metric_classifier_scores_real_digits_high_and_noise_low():
    require_mnist()
    from networks.diffusion.data import mnist_train, to_digit_images, to_model_images
    from networks.diffusion.metrics import load_metric
    metric = load_metric(progress=False)
    assert metric.test_accuracy >= 0.985
    pixels, _ = mnist_train()
    real = metric(to_digit_images(to_model_images(torch.from_numpy(pixels[:2000]), 28)))
    noise = metric(torch.rand(2000, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    assert real["confident_fraction"] > 0.95 and real["class_entropy"] > 2.25
    assert noise["fid"] > 20 * real["fid"]
