"""The resistive-memory zero-shot liquid state machine (Lin et al., 2023,
"Resistive memory-based zero-shot liquid state machine for multimodal event data
learning").

The liquid is a fixed random network whose weights are never trained: each
weight is the conductance difference G+ - G- of a differential pair of RRAM
cells randomised by one stochastic SET/RESET pulse (:meth:`hardware.Crossbar.random`,
the ``switching`` record of the device preset). Only a digital linear readout
on the liquid's spike counts is trained.

Model (defaults follow the paper):

- 200 LIF neurons, membrane decay 0.9 per step, threshold 5, reset to 0,
  no refractory period; spikes move the membrane by the weight (receptor ``v``);
- 50 time steps of ``dt`` = 2 ms, i.e. the first 100 ms of the recording, which
  holds the first saccade (events at about 0-85 ms; N-MNIST's three saccades
  are about 100 ms each). The decay per step 0.9 is ``tau_m = -dt / ln 0.9``
  (19 ms at dt = 2 ms);
- 256 input neurons (``event_source``): the 16x16 centre crop of the ON
  polarity, binary per step;
- input [256, 200] and recurrent [200, 200] (no self-connections) weights from
  two random arrays (w_max ``w_in`` / ``w_rec`` = weight of a full conductance
  window; RRAM SET ~ 0.8 G_max, RESET ~ 0.05 G_max, so a weight is either about
  0 or about +-0.75 w_max).

Two variants of the same liquid (same nominal weights):

- ``ideal``: the nominal weights in software;
- ``rram``: the weights programmed into RRAM arrays per instance (``hardware:``
  on both projections: write-verify programming noise, 16 levels) and every
  spike reading its row with read noise (see :mod:`hardware.integration`).

The network is built in Python (:meth:`RramLiquid.network_tree`) and run
through the core (:class:`spiking.network.Network`), in batches of instances.
Features are spike counts per liquid neuron; the readout is
:func:`networks.readout.train_readout` (logistic by default).
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

INPUT, LIQUID = "inp", "liquid"


@dataclass
class RramLsmConfig:
    n_liquid: int = 200
    decay: float = 0.9           # membrane decay per step
    threshold: float = 5.0
    steps: int = 50
    dt: float = 2.0              # ms per step
    crop: int = 16
    polarity: int = 1
    w_in: float = 4.0            # weight of a full conductance window, input array
    w_rec: float = 1.0           # same, recurrent array
    seed: int = 0                # switching of the random arrays
    program_seed: int = 1        # programming / read noise of the RRAM variant
    hardware: Dict[str, Any] = field(default_factory=lambda: {"device": "rram"})
    batch_size: int = 50
    backend: str = "numba"
    readout: Dict[str, Any] = field(default_factory=lambda: {"type": "logistic"})

    @classmethod
    def from_mapping(cls, data: Optional[dict]) -> "RramLsmConfig":
        data = dict(data or {})
        names = set(cls.__dataclass_fields__)
        unknown = set(data) - names
        if unknown:
            from spiking.errors import ConfigError
            raise ConfigError(f"unknown key(s) {sorted(unknown)}; known: {sorted(names)}",
                              path="rram_lsm")
        return cls(**data)

    @property
    def tau_m(self) -> float:
        return -self.dt / math.log(self.decay)

    @property
    def n_inputs(self) -> int:
        return self.crop * self.crop


def load_config(path, overrides: Optional[dict] = None) -> Tuple[RramLsmConfig, dict]:
    """(liquid config, full YAML mapping) from a file with an ``rram_lsm:`` section."""
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    section = dict(data.get("rram_lsm") or {})
    for k, v in (overrides or {}).items():
        section[k] = v
    return RramLsmConfig.from_mapping(section), data


def random_weights(cfg: RramLsmConfig) -> Tuple[np.ndarray, np.ndarray]:
    """Nominal (input [n_in, n], recurrent [n, n]) weights: conductance differences of two
    arrays randomised by stochastic switching. Self-connections are set to 0."""
    from hardware import Crossbar

    device = {"device": cfg.hardware.get("device", "rram")}
    ss = np.random.SeedSequence(cfg.seed).generate_state(2)
    w_in = Crossbar.random(cfg.n_inputs, cfg.n_liquid, device, w_max=cfg.w_in, seed=int(ss[0]))
    w_rec = Crossbar.random(cfg.n_liquid, cfg.n_liquid, device, w_max=cfg.w_rec, seed=int(ss[1]))
    a = w_in.target_weights.double().cpu().numpy().astype(np.float32)
    b = w_rec.target_weights.double().cpu().numpy().astype(np.float32)
    np.fill_diagonal(b, 0.0)
    return a, b


class RramLiquid:
    """The liquid, ideal or on RRAM (``hardware=None`` gives the ideal variant)."""

    def __init__(self, cfg: RramLsmConfig, weights: Optional[Tuple[np.ndarray, np.ndarray]] = None):
        self.cfg = cfg
        self.weights = weights if weights is not None else random_weights(cfg)

    def network_tree(self, hardware: Optional[dict], seed: int, folder: Path) -> dict:
        cfg = self.cfg
        w_in, w_rec = self.weights
        files = {}
        for name, w in (("in", w_in), ("rec", w_rec)):
            pre, post = np.nonzero(np.ones_like(w, bool) if name == "in"
                                   else ~np.eye(len(w), dtype=bool))
            path = folder / f"{name}.npz"
            np.savez(path, pre=pre.astype(np.int64), post=post.astype(np.int64),
                     weight=w[pre, post].astype(np.float64))
            files[name] = str(path)
        lif = {"tau_m": f"{cfg.tau_m} ms", "v_rest": "0 mV", "v_reset": "0 mV",
               "v_thresh": f"{cfg.threshold} mV", "tau_refrac": "0 ms"}
        projections = {}
        for name, pre in (("in", INPUT), ("rec", LIQUID)):
            p = {"pre": pre, "post": LIQUID, "receptor_type": "v",
                 "connector": {"type": "from_list", "file": files[name]}, "delay": f"{cfg.dt} ms"}
            if hardware is not None:
                p["hardware"] = dict(hardware)
            projections[name] = p
        return {
            "name": "rram_lsm", "dt": f"{cfg.dt} ms", "duration": f"{cfg.steps * cfg.dt} ms",
            "seed": int(seed), "backend": cfg.backend,
            "populations": {
                INPUT: {"size": cfg.n_inputs, "model": "event_source"},
                LIQUID: {"size": cfg.n_liquid, "model": "lif", "params": lif,
                         "initial": {"v": "0 mV"}},
            },
            "projections": projections,
        }

    def network(self, instances: int, hardware: Optional[dict] = None, seed: int = 1):
        """A built :class:`spiking.network.Network` of ``instances`` copies; with ``hardware``,
        every instance is programmed with its own noise (seeded by ``seed``)."""
        from spiking.config.loader import SourceMap, validate
        from spiking.network import Network

        with tempfile.TemporaryDirectory() as tmp:
            tree = self.network_tree(hardware, seed, Path(tmp))
            config = validate(tree, SourceMap(), "rram_lsm")
            net = Network(config, backend=self.cfg.backend, instances=instances, device="cpu")
            net.build()
        return net

    def features(self, x: np.ndarray, hardware: Optional[dict] = None, seed: int = 1) -> np.ndarray:
        """Spike counts [N, n_liquid] for inputs uint8 [T, N, n_inputs] (T >= steps)."""
        cfg = self.cfg
        T, N, _ = x.shape
        B = min(cfg.batch_size, N)
        net = self.network(B, hardware, seed)
        out = np.zeros((N, cfg.n_liquid), np.float32)
        for start in range(0, N, B):
            chunk = x[:cfg.steps, start:start + B]
            n = chunk.shape[1]
            if n < B:
                chunk = np.concatenate([chunk, np.zeros((chunk.shape[0], B - n, chunk.shape[2]),
                                                        np.uint8)], axis=1)
            net.reset()
            res = net.run(cfg.steps * cfg.dt, inputs={INPUT: np.ascontiguousarray(chunk)},
                          progress=False)
            out[start:start + n] = res.counts(LIQUID)[:n]
        return out


def encoder(cfg: RramLsmConfig):
    from spiking.data import EventEncoder

    dt_us = int(round(cfg.dt * 1000))
    return EventEncoder(dt_us=dt_us, window_us=dt_us * cfg.steps, crop=cfg.crop,
                        polarity=cfg.polarity, mode="binary")


def load_nmnist(root, cfg: RramLsmConfig, val_fraction: float = 0.1, seed: int = 0):
    """(train x, y), (val x, y), (test x, y) from an N-MNIST folder, encoded for the liquid."""
    from spiking.data import NMNIST

    enc = encoder(cfg)
    common = dict(encoder=enc, cache=True, progress=False, seed=seed)
    out = []
    for split in ("train", "val", "test"):
        kw = dict(common, val_fraction=val_fraction) if split != "test" else common
        ds = NMNIST(root, split, **kw)
        x, y = ds.batch(np.arange(len(ds)))
        out.append((x, np.asarray(y, np.int64)))
    return tuple(out)


def fit_readout(cfg: RramLsmConfig, train, val):
    from networks.readout import ReadoutSection, train_readout

    return train_readout(ReadoutSection(**cfg.readout), train[0], train[1], val[0], val[1]).readout


@dataclass
class Comparison:
    ideal: float
    rram: float
    rates: Dict[str, float]


def compare(cfg: RramLsmConfig, data, liquid: Optional[RramLiquid] = None) -> Comparison:
    """Test accuracy of the same liquid with ideal weights and on RRAM, each with its own
    readout trained on its own features. ``data``: ((x, y) train, val, test)."""
    liquid = liquid or RramLiquid(cfg)
    acc, rates = {}, {}
    for name, hw in (("ideal", None), ("rram", cfg.hardware)):
        feats = [liquid.features(x, hw, cfg.program_seed) for x, _ in data]
        readout = fit_readout(cfg, (feats[0], data[0][1]), (feats[1], data[1][1]))
        acc[name] = readout.accuracy(feats[2], data[2][1])
        rates[name] = float(feats[0].mean() / (cfg.steps * cfg.dt * 1e-3))
    return Comparison(acc["ideal"], acc["rram"], rates)
