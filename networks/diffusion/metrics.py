"""Offline quality metrics for generated MNIST digits, and sample grids.

A small CNN is trained once on the MNIST training images and cached (in
``$SPIKING_CACHE`` or ``~/.cache/spiking``) together with the statistics of its
penultimate (128-d) features on the 10,000 real test images. For a set of
generated digits it reports:

- ``fid``: Frechet distance between the feature Gaussians of the samples and of
  the real test images (an "MNIST FID"; not comparable with Inception FIDs);
- ``confident_fraction``: fraction of samples whose top class probability > 0.9;
- ``class_entropy``: entropy (nats) of the histogram of predicted classes
  (ln 10 = 2.303 for perfectly balanced classes).
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Dict, Optional

import matplotlib.image
import numpy as np
import scipy.linalg
import torch
from torch import nn
from tqdm.auto import tqdm

from spiking.errors import SpikingError

from .checkpoint import atomic_save, atomic_write
from .data import DataRoot, data_root, mnist_test, mnist_train

CLASSIFIER_VERSION = "mnist-cnn-v1"
CLASSIFIER_LEARNING_RATES = (1e-3, 1e-3, 2e-4)  # Adam, one per epoch
MIN_TEST_ACCURACY = 0.985
CONFIDENCE = 0.9
PIXEL_MEAN, PIXEL_STD = 0.1307, 0.3081  # MNIST pixel statistics in [0, 1]


def cache_dir() -> Path:
    return Path(os.environ.get("SPIKING_CACHE") or Path.home() / ".cache" / "spiking")


class DigitClassifier(nn.Module):
    """Two conv layers and a 128-unit hidden layer; inputs [N, 1, 28, 28] in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU())
        self.head = nn.Linear(128, 10)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body((images - PIXEL_MEAN) / PIXEL_STD)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def _pixels_to_unit(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32) / 255.0)[:, None]


@torch.no_grad()
def _features_and_probabilities(classifier: DigitClassifier, images: torch.Tensor, batch: int = 1000):
    features, probabilities = [], []
    for start in range(0, len(images), batch):
        hidden = classifier.features(images[start:start + batch])
        features.append(hidden)
        probabilities.append(torch.softmax(classifier.head(hidden), dim=1))
    return torch.cat(features).double().numpy(), torch.cat(probabilities).numpy()


def _gaussian(features: np.ndarray) -> tuple:
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))."""
    with warnings.catch_warnings():  # singular products (dead ReLU features) are handled below
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(root).all():  # regularise as in the reference FID code
            offset = np.eye(len(sigma1)) * 1e-6
            root = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1 + sigma2 - 2.0 * root.real))


class DigitMetric:
    """The cached classifier plus the real test-set feature statistics."""

    def __init__(self, classifier: DigitClassifier, real_mu: np.ndarray, real_sigma: np.ndarray,
                 test_accuracy: float):
        self.classifier = classifier.eval()
        self.real_mu, self.real_sigma = real_mu, real_sigma
        self.test_accuracy = test_accuracy

    def __call__(self, images: torch.Tensor) -> Dict[str, object]:
        """Quality of digits [N, 1, 28, 28] in [0, 1] (N >= 2)."""
        features, probabilities = _features_and_probabilities(self.classifier, images.float().cpu())
        mu, sigma = _gaussian(features)
        counts = np.bincount(probabilities.argmax(axis=1), minlength=10)
        shares = counts / counts.sum()
        entropy = float(-(shares[shares > 0] * np.log(shares[shares > 0])).sum())
        return {
            "n": int(len(images)),
            "fid": frechet_distance(mu, sigma, self.real_mu, self.real_sigma),
            "confident_fraction": float((probabilities.max(axis=1) > CONFIDENCE).mean()),
            "class_entropy": entropy,
            "class_counts": counts.tolist(),
        }


def _train_classifier(progress: bool, root: DataRoot) -> DigitClassifier:
    pixels, labels = mnist_train(root)
    images, targets = _pixels_to_unit(pixels), torch.from_numpy(labels.astype(np.int64))
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    classifier = DigitClassifier()
    optimizer = torch.optim.Adam(classifier.parameters())
    batch = 128
    for epoch, learning_rate in enumerate(CLASSIFIER_LEARNING_RATES):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
        order = torch.randperm(len(images), generator=generator)
        for start in tqdm(range(0, len(images), batch), desc=f"metric classifier epoch {epoch + 1}",
                          leave=False, disable=not progress):
            index = order[start:start + batch]
            loss = nn.functional.cross_entropy(classifier(images[index]), targets[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return classifier.eval()


def load_metric(progress: bool = True, root: DataRoot = None, cache: Optional[Path] = None) -> DigitMetric:
    """The metric classifier: from the cache, or trained (a few minutes on a CPU) and cached."""
    folder = data_root(root) / "mnist"
    key = "-".join(str((folder / name).stat().st_size) for name in
                   ("mnist_train_approx.npz", "t10k-images-idx3-ubyte.gz"))
    path = (cache or cache_dir()) / f"{CLASSIFIER_VERSION}-{key}.pt"
    if path.exists():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        classifier = DigitClassifier()
        classifier.load_state_dict(stored["state"])
        return DigitMetric(classifier, stored["real_mu"].numpy(), stored["real_sigma"].numpy(),
                           stored["test_accuracy"])
    print(f"training the MNIST metric classifier once (cached in {path})")
    classifier = _train_classifier(progress, root)
    pixels, labels = mnist_test(root)
    features, probabilities = _features_and_probabilities(classifier, _pixels_to_unit(pixels))
    accuracy = float((probabilities.argmax(axis=1) == labels).mean())
    if accuracy < MIN_TEST_ACCURACY:
        raise SpikingError(f"the metric classifier reached only {accuracy:.2%} test accuracy "
                           f"(needs {MIN_TEST_ACCURACY:.1%}); the MNIST files may be damaged")
    real_mu, real_sigma = _gaussian(features)
    atomic_save({"version": CLASSIFIER_VERSION, "state": classifier.state_dict(),
                 "real_mu": torch.from_numpy(real_mu), "real_sigma": torch.from_numpy(real_sigma),
                 "test_accuracy": accuracy}, path)
    return DigitMetric(classifier, real_mu, real_sigma, accuracy)


def save_grid(images: torch.Tensor, path: str | Path, columns: Optional[int] = None) -> Path:
    """Write images [N, 1, H, W] in [0, 1] as one grey PNG grid (2 px gaps)."""
    images = images.detach().float().cpu().clamp(0, 1)[:, 0].numpy()
    count, height, width = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    gap = 2
    grid = np.ones((rows * (height + gap) + gap, columns * (width + gap) + gap), dtype=np.float32) * 0.5
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = gap + row * (height + gap), gap + column * (width + gap)
        grid[top:top + height, left:left + width] = image
    path = Path(path)
    atomic_write(path, lambda temporary: matplotlib.image.imsave(temporary, grid, cmap="gray", vmin=0.0,
                                                                 vmax=1.0, format="png"))
    return path
