"""DDPM (Ho et al. 2020): linear beta schedule, epsilon-prediction loss, and the
ancestral (DDPM, optionally respaced) and deterministic DDIM (Song et al. 2021,
eta = 0) samplers.

Images live in [-1, 1]. Both samplers clip the predicted clean image to [-1, 1]
at every step. Randomness comes only from the ``torch.Generator`` passed in
(a CPU generator; draws are moved to the model's device), so a seeded DDIM
sample is reproducible.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from tqdm.auto import tqdm

from spiking.errors import SpikingError

from .config import ScheduleConfig

DDIM_DEFAULT_STEPS = 50
EpsilonModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class GaussianDiffusion:
    """The forward process q(x_t | x_0) and its reverse samplers."""

    def __init__(self, config: ScheduleConfig):
        self.timesteps = config.timesteps
        betas = torch.linspace(config.beta_start, config.beta_end, config.timesteps, dtype=torch.float64)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.betas = betas
        self.alphas_cumprod = alphas_cumprod

    @staticmethod
    def _at(table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``table[t]`` shaped to broadcast over images like ``like``."""
        values = table.to(like.device)[t.to(like.device)].to(like.dtype)
        return values.view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise."""
        abar = self._at(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise

    def training_draws(self, batch: int, shape: Tuple[int, ...], generator: torch.Generator
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The random diffusion steps [B] and noise [B, *shape] for one training batch."""
        t = torch.randint(0, self.timesteps, (batch,), generator=generator)
        noise = torch.randn((batch, *shape), generator=generator)
        return t, noise

    def loss(self, model: EpsilonModel, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the predicted noise (the "simple" DDPM loss)."""
        x_t = self.q_sample(x0, t, noise)
        return torch.mean((model(x_t, t) - noise) ** 2)

    def _predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        abar = self._at(self.alphas_cumprod, t, x_t)
        return ((x_t - (1.0 - abar).sqrt() * eps) / abar.sqrt()).clamp(-1.0, 1.0)

    def sampling_steps(self, sampler: str, steps: Optional[int] = None) -> torch.Tensor:
        """The diffusion steps a sampler visits, from T - 1 down to 0: ``steps`` of
        them evenly spaced (default: all T for ``ddpm``, 50 or T if fewer for ``ddim``)."""
        if sampler not in ("ddim", "ddpm"):
            raise SpikingError(f"unknown sampler {sampler!r} (ddim or ddpm)")
        if steps is not None and not 1 <= steps <= self.timesteps:
            raise SpikingError(f"{sampler} sampling needs between 1 and T = {self.timesteps} steps, got {steps}")
        count = steps or (min(DDIM_DEFAULT_STEPS, self.timesteps) if sampler == "ddim" else self.timesteps)
        return torch.linspace(self.timesteps - 1, 0, count).round().long().unique_consecutive()

    @torch.no_grad()
    def sample(self, model: EpsilonModel, shape: Tuple[int, ...], generator: torch.Generator,
               sampler: str = "ddim", steps: Optional[int] = None, device: Optional[torch.device] = None,
               progress: bool = False) -> torch.Tensor:
        """Draw ``shape[0]`` images ``[B, C, H, W]`` in [-1, 1] with ``ddim``
        (deterministic) or ``ddpm`` (ancestral) over ``steps`` diffusion steps (see
        :meth:`sampling_steps`). Each step from t to the next visited step s:
        ``x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s - sigma^2) eps + sigma z`` with x0
        the clipped prediction, eps the noise consistent with it, and sigma = 0 (DDIM,
        eta = 0) or the posterior's ``sqrt((1 - abar_s) / (1 - abar_t) (1 - abar_t / abar_s))``
        (DDIM's eta = 1): with all T steps the DDPM posterior q(x_{t-1} | x_t, x0),
        with fewer the ancestral sampler on a respaced schedule (Nichol & Dhariwal 2021)."""
        visited = self.sampling_steps(sampler, steps)
        x = torch.randn(shape, generator=generator).to(device)
        for index, step in enumerate(tqdm(visited.tolist(), desc=f"{sampler} sampling", leave=False,
                                          disable=not progress)):
            t = torch.full((shape[0],), step, dtype=torch.long, device=device)
            x0 = self._predict_x0(x, t, model(x, t))
            abar = self.alphas_cumprod[step]
            last = index + 1 == len(visited)
            abar_next = torch.tensor(1.0, dtype=torch.float64) if last else self.alphas_cumprod[visited[index + 1]]
            eps = (x - abar.sqrt().to(x) * x0) / (1.0 - abar).sqrt().to(x)   # consistent with the clipped x0
            variance = (torch.tensor(0.0, dtype=torch.float64) if sampler == "ddim" else
                        (1.0 - abar_next) / (1.0 - abar) * (1.0 - abar / abar_next))
            x = abar_next.sqrt().to(x) * x0 + (1.0 - abar_next - variance).sqrt().to(x) * eps
            if variance > 0:
                x = x + variance.sqrt().to(x) * torch.randn(shape, generator=generator).to(device)
        return x
