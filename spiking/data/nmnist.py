"""N-MNIST data sets: the extracted folder layout or the official zip archives.

Layout: ``Train/<digit>/NNNNN.bin`` and ``Test/<digit>/NNNNN.bin``; the digit folder is the
label. The archives ``Train.zip``/``Test.zip`` (or Mendeley's ``train.zip``/``test.zip``) hold
the same tree and are read member by member, without extracting them.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numba
import numpy as np
from tqdm import tqdm

from spiking.data.encode import EventEncoder
from spiking.data.events import EVENT_DTYPE, PathLike, decode_events
from spiking.data.paths import sample_cache_dir
from spiking.errors import DataError

SPLIT_FOLDERS = ("Train", "Test")
SPLITS = ("train", "val", "test")
ARCHIVE_NAMES = {"Train": ("Train.zip", "train.zip"), "Test": ("Test.zip", "test.zip")}
CACHE_FORMAT_VERSION = 1
_DIGIT_FOLDER = re.compile(r"^[0-9]$")


@dataclass(frozen=True)
class Recording:
    """One recording: its split folder, label and where its bytes are.

    ``archive`` is the zip file holding ``member``, or None for a plain file ``member``.
    """

    split: str
    label: int
    name: str
    member: str
    archive: Optional[str] = None

    @property
    def location(self) -> str:
        """Human-readable place, used in error messages."""
        return f"{self.archive}:{self.member}" if self.archive else self.member


class _Archives:
    """Open zip archives, one handle per archive and process (reopened after fork)."""

    def __init__(self):
        self._handles: Dict[str, zipfile.ZipFile] = {}
        self._pid = os.getpid()

    def open(self, path: str) -> zipfile.ZipFile:
        if self._pid != os.getpid():
            self._handles, self._pid = {}, os.getpid()
        if path not in self._handles:
            self._handles[path] = open_zip(path)
        return self._handles[path]

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()


def open_zip(path: PathLike) -> zipfile.ZipFile:
    """Open a zip archive, raising DataError naming it when it is corrupt or incomplete."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise DataError(f"{path}: corrupt zip archive (or incomplete download): {error}") from error


def read_recording_bytes(recording: Recording, archives: Optional[_Archives] = None) -> bytes:
    """The raw bytes of a recording (DataError naming it on failure)."""
    if recording.archive is None:
        try:
            with open(recording.member, "rb") as handle:
                return handle.read()
        except OSError as error:
            reason = error.strerror or error
            raise DataError(f"{recording.member}: cannot read: {reason}") from error
    archive = (archives or _Archives()).open(recording.archive)
    try:
        return archive.read(recording.member)
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, OSError) as error:
        raise DataError(f"{recording.location}: corrupt zip member: {error}") from error


def read_recording(recording: Recording, archives: Optional[_Archives] = None) -> np.ndarray:
    """Decode one recording into an event array."""
    return decode_events(read_recording_bytes(recording, archives), recording.location)


def _layout_error(where: str, split: str) -> str:
    return (f"{where}: wrong folder layout: expected {split}/<digit 0-9>/<name>.bin "
            f"(digit folders are the labels)")


def _split_from_parts(parts: Sequence[str]) -> Tuple[Optional[str], Sequence[str]]:
    """Find a Train/Test component in a member path: (split folder, parts after it)."""
    for position, part in enumerate(parts):
        for split in SPLIT_FOLDERS:
            if part.lower() == split.lower():
                return split, parts[position + 1:]
    return None, parts


def _list_folder(split_dir: Path, split: str, problems: List[str]) -> List[Recording]:
    recordings = []
    for directory, folders, files in os.walk(split_dir):
        folders.sort()
        for name in sorted(files):
            if not name.endswith(".bin"):
                continue
            path = Path(directory) / name
            parts = path.relative_to(split_dir).parts
            if len(parts) != 2 or not _DIGIT_FOLDER.match(parts[0]):
                problems.append(_layout_error(str(path), split))
                continue
            recordings.append(Recording(split, int(parts[0]), name, str(path)))
    return recordings


