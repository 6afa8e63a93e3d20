"""The checked download against a real HTTP server on 127.0.0.1 (Range support, cut-off
transfers, corrupt archives, checksum mismatches), and failing fast when offline."""
from __future__ import annotations

import hashlib
import http.server
import io
import re
import socket
import threading
import time
import zipfile

import numpy as np
import pytest

from spiking.data import NMNIST, Archive, download_nmnist, fetch, make_events
from spiking.data.events import encode_events
from spiking.errors import DataError


class Files(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-``; the first ``server.cut_after``
    bytes of a response end the connection early when ``server.cuts_left`` > 0."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and server.ranges:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if server.cuts_left > 0:
            server.cuts_left -= 1
            self.wfile.write(payload[:server.cut_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    httpd.files, httpd.requests, httpd.cuts_left, httpd.cut_after, httpd.ranges = {}, [], 0, 0, True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def small_archive(split, per_digit=2, top_folder=True):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for digit in range(10):
            for k in range(per_digit):
                rng = np.random.default_rng([digit, k])
                n = 200
                events = make_events(rng.integers(0, 34, n), rng.integers(0, 34, n),
                                     np.sort(rng.integers(0, 300_000, n)), rng.integers(0, 2, n))
                name = f"{digit}/{10 * digit + k + 1:05d}.bin"
                archive.writestr(f"{split}/{name}" if top_folder else name, encode_events(events))
    return buffer.getvalue()


def describe(server, name, split, body, **overrides):
    server.files[f"/{name}"] = body
    fields = dict(name=name, url=f"{server.url}/{name}", split=split,
                  md5=hashlib.md5(body).hexdigest(), sha256=hashlib.sha256(body).hexdigest())
    fields.update(overrides)
    return Archive(**fields)


def test_download_verifies_and_unpacks_into_the_layout(server, tmp_path):
    archives = [describe(server, "Train.zip", "Train", small_archive("Train")),
                describe(server, "Test.zip", "Test", small_archive("Test", 1, top_folder=False))]
    root = download_nmnist(tmp_path / "nmnist", archives, timeout_s=5, progress=False)
    assert len(list((root / "Train").glob("*/*.bin"))) == 20
    assert len(list((root / "Test").glob("*/*.bin"))) == 10
    assert not (root / "downloads").exists()  # archives removed after a good unpack
    assert len(NMNIST(root, "test")) == 10
    assert np.bincount(NMNIST(root, "train", val_fraction=0).labels).tolist() == [2] * 10
    requests = len(server.requests)
    download_nmnist(tmp_path / "nmnist", archives, timeout_s=5, progress=False)
    assert len(server.requests) == requests  # already there: nothing fetched again


def test_a_bad_file_already_in_place_is_fetched_again(server, tmp_path, capsys):
    body = small_archive("Test")
    archive = describe(server, "Test.zip", "Test", body)
    (tmp_path / "Test.zip").write_bytes(body[:-1] + b"!")
    fetch(archive, tmp_path / "Test.zip", timeout_s=5, progress=False)
    assert (tmp_path / "Test.zip").read_bytes() == body
    assert "checksum mismatch" in capsys.readouterr().out


def test_interrupted_transfer_resumes_with_a_range_request(server, tmp_path):
    body = small_archive("Test")
    archive = describe(server, "Test.zip", "Test", body)
    server.cuts_left, server.cut_after = 1, len(body) // 3
    target = tmp_path / "Test.zip"
    fetch(archive, target, timeout_s=5, retries=2, progress=False)
    assert target.read_bytes() == body
    assert server.requests[0][1] is None
    assert server.requests[1][1] == f"bytes={len(body) // 3}-"


def test_interrupted_transfer_keeps_the_part_file_for_the_next_run(server, tmp_path):
    body = small_archive("Test")
    archive = describe(server, "Test.zip", "Test", body)
    server.cuts_left, server.cut_after = 3, 1000
    target = tmp_path / "Test.zip"
    with pytest.raises(DataError, match="interrupted .* run the same command again"):
        fetch(archive, target, timeout_s=5, retries=1, progress=False)
    partial = tmp_path / "Test.zip.part"
    assert partial.stat().st_size == 2000 and not target.exists()
    fetch(archive, target, timeout_s=5, retries=1, progress=False)  # one cut left, then done
    assert target.read_bytes() == body
    assert not partial.exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    body = small_archive("Test")
    archive = describe(server, "Test.zip", "Test", body)
    server.ranges = False
    (tmp_path / "Test.zip.part").write_bytes(b"stale bytes")
    fetch(archive, tmp_path / "Test.zip", timeout_s=5, progress=False)
    assert (tmp_path / "Test.zip").read_bytes() == body


def test_checksum_mismatch_deletes_the_download(server, tmp_path):
    archive = describe(server, "Test.zip", "Test", small_archive("Test"), md5="0" * 32,
                       sha256=None)
    with pytest.raises(DataError, match="Test.zip: checksum mismatch: md5"):
        download_nmnist(tmp_path, [archive], timeout_s=5, progress=False)
    assert not list((tmp_path / "downloads").glob("Test.zip*"))
    assert not (tmp_path / "Test").exists()


def test_corrupt_archive_with_matching_checksum_is_reported(server, tmp_path):
    body = small_archive("Test")
    corrupt = body[:100] + bytes(200) + body[300:]
    archive = describe(server, "Test.zip", "Test", corrupt)  # checksums of the corrupt bytes
    with pytest.raises(DataError, match="Test.zip(:Test/[0-9]/[0-9]+.bin)?: corrupt zip"):
        download_nmnist(tmp_path, [archive], timeout_s=5, progress=False)
    assert not (tmp_path / "Test").exists()
    truncated = describe(server, "Train.zip", "Train", body[: len(body) // 2])
    with pytest.raises(DataError, match="Train.zip: corrupt zip archive"):
        download_nmnist(tmp_path, [truncated], timeout_s=5, progress=False)


def test_offline_fails_fast_with_a_clear_message(tmp_path):
    with socket.socket() as probe:  # a port on which nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    archive = Archive("Train.zip", f"http://127.0.0.1:{port}/Train.zip", "Train", md5="0" * 32)
    started = time.perf_counter()
    with pytest.raises(DataError, match="cannot download Train.zip .* no internet access"):
        download_nmnist(tmp_path, [archive], timeout_s=2, progress=False)
    assert time.perf_counter() - started < 3
    unresolvable = Archive("Test.zip", "http://nmnist.invalid/Test.zip", "Test")
    started = time.perf_counter()
    with pytest.raises(DataError, match="cannot download Test.zip from nmnist.invalid"):
        download_nmnist(tmp_path, [unresolvable], timeout_s=2, progress=False)
    assert time.perf_counter() - started < 10
