"""Connectors: rules that turn a projection's ``connector:`` block into synapses.

Each connector registers under the name the YAML uses and returns local
(pre, post) index arrays, plus optional per-synapse weights/delays when the
connector carries them (``from_list``). Work grows with the number of
synapses made, except where the rule needs to look at every pair
(``all_to_all``, ``fixed_probability`` and ``distance``, which go block by
block to bound memory).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np
from numba import njit

BLOCK_PAIRS = 1 << 22  # pairs examined per block by the pairwise connectors


@dataclass
class Synapses:
    """Local indices (int64) and, optionally, explicit weights/delays (base units)."""

    pre: np.ndarray
    post: np.ndarray
    weight: Optional[np.ndarray] = None
    delay: Optional[np.ndarray] = None


@dataclass
class Endpoints:
    """What a connector may look at."""

    n_pre: int
    n_post: int
    same_population: bool
    pre_positions: Optional[np.ndarray] = None   # [n_pre, 3] um
    post_positions: Optional[np.ndarray] = None  # [n_post, 3] um
    base_dir: str = "."


CONNECTORS: Dict[str, Callable] = {}


def connector(name: str):
    def register(fn):
        CONNECTORS[name] = fn
        return fn
    return register


def connect(cfg, ends: Endpoints, rng: np.random.Generator) -> Synapses:
    """Run the connector named by ``cfg.type``."""
    try:
        fn = CONNECTORS[cfg.type]
    except KeyError:
        raise ValueError(f"unknown connector {cfg.type!r}; registered: "
                         f"{', '.join(sorted(CONNECTORS))}") from None
    syn = fn(cfg, ends, rng)
    syn.pre = syn.pre.astype(np.int64, copy=False)
    syn.post = syn.post.astype(np.int64, copy=False)
    return syn


def _allow_self(cfg, default: bool) -> bool:
    value = getattr(cfg, "allow_self_connections", None)
    return default if value is None else bool(value)


def _pairwise(ends: Endpoints, rng, keep_probability) -> Synapses:
    """Examine pairs block by block; keep each with its probability."""
    rows = max(1, BLOCK_PAIRS // max(ends.n_post, 1))
    pres, posts = [], []
    for lo in range(0, ends.n_pre, rows):
        hi = min(ends.n_pre, lo + rows)
        prob = keep_probability(lo, hi)  # [hi - lo, n_post] or scalar
        if np.isscalar(prob) and prob >= 1.0:
            keep = np.ones((hi - lo, ends.n_post), dtype=bool)
        else:
            keep = rng.random((hi - lo, ends.n_post)) < prob
        i, j = np.nonzero(keep)
        pres.append(i + lo)
        posts.append(j)
    pre = np.concatenate(pres) if pres else np.zeros(0, np.int64)
    post = np.concatenate(posts) if posts else np.zeros(0, np.int64)
    return Synapses(pre, post)


def _drop_self(syn: Synapses) -> Synapses:
    keep = syn.pre != syn.post
    return Synapses(syn.pre[keep], syn.post[keep],
                    None if syn.weight is None else syn.weight[keep],
                    None if syn.delay is None else syn.delay[keep])


@connector("all_to_all")
def all_to_all(cfg, ends: Endpoints, rng) -> Synapses:
    pre = np.repeat(np.arange(ends.n_pre), ends.n_post)
    post = np.tile(np.arange(ends.n_post), ends.n_pre)
    syn = Synapses(pre, post)
    if ends.same_population and not _allow_self(cfg, True):
        syn = _drop_self(syn)
    return syn


@connector("one_to_one")
def one_to_one(cfg, ends: Endpoints, rng) -> Synapses:
    if ends.n_pre != ends.n_post:
        raise ValueError(f"one_to_one needs pre and post of equal size, got {ends.n_pre} and {ends.n_post}")
    idx = np.arange(ends.n_pre)
    return Synapses(idx, idx.copy())


@connector("fixed_probability")
def fixed_probability(cfg, ends: Endpoints, rng) -> Synapses:
    syn = _pairwise(ends, rng, lambda lo, hi: float(cfg.p))
    if ends.same_population and not _allow_self(cfg, True):
        syn = _drop_self(syn)
    return syn


@njit(cache=True)
def _sample_without_replacement(n_pick, n_from, uniforms):
    """Floyd's algorithm per row: n_pick distinct values in [0, n_from).

    uniforms: [n_rows, n_pick] in [0, 1), one per pick; O(n_pick) per row.
    """
    n_rows = uniforms.shape[0]
    out = np.empty((n_rows, n_pick), dtype=np.int64)
    taken = np.zeros(n_from, dtype=np.bool_)
    for r in range(n_rows):
        for c in range(n_pick):
            j = n_from - n_pick + c
            t = min(int(uniforms[r, c] * (j + 1)), j)
            if taken[t]:
                t = j
            taken[t] = True
            out[r, c] = t
        for c in range(n_pick):
            taken[out[r, c]] = False
    return out


def _fixed_degree(n_rows, n_pick, n_from, rng, exclude_self):
    """[n_rows, n_pick] distinct partners per row; with exclude_self, row r never gets r."""
    pool = n_from - 1 if exclude_self else n_from
    if n_pick > pool:
        raise ValueError(f"cannot pick {n_pick} distinct partners out of {pool}")
    block = max(1, BLOCK_PAIRS // max(n_pick, 1))
    parts = []
    for lo in range(0, n_rows, block):
        hi = min(n_rows, lo + block)
        picked = _sample_without_replacement(n_pick, pool, rng.random((hi - lo, n_pick)))
        if exclude_self:  # values at or past the row's own index move up by one
            picked += picked >= np.arange(lo, hi)[:, None]
        parts.append(picked)
    return np.concatenate(parts) if parts else np.zeros((0, n_pick), np.int64)


@connector("fixed_indegree")
def fixed_indegree(cfg, ends: Endpoints, rng) -> Synapses:
    exclude = ends.same_population and not _allow_self(cfg, True)
    picked = _fixed_degree(ends.n_post, int(cfg.n), ends.n_pre, rng, exclude)
    post = np.repeat(np.arange(ends.n_post), picked.shape[1])
    return Synapses(picked.ravel(), post)


@connector("fixed_outdegree")
def fixed_outdegree(cfg, ends: Endpoints, rng) -> Synapses:
    exclude = ends.same_population and not _allow_self(cfg, True)
    picked = _fixed_degree(ends.n_pre, int(cfg.n), ends.n_post, rng, exclude)
    pre = np.repeat(np.arange(ends.n_pre), picked.shape[1])
    return Synapses(pre, picked.ravel())


@connector("distance")
def distance(cfg, ends: Endpoints, rng) -> Synapses:
    """P = c · exp(-(d / lambda)^2), d the distance between positions (um)."""
    if ends.pre_positions is None or ends.post_positions is None:
        raise ValueError("the distance connector needs positions on both populations "
                         "(give each a `positions: {grid: ...}`)")
    c, lam = float(cfg.c), float(getattr(cfg, "lambda_", None) or getattr(cfg, "lam"))

    def probability(lo, hi):
        diff = ends.pre_positions[lo:hi, None, :] - ends.post_positions[None, :, :]
        d2 = np.einsum("ijk,ijk->ij", diff, diff)
        return c * np.exp(-d2 / (lam * lam))

    syn = _pairwise(ends, rng, probability)
    if ends.same_population and not _allow_self(cfg, False):
        syn = _drop_self(syn)
    return syn


@connector("from_list")
def from_list(cfg, ends: Endpoints, rng) -> Synapses:
    import os

    file = getattr(cfg, "file", None)
    if file:
        path = file if os.path.isabs(file) else os.path.join(ends.base_dir, file)
        with np.load(path) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    else:
        arrays = {k: getattr(cfg, k) for k in ("pre", "post", "weight", "delay")}
    pre = np.asarray(arrays["pre"], dtype=np.int64)
    post = np.asarray(arrays["post"], dtype=np.int64)
    if pre.shape != post.shape:
        raise ValueError(f"from_list: pre and post differ in length ({pre.size} vs {post.size})")
    for name, idx, n in (("pre", pre, ends.n_pre), ("post", post, ends.n_post)):
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"from_list: {name} index out of range [0, {n})")
    extra = {}
    for key in ("weight", "delay"):
        values = arrays.get(key)
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            if values.shape != pre.shape:
                raise ValueError(f"from_list: {key} has {values.size} values for {pre.size} synapses")
            extra[key] = values
    return Synapses(pre, post, extra.get("weight"), extra.get("delay"))
