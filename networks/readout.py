"""Readouts trained on liquid features (spike counts), in torch.

- ``softmax``: a linear softmax layer trained by minibatch gradient descent on
  normalised counts, with Adadelta as in NALSM (Adam as an option).
- ``ridge``: closed-form ridge regression onto one-hot targets (a baseline).
- ``logistic``: multinomial logistic regression, L2-penalised, fitted to
  convergence with L-BFGS (a deterministic baseline).

Model selection (the epoch and weight decay of ``softmax``, the penalty of
``ridge`` and ``logistic``) uses a validation split carved out of Train and
never the test set: for ``ridge`` and ``logistic`` the highest validation accuracy;
for ``softmax`` the lowest validation cross-entropy (``select: loss``, the default) or
the highest validation accuracy, ties broken by the cross-entropy (``select:
accuracy``). On a validation split of ~90 recordings the accuracy moves in steps of
one recording, so the accuracy rule's choice can flip with float rounding (a different
BLAS or optimizer arithmetic): on LSM+STDP liquids it moved the chosen epoch from 196
to 67 and the test accuracy from 83 to 72 %; the cross-entropy is continuous, and the
same change moved it by 0-3 points (benchmarks/README.md). With ``refit``, the chosen
setting is then trained again on train + validation. Everything is seeded, so the same features give the
same readout.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Sequence

import numpy as np
import torch
from numba import njit
from pydantic import Field

from spiking.config.schema import Section

N_CLASSES = 10


class ReadoutSection(Section):
    """The ``readout:`` section of an LSM file."""

    type: Literal["softmax", "ridge", "logistic"] = "softmax"
    optimizer: Literal["adadelta", "adam"] = "adadelta"
    lr: Optional[float] = Field(None, gt=0)          # default: 1.0 (adadelta), 1e-3 (adam)
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(32, ge=1)
    weight_decay: List[float] = [0.0, 1e-4, 1e-3]    # softmax: candidates (L2 on weights)
    penalties: List[float] = [1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]  # ridge alpha / logistic L2 x n
    normalise: Literal["standard", "max", "none"] = "standard"
    select: Literal["loss", "accuracy"] = "loss"   # softmax: epoch and weight decay by
    # validation cross-entropy, or by validation accuracy (ties: lower cross-entropy)
    refit: bool = True
    seed: int = 0
    classes: int = Field(N_CLASSES, ge=2)


@dataclass
class Normaliser:
    """x -> (x - shift) / scale, per feature, fitted on training features."""

    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, mode: str) -> "Normaliser":
        x = np.asarray(x, np.float64)
        n = x.shape[1]
        if mode == "standard":
            std = x.std(0)
            return cls(x.mean(0), np.where(std > 1e-6, std, 1.0))
        if mode == "max":
            top = x.max() if x.size else 1.0
            return cls(np.zeros(n), np.full(n, top if top > 0 else 1.0))
        return cls(np.zeros(n), np.ones(n))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float64) - self.shift) / self.scale).astype(np.float32)


@dataclass
class Readout:
    """A fitted linear readout: label = argmax(normalise(x) @ weight + bias)."""

    kind: str
    normaliser: Normaliser
    weight: np.ndarray   # float32 [features, classes]
    bias: np.ndarray     # float32 [classes]
    setting: Dict[str, float] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.weight.shape[0])

    def scores(self, x: np.ndarray) -> np.ndarray:
        return self.normaliser(x) @ self.weight + self.bias

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.scores(x).argmax(1)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float((self.predict(x) == np.asarray(y)).mean()) if len(y) else float("nan")

    def arrays(self) -> Dict[str, np.ndarray]:
        return {"weight": self.weight, "bias": self.bias, "shift": self.normaliser.shift,
                "scale": self.normaliser.scale}

    @classmethod
    def from_arrays(cls, kind: str, arrays, setting=None) -> "Readout":
        return cls(kind, Normaliser(np.asarray(arrays["shift"]), np.asarray(arrays["scale"])),
                   np.asarray(arrays["weight"], np.float32), np.asarray(arrays["bias"], np.float32),
                   dict(setting or {}))


@dataclass
class Fit:
    """A trained readout with the record of how it was chosen."""

    readout: Readout
    history: Dict[str, list]          # curves for the accuracy plot
    selection: List[Dict[str, float]]  # one entry per candidate setting
    chosen: Dict[str, float]
    validation: float = float("nan")   # validation accuracy of the chosen setting (trained on train only)


def _scores(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
            classes: int, k: Optional[int] = None):
    """(accuracy, mean cross-entropy) on (x, y) of each of the k candidates side by side in
    the first k * classes columns of w [d, >= k * classes] and b (k: all columns); NaN
    without samples."""
    k = b.shape[0] // classes if k is None else k
    if len(y) == 0:
        return [float("nan")] * k, [float("nan")] * k
    with torch.no_grad():
        logits = torch.addmm(b, x, w)[:, :k * classes].reshape(-1, k, classes)
        right = (logits.argmax(2) == y[:, None]).double().mean(0)
        picked = y[:, None, None].expand(-1, k, 1)
        loss = (torch.logsumexp(logits, 2) - logits.gather(2, picked)[:, :, 0]).double().mean(0)
        return right.tolist(), loss.tolist()


def _rank(score: float, loss: float, select: str):
    """What softmax model selection maximises: accuracy, then the lower loss
    (``select: accuracy``), or the lower loss alone (``select: loss``)."""
    return (-loss,) if select == "loss" else (score, -loss)


def _one_hot(y: np.ndarray, classes: int) -> np.ndarray:
    out = np.zeros((len(y), classes))
    out[np.arange(len(y)), y] = 1.0
    return out


class _Adadelta:
    """Adadelta (Zeiler 2012, with torch.optim.Adadelta's update and defaults), one fused
    pass over each parameter (:func:`_adadelta_step`) instead of torch's ten elementwise
    operations and the optimizer's bookkeeping (together half a readout step). torch's
    vectorised sqrt rounds differently from the IEEE sqrt used here, so the weights match
    its optimizer's to float rounding (~1e-7), not bit for bit."""

    def __init__(self, params: Sequence[torch.Tensor], lr: float, rho: float = 0.9,
                 eps: float = 1e-6):
        self.params = [p.detach().numpy().reshape(-1) for p in params]   # views
        self.lr, self.rho, self.eps = np.float32(lr), np.float32(rho), np.float32(eps)
        self.square_avg = [np.zeros_like(p) for p in self.params]
        self.acc_delta = [np.zeros_like(p) for p in self.params]

    def step(self, grads: Sequence[torch.Tensor]) -> None:
        for p, grad, square_avg, acc_delta in zip(self.params, grads, self.square_avg,
                                                  self.acc_delta):
            _adadelta_step(p, grad.numpy().reshape(-1), square_avg, acc_delta, self.lr,
                           self.rho, self.eps)


@njit(cache=True, nogil=True, error_model="numpy")   # no division check: vectorises
def _adadelta_step(param, grad, square_avg, acc_delta, lr, rho, eps):
    """One Adadelta update of flat float32 arrays, in torch's order: E[g²] <- rho E[g²] +
    (1 - rho) g², delta = sqrt(E[dx²] + eps) / sqrt(E[g²] + eps) · g, E[dx²] <- rho E[dx²]
    + (1 - rho) delta², param -= lr · delta."""
    keep = np.float32(1.0) - rho
    for i in range(param.shape[0]):
        g = grad[i]
        s = square_avg[i] * rho + keep * g * g
        square_avg[i] = s
        delta = np.sqrt(acc_delta[i] + eps) / np.sqrt(s + eps) * g
        acc_delta[i] = acc_delta[i] * rho + keep * delta * delta
        param[i] -= lr * delta


class _Adam:
    """torch.optim.Adam behind the same step(grads) as :class:`_Adadelta`."""

    def __init__(self, params: Sequence[torch.Tensor], lr: float):
        self.params = [p.requires_grad_() for p in params]
        self.opt = torch.optim.Adam(self.params, lr=lr)

    def step(self, grads: Sequence[torch.Tensor]) -> None:
        for p, grad in zip(self.params, grads):
            p.grad = grad
        self.opt.step()


def _padded(columns: int) -> int:
    """Columns of the side-by-side weight matrix: padded to a multiple of 16 with columns
    that stay 0 (their gradient is 0). The BLAS products of a training step are faster on
    this width (measured with MKL on one thread: 32 columns instead of 30, 1.5x; 16
    instead of 10, 2.4x); the real columns' values may differ by float rounding."""
    return -(-columns // 16) * 16


def _softmax_train(x, y, xv, yv, cfg: ReadoutSection, wds: Sequence[float], epochs: int, progress,
                   desc, scored: bool = True):
    """Minibatch training of one softmax readout per weight decay in ``wds``, side by side
    in the columns of one weight matrix (the same minibatches; each candidate's loss,
    gradient and optimizer state are its own, so each learns as it would alone). The
    gradient of the mean cross-entropy plus wd * |w|^2 is written out (two matrix
    products per step) rather than taken by autograd. Per candidate: the per-epoch
    accuracies (and validation loss), (score, loss, epoch, w, b) of the best epoch and
    the weights after the last epoch. Epochs are ranked by ``cfg.select`` (:func:`_rank`)
    on validation, on training data without validation. Unless ``scored`` (a refit,
    which keeps the last weights) the epochs are not scored: the curves stay empty and
    the best is the start."""
    generator = torch.Generator().manual_seed(cfg.seed)
    n, d = x.shape
    k, classes = len(wds), cfg.classes
    used = k * classes
    w = torch.zeros(d, _padded(used))   # candidate i: columns i*C..(i+1)*C
    b = torch.zeros(w.shape[1])
    twice_decay = torch.zeros(w.shape[1])
    twice_decay[:used] = 2.0 * torch.tensor(wds, dtype=w.dtype).repeat_interleave(classes)
    if cfg.optimizer == "adadelta":
        opt = _Adadelta([w, b], lr=cfg.lr or 1.0)
    else:
        opt = _Adam([w, b], lr=cfg.lr or 1e-3)
    grad = torch.zeros(min(cfg.batch_size, n), w.shape[1])   # padding columns stay 0
    b_grad = torch.zeros(w.shape[1])

    def columns(i):
        return (w[:, i * classes:(i + 1) * classes].detach().clone(),
                b[i * classes:(i + 1) * classes].detach().clone())

    history = [{"epoch": [], "train": [], "validation": [], "validation_loss": []} for _ in wds]
    best = [(-1.0, float("inf"), 0, *columns(i)) for i in range(k)]
    bar = _bar(epochs, progress, desc)
    every = torch.arange(k)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=generator)
        with torch.no_grad():
            for start in range(0, n, cfg.batch_size):
                idx = order[start:start + cfg.batch_size]
                m = idx.numel()
                xb = x[idx]
                # d(mean cross-entropy)/d(logits) = (softmax - one-hot) / batch
                soft = torch.softmax(torch.addmm(b, xb, w)[:, :used].reshape(-1, k, classes), dim=2)
                soft[torch.arange(m)[:, None], every, y[idx][:, None]] -= 1.0
                g = grad[:m]
                torch.div(soft.view(-1, used), m, out=g[:, :used])
                torch.sum(g[:, :used], 0, out=b_grad[:used])   # (a sum over all columns
                # would add in another order)
                opt.step([torch.addmm(w * twice_decay, xb.T, g), b_grad])
        if bar is not None:
            bar.update(1)
        if not scored:
            continue
        acc_t, loss_t = _scores(w, b, x, y, classes, k)
        acc_v, loss_v = _scores(w, b, xv, yv, classes, k)
        for i in range(k):
            history[i]["epoch"].append(epoch)
            history[i]["train"].append(acc_t[i])
            history[i]["validation"].append(acc_v[i])
            history[i]["validation_loss"].append(loss_v[i])
            value, loss = (acc_v[i], loss_v[i]) if len(yv) else (acc_t[i], loss_t[i])
            if _rank(value, loss, cfg.select) > _rank(*best[i][:2], cfg.select):
                best[i] = (value, loss, epoch, *columns(i))
        if bar is not None:
            bar.set_postfix(train=f"{max(acc_t):.3f}", val=f"{max(acc_v):.3f}")
    if bar is not None:
        bar.close()
    return history, best, [columns(i) for i in range(k)]


def _bar(total, progress, desc):
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="epoch", leave=False, dynamic_ncols=True)


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float, classes: int):
    """Closed form on centred data: W = (X'X + alpha I)^-1 X'T, b = mean(T) - mean(X) W."""
    x = np.asarray(x, np.float64)
    t = _one_hot(y, classes)
    mx, mt = x.mean(0), t.mean(0)
    xc = x - mx
    gram = xc.T @ xc + alpha * np.eye(x.shape[1])
    w = np.linalg.solve(gram, xc.T @ (t - mt))
    return w.astype(np.float32), (mt - mx @ w).astype(np.float32)


