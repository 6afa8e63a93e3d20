"""Synaptic-operation counts and an energy estimate from measured spike rates.

Every convolution and linear layer is counted while the model runs:

- dense operations of a call = output elements x fan-in
  (``in_channels / groups x kernel area`` for a convolution, ``in_features`` for a linear);
- if its input is spikes (only 0s and 1s, in a model with spiking neurons), the
  layer performs accumulates (AC) only when a spike arrives:
  ``ACs = dense operations x fraction of inputs that spiked``
  (border effects of zero padding are ignored);
- otherwise (the image at the stem, the sinusoidal embedding, and every layer of
  the ANN twin) it performs ``dense operations`` multiply-accumulates (MAC).

Energy per operation, 32-bit floating point in 45 nm CMOS (Horowitz, ISSCC 2014),
the constants used by most SNN papers: ``E_MAC = 4.6 pJ``, ``E_AC = 0.9 pJ``.
BatchNorm is folded into the preceding layer at inference and not counted; nor
are additions of the residual paths, up-sampling and concatenation, or memory
traffic. The counts are per network evaluation of one image; a sample takes
one evaluation per sampler step (50 for DDIM), the same for SNN and ANN.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator

from torch import nn

from spiking.surrogate import spiking_neurons

ENERGY_MAC_PJ = 4.6  # pJ per 32-bit float multiply-accumulate
ENERGY_AC_PJ = 0.9   # pJ per 32-bit float accumulate


def _fan_in(layer: nn.Module) -> int:
    if isinstance(layer, nn.Conv2d):
        return layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
    return layer.in_features


@contextmanager
def operation_counting(model: nn.Module) -> Iterator[Dict[str, float]]:
    """Count MACs and ACs of every forward pass inside the block; on exit the
    yielded dict holds ``macs``, ``acs`` (per image evaluation), ``energy_pj``,
    ``evaluations`` and ``layers`` (name -> per-evaluation ``macs`` and ``acs``)."""
    spiking = any(True for _ in spiking_neurons(model))
    layers: Dict[str, Dict[str, float]] = {}
    evaluations = [0]
    hooks = []

    def count(name: str):
        def hook(layer: nn.Module, inputs, output) -> None:
            x = inputs[0]
            dense = output.numel() * _fan_in(layer)
            entry = layers.setdefault(name, {"macs": 0.0, "acs": 0.0})
            if spiking and bool(((x == 0) | (x == 1)).all()):
                entry["acs"] += dense * float(x.float().mean())
            else:
                entry["macs"] += dense
        return hook

    def count_evaluations(module: nn.Module, inputs) -> None:
        evaluations[0] += inputs[0].shape[0]

    hooks.append(model.register_forward_pre_hook(count_evaluations))
    for name, layer in model.named_modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            hooks.append(layer.register_forward_hook(count(name)))
    result: Dict[str, float] = {}
    try:
        yield result
    finally:
        for hook in hooks:
            hook.remove()
        per_image = max(evaluations[0], 1)
        for entry in layers.values():
            entry["macs"] /= per_image
            entry["acs"] /= per_image
        macs = sum(entry["macs"] for entry in layers.values())
        acs = sum(entry["acs"] for entry in layers.values())
        result.update(macs=macs, acs=acs, energy_pj=macs * ENERGY_MAC_PJ + acs * ENERGY_AC_PJ,
                      evaluations=evaluations[0], layers=layers)
