"""What checking a cached layer on opening costs (its sha256, every run), against one pass over it.

    python benchmarks/cache_verify.py --megabytes 2048

Writes one float16 array of the given size as a cache entry (as extraction would), then times, in one
run: opening it (`ActivationCache.problem`: the record, the size and the sha256 of the whole file),
the sha256 alone, and one pass reading every row (what one epoch of training reads, at least). The
file is in the page cache for all of them (it was just written): a cold disk adds the same read to each.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from mint.data.activation_cache import ActivationCache
from mint.files import file_sha256


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1024, help="size of the cached layer")
    args = parser.parse_args()
    rows = args.megabytes * 2**20 // (2 * 4096)  # rows of 4,096 float16 values (e.g. 64 x 8 x 8)
    with tempfile.TemporaryDirectory() as root:
        cache = ActivationCache(root, {"benchmark": "cache_verify"})
        cache._make_dir()
        tmp = Path(cache.dir) / ".layer.npy.tmp"
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(rows, 4096))
        for start in range(0, rows, 4096):  # (4096, 4096) float16 blocks of noise
            block = np.random.default_rng(start).standard_normal((min(4096, rows - start), 4096))
            array[start : start + 4096] = block
        array.flush()
        del array
        cache._publish("layer", tmp, file_sha256(tmp))
        checked = timed(lambda: cache.problem("layer"))
        sha256 = timed(lambda: file_sha256(cache.dir / "layer.npy"))
        data = cache.open(["layer"])["layer"]
        epoch = timed(lambda: [float(data[i : i + 512].sum(dtype=np.float32)) for i in range(0, rows, 512)])
    size = rows * 4096 * 2 / 2**30
    print(f"cached layer: {rows:,} rows x 4,096 float16 = {size:.2f} GiB")
    print(f"open, checked:                 {checked:7.2f} s ({size / checked:.2f} GiB/s)")
    print(f"the sha256 alone:              {sha256:7.2f} s")
    print(f"one pass reading every row:    {epoch:7.2f} s")
    print(f"the check / one pass: {checked / epoch:.2f}x")


if __name__ == "__main__":
    main()