def _logistic(x: np.ndarray, y: np.ndarray, penalty: float, classes: int):
    """Multinomial logistic regression, loss = mean CE + penalty / n * |W|^2, by L-BFGS."""
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y)
    w = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=500, tolerance_grad=1e-9,
                            tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")
    scale = penalty / max(len(y), 1)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + scale * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy().astype(np.float32), b.detach().numpy().astype(np.float32)


def train_readout(cfg: ReadoutSection, x_train: np.ndarray, y_train: np.ndarray,
                  x_val: np.ndarray, y_val: np.ndarray, progress: bool = False) -> Fit:
    """Fit the readout ``cfg`` describes; choose its setting on (x_val, y_val).

    Runs on one torch thread: the matrices are small, and one thread gives the
    same result on any machine (and is much faster on a busy one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_readout(cfg, x_train, y_train, x_val, y_val, progress)
    finally:
        torch.set_num_threads(threads)


def _train_readout(cfg, x_train, y_train, x_val, y_val, progress) -> Fit:
    torch.manual_seed(cfg.seed)
    y_train, y_val = np.asarray(y_train, np.int64), np.asarray(y_val, np.int64)
    if len(y_train) == 0:
        raise ValueError("no training samples")
    norm = Normaliser.fit(x_train, cfg.normalise)
    xt, xv = norm(x_train), norm(x_val) if len(y_val) else np.zeros((0, x_train.shape[1]), np.float32)
    has_val = len(y_val) > 0
    selection: List[Dict[str, float]] = []
    if cfg.type == "softmax":
        tx, ty = torch.from_numpy(xt), torch.from_numpy(y_train)
        vx, vy = torch.from_numpy(xv), torch.from_numpy(y_val)
        best = None
        curves = {}
        candidates = list(cfg.weight_decay if has_val else cfg.weight_decay[:1])
        histories, bests, _ = _softmax_train(tx, ty, vx, vy, cfg, candidates, cfg.epochs, progress,
                                             "readout wd=" + ",".join(f"{wd:g}" for wd in candidates))
        for wd, history, (score, loss, epoch, w, b) in zip(candidates, histories, bests):
            selection.append({"weight_decay": wd, "epoch": epoch,
                              "validation": score if has_val else float("nan"),
                              "validation_loss": loss if has_val else float("nan"),
                              "train": history["train"][epoch - 1]})
            curves[wd] = history
            if best is None or _rank(score, loss, cfg.select) > _rank(*best[:2], cfg.select):
                best = (score, loss, wd, epoch, w, b)
        score, _, wd, epoch, w, b = best
        chosen = {"weight_decay": wd, "epochs": epoch}
        history = dict(curves[wd])
        if cfg.refit and has_val:
            norm = Normaliser.fit(np.concatenate([x_train, x_val]), cfg.normalise)
            ax = torch.from_numpy(norm(np.concatenate([x_train, x_val])))
            ay = torch.from_numpy(np.concatenate([y_train, y_val]))
            empty_x, empty_y = torch.zeros((0, ax.shape[1])), torch.zeros(0, dtype=torch.int64)
            # the chosen number of epochs on train + validation; the weights after the last
            (w, b), = _softmax_train(ax, ay, empty_x, empty_y, cfg, [wd], epoch, progress,
                                     "readout refit", scored=False)[2]
        readout = Readout("softmax", norm, w.numpy().astype(np.float32), b.numpy().astype(np.float32),
                          chosen)
        return Fit(readout, history, selection, chosen, score if has_val else float("nan"))

    fit_one = _ridge if cfg.type == "ridge" else _logistic
    key = "alpha" if cfg.type == "ridge" else "penalty"
    best = None
    history = {key: [], "train": [], "validation": []}
    candidates = cfg.penalties if has_val else cfg.penalties[len(cfg.penalties) // 2:][:1]
    for penalty in candidates:
        w, b = fit_one(xt, y_train, penalty, cfg.classes)
        acc_t = float(((xt @ w + b).argmax(1) == y_train).mean())
        acc_v = float(((xv @ w + b).argmax(1) == y_val).mean()) if has_val else float("nan")
        history[key].append(penalty)
        history["train"].append(acc_t)
        history["validation"].append(acc_v)
        selection.append({key: penalty, "train": acc_t, "validation": acc_v})
        score = acc_v if has_val else acc_t
        if best is None or score > best[0]:
            best = (score, penalty, w, b)
    score, penalty, w, b = best
    if cfg.refit and has_val:
        norm = Normaliser.fit(np.concatenate([x_train, x_val]), cfg.normalise)
        w, b = fit_one(norm(np.concatenate([x_train, x_val])), np.concatenate([y_train, y_val]),
                       penalty, cfg.classes)
    chosen = {key: penalty}
    return Fit(Readout(cfg.type, norm, w, b, chosen), history, selection, chosen,
               score if has_val else float("nan"))


def confusion(y_true: Sequence[int], y_pred: Sequence[int], classes: int = N_CLASSES) -> np.ndarray:
    """[true, predicted] counts."""
    out = np.zeros((classes, classes), np.int64)
    np.add.at(out, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return out
