"""Spike sources: populations whose spikes come from outside the network.

- ``poisson_source`` (PyNN SpikeSourcePoisson): each step a source emits a
  Poisson-distributed number of spikes with mean rate·dt (so one source can
  stand for many independent inputs, as Brian2's PoissonInput does). The counts
  come from the counter-based generator in :mod:`spiking.rng`, identical on
  every backend.
- ``spike_source_array`` (PyNN SpikeSourceArray): given spike times, rounded to
  the step grid.
- ``event_source``: counts per step supplied at run time (an N-MNIST sample,
  for instance) as an array [T, B, n] or [T, n].
"""
from __future__ import annotations

import numpy as np

from spiking.models.base import ModelInfo, Param, register_model

POISSON_ID, ARRAY_ID, EVENT_ID = 10, 11, 12
# Rows of the float64 source table used by the kernels.
LAM, EXP_MINUS_LAM, START_STEP, STOP_STEP = range(4)
N_SOURCE_COEF = 4


def poisson_table(params: dict, dt: float) -> np.ndarray:
    """float64 [N_SOURCE_COEF, n]: mean count per step, exp(-mean), active step range."""
    rate = np.asarray(params["rate"], dtype=np.float64)
    lam = rate * dt / 1000.0
    start = np.ceil(np.asarray(params["start"], dtype=np.float64) / dt - 1e-9)
    stop = np.asarray(params["stop"], dtype=np.float64)
    stop = np.where(np.isfinite(stop), np.ceil(stop / dt - 1e-9), np.iinfo(np.int64).max / 2)
    return np.stack([lam, np.exp(-lam), start, stop]).astype(np.float64)


POISSON = register_model(ModelInfo(
    name="poisson_source", kind="source", doc=__doc__, model_id=POISSON_ID,
    params={
        "rate": Param("rate", None, "mean rate (Hz)", low=0.0),
        "start": Param("time", 0.0, "first time it may spike (ms)", low=0.0),
        "stop": Param("time", float("inf"), "time from which it is silent (ms)", low=0.0),
    },
))
SPIKE_ARRAY = register_model(ModelInfo(
    name="spike_source_array", kind="source", doc=__doc__, model_id=ARRAY_ID, params={},
))
EVENTS = register_model(ModelInfo(
    name="event_source", kind="source", doc=__doc__, model_id=EVENT_ID, params={},
))
