"""A U-Net for epsilon-prediction whose neurons are spiking (LIF/IF) or ReLU.

One network, two kinds of neuron (a factory decides): the spiking model of
"Spiking Diffusion Models" (Cao et al., IEEE TAI 2024; SDDPM, WACV 2024) and its
ANN twin. Activations are sequences ``[S, B, C, H, W]`` over S SNN steps (S = 1
for the ANN). Direct input coding: the stem convolution sees the image once and
its output is repeated over the steps. Every other convolution and linear layer
receives spikes, so in the SNN it costs accumulates only (see ``energy.py``).

Blocks:
- time embedding: sinusoid -> linear -> BatchNorm (computed once, repeated over
  the steps) -> neuron -> linear -> BatchNorm -> neuron; every ResBlock adds a
  linear projection of these spikes.
- ``ConvUnit``: conv -> BatchNorm (over steps x batch) -> TSM gain per step.
- ``ResBlock``: neuron -> conv -> + time embedding -> neuron -> conv, plus a
  membrane shortcut (identity, or a 1x1 conv of the block's first spikes when the
  channel count changes). The interior spikes; the shortcut carries membrane input.
- down path: ResBlocks and stride-2 convolutions; up path: ResBlocks on the
  concatenation with the matching down-path output, nearest up-sampling + conv.
- output: neuron -> conv, then the steps are combined by a non-firing leaky
  integrator read at the last step, ``sum_s w_s y_s / sum_s w_s`` with
  ``w_s = output_decay ** (S - 1 - s)`` (0.8 by default).
- optional analog input skip (``input_skip: K``): ``sum_k g_k(t) conv3x3_k(x_t)``
  added to the output, the gains ``g(t)`` a linear read-out of the time-embedding
  spikes (combined over steps like the output), initialised at 0. The spiking
  output is a sum of a few binary inputs per pixel, too coarse to reproduce the
  fine per-pixel noise that epsilon-prediction asks for (the noisy input itself
  at high noise, its high-pass part at low noise); its residual errors showed as
  salt-and-pepper speckle in the samples. The skip costs K x 9 MACs per pixel.
"""
from __future__ import annotations

import math
from typing import Callable, List

import torch
from torch import nn

from spiking.surrogate import NeuronParameters, SpikingNeuron

from .config import ModelConfig

NeuronFactory = Callable[[], nn.Module]


def neuron_factory(config: ModelConfig) -> NeuronFactory:
    """A constructor of the configured activation layer (maps ``[S, ...]`` to ``[S, ...]``)."""
    if config.neuron == "relu":
        return nn.ReLU
    params = NeuronParameters(tau=None if config.neuron == "if" else config.tau,
                              v_threshold=config.v_threshold, alpha=config.surrogate_alpha)
    return lambda: SpikingNeuron(params)


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style embedding of diffusion steps ``t`` [B] -> [B, dim]."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / max(half - 1, 1))
    angles = t.float()[:, None] * frequencies[None, :]
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    return nn.functional.pad(embedding, (0, dim % 2))


