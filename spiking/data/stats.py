"""Summary statistics of event recordings, to compare synthetic data with real N-MNIST."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np

from spiking.data.events import SENSOR_HEIGHT, SENSOR_WIDTH


@dataclass
class EventStatistics:
    """events_per_sample and on_fraction: one value per sample. time_profile: mean events
    per sample in bins of ``bin_us``. footprint: mean events per pixel and sample, per digit,
    ``[10, 34, 34]`` (rows = y)."""

    events_per_sample: np.ndarray
    on_fraction: np.ndarray
    time_profile: np.ndarray
    bin_us: int
    footprint: np.ndarray
    labels: np.ndarray

    def burst_shares(self, edges_us: Sequence[int] = (0, 100_000, 200_000)) -> np.ndarray:
        """Fraction of all events after each edge and before the next (last one open)."""
        starts = np.asarray(edges_us) // self.bin_us
        totals = [self.time_profile[a:b].sum() for a, b in zip(starts, [*starts[1:], None])]
        return np.array(totals) / self.time_profile.sum()

    def centroid(self, digit: int) -> np.ndarray:
        """(x, y) centre of the events of one digit, pixels."""
        weights = self.footprint[digit]
        y, x = np.indices(weights.shape)
        return np.array([(x * weights).sum(), (y * weights).sum()]) / weights.sum()


def event_statistics(samples: Sequence[np.ndarray], labels: Sequence[int], bin_us: int = 5000,
                     duration_us: int = 340_000) -> EventStatistics:
    """Statistics of event arrays with their digit labels."""
    labels = np.asarray(labels, dtype=np.int64)
    bins = duration_us // bin_us
    profile = np.zeros(bins)
    footprint = np.zeros((10, SENSOR_HEIGHT, SENSOR_WIDTH))
    for events, label in zip(samples, labels):
        profile += np.bincount(np.minimum(events["t"] // bin_us, bins - 1), minlength=bins)
        np.add.at(footprint[label], (events["y"], events["x"]), 1)
    per_digit = np.bincount(labels, minlength=10).astype(np.float64)
    footprint /= np.maximum(per_digit, 1)[:, None, None]
    return EventStatistics(
        np.array([events.size for events in samples]),
        np.array([events["p"].mean() for events in samples]),
        profile / max(len(samples), 1), bin_us, footprint, labels)


def compare_statistics(real: EventStatistics, synthetic: EventStatistics) -> Dict[str, float]:
    """Figures of agreement between two sets of statistics of the same digits."""
    figures = {
        "median events real": float(np.median(real.events_per_sample)),
        "median events synthetic": float(np.median(synthetic.events_per_sample)),
        "p10 events ratio": float(np.percentile(synthetic.events_per_sample, 10)
                                  / np.percentile(real.events_per_sample, 10)),
        "p90 events ratio": float(np.percentile(synthetic.events_per_sample, 90)
                                  / np.percentile(real.events_per_sample, 90)),
        "ON fraction real": float(real.on_fraction.mean()),
        "ON fraction synthetic": float(synthetic.on_fraction.mean()),
        "time profile correlation": float(np.corrcoef(real.time_profile,
                                                      synthetic.time_profile)[0, 1]),
        "largest burst share difference": float(np.abs(real.burst_shares()
                                                       - synthetic.burst_shares()).max()),
    }
    if real.events_per_sample.size == synthetic.events_per_sample.size:
        figures["per-sample events correlation"] = float(np.corrcoef(
            real.events_per_sample, synthetic.events_per_sample)[0, 1])
    digits = [d for d in range(10) if (real.labels == d).any() and (synthetic.labels == d).any()]
    correlations = [np.corrcoef(real.footprint[d].ravel(), synthetic.footprint[d].ravel())[0, 1]
                    for d in digits]
    shifts = [np.linalg.norm(real.centroid(d) - synthetic.centroid(d)) for d in digits]
    figures["worst digit footprint correlation"] = float(min(correlations))
    figures["mean digit footprint correlation"] = float(np.mean(correlations))
    figures["largest digit centroid shift px"] = float(max(shifts))
    return figures