def _list_archive(archive_path: Path, split_hint: Optional[str],
                  problems: List[str]) -> Dict[str, List[Recording]]:
    archive = open_zip(archive_path)
    found: Dict[str, List[Recording]] = {}
    with archive:
        for member in sorted(archive.namelist()):
            if member.endswith("/") or not member.endswith(".bin") or "__MACOSX" in member:
                continue
            split, rest = _split_from_parts(member.split("/"))
            split = split or split_hint
            if split is None or len(rest) != 2 or not _DIGIT_FOLDER.match(rest[0]):
                problems.append(_layout_error(f"{archive_path}:{member}", split or "Train|Test"))
                continue
            found.setdefault(split, []).append(
                Recording(split, int(rest[0]), rest[1], member, str(archive_path)))
    return found


def _split_named_by(archive: Path) -> Optional[str]:
    """"Train" or "Test" when the archive's name starts with it (any case), else None."""
    return next((split for split in SPLIT_FOLDERS
                 if archive.name.lower().startswith(split.lower())), None)


def find_sources(root: PathLike) -> Dict[str, Path]:
    """Where each split folder ("Train", "Test") is under ``root``: an extracted folder
    (preferred) or a zip archive. ``root`` may also be a zip archive itself."""
    root = Path(root)
    if root.is_file():
        return {"archive": root}
    sources: Dict[str, Path] = {}
    for split in SPLIT_FOLDERS:
        for candidate in (root / split, root / split.lower()):
            if candidate.is_dir():
                sources[split] = candidate
                break
        else:
            for name in ARCHIVE_NAMES[split]:
                if (root / name).is_file():
                    sources[split] = root / name
                    break
    return sources