class TemporalGain(nn.Module):
    """TSM: a learnable gain per SNN step on a ``[S, ...]`` sequence, initialised to 1."""

    def __init__(self, time_steps: int):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(time_steps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain.view(-1, *([1] * (x.dim() - 1)))


class ConvUnit(nn.Module):
    """Convolution (+ BatchNorm) (+ TSM gain) at every step: ``[S, B, C, H, W]`` in and out."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, config: ModelConfig,
                 stride: int = 1, norm: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=kernel_size // 2, bias=not norm)
        self.norm = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.tsm = TemporalGain(config.time_steps) if config.tsm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch = x.shape[:2]
        y = self.norm(self.conv(x.flatten(0, 1)).float())
        return self.tsm(y.unflatten(0, (steps, batch)))


class ResBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, embedding_dim: int,
                 config: ModelConfig, make_neuron: NeuronFactory):
        super().__init__()
        self.neuron1 = make_neuron()
        self.conv1 = ConvUnit(in_channels, out_channels, 3, config)
        self.embedding = nn.Linear(embedding_dim, out_channels)
        self.neuron2 = make_neuron()
        self.conv2 = ConvUnit(out_channels, out_channels, 3, config)
        self.shortcut = ConvUnit(in_channels, out_channels, 1, config) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, embedding_spikes: torch.Tensor) -> torch.Tensor:
        spikes = self.neuron1(x)
        h = self.conv1(spikes) + self.embedding(embedding_spikes)[..., None, None]
        h = self.conv2(self.neuron2(h))
        return h + (x if self.shortcut is None else self.shortcut(spikes))


class Downsample(nn.Module):
    def __init__(self, channels: int, config: ModelConfig, make_neuron: NeuronFactory):
        super().__init__()
        self.neuron = make_neuron()
        self.conv = ConvUnit(channels, channels, 3, config, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.neuron(x))


class Upsample(nn.Module):
    def __init__(self, channels: int, config: ModelConfig, make_neuron: NeuronFactory):
        super().__init__()
        self.neuron = make_neuron()
        self.conv = ConvUnit(channels, channels, 3, config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes = self.neuron(x)
        upsampled = nn.functional.interpolate(spikes.flatten(0, 1), scale_factor=2, mode="nearest")
        return self.conv(upsampled.unflatten(0, spikes.shape[:2]))


class UNet(nn.Module):
    """epsilon-prediction U-Net: ``(x_t [B, C, H, W], t [B]) -> eps [B, C, H, W]``."""

    def __init__(self, config: ModelConfig, image_channels: int = 1):
        super().__init__()
        self.config = config
        make_neuron = neuron_factory(config)
        base = config.base_channels
        embedding_dim = 4 * base
        self.time_steps = config.time_steps
        self.embedding_in = nn.Sequential(nn.Linear(base, embedding_dim, bias=False), nn.BatchNorm1d(embedding_dim))
        self.embedding_neuron = make_neuron()
        self.embedding_out = nn.Linear(embedding_dim, embedding_dim, bias=False)
        self.embedding_out_norm = nn.BatchNorm1d(embedding_dim)
        self.embedding_out_neuron = make_neuron()

        self.stem = nn.Conv2d(image_channels, base, 3, padding=1, bias=False)
        self.stem_norm = nn.BatchNorm2d(base)
        self.stem_tsm = TemporalGain(config.time_steps) if config.tsm else nn.Identity()

        def res_block(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, cout, embedding_dim, config, make_neuron)

        channels, skip_channels = base, [base]
        self.down = nn.ModuleList()
        last_level = len(config.channel_mult) - 1
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks):
                self.down.append(res_block(channels, base * mult))
                channels = base * mult
                skip_channels.append(channels)
            if level != last_level:
                self.down.append(Downsample(channels, config, make_neuron))
                skip_channels.append(channels)
        self.middle = nn.ModuleList([res_block(channels, channels), res_block(channels, channels)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for _ in range(config.num_res_blocks + 1):
                self.up.append(res_block(channels + skip_channels.pop(), base * mult))
                channels = base * mult
            if level != 0:
                self.up.append(Upsample(channels, config, make_neuron))
        self.out_neuron = make_neuron()
        self.out_conv = ConvUnit(channels, image_channels, 3, config, norm=False)
        if config.input_skip:
            # analog skip from the noisy image to the output: sum_k g_k(t) conv_k(x_t), the gains
            # g(t) read from the time-embedding spikes and initialised at 0 (= no skip)
            self.skip_conv = nn.Conv2d(image_channels, config.input_skip * image_channels, 3, padding=1,
                                       groups=image_channels, bias=False)
            self.skip_gain = nn.Linear(embedding_dim, config.input_skip * image_channels)
            nn.init.zeros_(self.skip_gain.weight)
            nn.init.zeros_(self.skip_gain.bias)
        decay = torch.tensor([config.output_decay ** (self.time_steps - 1 - s) for s in range(self.time_steps)])
        self.register_buffer("output_weights", decay / decay.sum(), persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        steps = self.time_steps
        linear, norm = self.embedding_in
        embedding = norm(linear(sinusoidal_embedding(t, self.config.base_channels)).float())
        embedding = self.embedding_neuron(embedding.expand(steps, *embedding.shape))
        embedding = self.embedding_out_norm(self.embedding_out(embedding).flatten(0, 1).float()).unflatten(0, (steps, -1))
        embedding = self.embedding_out_neuron(embedding)

        h = self.stem_norm(self.stem(x).float())
        h = self.stem_tsm(h.expand(steps, *h.shape))
        skips: List[torch.Tensor] = [h]
        for block in self.down:
            h = block(h, embedding) if isinstance(block, ResBlock) else block(h)
            skips.append(h)
        for block in self.middle:
            h = block(h, embedding)
        for block in self.up:
            h = block(torch.cat([h, skips.pop()], dim=2), embedding) if isinstance(block, ResBlock) else block(h)
        y = self.out_conv(self.out_neuron(h))
        out = torch.einsum("s,sbchw->bchw", self.output_weights, y)
        if self.config.input_skip:
            gains = torch.einsum("s,sbk->bk", self.output_weights, self.skip_gain(embedding).float())
            skip = (self.skip_conv(x).float() * gains[..., None, None]).unflatten(1, (out.shape[1], -1)).sum(2)
            out = out + skip
        return out

