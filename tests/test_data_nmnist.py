"""N-MNIST data sets: folder and zip sources, splits, caching, and bad input."""
from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest

from conftest import require_data
from spiking.data import NMNIST, EventEncoder, list_recordings, make_events, write_events
from spiking.data import nmnist
from spiking.errors import DataError

TRAIN_COUNTS = [87, 106, 93, 86, 95, 81, 82, 98, 80, 92]
TEST_COUNTS = [8, 14, 8, 11, 14, 7, 10, 15, 2, 11]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKING_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def real_zips(tmp_path_factory):
    """The real subset packed as the official Train.zip / Test.zip."""
    source = require_data("nmnist-small")
    folder = tmp_path_factory.mktemp("zips")
    for split in ("Train", "Test"):
        with zipfile.ZipFile(folder / f"{split}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted((source / split).glob("*/*.bin")):
                archive.write(path, f"{split}/{path.parent.name}/{path.name}")
    return folder


def tiny_tree(root, per_digit=3):
    """A small valid N-MNIST tree with a recognisable event count per file."""
    for split in ("Train", "Test"):
        for digit in range(10):
            for k in range(per_digit):
                n = 10 + digit
                write_events(root / split / str(digit) / f"{100 * digit + k + 1:05d}.bin",
                             make_events(np.full(n, digit), np.full(n, k), np.arange(n) * 10,
                                         np.arange(n) % 2))
    return root


@pytest.mark.parametrize("source", ["folder", "zip"])
def test_real_splits_labels_and_counts(source, real_zips):
    root = require_data("nmnist-small") if source == "folder" else real_zips
    test = NMNIST(root, "test")
    assert np.bincount(test.labels, minlength=10).tolist() == TEST_COUNTS
    full_train = NMNIST(root, "train", val_fraction=0)
    assert np.bincount(full_train.labels, minlength=10).tolist() == TRAIN_COUNTS
    events, label = test[0]
    assert label == 0 and events.size > 1000
    for index in (0, 57, 99):  # labels and contents agree with the file the layout names
        recording = test.recordings[index]
        assert recording.label == test[index][1] == int(recording.member.split("/")[-2])
        assert test[index][0].size == (require_data("nmnist-small") / "Test" / str(recording.label)
                                       / recording.name).stat().st_size // 5


def test_zip_and_folder_give_identical_samples(real_zips):
    encoder = EventEncoder(dt_us=5000, window_us=300_000, mode="counts")
    from_folder = NMNIST(require_data("nmnist-small"), "test", encoder=encoder)
    from_zip = NMNIST(real_zips / "Test.zip", "test", encoder=encoder)
    x_folder, y_folder = from_folder.batch(range(0, 100, 7))
    x_zip, y_zip = from_zip.batch(range(0, 100, 7))
    assert np.array_equal(x_folder, x_zip) and np.array_equal(y_folder, y_zip)
    assert x_folder.shape == (60, 15, 2312)
    sparse, y_sparse = from_zip.batch(range(0, 100, 7), sparse=True)   # the same, nonzero cells only
    assert sparse.shape == x_folder.shape and np.array_equal(y_sparse, y_folder)
    assert np.array_equal(sparse.to_dense(), x_folder)


def test_validation_split_is_seeded_stratified_and_never_test():
    root = require_data("nmnist-small")
    train = NMNIST(root, "train", val_fraction=0.2, seed=3)
    val = NMNIST(root, "val", val_fraction=0.2, seed=3)
    names_train = {r.name for r in train.recordings}
    names_val = {r.name for r in val.recordings}
    assert not names_train & names_val
    assert len(names_train | names_val) == 900
    assert all(r.split == "Train" for r in val.recordings)
    assert np.allclose(np.bincount(val.labels, minlength=10), 0.2 * np.array(TRAIN_COUNTS), atol=1)
    again = NMNIST(root, "val", val_fraction=0.2, seed=3)
    other = NMNIST(root, "val", val_fraction=0.2, seed=4)
    assert [r.name for r in again.recordings] == [r.name for r in val.recordings]
    assert {r.name for r in other.recordings} != names_val


def test_cache_gives_the_same_samples_and_a_cheap_second_epoch(tmp_path, monkeypatch):
    root = require_data("nmnist-small")
    encoder = EventEncoder(dt_us=1000, window_us=300_000, mode="binary", denoise_us=5000)
    first = NMNIST(root, "test", encoder=encoder, cache=True, progress=False)
    first_epoch = [sample for sample, _ in first]
    uncached = NMNIST(root, "test", encoder=encoder)
    # the second epoch reads the cache only: no event file is opened or decoded
    # (a count, not a time: timings on a shared CI machine are noise)
    reads = []
    original = nmnist.read_recording_bytes
    monkeypatch.setattr(nmnist, "read_recording_bytes", lambda *a, **k: reads.append(1) or original(*a, **k))
    second = NMNIST(root, "test", encoder=encoder, cache=True, progress=False)
    second_epoch = [sample for sample, _ in second]
    assert reads == []
    monkeypatch.undo()
    for index in (0, 41, 99):
        assert np.array_equal(second_epoch[index], uncached[index][0])
        assert np.array_equal(first_epoch[index], uncached[index][0])
    cache_files = list((tmp_path / "cache" / "samples").rglob("*.npy"))
    assert cache_files and not list(root.rglob("*.npy"))  # nothing written beside the data
    events_cached = NMNIST(root, "test", cache=True, progress=False)
    assert np.array_equal(events_cached[5][0], NMNIST(root, "test")[5][0])


def test_cache_needs_a_stable_transform_repr():
    with pytest.raises(ValueError, match="stable repr"):
        NMNIST(require_data("nmnist-small"), "test", transform=lambda e: e, cache=True)


def test_translate_moves_events_and_drops_those_that_leave_the_sensor():
    from spiking.data import Translate, translations

    events = make_events([0, 5, 33, 10], [0, 7, 20, 33], [1, 2, 3, 4], [0, 1, 1, 0])
    moved = Translate(1, -1)(events)
    # (0, 0) leaves at y = -1, (10, 33) stays at (11, 32), (33, 20) leaves at x = 34
    assert moved[["x", "y", "t", "p"]].tolist() == [(6, 6, 2, 1), (11, 32, 4, 0)]
    assert events["x"].tolist() == [0, 5, 33, 10]            # the input is not changed
    assert repr(Translate(1, -1)) == repr(Translate(1, -1))   # a stable cache key
    moves = [(m.dx, m.dy) for m in translations(1)]
    assert len(moves) == len(set(moves)) == 8 and (0, 0) not in moves
    assert len(translations(2)) == 24 and translations(0) == []


def test_copies_are_the_translated_samples_in_position_order(tmp_path):
    from spiking.data import Copies, Translate

    root = tiny_tree(tmp_path / "tree")
    encoder = EventEncoder(dt_us=1000, window_us=50_000, mode="counts")
    moves = [Translate(2, 0), Translate(0, 3)]
    sets = [NMNIST(root, "train", val_fraction=0.2, transform=m, encoder=encoder, cache=True,
                   progress=False) for m in moves]
    index = np.array([0, 3, 7])
    copies = Copies(sets, index)
    assert len(copies) == 6
    positions = np.array([4, 0, 5, 1])                # copy 1, copy 0, copy 1, copy 0
    x, labels = copies.batch(positions)
    for column, position in enumerate(positions):
        which, i = divmod(position, 3)
        expected, label = sets[which].batch([index[i]])
        np.testing.assert_array_equal(x[:, column], expected[:, 0])
        assert labels[column] == label[0] == sets[0].labels[index[i]]
    plain = NMNIST(root, "train", val_fraction=0.2, encoder=encoder)
    assert not np.array_equal(x[:, 1], plain.batch([index[0]])[0][:, 0])   # moved
    sparse, sparse_labels = copies.batch(positions, sparse=True)   # cached cells, one per copy
    np.testing.assert_array_equal(sparse.to_dense(), x)
    np.testing.assert_array_equal(sparse_labels, labels)
    uncached = NMNIST(root, "train", val_fraction=0.2, transform=moves[1], encoder=encoder)
    np.testing.assert_array_equal(uncached.batch(index, sparse=True)[0].to_dense(),
                                  sets[1].batch(index)[0])


def break_files(root):
    """Damage four Train files in four ways; returns their paths."""
    broken = {
        "truncated": root / "Train" / "1" / "00101.bin",
        "range": root / "Train" / "2" / "00201.bin",
        "backwards": root / "Train" / "3" / "00301.bin",
        "empty": root / "Train" / "4" / "00401.bin",
    }
    broken["truncated"].write_bytes(broken["truncated"].read_bytes()[:-2])
    data = bytearray(broken["range"].read_bytes())
    data[0] = 77
    broken["range"].write_bytes(bytes(data))
    data = bytearray(broken["backwards"].read_bytes())
    data[5:10], data[10:15] = data[10:15], data[5:10]
    broken["backwards"].write_bytes(bytes(data))
    broken["empty"].write_bytes(b"")
    return broken


def test_bad_files_raise_or_are_skipped_and_counted(tmp_path):
    root = tiny_tree(tmp_path / "data")
    broken = break_files(root)
    train = NMNIST(root, "train", val_fraction=0)
    for path in broken.values():
        index = next(i for i, r in enumerate(train.recordings) if r.member == str(path))
        with pytest.raises(DataError, match=str(path)):
            train[index]
    skipping = NMNIST(root, "train", val_fraction=0, skip_bad=True, progress=False)
    assert len(skipping) == 30 - 4
    assert len(skipping.problems) == 4
    assert all(any(str(p) in problem for problem in skipping.problems) for p in broken.values())
    assert "skipped 4 bad files" in skipping.summary()
    cached = NMNIST(root, "train", val_fraction=0, skip_bad=True, cache=True, progress=False)
    assert len(cached) == 26 and len(cached.problems) == 4
    with pytest.raises(DataError):
        NMNIST(root, "train", val_fraction=0, cache=True, progress=False)


def test_wrong_layouts_are_reported(tmp_path):
    with pytest.raises(DataError, match="wrong folder layout"):
        NMNIST(tmp_path, "train")
    root = tiny_tree(tmp_path / "data", per_digit=1)
    stray = root / "Train" / "seven" / "00001.bin"
    stray.parent.mkdir()
    shutil.copy(root / "Train" / "7" / "00701.bin", stray)
    with pytest.raises(DataError, match=f"{stray}: wrong folder layout"):
        NMNIST(root, "train")
    lenient = NMNIST(root, "train", val_fraction=0, skip_bad=True, progress=False)
    assert len(lenient) == 10 and len(lenient.problems) == 1
    by_split, problems = list_recordings(root, skip_bad=True)
    assert set(by_split) == {"Train", "Test"} and problems


def test_corrupt_zips_are_reported(tmp_path):
    root = tiny_tree(tmp_path / "data", per_digit=1)
    archive = tmp_path / "Test.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zipped:
        for path in sorted((root / "Test").glob("*/*.bin")):
            zipped.write(path, f"Test/{path.parent.name}/{path.name}")
    garbage = tmp_path / "garbage" / "Test.zip"
    garbage.parent.mkdir()
    garbage.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match=f"{garbage}: corrupt zip archive"):
        NMNIST(garbage.parent, "test")
    # flip one byte inside a stored member: the CRC check must catch it
    data = bytearray(archive.read_bytes())
    member_offset = data.index(b"Test/3/00301.bin") + len("Test/3/00301.bin")
    data[member_offset + 2] ^= 0xFF
    damaged = tmp_path / "damaged" / "Test.zip"
    damaged.parent.mkdir()
    damaged.write_bytes(bytes(data))
    dataset = NMNIST(damaged.parent, "test")
    index = next(i for i, r in enumerate(dataset.recordings) if r.label == 3)
    with pytest.raises(DataError, match="corrupt zip member"):
        dataset[index]
    assert len(NMNIST(damaged.parent, "test", skip_bad=True, progress=False)) == 9
