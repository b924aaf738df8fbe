"""Reading `.npz` files made by anyone: arrays checked against their headers before any is loaded.

`np.load(..., allow_pickle=False)` never runs code, but a file may still claim a 3 TB array in a
few bytes of header, hold Python objects, miss an array or not be an npz at all. Each of these is
refused here with a message naming the file, before memory is allocated.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from mint.errors import MintError
from mint.files import check_input_file

# Real image arrays compress a few-fold (all-black ones a few hundred-fold); a compressed entry that
# expands more than this to over 256 MiB is a decompression bomb.
MAX_RATIO = 1000


def physical_memory() -> int:
    """Bytes of memory of this machine (a large number where it cannot be read)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def _header(zf: zipfile.ZipFile, key: str, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of `key` from its .npy header, checked against the bytes the file holds."""
    info = zf.getinfo(f"{key}.npy")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        read = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read(f, max_header_size=10_000)
        body = info.file_size - f.tell()
    if dtype.hasobject:
        raise MintError(
            f"{path}: array {key!r} holds Python objects; mint reads only numeric arrays (no pickle)"
        )
    claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if claimed > body:
        raise MintError(
            f"{path}: array {key!r} claims {shape} ({claimed:,} bytes) but the file holds {body:,}"
        )
    ratio = claimed / max(info.compress_size, 1)
    if info.compress_type != zipfile.ZIP_STORED and ratio > MAX_RATIO and claimed > 2**28:
        raise MintError(
            f"{path}: array {key!r} expands {ratio:,.0f}-fold to {claimed / 2**30:.1f} GiB: refused"
        )
    if claimed > physical_memory():
        raise MintError(
            f"{path}: array {key!r} needs {claimed / 2**30:.1f} GiB, more than this machine's "
            f"{physical_memory() / 2**30:.1f} GiB of memory"
        )
    return tuple(shape), dtype


def read_npz(
    path: str | Path,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    header_only: tuple[str, ...] = (),
) -> dict:
    """The arrays `required` (+ those of `optional` present) of an npz; (shape, dtype) for `header_only`."""
    path = check_input_file(path, "npz file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = {n.removesuffix(".npy") for n in zf.namelist()}
            missing = [k for k in required if k not in names]
            if missing:
                raise MintError(f"{path} has no array {missing} (it holds {sorted(names)})")
            wanted = [k for k in (*required, *optional) if k in names]
            headers = {k: _header(zf, k, path) for k in wanted}
        out = {k: headers[k] for k in wanted if k in header_only}
        with np.load(path, allow_pickle=False) as z:
            out |= {k: z[k] for k in wanted if k not in header_only}
    except MintError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError, MemoryError) as err:
        raise MintError(f"{path} is not a readable .npz file ({type(err).__name__}: {err})") from err
    return out


def check_labels(labels: np.ndarray, n: int, num_classes: int, path: str | Path) -> np.ndarray:
    """Labels as int64, refused unless 1-D integers in [0, num_classes), one per image."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise MintError(
            f"{path}: labels must be a 1-D array of integers, got {labels.dtype} {labels.shape}. "
            "To audit without labels, leave the labels array out or pass --labels predicted"
        )
    if len(labels) != n:
        raise MintError(f"{path} holds {n} images but {len(labels)} labels")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise MintError(
            f"{path}: {len(bad)} labels are outside 0..{num_classes - 1} (the target's classes), e.g. "
            f"{bad[:3].tolist()}. To audit without labels, leave the labels array out or pass "
            "--labels predicted"
        )
    return labels.astype(np.int64)
