"""Checked download of the N-MNIST archives: resume, checksum, progress bar, unpacking.

The official archives are on Mendeley Data (data set 468j46mzdv, Orchard et al. 2015). Their
MD5 sums are the ones published with the data set and used by tonic, SpikingJelly and
other loaders. Their SHA-256 sums and exact sizes are not known to this project, so they
are not checked; never fill them in without having verified them.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from tqdm import tqdm

from spiking.data.events import PathLike
from spiking.data.nmnist import SPLIT_FOLDERS, _list_archive, open_zip
from spiking.errors import DataError

_MENDELEY = "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"
N_MNIST_PAGE = "https://www.garrickorchard.com/datasets/n-mnist"


@dataclass(frozen=True)
class Archive:
    """One file to fetch: where from, what it must hash to, which split it holds."""

    name: str
    url: str
    split: str
    md5: Optional[str] = None
    sha256: Optional[str] = None
    size: Optional[int] = None  # bytes, when known


NMNIST_ARCHIVES = (
    Archive("Train.zip", _MENDELEY + "39c25547-014b-4137-a934-9d29fa53c7a0/file_downloaded",
            "Train", md5="20959b8e626244a1b502305a9e6e2031"),
    Archive("Test.zip", _MENDELEY + "05a4d654-7e03-4c15-bdfa-9bb2bcbea494/file_downloaded",
            "Test", md5="69ca8762b2fe404d9b9bad1103e97832"),
)

CHUNK_BYTES = 1 << 20


def file_digests(path: PathLike) -> dict:
    """MD5 and SHA-256 of a file, hex."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            md5.update(block)
            sha256.update(block)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def verify(path: PathLike, archive: Archive) -> None:
    """Raise DataError naming ``path`` if its size or checksums differ from ``archive``'s."""
    path = Path(path)
    if archive.size is not None and path.stat().st_size != archive.size:
        raise DataError(f"{path}: size {path.stat().st_size} bytes, expected {archive.size}")
    if archive.md5 is None and archive.sha256 is None:
        return
    digests = file_digests(path)
    for kind in ("sha256", "md5"):
        expected = getattr(archive, kind)
        if expected is not None and digests[kind] != expected.lower():
            raise DataError(f"{path}: checksum mismatch: {kind} is {digests[kind]}, "
                            f"expected {expected.lower()}")


def _offline_message(archive: Archive, reason) -> str:
    host = urllib.parse.urlsplit(archive.url).netloc
    return (f"cannot download {archive.name} from {host}: {reason}. This machine seems to "
            f"have no internet access. Fetch {archive.name} by hand ({N_MNIST_PAGE}) and "
            f"pass its folder with --data, or leave --data out to use the synthetic default.")


def _unreachable(reason) -> bool:
    """Whether a connection failure means the host cannot be reached at all."""
    if isinstance(reason, (socket.gaierror, ConnectionRefusedError, socket.timeout, TimeoutError)):
        return True
    return isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)


def fetch(archive: Archive, destination: PathLike, timeout_s: float = 10.0, retries: int = 2,
          progress: bool = True) -> Path:
    """Download ``archive`` to ``destination``, resuming a ``.part`` file left by an
    interrupted transfer (HTTP Range), then verify it.

    Fails fast (``timeout_s`` for connecting and for each read) with a DataError when the
    host cannot be reached. A transfer cut short is resumed up to ``retries`` times;
    after that the ``.part`` file stays for the next call. A file that fails its checksum
    is deleted and reported.
    """
    destination = Path(destination)
    if destination.exists():
        try:
            verify(destination, archive)
            return destination
        except DataError as error:
            print(f"{error}; fetching it again")
            destination.unlink()
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    for attempt in range(retries + 1):
        try:
            complete = _transfer(archive, partial, timeout_s, progress)
        except urllib.error.HTTPError as error:
            raise DataError(f"{archive.url}: HTTP {error.code} {error.reason}") from error
        except urllib.error.URLError as error:
            if _unreachable(error.reason):
                raise DataError(_offline_message(archive, error.reason)) from error
            complete = False
        except (ConnectionError, socket.timeout, http.client.HTTPException):
            complete = False
        if complete:
            break
    else:
        size = partial.stat().st_size if partial.exists() else 0
        raise DataError(f"{partial}: transfer of {archive.url} interrupted after {size} bytes "
                        f"({retries + 1} tries); run the same command again to resume")
    try:
        verify(partial, archive)
    except DataError as error:
        partial.unlink()
        raise DataError(f"{destination}: {str(error).split(': ', 1)[1]}; the download was "
                        f"deleted (run again to fetch it anew)") from error
    os.replace(partial, destination)
    return destination


