"""Seeds and counter-based random numbers.

Build-time randomness (connectivity, parameters, initial state) comes from
``numpy.random.Generator`` objects keyed by component name, so results do not
depend on the order things are built in.

Run-time randomness (Poisson sources, read noise) uses a counter-based
generator: the number for (key, step, instance, index) is a SplitMix64 hash of
those counters. Both backends compute the same numbers, in any order and in
parallel, so stochastic inputs are identical on numba and torch.
"""
from __future__ import annotations

import zlib

import numpy as np
from numba import njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
INV_2_53 = 1.0 / 9007199254740992.0
MAX_INSTANCES = 1 << 20


def generator(seed: int, *names: str) -> np.random.Generator:
    """A numpy Generator for one named component (e.g. ``"projection", "EE", "weight"``)."""
    key = tuple(zlib.crc32(n.encode()) for n in names)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def stream_key(seed: int, *names: str) -> np.uint64:
    """A 64-bit key for a counter-based stream of one named component."""
    return np.uint64(generator(seed, "stream", *names).integers(0, 2**63, dtype=np.int64))


@njit(cache=True, nogil=True, inline="always")
def mix64(x):
    """SplitMix64 finaliser (Steele, Lea & Flood 2014): uint64 -> uint64."""
    x = (x ^ (x >> np.uint64(30))) * MIX1
    x = (x ^ (x >> np.uint64(27))) * MIX2
    return x ^ (x >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def uniform(key, step, instance, index):
    """Uniform [0, 1) double for one (step, instance, index) of stream ``key``."""
    return uniform_at(mix64(key + GOLDEN * (np.uint64(index) + np.uint64(1))), step, instance)


@njit(cache=True, nogil=True, inline="always")
def uniform_at(index_key, step, instance):
    """:func:`uniform` from the per-index part (an entry of :func:`index_keys`)."""
    counter = np.uint64(step) * np.uint64(MAX_INSTANCES) + np.uint64(instance)
    x = mix64(index_key + GOLDEN * (counter + np.uint64(1)))
    return np.float64(x >> np.uint64(11)) * INV_2_53


@njit(cache=True, nogil=True, inline="always")
def normal(key, step, instance, index):
    """Standard normal (Box-Muller) from the uniforms at 2·index and 2·index + 1."""
    u1 = 1.0 - uniform(key, step, instance, 2 * index)
    u2 = uniform(key, step, instance, 2 * index + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@njit(cache=True, nogil=True)
def normals(keys, step, instance, out):
    """Fill ``out`` with standard normals, two per Box-Muller draw: out[2m] and
    out[2m + 1] are r·cos θ and r·sin θ from the uniforms at 2m and 2m + 1
    (sin θ as ±sqrt(1 - cos² θ), which saves a libm call and is computed the
    same way on torch); keys: :func:`normal_keys` of the stream (uint64)."""
    n = out.shape[0]
    for m in range((n + 1) // 2):
        r = np.sqrt(-2.0 * np.log(1.0 - uniform_at(keys[2 * m], step, instance)))
        u = uniform_at(keys[2 * m + 1], step, instance)
        c = np.cos(2.0 * np.pi * u)
        out[2 * m] = r * c
        if 2 * m + 1 < n:
            sin = np.sqrt(max(1.0 - c * c, 0.0))
            out[2 * m + 1] = r * (sin if u < 0.5 else -sin)


@njit(cache=True, nogil=True, inline="always")
def poisson_from_uniform(u, exp_minus_lam, lam):
    """Inverse-CDF Poisson sample (exact for the small means of one time step)."""
    k = 0
    p = exp_minus_lam
    s = p
    while u > s and k < 1000:
        k += 1
        p = p * lam / k
        s += p
    return k


# ----------------------------------------------------------------------------- torch
def _torch_mix64(x):
    import torch

    def shr(v, s):  # logical right shift of int64 bit patterns
        return (v >> s) & ((1 << (64 - s)) - 1)

    x = (x ^ shr(x, 30)) * _as_i64(MIX1)
    x = (x ^ shr(x, 27)) * _as_i64(MIX2)
    return x ^ shr(x, 31)


def _as_i64(u: np.uint64) -> int:
    v = int(u)
    return v - (1 << 64) if v >= (1 << 63) else v


def torch_uniform(step: int, instances, index_keys):
    """Same numbers as :func:`uniform` for all (instance, index) pairs.

    instances: int64 tensor [B, 1]; index_keys: the precomputed per-index part,
    int64 tensor [n] (see :func:`index_keys`). Returns float64 [B, n].
    """
    counter = step * MAX_INSTANCES + instances + 1
    x = _torch_mix64(index_keys + counter * _as_i64(GOLDEN))
    return ((x >> 11) & ((1 << 53) - 1)).double() * INV_2_53


def mix64_host(x):
    """:func:`mix64` on numpy uint64 values (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * MIX1
        x = (x ^ (x >> np.uint64(27))) * MIX2
        return x ^ (x >> np.uint64(31))


def index_keys(key: np.uint64, n: int) -> np.ndarray:
    """Per-index part of :func:`uniform`, as int64 bit patterns [n]."""
    with np.errstate(over="ignore"):
        x = np.uint64(key) + GOLDEN * np.arange(1, n + 1, dtype=np.uint64)
    return mix64_host(x).view(np.int64)


def normal_keys(key: np.uint64, n: int) -> np.ndarray:
    """:func:`index_keys` for :func:`torch_normals` of n values (n rounded up to even, doubled)."""
    return index_keys(key, 2 * ((n + 1) // 2))


def torch_normals(step: int, instances, keys, n: int):
    """Same numbers as :func:`normals`; keys = normal_keys(key, n). [B, n] float64."""
    import math

    import torch

    u = torch_uniform(step, instances, keys).view(instances.shape[0], -1, 2)
    r = (-2.0 * torch.log(1.0 - u[..., 0])).sqrt()
    c = torch.cos(2.0 * math.pi * u[..., 1])
    sin = (1.0 - c * c).clamp_(min=0.0).sqrt()
    sin = torch.where(u[..., 1] < 0.5, sin, -sin)
    return torch.stack((r * c, r * sin), dim=-1).flatten(1)[:, :n]


def torch_poisson(u, exp_minus_lam, lam):
    """Vectorised inverse-CDF Poisson, identical to :func:`poisson_from_uniform`."""
    import torch

    k = torch.zeros_like(u, dtype=torch.int32)
    p = exp_minus_lam.expand_as(u).clone()
    s = p.clone()
    active = u > s
    step = 0
    while bool(active.any()) and step < 1000:
        step += 1
        p = torch.where(active, p * lam / step, p)
        s = torch.where(active, s + p, s)
        k = k + active.to(torch.int32)
        active = active & (u > s)
    return k
