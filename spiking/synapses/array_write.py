"""Writing a plastic synapse into a resistive array: the kernels' side of
:mod:`hardware.integration` (re-programming on learning), numba and torch side by side.

A synapse on a hardware projection is a differential pair of devices d = 0 (G⁺) and
1 (G⁻), µS. When a learning rule changes its weight to ``w``, the pair is written:

1. targets ``G⁺ = G_min + S·max(w, 0)``, ``G⁻ = G_min + S·max(−w, 0)`` with S µS per
   delivered weight unit, each clipped to the window and rounded to a level
   (:func:`hardware.devices.quantise_conductance`);
2. a device is written only if its target level differs from the level it was last
   programmed to, and only if it is not frozen (stuck-at fault, or worn out);
3. a written device lands on ``level + σ_prog(level)·ξ``, clipped to [0, G_max], with ξ a
   standard normal from the counter-based generator keyed by (write number of that device,
   instance, 2·synapse + d): the same on both backends, whatever the order of writes;
4. its write count goes up by one; once it reaches the endurance the device is frozen and
   keeps its last conductance (later writes are ignored and not counted);
5. if a device was written, the weight becomes ``(G⁺ − G⁻)/S`` (float64, then float32).

An update that does not move a target level writes nothing, so a device with few levels
ignores updates smaller than half a level step (as a real multi-level cell). With an ideal
device (G_min = 0, continuous, no noise) step 5 returns ``w`` bit for bit, so learning
is that of software.

State, per instance, synapse and device (``[B, nnz, 2]``, a pair side by side): ``g``
conductance (float64), ``level`` last target (float64), ``writes`` (int32, the first
programming counts one), ``frozen`` (uint8). ``table[p]`` (float64) holds projection p's
constants (columns below); ``ON`` = 0 for projections that are not plastic on hardware,
whose weights are stored as they are.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from spiking.rng import normal
from spiking.synapses.array_read import normal_torch

# table columns: ON (1 = plastic on hardware), G_MIN/G_MAX (µS), SCALE (µS per delivered
# weight unit), LEVELS (0 = continuous), ENDURANCE (writes, inf = unlimited), PROG_GAIN
# (ProgrammingNoise.scale · G_max, µS)
ON, G_MIN, G_MAX, SCALE, LEVELS, ENDURANCE, PROG_GAIN = range(7)
COEF = 7      # first of the programming-noise polynomial coefficients (in G/G_max)
N_COEF = 8    # at most this many coefficients
N_WRITE = COEF + N_COEF
# the kernels' arguments after the synapses' projection (ArrayBackend.hardware_writes)
FIELDS = ("learn", "table", "key", "g", "level", "writes", "frozen")


@njit(cache=True, nogil=True, inline="always")
def _level(table, p, g):
    """Clip a target conductance (µS) to the window and round it to a level."""
    g_min, g_max, levels = table[p, G_MIN], table[p, G_MAX], table[p, LEVELS]
    g = min(max(g, g_min), g_max)
    if levels > 0:
        steps = levels - 1
        fraction = np.rint((g - g_min) * (steps / (g_max - g_min))) / steps
        g = g_min * (1 - fraction) + g_max * fraction
    return g


@njit(cache=True, nogil=True, inline="always")
def _sigma(table, p, g):
    """σ_prog (µS) at level g: polynomial in g/G_max (Horner), floored at 0."""
    relative = g / table[p, G_MAX]
    sigma = 0.0
    for c in range(COEF + N_COEF - 1, COEF - 1, -1):
        sigma = sigma * relative + table[p, c]
    return max(sigma, 0.0) * table[p, PROG_GAIN]


@njit(cache=True, nogil=True)
def write(weight, wb, b, s, value, proj, table, key, g, level, writes, frozen):
    """Program weight ``value`` into the pair of synapse s, instance b (module doc)."""
    p = proj[s]
    scale = table[p, SCALE]
    v = np.float64(value)
    written = False
    for d in range(2):
        magnitude = v if d == 0 else -v
        target = _level(table, p, table[p, G_MIN] + scale * max(magnitude, 0.0))
        if target == level[b, s, d] or frozen[b, s, d]:
            continue
        n = writes[b, s, d]
        sigma = _sigma(table, p, target)
        g_new = target
        if sigma > 0:
            g_new = target + sigma * np.float64(np.float32(normal(key, n, b, 2 * s + d)))
        g[b, s, d] = min(max(g_new, 0.0), table[p, G_MAX])
        level[b, s, d] = target
        writes[b, s, d] = n + 1
        if n + 1 >= table[p, ENDURANCE]:
            frozen[b, s, d] = 1
        written = True
    if written:
        weight[wb, s] = np.float32((g[b, s, 0] - g[b, s, 1]) / scale)


# ----------------------------------------------------------------------------- torch
def store_torch(weight, hw, b, wb, syn, value):
    """Set the weights of distinct (instance, synapse) pairs (1-D tensors) to ``value``,
    writing the devices of those on plastic hardware projections (:func:`write`)."""
    import torch

    if not hw["learn"]:
        weight[wb, syn] = value
        return
    table = hw["table"]
    on = table[hw["proj"][syn].to(torch.int64), ON] > 0
    weight[wb[~on], syn[~on]] = value[~on]
    if bool(on.any()):
        write_torch(weight, hw, b[on], wb[on], syn[on], value[on])


def write_torch(weight, hw, b, wb, syn, value):
    """Batched :func:`write`; the same operations on float64 tensors."""
    import torch

    tab = hw["table"][hw["proj"][syn].to(torch.int64)].T[:, None, :]   # [N_WRITE, 1, n]
    scale, g_min, g_max, levels = tab[SCALE], tab[G_MIN], tab[G_MAX], tab[LEVELS]
    v = value.to(torch.float64)
    target = torch.stack([g_min[0] + scale[0] * v.clamp(min=0.0),
                          g_min[0] + scale[0] * (-v).clamp(min=0.0)])   # [2, n]
    target = torch.minimum(torch.maximum(target, g_min), g_max)
    steps = (levels - 1).clamp(min=1.0)
    fraction = torch.round((target - g_min) * (steps / (g_max - g_min))) / steps
    target = torch.where(levels > 0, g_min * (1 - fraction) + g_max * fraction, target)
    d = torch.arange(2, device=syn.device)[:, None]
    at = (b[None, :], syn[None, :], d)
    n = hw["writes"][at]
    due = (target != hw["level"][at]) & (hw["frozen"][at] == 0)
    relative = target / g_max
    sigma = torch.zeros_like(target)
    for c in range(COEF + N_COEF - 1, COEF - 1, -1):
        sigma = sigma * relative + tab[c]
    sigma = sigma.clamp(min=0.0) * tab[PROG_GAIN]
    xi = normal_torch(hw["key"], n.to(torch.int64), b[None, :], 2 * syn[None, :] + d)
    noisy = target + sigma * xi.to(torch.float32).to(torch.float64)
    g_new = torch.minimum(torch.where(sigma > 0, noisy, target).clamp(min=0.0), g_max)
    g = torch.where(due, g_new, hw["g"][at])
    hw["g"][at] = g
    hw["level"][at] = torch.where(due, target, hw["level"][at])
    count = n + due.to(n.dtype)
    hw["writes"][at] = count
    hw["frozen"][at] = hw["frozen"][at] | (due & (count >= tab[ENDURANCE])).to(torch.uint8)
    written = due.any(dim=0)
    weight[wb[written], syn[written]] = ((g[0] - g[1]) / scale[0])[written].to(torch.float32)
