"""Reading a synapse through a resistive array: the kernels' side of
:mod:`hardware.integration`, for numba and torch side by side.

Per hardware projection p, ``table[p] = (read_sigma, adc_step, adc_range)`` in
weight units. A spike delivers ``w + read_sigma · ξ`` with ξ a standard normal
from the counter-based generator keyed by (step, instance, synapse), then, with
a quantising ADC, rounded to the step and clipped to ±range.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from spiking.rng import GOLDEN, _as_i64, _torch_mix64, normal

READ_SIGMA, ADC_STEP, ADC_RANGE = 0, 1, 2


@njit(cache=True, nogil=True, inline="always")
def read(w, table, p, key, t, b, k):
    sigma = table[p, READ_SIGMA]
    if sigma > 0:
        w = w + sigma * np.float32(normal(key, t, b, k))
    step = table[p, ADC_STEP]
    if step > 0:
        w = np.float32(np.rint(w / step)) * step
        top = table[p, ADC_RANGE]
        w = min(max(w, -top), top)
    return w


def read_torch(w, table, proj, key, t, b, k):
    """Batched :func:`read`: w, proj, b, k are equal-length 1-D tensors."""
    import torch

    sigma, step, top = table[proj, READ_SIGMA], table[proj, ADC_STEP], table[proj, ADC_RANGE]
    w = torch.where(sigma > 0, w + sigma * normal_torch(key, t, b, k).to(torch.float32), w)
    quantised = torch.round(w / step) * step
    quantised = torch.minimum(torch.maximum(quantised, -top), top)
    return torch.where(step > 0, quantised, w)


def normal_torch(key, step, b, k):
    """:func:`spiking.rng.normal` element by element (float64): step, b, k are int64
    tensors (or ints) that broadcast together."""
    import math

    import torch

    counter = (step * (1 << 20) + b + 1) * _as_i64(GOLDEN)

    def uniform(index):
        per_index = _torch_mix64(torch.as_tensor(_as_i64(np.uint64(key)), device=k.device)
                                 + (index + 1) * _as_i64(GOLDEN))
        x = _torch_mix64(per_index + counter)
        return ((x >> 11) & ((1 << 53) - 1)).double() * (1.0 / 9007199254740992.0)

    u1 = 1.0 - uniform(2 * k)
    u2 = uniform(2 * k + 1)
    return (-2.0 * torch.log(u1)).sqrt() * torch.cos(2.0 * math.pi * u2)
