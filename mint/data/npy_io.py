"""Stream `.npy` arrays to and from disk in batches, without mapping them into the process.

Pages of a memory map that a process has written or read count in its resident memory until
the map is closed, so writing or reading a 3 GB cache (CIFAR-10 `layer1`, 50k images) through
one made the process grow by 3 GB. Plain file writes and reads go through the page cache, which
the kernel reclaims at will: the process itself holds one batch.
"""

from __future__ import annotations

import hashlib
import io
import math
import mmap
from pathlib import Path

import numpy as np


class NpyWriter:
    """Write a C-order `.npy` file row batch by row batch, hashing it on the way (sha256 of the file).

    Args:
        path: file to write (created or truncated).
        dtype: element type.
        shape: shape of the whole array; rows are along the first axis.
    """

    def __init__(self, path: str | Path, dtype: np.dtype | type, shape: tuple[int, ...]) -> None:
        self.path, self.dtype, self.shape = Path(path), np.dtype(dtype), tuple(shape)
        self.rows_written = 0
        self._hash = hashlib.sha256()
        header = io.BytesIO()
        fields = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False}
        np.lib.format.write_array_header_1_0(header, fields | {"shape": self.shape})
        self._file = open(self.path, "wb")  # closed by `close` or `abort`
        self._put(header.getvalue())

    def _put(self, data: bytes | memoryview) -> None:
        self._file.write(data)
        self._hash.update(data)

    def write(self, rows: np.ndarray) -> None:
        """Append rows (B, *shape[1:]) after those already written."""
        rows = np.ascontiguousarray(rows, self.dtype)
        if rows.shape[1:] != self.shape[1:] or self.rows_written + len(rows) > self.shape[0]:
            raise ValueError(f"rows {rows.shape} do not fit {self.shape} after {self.rows_written} rows")
        self._put(memoryview(rows).cast("B"))
        self.rows_written += len(rows)

    def close(self) -> str:
        """Close the file; return its sha256 (raises if fewer rows were written than the shape says)."""
        self._file.close()
        if self.rows_written != self.shape[0]:
            raise RuntimeError(f"{self.path}: {self.rows_written} of {self.shape[0]} rows written")
        return self._hash.hexdigest()

    def abort(self) -> None:
        """Close the file without checking it (the caller deletes it)."""
        self._file.close()


class NpyRows:
    """Rows of a C-order `.npy` file read on demand: `reader[rows]` is an array (len(rows), *shape[1:]).

    Consecutive rows are read in one call. The file is opened lazily in each process, so the
    reader can be sent to data loader workers.

    Args:
        path: the `.npy` file.
        offset: bytes before the data (the header's length).
        dtype: element type.
        shape: shape of the whole array.
    """

    def __init__(self, path: str | Path, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        self.path, self.offset, self.dtype, self.shape = str(path), offset, np.dtype(dtype), tuple(shape)
        self.row_bytes = self.dtype.itemsize * math.prod(self.shape[1:])
        self._file = None

    @classmethod
    def of(cls, array: np.ndarray) -> NpyRows | np.ndarray:
        """A reader of a whole memory-mapped `.npy` array (from `np.load(mmap_mode="r")`); else `array`."""
        whole_map = isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap)
        if whole_map and array.filename and array.flags.c_contiguous:
            return cls(array.filename, array.offset, array.dtype, array.shape)
        return array

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_file": None}  # open files do not cross process boundaries

    def __getitem__(self, rows: np.ndarray | list[int]) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1 or (len(rows) and (rows.min() < 0 or rows.max() >= self.shape[0])):
            raise IndexError(f"rows must be a 1-D list of indices in [0, {self.shape[0]})")
        if self._file is None:
            self._file = open(self.path, "rb", buffering=0)  # kept open for the reader's life
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        flat = out.reshape(len(rows), -1).view(np.uint8)  # (n, row_bytes)
        starts = np.flatnonzero(np.diff(rows, prepend=-2) != 1)  # first index of each run of consecutive rows
        for first, end in zip(starts, [*starts[1:], len(rows)], strict=True):
            self._file.seek(self.offset + int(rows[first]) * self.row_bytes)
            view, done = memoryview(flat[first:end]).cast("B"), 0
            while done < len(view):  # a raw read may return fewer bytes than asked
                got = self._file.readinto(view[done:])
                if not got:
                    raise OSError(f"{self.path} is shorter than its header says")
                done += got
        return out
