"""DDPM (Ho et al. 2020): linear beta schedule, epsilon-prediction loss, and the
ancestral (DDPM) and deterministic DDIM (Song et al. 2021, eta = 0) samplers.

Images live in [-1, 1]. Both samplers clip the predicted clean image to [-1, 1]
at every step. Randomness comes only from the ``torch.Generator`` passed in
(a CPU generator; draws are moved to the model's device), so a seeded DDIM
sample is reproducible.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from tqdm.auto import tqdm

from .config import ScheduleConfig

EpsilonModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class GaussianDiffusion:
    """The forward process q(x_t | x_0) and its reverse samplers."""

    def __init__(self, config: ScheduleConfig):
        self.timesteps = config.timesteps
        betas = torch.linspace(config.beta_start, config.beta_end, config.timesteps, dtype=torch.float64)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        self.betas = betas
        self.alphas_cumprod = alphas_cumprod
        self.alphas_cumprod_prev = alphas_cumprod_prev
        # posterior q(x_{t-1} | x_t, x_0): variance and the two mean coefficients
        self.posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        self.posterior_log_variance = torch.log(torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]]))
        self.posterior_coef_x0 = betas * alphas_cumprod_prev.sqrt() / (1.0 - alphas_cumprod)
        self.posterior_coef_xt = (1.0 - alphas_cumprod_prev) * (1.0 - betas).sqrt() / (1.0 - alphas_cumprod)

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

    @torch.no_grad()
    def sample(self, model: EpsilonModel, shape: Tuple[int, ...], generator: torch.Generator,
               sampler: str = "ddim", ddim_steps: int = 50, device: Optional[torch.device] = None,
               progress: bool = False) -> torch.Tensor:
        """Draw ``shape[0]`` images ``[B, C, H, W]`` in [-1, 1] with ``ddpm`` (T ancestral
        steps) or ``ddim`` (``ddim_steps`` deterministic steps)."""
        x = torch.randn(shape, generator=generator).to(device)
        if sampler == "ddim":
            steps = torch.linspace(self.timesteps - 1, 0, ddim_steps).round().long().unique_consecutive()
        elif sampler == "ddpm":
            steps = torch.arange(self.timesteps - 1, -1, -1)
        else:
            raise ValueError(f"unknown sampler {sampler!r} (ddim or ddpm)")
        for index, step in enumerate(tqdm(steps.tolist(), desc=f"{sampler} sampling", leave=False,
                                          disable=not progress)):
            t = torch.full((shape[0],), step, dtype=torch.long, device=device)
            eps = model(x, t)
            x0 = self._predict_x0(x, t, eps)
            if sampler == "ddim":
                abar_prev = (self.alphas_cumprod[steps[index + 1]] if index + 1 < len(steps)
                             else torch.tensor(1.0, dtype=torch.float64))
                abar = self._at(self.alphas_cumprod, t, x)
                eps = (x - abar.sqrt() * x0) / (1.0 - abar).sqrt()  # consistent with the clipped x0
                x = abar_prev.sqrt().to(x) * x0 + (1.0 - abar_prev).sqrt().to(x) * eps
            else:
                mean = self._at(self.posterior_coef_x0, t, x) * x0 + self._at(self.posterior_coef_xt, t, x) * x
                if step > 0:
                    noise = torch.randn(shape, generator=generator).to(device)
                    x = mean + (0.5 * self._at(self.posterior_log_variance, t, x)).exp() * noise
                else:
                    x = mean
        return x
