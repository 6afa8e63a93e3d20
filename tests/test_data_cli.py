"""Data discovery and the ``spiking data`` commands."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from conftest import require_data
from spiking.data import NMNIST, discover, make_events, read_events, write_events
from spiking.data.cli import main
from spiking.data.discover import SYNTHETIC_MARKER
from spiking.errors import DataError


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKING_CACHE", str(tmp_path / "cache"))


def test_discovery_order(tmp_path, monkeypatch):
    real = require_data("nmnist-small")
    data_root = real.parent
    monkeypatch.setenv("SPIKING_DATA", str(data_root))
    explicit = discover(str(real))
    assert explicit.origin == "explicit" and explicit.path == real
    assert "--data" in explicit.message
    from_environment = discover(None)
    assert from_environment.origin == "environment" and from_environment.path == real
    assert "SPIKING_DATA" in from_environment.message
    with pytest.raises(DataError, match="no N-MNIST data here"):
        discover(str(tmp_path))
    monkeypatch.setenv("SPIKING_DATA", str(tmp_path / "nothing"))
    cached = tmp_path / "cache" / "nmnist" / "Test" / "0"
    write_events(cached / "00001.bin", make_events([1], [1], [0], [1]))
    from_cache = discover(None)
    assert from_cache.origin == "cache" and "holds no N-MNIST data" in from_cache.message


def test_synthetic_default_is_made_once_and_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("SPIKING_DATA", raising=False)
    choice = discover(None, synthetic_train_per_class=3, synthetic_test_per_class=2,
                      progress=False)
    assert choice.origin == "synthetic" and choice.synthetic
    assert "SYNTHETIC" in choice.message and "made now" in choice.message
    assert (choice.path / SYNTHETIC_MARKER).exists()
    train = NMNIST(choice.path, "train", val_fraction=0)
    assert np.bincount(train.labels).tolist() == [3] * 10
    assert len(NMNIST(choice.path, "test")) == 20
    events, _ = train[0]
    assert 1000 < events.size < 10_000 and 0.4 < events["p"].mean() < 0.6
    again = discover(None, synthetic_train_per_class=3, synthetic_test_per_class=2)
    assert again.path == choice.path and "made now" not in again.message


def test_info_prints_counts_statistics_and_problems(tmp_path, capsys):
    real = require_data("nmnist-small")
    assert main(["data", "info", str(real)]) == 0
    out = capsys.readouterr().out
    assert "Train: 900 recordings; per digit 0-9: 87 106 93 86 95 81 82 98 80 92" in out
    assert "Test: 100 recordings" in out and "min 1069" in out and "no problems found" in out
    bad = tmp_path / "bad"
    write_events(bad / "Train" / "1" / "00001.bin", make_events([1, 2], [1, 2], [0, 5], [0, 1]))
    (bad / "Train" / "1" / "00002.bin").write_bytes(b"\x01\x02\x03")
    (bad / "Train" / "x").mkdir()
    (bad / "Train" / "x" / "00003.bin").write_bytes(b"\x01\x02\x03\x04\x05")
    assert main(["data", "info", str(bad)]) == 2
    out = capsys.readouterr().out
    assert "2 problems" in out and "00002.bin: truncated" in out and "wrong folder layout" in out
    assert main(["data", "info", str(bad), "--skip-bad"]) == 0
    assert "skipped 2 bad files" in capsys.readouterr().out


def test_synth_command_writes_the_nmnist_format(tmp_path, capsys):
    mnist = require_data("mnist")
    out = tmp_path / "out"
    assert main(["data", "synth", "--images", str(mnist / "t10k-images-idx3-ubyte.gz"),
                 "--out", str(out), "--n", "12", "--split", "Test"]) == 0
    assert "wrote 12 synthetic recordings" in capsys.readouterr().out
    with gzip.open(mnist / "t10k-labels-idx1-ubyte.gz") as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8)[:12]
    files = sorted(out.glob("Test/*/*.bin"))
    assert len(files) == 12
    for path in files:  # NNNNN is the 1-based image index, the folder its label
        assert labels[int(path.stem) - 1] == int(path.parent.name)
        assert read_events(path).size > 500
    tonic = pytest.importorskip("tonic")
    assert tonic.io.read_mnist_file(str(files[0]), dtype=tonic.datasets.NMNIST.dtype).size > 500


def test_synth_command_on_png_and_npz(tmp_path, capsys):
    import matplotlib.image

    image = np.zeros((28, 28))
    image[6:22, 12:16] = 1.0
    (tmp_path / "pngs" / "1").mkdir(parents=True)
    matplotlib.image.imsave(tmp_path / "pngs" / "1" / "a.png", image, cmap="gray")
    assert main(["data", "synth", "--images", str(tmp_path / "pngs"), "--out",
                 str(tmp_path / "a")]) == 0
    assert len(list((tmp_path / "a" / "Train" / "1").glob("*.bin"))) == 1
    np.savez(tmp_path / "d.npz", images=np.stack([image] * 3))
    assert main(["data", "synth", "--images", str(tmp_path / "d.npz"), "--out",
                 str(tmp_path / "b")]) == 2
    assert "no labels" in capsys.readouterr().err
    assert main(["data", "synth", "--images", str(tmp_path / "d.npz"), "--out",
                 str(tmp_path / "b"), "--label", "7"]) == 0
    assert len(list((tmp_path / "b" / "Train" / "7").glob("*.bin"))) == 3


def test_download_without_internet_fails_fast_with_a_clear_message(tmp_path, capsys):
    code = main(["data", "download", "nmnist", "--to", str(tmp_path), "--timeout", "3"])
    err = capsys.readouterr().err
    if code == 0:
        pytest.skip("this machine can reach the N-MNIST host")
    assert code == 2 and "cannot download Train.zip" in err


def test_which_and_make_default(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPIKING_DATA", str(require_data()))
    assert main(["data", "which"]) == 0
    assert "SPIKING_DATA" in capsys.readouterr().out
    out = tmp_path / "default"
    assert main(["data", "make-default", "--out", str(out), "--train-per-class", "1",
                 "--test-per-class", "1"]) == 0
    assert len(list(out.glob("*/*/*.bin"))) == 20 and (out / SYNTHETIC_MARKER).exists()
