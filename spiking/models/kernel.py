"""Pieces every numba neuron step shares.

A step runs in two passes over the population's neurons so that the first one
vectorises (SIMD): pass 1 integrates 1-D contiguous rows and writes a fired
flag per neuron with no data-dependent stores; pass 2 compacts the flags into
spike indices. Each population also carries a mode word (``pop_mode``):
``UNIFORM`` when every neuron has the same coefficients (the step then reads
scalars instead of coefficient rows, e.g. CUBA and Brunel), and one bit per
receptor slot that any projection targets (rows of silent receptors are
neither read nor cleared).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

UNIFORM = 1
RECEIVES = (2, 4, 8)  # excitatory, inhibitory, v (spiking.models.base.RECEPTOR_SLOTS)


def pop_mode(coef: np.ndarray, receives) -> int:
    """Mode word of one population: coef its [n_coef, n] table, receives one
    bool per receptor slot."""
    mode = UNIFORM if coef.shape[1] == 0 or bool(np.all(coef == coef[:, :1])) else 0
    for bit, used in zip(RECEIVES, receives):
        mode |= bit if used else 0
    return mode


def at(x, j):
    """x[j] for a row of per-neuron values, x itself for a uniform scalar."""
    return x if np.isscalar(x) else x[j]


@overload(at, inline="always")
def _at(x, j):
    if isinstance(x, types.Array):
        return lambda x, j: x[j]
    return lambda x, j: x


@njit(cache=True, nogil=True, inline="always")
def take_input(ring, slot, b, k, used):
    """This step's delivered input ring[slot, b, k] (float32; k: receptor slot · n_total +
    neuron), which is cleared. A receptor slot no projection targets is always 0."""
    if not used:
        return np.float32(0.0)
    x = np.float32(ring[slot, b, k])
    ring[slot, b, k] = 0.0
    return x


@njit(cache=True, nogil=True, inline="always")
def ring_slot(slot, delay, depth):
    """The ring-buffer slot that a spike sent in ``slot`` reaches after ``delay``
    steps (0 < delay < depth)."""
    arrive = slot + delay
    return arrive - depth if arrive >= depth else arrive


@intrinsic
def _trailing_zeros(typingctx, word):
    """The number of trailing 0 bits of a nonzero uint64 (one instruction, tzcnt)."""
    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))
    return types.uint64(types.uint64), codegen


@njit(cache=True, nogil=True)
def collect(words, fired, lo, n, spikes, n_spikes):
    """Append the indices lo + j of fired[j] != 0 (j < n) to ``spikes``; ``fired``
    (uint8) is ``words`` (uint64) viewed as bytes, both made once per run rather than a
    view per step (numba reference-counts each). Flags are mostly 0: eight are read at a
    time as a 64-bit word, and a nonzero word yields its nonzero bytes by their trailing
    zero bits (little-endian: byte k is bits 8k..8k+7; unsigned indices: no
    negative-index wraparound)."""
    n_words = n // 8
    for w in range(np.uint64(n_words)):
        word = words[w]
        while word != 0:
            bit = _trailing_zeros(word)
            spikes[n_spikes] = lo + np.int64(w * np.uint64(8) + (bit >> np.uint64(3)))
            n_spikes += 1
            word &= ~(np.uint64(0xFF) << (bit & np.uint64(56)))   # clear that byte
    for j in range(np.uint64(8 * n_words), np.uint64(n)):
        if fired[j]:
            spikes[n_spikes] = lo + np.int64(j)
            n_spikes += 1
    return n_spikes


@njit(cache=True, nogil=True)
def first_nonfinite(row, lo, n):
    """-1 - (lo + j) for the first non-finite row[j], or 0."""
    for j in range(n):
        if not abs(row[j]) < np.inf:
            return -1 - (lo + j)
    return 0