def list_recordings(root: PathLike, skip_bad: bool = False
                    ) -> Tuple[Dict[str, List[Recording]], List[str]]:
    """List the recordings under ``root`` by split folder, with the layout problems found.

    Raises DataError for a wrong layout unless ``skip_bad`` (then the problems are returned
    and the offending files are left out).
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    sources = find_sources(root)
    if not sources:
        raise DataError(f"{root}: wrong folder layout: no Train/ or Test/ folder and no "
                        f"Train.zip or Test.zip archive")
    problems: List[str] = []
    by_split: Dict[str, List[Recording]] = {}
    for split, source in sources.items():
        if source.is_file():
            hint = split if split in SPLIT_FOLDERS else _split_named_by(source)
            for found_split, recordings in _list_archive(source, hint, problems).items():
                by_split.setdefault(found_split, []).extend(recordings)
        else:
            by_split[split] = _list_folder(source, split, problems)
    for split in list(by_split):
        if not by_split[split]:
            problems.append(f"{sources.get(split, root)}: no recordings ({split}/<digit>/*.bin)")
            del by_split[split]
    if not by_split and not problems:
        problems.append(f"{root}: no recordings found")
    if problems and not skip_bad:
        raise DataError(problems[0] + (f" (and {len(problems) - 1} more problems)"
                                       if len(problems) > 1 else ""))
    return by_split, problems


def split_train_validation(labels: np.ndarray, val_fraction: float,
                           seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Stratified split of Train indices: (train indices, validation indices), both sorted.

    Each class gives ``round(val_fraction * its size)`` samples to validation, chosen by a
    generator seeded with ``seed``.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), not {val_fraction}")
    rng = np.random.default_rng(seed)
    validation = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        validation.append(rng.permutation(members)[:int(round(val_fraction * members.size))])
    validation = np.sort(np.concatenate(validation)) if validation else np.zeros(0, int)
    train = np.setdiff1d(np.arange(labels.size), validation)
    return train, validation


def _stable_repr(thing) -> str:
    text = repr(thing)
    if " at 0x" in text:
        raise ValueError(f"caching needs transforms with a stable repr (e.g. dataclasses), "
                         f"not {text}")
    return text


class NMNIST:
    """An N-MNIST split as a sequence of ``(sample, label)``.

    root: folder with ``Train/`` and ``Test/`` (or ``Train.zip``/``Test.zip``), or one archive.
    split: "train", "val" (carved out of Train with ``val_fraction`` and ``seed``; never from
    Test) or "test". With ``val_fraction=0``, "train" is all of Train.
    transform: called on the event array (tonic style). encoder: turns events into the
    simulator's ``uint8 [T, n_inputs]``. Samples are events when there is no encoder.
    cache: False, True (``sample_cache_dir()``) or a folder: keeps the processed split
    in one packed, memory-mapped file, built on first use, so later epochs skip reading,
    decoding and encoding.
    skip_bad: leave out bad files instead of raising; they are listed in ``problems``
    and ``summary()``. Checking needs one pass over the split, done when the object is made.
    """

    def __init__(self, root: PathLike, split: str = "train", *, val_fraction: float = 0.1,
                 seed: int = 0, transform: Optional[Callable] = None,
                 encoder: Optional[EventEncoder] = None,
                 cache: Union[bool, PathLike] = False, skip_bad: bool = False,
                 progress: bool = True):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.encoder = encoder
        self.skip_bad = skip_bad
        self.progress = progress
        self._archives = _Archives()
        by_split, self.problems = list_recordings(self.root, skip_bad)
        folder = "Test" if split == "test" else "Train"
        if folder not in by_split:
            raise DataError(f"{self.root}: no {folder} recordings (needed for split {split!r})")
        recordings = by_split[folder]
        if split != "test":
            labels = np.array([r.label for r in recordings])
            if split == "val" and val_fraction <= 0:
                raise ValueError("split='val' needs val_fraction > 0")
            train, validation = split_train_validation(labels, val_fraction, seed)
            recordings = [recordings[i] for i in (validation if split == "val" else train)]
        self.recordings: List[Recording] = recordings
        self._packed: Optional[_PackedSamples] = None
        if cache:
            folder = sample_cache_dir() if cache is True else Path(cache)
            self._packed = _PackedSamples.load_or_build(self, folder)
            self.recordings = self._packed.recordings
            self.problems = self.problems + self._packed.problems
        elif skip_bad:
            self._drop_bad_recordings()
        self.labels = np.array([r.label for r in self.recordings], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.recordings)

    def __getitem__(self, index: int):
        if self._packed is not None:
            return self._packed.sample(index), int(self.labels[index])
        return self.process(read_recording(self.recordings[index], self._archives)), \
            int(self.labels[index])

    def __iter__(self) -> Iterator:
        for index in range(len(self)):
            yield self[index]

    def events(self, index: int) -> np.ndarray:
        """The raw events of one recording (no transform, no encoding)."""
        return read_recording(self.recordings[index], self._archives)

    def process(self, events: np.ndarray):
        """Apply the transform, then the encoder."""
        if self.transform is not None:
            events = self.transform(events)
        return self.encoder(events) if self.encoder is not None else events

    def batch(self, indices: Sequence[int], sparse: bool = False) -> Tuple[object, np.ndarray]:
        """Encoded samples ``uint8 [T, B, n_inputs]`` and labels ``[B]`` (needs an encoder);
        with ``sparse``, the samples as :class:`spiking.inputs.SpikeCounts` of that shape
        (only their nonzero cells: what a run reads fastest)."""
        if self.encoder is None:
            raise ValueError("batch() needs an encoder")
        labels = self.labels[np.asarray(indices, dtype=np.int64)]
        encoder = self.encoder
        if sparse:
            return _spike_counts([self.cells(i) for i in indices], encoder), labels
        out = np.zeros((encoder.steps, len(indices), encoder.n_inputs), dtype=np.uint8)
        for column, index in enumerate(indices):
            _scatter_counts(out[:, column, :], *self.cells(index))
        return out, labels

    def cells(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """One encoded sample's nonzero cells: ``flat = step * n_inputs + input``
        (ascending) and their counts (uint8). Needs an encoder."""
        if self.encoder is None:
            raise ValueError("cells() needs an encoder")
        if self._packed is not None:
            return self._packed.cells(index)
        grid = self.process(self.events(index)).reshape(-1)
        flat = np.flatnonzero(grid)
        return flat, grid[flat]

    def iter_batches(self, batch_size: int, shuffle: bool = False,
                     seed: int = 0) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """Yield ``(uint8 [T, B, n_inputs], labels [B])``; the last batch may be smaller."""
        order = np.random.default_rng(seed).permutation(len(self)) if shuffle \
            else np.arange(len(self))
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start:start + batch_size])

    def summary(self) -> str:
        """One line: how many samples, and how many bad files were skipped."""
        counts = np.bincount(self.labels, minlength=10)
        text = (f"N-MNIST {self.split} from {self.root}: {len(self)} samples "
                f"(per digit: {' '.join(map(str, counts))})")
        if self.problems:
            text += f"; skipped {len(self.problems)} bad files"
        return text

    def _drop_bad_recordings(self) -> None:
        kept = []
        for recording in tqdm(self.recordings, desc="checking N-MNIST files", unit="file",
                              disable=not self.progress, leave=False):
            try:
                read_recording(recording, self._archives)
            except DataError as error:
                self.problems.append(str(error))
            else:
                kept.append(recording)
        self.recordings = kept


class Copies:
    """Samples ``index`` of each of ``datasets`` (the same split under different
    transforms, e.g. :func:`spiking.data.transforms.translations`), one dataset after
    the other: position ``k * len(index) + i`` is sample ``index[i]`` of ``datasets[k]``.
    Has the ``batch``/``labels`` interface of :class:`NMNIST`."""

    def __init__(self, datasets: Sequence[NMNIST], index: Sequence[int]):
        self.datasets = list(datasets)
        self.index = np.asarray(index, np.int64)
        self.labels = np.concatenate([np.asarray(d.labels)[self.index] for d in self.datasets]) \
            if self.datasets else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.datasets) * self.index.size

    def batch(self, positions: Sequence[int], sparse: bool = False) -> Tuple[object, np.ndarray]:
        """As :meth:`NMNIST.batch`, by position in the copies."""
        positions = np.asarray(positions, np.int64)
        which, sample = np.divmod(positions, self.index.size)
        if sparse:
            return _spike_counts([self.datasets[k].cells(self.index[i])
                                  for k, i in zip(which, sample)],
                                 self.datasets[0].encoder), self.labels[positions]
        parts = {k: self.datasets[k].batch(self.index[sample[which == k]])[0]
                 for k in np.unique(which)}
        first = next(iter(parts.values()))
        out = np.empty((first.shape[0], positions.size, first.shape[2]), first.dtype)
        for k, x in parts.items():
            out[:, which == k] = x
        return out, self.labels[positions]


def _spike_counts(samples, encoder) -> "SpikeCounts":
    """A sparse batch: one instance per sample's ``(flat, count)`` cells (NMNIST.cells)."""
    from spiking.inputs import SpikeCounts
    return SpikeCounts.from_samples(samples, encoder.steps, encoder.n_inputs)


