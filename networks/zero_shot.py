"""Zero-shot multimodal learning on two RRAM liquids (Lin et al., 2023).

Two modality encoders, both fixed random liquids (:mod:`networks.rram_lsm`):

- events: N-MNIST recordings through the RRAM liquid of ``event:`` (16x16 crop,
  one polarity, binary steps);
- images: the MNIST digits the recordings were made from, Poisson encoded
  (:func:`spiking.data.rate_encode`, ``max_rate_hz``) through a second liquid
  ``image:`` (28x28 = 784 inputs, its own switching seed).

N-MNIST ``Train/<d>/NNNNN.bin`` records MNIST training image NNNNN (1-based) and
``Test/...`` the test image, which pairs every recording with its image.

Each modality gets a projection head, Linear - GELU - Linear - LayerNorm, on
standardised log(1 + spike counts). The heads are trained with the CLIP
symmetric contrastive loss (cross-entropy of the cosine-similarity matrix
divided by a learned temperature, rows and columns) on the pairs of digits
0-7 only. Scoring, on the unseen digits 8-9 only:

- ``prototype``: an event embedding is labelled with the class whose mean image
  embedding is closest (cosine); chance 50 %;
- ``pair``: an event embedding must be closer to its own image than to a random
  image of the other unseen digit; chance 50 %.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from networks.rram_lsm import RramLiquid, RramLsmConfig


class Head(nn.Module):
    """Linear - GELU - Linear - LayerNorm."""

    def __init__(self, n_in: int, hidden: int, n_out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, n_out),
                                 nn.LayerNorm(n_out))

    def forward(self, x):
        return self.net(x)


@dataclass
class ZeroShotConfig:
    seen: Sequence[int] = tuple(range(8))
    unseen: Sequence[int] = (8, 9)
    hidden: int = 128
    embed: int = 64
    epochs: int = 300
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1      # initial; learned
    max_rate_hz: float = 100.0
    seed: int = 0
    # epochs chosen among these by zero-shot validation: train on the seen digits less
    # ``val_classes``, score retrieval on ``val_classes`` (never on the unseen digits)
    epoch_candidates: Sequence[int] = ()
    val_classes: Sequence[int] = (6, 7)


def _standardise(train: np.ndarray, *others: np.ndarray):
    t = np.log1p(train)
    mu, sd = t.mean(0), t.std(0)
    sd = np.where(sd > 1e-6, sd, 1.0)
    return [((np.log1p(a) - mu) / sd).astype(np.float32) for a in (train,) + others]


def clip_loss(a: torch.Tensor, b: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    a = nn.functional.normalize(a, dim=1)
    b = nn.functional.normalize(b, dim=1)
    logits = a @ b.T * log_scale.exp()
    target = torch.arange(len(a))
    return 0.5 * (nn.functional.cross_entropy(logits, target)
                  + nn.functional.cross_entropy(logits.T, target))


@dataclass
class ZeroShotResult:
    prototype: float
    pair: float
    seen_pair: float
    n_train: int
    n_unseen: int
    history: Dict[str, list] = field(default_factory=dict)


def train_heads(ev: np.ndarray, im: np.ndarray, cfg: ZeroShotConfig):
    """Fit the two heads on paired features (already standardised)."""
    torch.manual_seed(cfg.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        he = Head(ev.shape[1], cfg.hidden, cfg.embed)
        hi = Head(im.shape[1], cfg.hidden, cfg.embed)
        log_scale = nn.Parameter(torch.tensor(float(np.log(1 / cfg.temperature))))
        opt = torch.optim.AdamW(list(he.parameters()) + list(hi.parameters()) + [log_scale],
                                lr=cfg.lr, weight_decay=cfg.weight_decay)
        xe, xi = torch.from_numpy(ev), torch.from_numpy(im)
        gen = torch.Generator().manual_seed(cfg.seed)
        losses = []
        for _ in range(cfg.epochs):
            perm = torch.randperm(len(xe), generator=gen)
            total = 0.0
            for k in range(0, len(xe), cfg.batch_size):
                idx = perm[k:k + cfg.batch_size]
                if len(idx) < 2:
                    continue
                loss = clip_loss(he(xe[idx]), hi(xi[idx]), log_scale)
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    log_scale.clamp_(0, np.log(100))
                total += float(loss.detach()) * len(idx)
            losses.append(total / len(xe))
        he.eval()
        hi.eval()
        return he, hi, {"loss": losses}
    finally:
        torch.set_num_threads(threads)


def _embed(head, x):
    with torch.no_grad():
        return nn.functional.normalize(head(torch.from_numpy(x)), dim=1).numpy()


def score(ze: np.ndarray, zi: np.ndarray, y: np.ndarray, classes: Sequence[int],
          seed: int = 0) -> Tuple[float, float]:
    """(prototype accuracy, pair accuracy) for paired embeddings of ``classes``."""
    classes = list(classes)
    protos = np.stack([zi[y == c].mean(0) for c in classes])
    pred = np.asarray(classes)[(ze @ protos.T).argmax(1)]
    prototype = float((pred == y).mean())
    rng = np.random.default_rng(seed)
    wins = []
    for i in range(len(y)):
        others = np.flatnonzero(y != y[i])
        j = rng.choice(others)
        wins.append(ze[i] @ zi[i] > ze[i] @ zi[j])
    return prototype, float(np.mean(wins))


def zero_shot(ev_feats: np.ndarray, im_feats: np.ndarray, labels: np.ndarray,
              cfg: ZeroShotConfig) -> ZeroShotResult:
    """Train on pairs of ``cfg.seen`` digits, score retrieval on ``cfg.unseen``."""
    labels = np.asarray(labels)
    if cfg.epoch_candidates:
        cfg = replace(cfg, epochs=select_epochs(ev_feats, im_feats, labels, cfg))
    seen = np.isin(labels, cfg.seen)
    unseen = np.isin(labels, cfg.unseen)
    ev_tr, ev_un = _standardise(ev_feats[seen], ev_feats[unseen])
    im_tr, im_un = _standardise(im_feats[seen], im_feats[unseen])
    he, hi, history = train_heads(ev_tr, im_tr, cfg)
    proto, pair = score(_embed(he, ev_un), _embed(hi, im_un), labels[unseen], cfg.unseen, cfg.seed)
    _, seen_pair = score(_embed(he, ev_tr), _embed(hi, im_tr), labels[seen], cfg.seen, cfg.seed)
    history["epochs"] = cfg.epochs
    return ZeroShotResult(proto, pair, seen_pair, int(seen.sum()), int(unseen.sum()), history)


def select_epochs(ev_feats, im_feats, labels, cfg: ZeroShotConfig) -> int:
    """The candidate epoch count with the best mean (prototype, pair) retrieval on
    ``cfg.val_classes`` when trained on the other seen digits."""
    train_classes = tuple(c for c in cfg.seen if c not in cfg.val_classes)
    best = None
    for epochs in cfg.epoch_candidates:
        sub = replace(cfg, seen=train_classes, unseen=tuple(cfg.val_classes), epochs=int(epochs),
                      epoch_candidates=())
        r = zero_shot(ev_feats, im_feats, labels, sub)
        value = 0.5 * (r.prototype + r.pair)
        if best is None or value > best[0]:
            best = (value, int(epochs))
    return best[1]


# ----------------------------------------------------------------------------- data
def paired_data(root, event_cfg: RramLsmConfig, mnist_root, max_rate_hz: float = 100.0,
                seed: int = 0):
    """(event inputs [T, N, 256], image inputs [T, N, 784], labels [N]) for every N-MNIST
    recording at ``root`` (Train and Test) paired with its MNIST image."""
    from spiking.data import NMNIST, load_images, rate_encode

    from networks.rram_lsm import encoder

    mnist_root = Path(mnist_root)
    train_images = load_images(mnist_root / "mnist_train_approx.npz")
    test_images = load_images(mnist_root / "t10k-images-idx3-ubyte.gz")
    xs, imgs, ys = [], [], []
    for split, source in (("train", train_images), ("test", test_images)):
        ds = NMNIST(root, split, encoder=encoder(event_cfg), cache=True, progress=False,
                    **({"val_fraction": 0.0} if split == "train" else {}))
        x, y = ds.batch(np.arange(len(ds)))
        index = np.array([int(Path(r.name).stem) - 1 for r in ds.recordings])
        images = np.asarray(source.images if hasattr(source, "images") else source[0])[index]
        xs.append(x)
        imgs.append(images)
        ys.append(np.asarray(y, np.int64))
    images = np.concatenate(imgs)
    dt_us = int(round(event_cfg.dt * 1000))
    im_x = rate_encode(images, dt_us=dt_us, duration_us=dt_us * event_cfg.steps,
                       max_rate_hz=max_rate_hz, rng=np.random.default_rng(seed))
    return np.concatenate(xs, axis=1), im_x, np.concatenate(ys)


def image_config(event_cfg: RramLsmConfig, **kw) -> RramLsmConfig:
    """The image liquid: like the event liquid, 784 inputs, its own switching seed."""
    base = dict(event_cfg.__dict__)
    base.update(crop=28, seed=event_cfg.seed + 101, w_in=event_cfg.w_in / 2)
    base.update(kw)
    return RramLsmConfig(**base)


def run_zero_shot(root, mnist_root, event_cfg: RramLsmConfig, image_cfg: RramLsmConfig,
                  zcfg: ZeroShotConfig) -> ZeroShotResult:
    x_ev, x_im, y = paired_data(root, event_cfg, mnist_root, zcfg.max_rate_hz, zcfg.seed)
    f_ev = RramLiquid(event_cfg).features(x_ev, event_cfg.hardware, event_cfg.program_seed)
    f_im = RramLiquid(image_cfg).features(x_im, image_cfg.hardware, image_cfg.program_seed)
    return zero_shot(f_ev, f_im, y, zcfg)


def load_zero_shot_config(path) -> Tuple[RramLsmConfig, RramLsmConfig, ZeroShotConfig]:
    """(event liquid, image liquid, heads) from a file like configs/rram_zero_shot.yaml."""
    import yaml

    from networks.rram_lsm import load_config

    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    event_cfg, _ = load_config(path.parent / data.get("base_event", "rram_lsm_nmnist.yaml"))
    image_cfg = image_config(event_cfg, **(data.get("image") or {}))
    z = dict(data.get("zero_shot") or {})
    for k in ("seen", "unseen", "epoch_candidates", "val_classes"):
        if k in z:
            z[k] = tuple(z[k])
    return event_cfg, image_cfg, ZeroShotConfig(**z)


def mnist_folder(config_path, data: Dict, nmnist: Path) -> Path:
    """The MNIST images the recordings were made from: ``mnist:`` in the file (relative to
    it), else ``mnist/`` beside the N-MNIST folder, else ``$SPIKING_DATA/mnist``."""
    import os

    from spiking.errors import DataError

    candidates = []
    if data.get("mnist"):
        candidates.append(Path(config_path).parent / data["mnist"])
    candidates.append(Path(nmnist).parent / "mnist")
    if os.environ.get("SPIKING_DATA"):
        candidates.append(Path(os.environ["SPIKING_DATA"]) / "mnist")
    for folder in candidates:
        if (folder / "t10k-images-idx3-ubyte.gz").exists():
            return folder
    raise DataError("no MNIST images for the zero-shot pairs (looked in "
                    f"{', '.join(map(str, candidates))}); set mnist: in the file")


def train_command(args) -> int:
    """``spiking train configs/rram_zero_shot.yaml --out DIR [--data NMNIST]``: features of
    both liquids, heads, retrieval on the unseen digits; writes DIR/metrics.json."""
    import time

    import yaml

    from spiking.data import discover
    from spiking.errors import DataError
    from spiking.results import atomic_write_json

    began = time.perf_counter()
    choice = discover(getattr(args, "data", None), progress=False)
    if choice.synthetic:
        raise DataError("the zero-shot LSM pairs N-MNIST recordings with their MNIST images: "
                        "it needs real N-MNIST (--data or SPIKING_DATA)")
    print(choice.message)
    data = yaml.safe_load(Path(args.config).read_text()) or {}
    mnist = mnist_folder(args.config, data, choice.path)
    ev, im, z = load_zero_shot_config(args.config)
    r = run_zero_shot(choice.path, mnist, ev, im, z)
    print(_summary(r, z))
    metrics = {"kind": "rram_zero_shot", "config": str(args.config), "data": str(choice.path),
               "mnist": str(mnist), "prototype": r.prototype, "pair": r.pair,
               "seen_pair": r.seen_pair, "n_train_pairs": r.n_train, "n_unseen_pairs": r.n_unseen,
               "seen": list(z.seen), "unseen": list(z.unseen), "epochs": r.history["epochs"],
               "chance": 0.5, "time_s": time.perf_counter() - began}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    atomic_write_json(str(Path(args.out) / "metrics.json"), metrics)
    print(f"results: {args.out}/metrics.json")
    return 0


def _summary(r: ZeroShotResult, z: ZeroShotConfig) -> str:
    return (f"trained on {r.n_train} pairs of digits {list(z.seen)}; unseen {list(z.unseen)}: "
            f"{r.n_unseen} pairs\nunseen retrieval: prototype {100 * r.prototype:.1f}%  "
            f"pair {100 * r.pair:.1f}% (chance 50%); seen-pair {100 * r.seen_pair:.1f}%")


def main(argv=None) -> int:
    """``python -m networks.zero_shot [CONFIG] [--data NMNIST] [--mnist MNIST]``."""
    import argparse

    root = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", nargs="?", default=str(root / "configs" / "rram_zero_shot.yaml"))
    ap.add_argument("--data", default="/work/shared/data/nmnist-small")
    ap.add_argument("--mnist", default="/work/shared/data/mnist")
    args = ap.parse_args(argv)
    ev, im, z = load_zero_shot_config(args.config)
    r = run_zero_shot(args.data, args.mnist, ev, im, z)
    print(_summary(r, z))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
