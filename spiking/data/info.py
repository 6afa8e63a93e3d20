"""``spiking data info``: what an N-MNIST folder holds and what is wrong with it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import numpy as np
from tqdm import tqdm

from spiking.data.events import PathLike
from spiking.data.nmnist import _Archives, list_recordings, read_recording
from spiking.errors import DataError

SHORT_RECORDING_US = 250_000  # real N-MNIST recordings last about 300-336 ms
THIRDS_US = (0, 100_000, 200_000)


@dataclass
class SplitStatistics:
    """Per-split counts and event statistics of the readable recordings."""

    counts_per_digit: np.ndarray
    events_per_sample: np.ndarray
    on_fraction: np.ndarray
    duration_us: np.ndarray
    share_per_third: np.ndarray  # fraction of events in 0-100, 100-200, >= 200 ms


@dataclass
class DataInfo:
    root: Path
    splits: Dict[str, SplitStatistics] = field(default_factory=dict)
    problems: List[str] = field(default_factory=list)   # files that cannot be used
    warnings: List[str] = field(default_factory=list)   # usable but unusual

    def format(self) -> str:
        lines = [f"N-MNIST data in {self.root}"]
        marker = self.root / "SYNTHETIC.txt"
        if marker.exists():
            lines.append("  SYNTHETIC data: " + marker.read_text().splitlines()[0])
        for split, stats in self.splits.items():
            n = stats.events_per_sample
            lines.append(f"  {split}: {int(stats.counts_per_digit.sum())} recordings; "
                         f"per digit 0-9: "
                         + " ".join(str(int(c)) for c in stats.counts_per_digit))
            if n.size:
                lines.append(f"    events per sample: min {n.min()}, median {int(np.median(n))}, "
                             f"max {n.max()}; ON fraction {stats.on_fraction.mean():.3f}")
                lines.append(f"    duration: min {stats.duration_us.min() / 1000:.0f} ms, "
                             f"median {np.median(stats.duration_us) / 1000:.0f} ms, "
                             f"max {stats.duration_us.max() / 1000:.0f} ms; events in "
                             f"0-100/100-200/200+ ms: "
                             + "/".join(f"{100 * s:.0f}%" for s in stats.share_per_third))
        for title, items in (("problems", self.problems), ("warnings", self.warnings)):
            if items:
                lines.append(f"  {len(items)} {title}:")
                lines.extend(f"    {item}" for item in items[:50])
                if len(items) > 50:
                    lines.append(f"    ... and {len(items) - 50} more")
        if not self.problems:
            lines.append("  no problems found")
        return "\n".join(lines)


def inspect_dataset(root: PathLike, progress: bool = True) -> DataInfo:
    """Read every recording under ``root``; collect counts, statistics and problems (bad
    files and layout errors never raise here, they are listed)."""
    info = DataInfo(Path(root))
    try:
        by_split, info.problems = list_recordings(root, skip_bad=True)
    except DataError as error:
        info.problems.append(str(error))
        return info
    archives = _Archives()
    for split, recordings in by_split.items():
        counts = np.zeros(10, dtype=np.int64)
        sizes, on, durations, thirds = [], [], [], []
        for recording in tqdm(recordings, desc=f"reading {split}", unit="file",
                              disable=not progress, leave=False):
            try:
                events = read_recording(recording, archives)
            except DataError as error:
                info.problems.append(str(error))
                continue
            counts[recording.label] += 1
            sizes.append(events.size)
            on.append(events["p"].mean())
            durations.append(int(events["t"][-1]))  # recordings start at t = 0
            thirds.append(np.bincount(np.searchsorted(THIRDS_US, events["t"], side="right") - 1,
                                      minlength=3) / events.size)
            if durations[-1] < SHORT_RECORDING_US:
                info.warnings.append(f"{recording.location}: lasts only "
                                     f"{durations[-1] / 1000:.0f} ms "
                                     f"(truncated recording?)")
        info.splits[split] = SplitStatistics(
            counts, np.array(sizes, dtype=np.int64), np.array(on), np.array(durations),
            np.mean(thirds, axis=0) if thirds else np.zeros(3))
    return info
