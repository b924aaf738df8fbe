"""Streamed .npy writes and reads: the same arrays as numpy's, without growing the process's memory."""

import pickle
from pathlib import Path

import numpy as np
import pytest

from mint.data.npy_io import NpyRows, NpyWriter
from mint.files import file_sha256


def write(path, array, batch=7):
    writer = NpyWriter(path, array.dtype, array.shape)
    for start in range(0, len(array), batch):
        writer.write(array[start : start + batch])
    return writer.close()


def test_writer_and_reader_match_numpy(tmp_path):
    array = np.random.default_rng(0).standard_normal((50, 3, 4, 5)).astype(np.float16)
    sha = write(tmp_path / "a.npy", array)
    assert sha == file_sha256(tmp_path / "a.npy")  # hashed while writing: no second pass
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), array)
    reader = NpyRows.of(np.load(tmp_path / "a.npy", mmap_mode="r"))
    assert isinstance(reader, NpyRows) and len(reader) == 50
    rows = np.array([3, 4, 5, 9, 0, 49, 48])  # runs, jumps and a descending pair
    np.testing.assert_array_equal(reader[rows], array[rows])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reader))[rows], array[rows])  # to workers
    assert NpyRows.of(array) is array  # plain arrays are used as they are
    with pytest.raises(IndexError):
        reader[[50]]


def test_short_writes_are_refused(tmp_path):
    writer = NpyWriter(tmp_path / "b.npy", np.float32, (4, 2))
    writer.write(np.zeros((3, 2)))
    with pytest.raises(RuntimeError, match="3 of 4 rows"):
        writer.close()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_reading_a_whole_file_does_not_grow_resident_memory(tmp_path):
    if not Path("/proc/self/status").is_file():
        pytest.skip("needs Linux /proc to read the resident set size")
    rows, row = 2048, np.ones((32, 32, 16), np.float16)  # 32 KB rows, 64 MB in all
    writer = NpyWriter(tmp_path / "big.npy", np.float16, (rows, *row.shape))
    for _ in range(0, rows, 256):
        writer.write(np.broadcast_to(row, (256, *row.shape)))
    writer.close()
    reader = NpyRows.of(np.load(tmp_path / "big.npy", mmap_mode="r"))
    before = rss_mb()
    for start in range(0, rows, 128):
        assert reader[np.arange(start, start + 128)].shape == (128, *row.shape)
    assert rss_mb() - before < 24  # one batch (4 MB) and allocator slack, not the 64 MB file