_COMPACT_EVENT = np.dtype([("x", "<u2"), ("y", "<u2"), ("p", "u1"), ("t", "<i8")])


@numba.njit(cache=True)
def _scatter_counts(grid, flat, counts):
    n_inputs = grid.shape[1]
    for i in range(flat.size):
        grid[flat[i] // n_inputs, flat[i] % n_inputs] = counts[i]


class _PackedSamples:
    """A processed split packed into memory-mapped arrays plus offsets.

    Encoded samples are stored sparsely (``flat.npy``: ``step * n_inputs + input``;
    ``counts.npy``); event samples as ``events.npy`` in a compact event dtype.
    """

    def __init__(self, directory: Path, recordings: List[Recording], problems: List[str],
                 encoder: Optional[EventEncoder]):
        self.recordings = recordings
        self.problems = problems
        self.encoder = encoder
        self.offsets = np.load(directory / "offsets.npy")
        if encoder is None:
            self.events = np.load(directory / "events.npy", mmap_mode="r")
        else:
            self.flat = np.load(directory / "flat.npy", mmap_mode="r")
            self.counts = np.load(directory / "counts.npy", mmap_mode="r")

    @staticmethod
    def key(dataset: NMNIST) -> str:
        fingerprint = hashlib.sha256()
        fingerprint.update(json.dumps({
            "version": CACHE_FORMAT_VERSION, "root": str(dataset.root.resolve()),
            "transform": _stable_repr(dataset.transform), "encoder": _stable_repr(dataset.encoder),
            "skip_bad": dataset.skip_bad}).encode())
        stats = {}
        for recording in dataset.recordings:
            path = recording.archive or recording.member
            if path not in stats:
                status = os.stat(path)
                stats[path] = f"{status.st_size}:{status.st_mtime_ns}"
            fingerprint.update(f"{recording.location}|{stats[path]}\n".encode())
        return fingerprint.hexdigest()[:24]

    @classmethod
    def load_or_build(cls, dataset: NMNIST, folder: Path) -> "_PackedSamples":
        directory = folder / cls.key(dataset)
        if not (directory / "meta.json").exists():
            cls._build(dataset, directory)
        meta = json.loads((directory / "meta.json").read_text())
        recordings = [Recording(**fields) for fields in meta["recordings"]]
        return cls(directory, recordings, meta["problems"], dataset.encoder)

    @staticmethod
    def _build(dataset: NMNIST, directory: Path) -> None:
        encoder = dataset.encoder
        chunks, kept, problems = [], [], []
        for recording in tqdm(dataset.recordings, desc=f"caching N-MNIST {dataset.split}",
                              unit="sample", disable=not dataset.progress, leave=False):
            try:
                sample = dataset.process(read_recording(recording, dataset._archives))
            except DataError as error:
                if not dataset.skip_bad:
                    raise
                problems.append(str(error))
                continue
            kept.append(recording)
            if encoder is not None:
                flat = np.flatnonzero(sample)
                chunks.append((flat, sample.reshape(-1)[flat]))
            else:
                chunk = np.empty(sample.size, dtype=_COMPACT_EVENT)
                for name in _COMPACT_EVENT.names:
                    chunk[name] = sample[name]
                chunks.append(chunk)
        offsets = np.zeros(len(kept) + 1, dtype=np.int64)
        if encoder is not None:
            flat_type = np.uint32 if encoder.steps * encoder.n_inputs < 2 ** 32 else np.int64
            offsets[1:] = np.cumsum([flat.size for flat, _ in chunks])
            flats = [flat for flat, _ in chunks] or [np.zeros(0)]
            counts = [count for _, count in chunks] or [np.zeros(0)]
            arrays = {"flat": np.concatenate(flats).astype(flat_type),
                      "counts": np.concatenate(counts).astype(np.uint8)}
        else:
            offsets[1:] = np.cumsum([chunk.size for chunk in chunks])
            arrays = {"events": np.concatenate(chunks) if chunks else np.zeros(0, _COMPACT_EVENT)}
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
        try:
            np.save(staging / "offsets.npy", offsets)
            for name, array in arrays.items():
                np.save(staging / f"{name}.npy", array)
            meta = {"recordings": [vars(r) for r in kept], "problems": problems,
                    "encoder": repr(encoder), "transform": repr(dataset.transform)}
            (staging / "meta.json").write_text(json.dumps(meta))
            os.replace(staging, directory)
        except OSError:
            if not (directory / "meta.json").exists():
                raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def sample(self, index: int) -> np.ndarray:
        start, stop = self.offsets[index], self.offsets[index + 1]
        if self.encoder is None:
            compact = self.events[start:stop]
            events = np.empty(compact.size, dtype=EVENT_DTYPE)
            for name in EVENT_DTYPE.names:
                events[name] = compact[name]
            return events
        grid = np.zeros((self.encoder.steps, self.encoder.n_inputs), dtype=np.uint8)
        _scatter_counts(grid, *self.cells(index))
        return grid

    def cells(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """The sample's nonzero cells (step * n_inputs + input, ascending) and counts."""
        start, stop = self.offsets[index], self.offsets[index + 1]
        return self.flat[start:stop], self.counts[start:stop]
