"""FORCE baseline: recursive least squares (RLS) readouts on the reservoir.

Sussillo & Abbott (2009) learn a linear readout z = Wᵀ r of the filtered
reservoir activity r with recursive least squares,

    e = Wᵀ r − f                   (a priori error)
    k = P r / (1 + rᵀ P r)
    P ← P − k (P r)ᵀ,   W ← W − k eᵀ,   P(0) = I / alpha,

a global rule: every weight change uses the inverse correlation matrix P of
all features. With forgetting factor 1, P shrinks like 1/n, so the effective
learning rate decays with the number of samples: after a change of the task,
the readout fits the whole history and needs as many new samples as it saw
before to follow. The usual remedy is a reset of P at the change
(``reset_at_switches``), which needs to be told when the change happens.

Here r is the source population's spikes filtered with ``readout.tau_trace``
(the same filtered spikes the three-factor rule's eligibility is made of), plus
a constant feature, sampled every ``every`` steps. Readouts do not feed back
into the reservoir (nor do the three-factor ones), so FORCE learns from the
spikes of the same runs. The samples of one trial are applied in blocks of
``block`` (Woodbury's identity, P ← P − P Rᵀ (I + R P Rᵀ)⁻¹ R P), which gives
the same weights as applying them one at a time; only the outputs inside a
block use the weights from its start.
"""
from __future__ import annotations

import contextlib
import ctypes
from typing import Iterator, List, Optional, Tuple

import numpy as np


def _blas_controls() -> List[Tuple[object, object]]:
    """(set, get) thread-count functions of the OpenBLAS libraries loaded in
    this process (numpy's bundled scipy-openblas or a system one)."""
    found = []
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return found
    names = (("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
             ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
             ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
             ("openblas_set_num_threads", "openblas_get_num_threads"))
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in names:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                found.append((getattr(lib, set_name), getattr(lib, get_name)))
                break
    return found


_CONTROLS: Optional[List[Tuple[object, object]]] = None


@contextlib.contextmanager
def blas_threads(n: Optional[int]) -> Iterator[None]:
    """Run the block with ``n`` OpenBLAS threads (no-op for None or when no
    OpenBLAS is found). FORCE's matrices are small (F ~ 800): on a shared
    machine more threads spin against other processes and run ~10x slower."""
    global _CONTROLS
    if n is None:
        yield
        return
    if _CONTROLS is None:
        _CONTROLS = _blas_controls()
    before = [get() for _, get in _CONTROLS]
    for set_, _ in _CONTROLS:
        set_(int(n))
    try:
        yield
    finally:
        for (set_, _), k in zip(_CONTROLS, before):
            set_(int(k))


class RLSReadout:
    """RLS readouts for B independent instances: W [B, F, n_out], P [B, F, F]."""

    def __init__(self, n_features: int, n_out: int, instances: int, alpha: float = 1.0,
                 every: int = 10, bias: bool = True, reset_at_switches: bool = False,
                 block: int = 40, threads: Optional[int] = 1):
        self.F = n_features + (1 if bias else 0)
        self.bias = bias
        self.n_out = n_out
        self.B = instances
        self.alpha = float(alpha)
        self.every = max(1, int(every))
        self.block = max(1, int(block))
        self.reset_at_switches = reset_at_switches
        self.threads = threads
        self.W = np.zeros((instances, self.F, n_out))
        self.P = np.repeat((np.eye(self.F) / self.alpha)[None], instances, axis=0)
        self.updates = 0
        self.resets = 0
        self._phase = 0   # step within the sampling period, carried across trials

    def reset_p(self) -> None:
        self.P[:] = np.eye(self.F) / self.alpha
        self.resets += 1

    def switch(self) -> None:
        """The task changed (only a readout told of it resets)."""
        if self.reset_at_switches:
            self.reset_p()

    def features(self, x: np.ndarray) -> np.ndarray:
        """[T, B, n] -> [T, B, F] with the constant feature."""
        if not self.bias:
            return x.astype(np.float64)
        return np.concatenate([x, np.ones(x.shape[:2] + (1,), x.dtype)], axis=2).astype(np.float64)

    def output(self, x: np.ndarray) -> np.ndarray:
        return np.einsum("tbf,bfo->tbo", self.features(x), self.W)

    def run(self, x: np.ndarray, target: Optional[np.ndarray], learn: bool = True) -> np.ndarray:
        """Outputs [T, B, n_out] over a stretch of filtered activity x [T, B, n]
        and, with ``learn``, RLS updates toward ``target`` [T, B, n_out] at every
        ``every``-th step, in blocks."""
        with blas_threads(self.threads):
            return self._run(x, target, learn)

    def _run(self, x, target, learn):
        r = self.features(x)
        T = r.shape[0]
        z = np.empty((T, self.B, self.n_out))
        first = (-self._phase) % self.every
        samples = np.arange(first, T, self.every)
        self._phase = (self._phase + T) % self.every
        if not learn or target is None or samples.size == 0:
            z[:] = np.einsum("tbf,bfo->tbo", r, self.W)
            return z.astype(np.float32)
        start = 0
        for lo in range(0, samples.size, self.block):
            idx = samples[lo: lo + self.block]
            end = idx[-1] + 1
            z[start:end] = np.einsum("tbf,bfo->tbo", r[start:end], self.W)
            R = np.transpose(r[idx], (1, 0, 2))                        # [B, m, F]
            E = np.transpose(z[idx] - target[idx], (1, 0, 2))          # [B, m, out]
            PR = self.P @ np.transpose(R, (0, 2, 1))                    # [B, F, m]
            S = np.eye(idx.size)[None] + R @ PR                         # [B, m, m]
            K = np.transpose(np.linalg.solve(S, np.transpose(PR, (0, 2, 1))), (0, 2, 1))   # [B, F, m]
            self.W -= K @ E
            self.P -= K @ np.transpose(PR, (0, 2, 1))
            self.updates += idx.size
            start = end
        if start < T:
            z[start:] = np.einsum("tbf,bfo->tbo", r[start:], self.W)
        self.P += np.transpose(self.P, (0, 2, 1))       # keep it symmetric
        self.P *= 0.5
        return z.astype(np.float32)
