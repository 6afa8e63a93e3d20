"""Compressed sparse rows: the presynaptic layout spike propagation walks."""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _counting_order(keys, n_rows):
    counts = np.zeros(n_rows + 1, dtype=np.int64)
    for k in keys:
        counts[k + 1] += 1
    for r in range(n_rows):
        counts[r + 1] += counts[r]
    indptr = counts.copy()
    order = np.empty(keys.shape[0], dtype=np.int64)
    for s in range(keys.shape[0]):
        k = keys[s]
        order[counts[k]] = s
        counts[k] += 1
    return indptr, order


def csr_order(rows: np.ndarray, n_rows: int):
    """Stable O(nnz) grouping by row.

    Returns ``indptr`` [n_rows + 1] and ``order`` such that ``x[order]`` lists
    the entries of row r at ``indptr[r]:indptr[r + 1]``, in their original order.
    """
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
        raise ValueError("row index out of range")
    return _counting_order(rows, n_rows)
