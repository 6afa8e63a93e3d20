"""Spiking neurons trained with surrogate gradients (torch).

A pure step function (:func:`neuron_step`) and a thin multi-step module
(:class:`SpikingNeuron`), in the style of norse: parameters live in a small frozen
dataclass, state is passed explicitly, and the module only loops over time.

Membrane units are dimensionless (the threshold is 1 by default) and time is
counted in network steps, not milliseconds: these neurons are layers of a deep
network, not models of cells (for those see ``spiking.models``).

Forward pass: the spike is the Heaviside step of ``v - threshold`` (a spike when
``v >= threshold``). Backward pass: the derivative of the ATan surrogate
``(1/pi) * arctan(pi/2 * alpha * x) + 1/2``, i.e.
``alpha / 2 / (1 + (pi/2 * alpha * x)**2)`` (Fang et al. 2021, SpikingJelly).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

import torch
from torch import nn


class _ATanSpike(torch.autograd.Function):
    """Heaviside forward, ATan-derivative backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        alpha = ctx.alpha
        slope = alpha / 2 / (1 + (math.pi / 2 * alpha * x) ** 2)
        return grad_output * slope, None


def atan_spike(x: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Spike (1.0) where ``x >= 0``, else 0.0; gradient of the ATan surrogate
    with sharpness ``alpha`` (larger: closer to the step, narrower gradient)."""
    return _ATanSpike.apply(x, alpha)


@dataclass(frozen=True)
class NeuronParameters:
    """Parameters of a (leaky) integrate-and-fire layer.

    tau: membrane time constant in network steps (> 1); ``None`` for a
        non-leaky integrate-and-fire neuron. The leaky update is
        ``v += (x - (v - v_reset)) / tau`` (input scaled by 1/tau, as in SpikingJelly).
    v_threshold: firing threshold (dimensionless, > 0).
    v_reset: membrane value after a spike (hard reset).
    alpha: sharpness of the ATan surrogate gradient (> 0).
    detach_reset: cut the gradient through the reset (usually trains better).
    """

    tau: Optional[float] = 2.0
    v_threshold: float = 1.0
    v_reset: float = 0.0
    alpha: float = 2.0
    detach_reset: bool = True

    def __post_init__(self) -> None:
        if self.tau is not None and not self.tau > 1.0:
            raise ValueError(f"tau must be > 1 network step (or None for IF), got {self.tau}")
        if not self.v_threshold > 0:
            raise ValueError(f"v_threshold must be > 0, got {self.v_threshold}")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")


def _charge(x: torch.Tensor, v: torch.Tensor, params: NeuronParameters,
            out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Membrane after integrating input ``x`` (before the spike and reset)."""
    if params.tau is None:
        return torch.add(v, x, out=out)
    target = x if params.v_reset == 0.0 else x + params.v_reset
    return torch.lerp(v, target, 1.0 / params.tau, out=out)  # v + (x + v_reset - v) / tau


def _reset(v_charged: torch.Tensor, spikes: torch.Tensor, params: NeuronParameters) -> torch.Tensor:
    """``v_reset`` where a spike occurred, ``v_charged`` elsewhere (exact at 0 and 1)."""
    return torch.lerp(v_charged, v_charged.new_tensor(params.v_reset), spikes)


def neuron_step(x: torch.Tensor, v: torch.Tensor, params: NeuronParameters,
                threshold: Optional[float] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """One step: integrate input ``x`` into membrane ``v``, spike, hard reset.

    threshold: overrides ``params.v_threshold`` (threshold guidance scales it).
    Returns ``(spikes, v_next)``, both shaped like ``x``.
    """
    threshold = params.v_threshold if threshold is None else threshold
    v_charged = _charge(x, v, params)
    spikes = atan_spike(v_charged - threshold, params.alpha)
    reset = spikes.detach() if params.detach_reset else spikes
    return spikes, _reset(v_charged, reset, params)


class _MultistepNeuron(torch.autograd.Function):
    """:func:`neuron_step` over time with a hand-written backward pass through time.

    Same spikes as looping :func:`neuron_step`, and the same gradients up to
    rounding, but it keeps only the charged membrane per step for the backward
    pass instead of every intermediate, and writes in place (faster, less memory).
    """

    @staticmethod
    def forward(ctx, x_seq: torch.Tensor, params: NeuronParameters, threshold: float) -> torch.Tensor:
        v = torch.full_like(x_seq[0], params.v_reset)
        charged, spikes = torch.empty_like(x_seq), torch.empty_like(x_seq)
        for step, x in enumerate(x_seq):
            _charge(x, v, params, out=charged[step])
            torch.ge(charged[step], threshold, out=spikes[step])  # float 0/1 (faster than bool)
            v = _reset(charged[step], spikes[step], params)
        ctx.save_for_backward(charged)
        ctx.params, ctx.threshold = params, threshold
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor):
        (charged,) = ctx.saved_tensors
        params, threshold = ctx.params, ctx.threshold
        leak = 1.0 if params.tau is None else 1.0 - 1.0 / params.tau   # d v_charged / d v
        gain = 1.0 if params.tau is None else 1.0 / params.tau         # d v_charged / d x
        scale = math.pi / 2 * params.alpha
        grad_x = torch.empty_like(charged)
        grad_v = torch.zeros_like(charged[0])                           # dL / d v_next
        spiked = torch.empty_like(charged[0])
        for step in reversed(range(charged.shape[0])):
            torch.ge(charged[step], threshold, out=spiked)
            slope = (charged[step] - threshold).mul_(scale).square_().add_(1.0).reciprocal_().mul_(params.alpha / 2)
            if params.detach_reset:
                grad_charged = grad_spikes[step] * slope
            else:  # the reset jump v_reset - v_charged also depends on the spike
                grad_charged = (grad_spikes[step] + grad_v * (params.v_reset - charged[step])).mul_(slope)
            grad_charged.add_(grad_v).addcmul_(grad_v, spiked, value=-1.0)  # + grad_v * (1 - spiked)
            torch.mul(grad_charged, gain, out=grad_x[step])
            grad_v = grad_charged.mul_(leak)
        return grad_x, None, None


def neuron_multistep(x_seq: torch.Tensor, params: NeuronParameters,
                     threshold: Optional[float] = None) -> torch.Tensor:
    """Run :func:`neuron_step` over the leading (time) dimension of ``x_seq``
    ``[S, ...]``, starting from ``v = v_reset``; returns the spikes ``[S, ...]``."""
    threshold = params.v_threshold if threshold is None else threshold
    return _MultistepNeuron.apply(x_seq, params, threshold)


class SpikingNeuron(nn.Module):
    """Multi-step (L)IF layer: input ``[S, ...]`` -> spikes ``[S, ...]`` (0/1).

    ``threshold_scale`` multiplies the threshold at run time (threshold guidance:
    ``1 + delta``). With ``monitoring`` on, the layer accumulates its spike count
    and the number of neuron-steps; :meth:`spike_rate` is their ratio (spikes per
    neuron per step).
    """

    def __init__(self, params: NeuronParameters = NeuronParameters()):
        super().__init__()
        self.params = params
        self.threshold_scale = 1.0
        self.monitoring = False
        self.reset_monitor()

    @property
    def threshold(self) -> float:
        return self.params.v_threshold * self.threshold_scale

    def reset_monitor(self) -> None:
        self.spike_count = 0.0
        self.neuron_steps = 0

    def spike_rate(self) -> float:
        """Mean spikes per neuron per step since the last :meth:`reset_monitor`."""
        count = float(self.spike_count)
        return count / self.neuron_steps if self.neuron_steps else float("nan")

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        spikes = neuron_multistep(x_seq, self.params, self.threshold)
        if self.monitoring:
            self.spike_count = self.spike_count + spikes.detach().sum()
            self.neuron_steps += spikes.numel()
        return spikes

    def extra_repr(self) -> str:
        kind = "IF" if self.params.tau is None else f"LIF tau={self.params.tau}"
        return f"{kind}, v_threshold={self.params.v_threshold}, alpha={self.params.alpha}"


def spiking_neurons(model: nn.Module) -> Iterator[Tuple[str, SpikingNeuron]]:
    """The named :class:`SpikingNeuron` layers of ``model``."""
    for name, module in model.named_modules():
        if isinstance(module, SpikingNeuron):
            yield name, module


@contextmanager
def threshold_scaled(model: nn.Module, scale: float) -> Iterator[nn.Module]:
    """Multiply every spiking threshold in ``model`` by ``scale`` inside the block
    (threshold guidance uses ``scale = 1 + delta``); restores the old scales."""
    if not scale > 0:
        raise ValueError(f"threshold scale must be > 0, got {scale}")
    layers = [layer for _, layer in spiking_neurons(model)]
    previous = [layer.threshold_scale for layer in layers]
    for layer in layers:
        layer.threshold_scale = scale
    try:
        yield model
    finally:
        for layer, old in zip(layers, previous):
            layer.threshold_scale = old


@contextmanager
def spike_monitoring(model: nn.Module) -> Iterator[dict]:
    """Count spikes in every layer inside the block; the yielded dict is filled
    on exit with ``{layer name: spike rate}`` (spikes per neuron per step)."""
    layers = dict(spiking_neurons(model))
    rates: dict = {}
    for layer in layers.values():
        layer.reset_monitor()
        layer.monitoring = True
    try:
        yield rates
    finally:
        for name, layer in layers.items():
            layer.monitoring = False
            rates[name] = layer.spike_rate()