def _transfer(archive: Archive, partial: Path, timeout_s: float, progress: bool) -> bool:
    """One HTTP request appending to ``partial``; True when the body arrived in full."""
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(archive.url, headers={"User-Agent": "spiking-data"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to send: the .part is complete
            return archive.size is None or have == archive.size
        raise
    with response:
        if have and response.status != 206:  # the server ignored the range: start over
            have = 0
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None else archive.size
        mode = "ab" if have else "wb"
        with open(partial, mode) as sink, tqdm(
                total=expected, initial=have, unit="B", unit_scale=True, desc=archive.name,
                disable=not progress, leave=False) as bar:
            received = have
            try:
                for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                    sink.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError):
                return False
    return expected is None or received >= expected


def unpack(archive_path: PathLike, to_dir: PathLike, split: str) -> int:
    """Extract the ``.bin`` recordings of one archive into ``to_dir/<split>/<digit>/``.

    The split folder appears only once complete (extracted beside it, then renamed). A
    corrupt archive, a corrupt member or a wrong layout raises DataError naming the file.
    Returns the number of recordings.
    """
    archive_path, to_dir = Path(archive_path), Path(to_dir)
    problems: list = []
    found = _list_archive(archive_path, split, problems)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)
    recordings = found.get(split, [])
    if not recordings:
        raise DataError(f"{archive_path}: wrong folder layout: no {split}/<digit>/*.bin inside")
    to_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=to_dir, prefix=f".{split}."))
    try:
        with open_zip(archive_path) as zipped:
            for recording in tqdm(recordings, desc=f"unpacking {archive_path.name}",
                                  unit="file", leave=False):
                target = staging / str(recording.label) / recording.name
                target.parent.mkdir(exist_ok=True)
                try:
                    with zipped.open(recording.member) as source, open(target, "wb") as sink:
                        shutil.copyfileobj(source, sink)
                except Exception as error:  # zipfile raises several types for bad data
                    raise DataError(f"{archive_path}:{recording.member}: corrupt zip member: "
                                    f"{error}") from error
        final = to_dir / split
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return len(recordings)


def download_nmnist(to_dir: PathLike, archives: Iterable[Archive] = NMNIST_ARCHIVES,
                    timeout_s: float = 10.0, retries: int = 2, keep_archives: bool = False,
                    progress: bool = True) -> Path:
    """Fetch, verify and unpack the N-MNIST archives into ``to_dir/Train`` and ``to_dir/Test``.

    Archives go to ``to_dir/downloads/`` and are deleted after a good unpack unless
    ``keep_archives``. Returns ``to_dir``.
    """
    to_dir = Path(to_dir)
    for archive in archives:
        if archive.split not in SPLIT_FOLDERS:
            raise ValueError(f"{archive.name}: split must be one of {SPLIT_FOLDERS}")
        marker = to_dir / f".{archive.split}.unpacked"
        stamp = f"{archive.name} md5={archive.md5} sha256={archive.sha256}\n"
        if (to_dir / archive.split).is_dir() and marker.exists() and marker.read_text() == stamp:
            print(f"{archive.name}: already unpacked in {to_dir / archive.split}")
            continue
        path = fetch(archive, to_dir / "downloads" / archive.name, timeout_s, retries, progress)
        count = unpack(path, to_dir, archive.split)
        marker.write_text(stamp)
        print(f"{archive.name}: verified and unpacked {count} recordings into "
              f"{to_dir / archive.split}")
        if not keep_archives:
            path.unlink()
    downloads = to_dir / "downloads"
    if downloads.exists() and not any(downloads.iterdir()):
        downloads.rmdir()
    return to_dir
