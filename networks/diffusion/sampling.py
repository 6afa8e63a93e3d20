"""Sampling from a trained run: generation, threshold guidance, evaluation.

Threshold guidance (training-free): every spiking threshold is multiplied by
``1 + delta`` while sampling. ``select_delta`` scores a grid of deltas with the
MNIST FID on ``selection_samples`` images each and keeps the lowest.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from tqdm.auto import tqdm

from spiking.errors import SpikingError
from spiking.surrogate import spike_monitoring, threshold_scaled

from .checkpoint import checkpoint_config, load_weights, read_checkpoint
from .config import SDMConfig
from .data import to_digit_images
from .ddpm import GaussianDiffusion
from .energy import operation_counting
from .metrics import DigitMetric
from .train import build_model, resolve_device
from .unet import UNet


@dataclass
class TrainedRun:
    """A run folder loaded for sampling (EMA weights, eval mode)."""

    run_dir: Path
    config: SDMConfig
    model: UNet
    diffusion: GaussianDiffusion
    device: torch.device
    step: int

    @property
    def spiking(self) -> bool:
        return self.config.diffusion.model.spiking

    def requested_steps(self, sampler: str, steps: Optional[int] = None) -> Optional[int]:
        """``steps``, else the config's (``sample.ddim_steps`` / ``sample.ddpm_steps``);
        None leaves the sampler's default."""
        return steps or self.config.diffusion.sample.steps(sampler)

    def sampling_steps(self, sampler: str, steps: Optional[int] = None) -> int:
        """How many diffusion steps ``sampler`` visits (see :meth:`requested_steps`)."""
        return len(self.diffusion.sampling_steps(sampler, self.requested_steps(sampler, steps)))


def load_run(run_dir: str | Path, device: str = "auto") -> TrainedRun:
    checkpoint = read_checkpoint(run_dir)
    config = checkpoint_config(checkpoint)
    target = resolve_device(device)
    model = build_model(config)
    load_weights(model, checkpoint["ema"], checkpoint["path"])
    return TrainedRun(Path(run_dir), config, model.to(target).eval(), GaussianDiffusion(config.diffusion.schedule),
                      target, checkpoint["step"])


def generate(run: TrainedRun, n: int, sampler: str = "ddim", seed: int = 0, delta: float = 0.0,
             steps: Optional[int] = None, batch_size: Optional[int] = None, progress: bool = True,
             measure: Optional[Dict] = None) -> torch.Tensor:
    """``n`` images [n, 1, 28, 28] in [0, 1]. Seeded: the same arguments give the
    same images. With ``measure`` (a dict), the first batch is monitored and
    ``spike_rates`` (layer -> spikes per neuron per step) and ``operations``
    (see ``energy.operation_counting``) are stored in it."""
    if delta and not run.spiking:
        raise SpikingError("threshold guidance (delta != 0) needs a spiking model; this run uses relu")
    if not 1.0 + delta > 0:
        raise SpikingError(f"threshold guidance needs 1 + delta > 0, got delta = {delta}")
    section = run.config.diffusion
    steps = run.requested_steps(sampler, steps)
    batch_size = batch_size or section.metrics.batch_size
    size = section.data.image_size
    generator = torch.Generator().manual_seed(seed)
    batches = []
    with threshold_scaled(run.model, 1.0 + delta):
        for start in tqdm(range(0, n, batch_size), desc=f"sampling {n} ({sampler}, delta={delta:g})",
                          leave=False, disable=not progress or n <= batch_size):
            shape = (min(batch_size, n - start), 1, size, size)
            if measure is not None and start == 0:
                with spike_monitoring(run.model) as rates, operation_counting(run.model) as operations:
                    images = run.diffusion.sample(run.model, shape, generator, sampler, steps, run.device,
                                                  progress=progress)
                measure.update(spike_rates=rates, operations=operations)
            else:
                images = run.diffusion.sample(run.model, shape, generator, sampler, steps, run.device,
                                              progress=progress and n <= batch_size)
            batches.append(to_digit_images(images.cpu()))
    return torch.cat(batches)


def evaluate(run: TrainedRun, metric: DigitMetric, n: int, sampler: str = "ddim", seed: int = 0,
             delta: float = 0.0, steps: Optional[int] = None, progress: bool = True) -> Tuple[Dict, torch.Tensor]:
    """Quality (FID, confident fraction, class entropy), spike rate per layer and
    operations/energy per network evaluation for ``n`` samples; and the samples."""
    measured: Dict = {}
    images = generate(run, n, sampler, seed, delta, steps, progress=progress, measure=measured)
    rates = measured["spike_rates"]
    result = {"sampler": sampler, "delta": delta, "seed": seed, "step": run.step, **metric(images),
              "operations": {key: value for key, value in measured["operations"].items() if key != "layers"},
              "spike_rates": rates}
    if rates:
        result["mean_spike_rate"] = sum(rates.values()) / len(rates)
    return result, images


def delta_row(run: TrainedRun, metric: DigitMetric, delta: float, n: int, sampler: str = "ddim", seed: int = 0,
              steps: Optional[int] = None, progress: bool = True) -> Dict:
    """FID, confident fraction and class entropy of ``n`` samples with thresholds x (1 + delta)."""
    quality = metric(generate(run, n, sampler, seed, delta, steps, progress=progress))
    return {"delta": delta, **{k: quality[k] for k in ("fid", "confident_fraction", "class_entropy")}}


def select_delta(run: TrainedRun, metric: DigitMetric, deltas: Sequence[float], n: int,
                 sampler: str = "ddim", seed: int = 0, steps: Optional[int] = None,
                 progress: bool = True, row: Callable[..., Dict] = delta_row) -> Dict:
    """Score each delta by the FID of ``n`` samples; returns the table and the best.
    ``row``: computes one delta's row, with :func:`delta_row`'s arguments (a caller
    may cache it)."""
    table = []
    for delta in deltas:
        table.append(row(run, metric, delta, n, sampler, seed, steps, progress))
        print(f"  delta {delta:+.3f}: FID {table[-1]['fid']:.2f}, confident {table[-1]['confident_fraction']:.1%}, "
              f"entropy {table[-1]['class_entropy']:.3f}")
    best = min(table, key=lambda entry: entry["fid"])
    return {"n_per_delta": n, "sampler": sampler, "steps": run.sampling_steps(sampler, steps), "table": table,
            "best_delta": best["delta"]}
