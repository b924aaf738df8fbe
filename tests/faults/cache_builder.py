"""A separate process that builds a target's activation cache: `python -m tests.faults.cache_builder`.

The fault tests start it as a real process (two builders at once, a builder killed mid-write). It
prints, as its last line, the JSON `{"extracted": [...]}`: the arrays this process extracted itself.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mint.data import ActivationCache
from mint.data.npy_io import NpyWriter
from tests.conftest import detector_data

# The detector sets of every cache the fault tests build: 2000 images, extracted in 8 batches.
SIZES = {"val_size": 20, "test_size": 40, "extract_batch_size": 250}


def slow_down(delay: float) -> None:
    """Sleep `delay` seconds before every batch written, so a build lasts long enough to overlap or kill."""
    write = NpyWriter.write

    def slow_write(self, rows):
        time.sleep(delay)
        return write(self, rows)

    NpyWriter.write = slow_write


def record_extractions() -> list[str]:
    """The list that every array this process extracts is appended to."""
    extracted: list[str] = []
    extract = ActivationCache._extract

    def recorded(self, target, images, rows, batch_size, names, labels=None):
        extracted.extend(names)
        return extract(self, target, images, rows, batch_size, names, labels)

    ActivationCache._extract = recorded
    return extracted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", type=Path, help="the target checkpoint")
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("--ready", type=Path, help="file to create once everything is loaded")
    parser.add_argument("--go", type=Path, help="file whose appearance starts the build")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds of sleep before each batch")
    args = parser.parse_args()
    if args.delay:
        slow_down(args.delay)
    extracted = record_extractions()
    data = detector_data(args.target, cache_dir=str(args.cache_dir), **SIZES)
    data.sets  # noqa: B018 (loads the target's data before the start signal: builds then overlap)
    if args.ready:
        args.ready.touch()
    while args.go and not args.go.exists():
        time.sleep(0.01)
    data.prepare_data()
    print(json.dumps({"extracted": extracted}))


if __name__ == "__main__":
    main()
