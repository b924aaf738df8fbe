"""The activation cache under faults: builders running at once, a builder killed mid-write.

Builders are real processes (`tests/faults/cache_builder.py`): a lock or a rename that only works
between threads of one process would pass an in-process test.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from mint.data import ActivationCache
from tests.conftest import ROOT, detector_data
from tests.faults.cache_builder import SIZES

NAMES = ["layer7", "logits"]
# What a finished cache folder holds: the arrays, their records and the (kept) lock file.
COMPLETE = {".lock", "layer7.json", "layer7.npy", "logits.json", "logits.npy"}


def builder(target: Path, cache_dir: Path, *extra: str) -> subprocess.Popen:
    """Start `tests/faults/cache_builder.py` building the cache of `target` under `cache_dir`."""
    command = [sys.executable, "-m", "tests.faults.cache_builder", str(target), str(cache_dir), *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, procs: list[subprocess.Popen], what: str, timeout: float = 120) -> None:
    """Poll `condition()` until true; fail if a process exits first or time runs out."""
    end = time.monotonic() + timeout
    while not condition():
        for proc in procs:
            if proc.poll() is not None:
                why = proc.stderr.read()[-3000:]
                raise AssertionError(f"builder exited ({proc.returncode}) before {what}: {why}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def build_here(target: Path, cache_dir: Path) -> ActivationCache:
    """Build (or open) the cache in this process, any warning (e.g. a rebuilt array) an error."""
    data = detector_data(target, cache_dir=str(cache_dir), **SIZES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.prepare_data()
    return data.cache()


def assert_complete(cache: ActivationCache, reference: ActivationCache) -> None:
    """Every array usable, equal to the reference build's, and nothing else in the folder."""
    assert {name: cache.problem(name) for name in NAMES} == dict.fromkeys(NAMES)
    assert {p.name for p in cache.dir.iterdir()} == COMPLETE  # no temporary file left
    built, expected = cache.open(NAMES), reference.open(NAMES)
    for name in NAMES:
        assert np.array_equal(built[name], expected[name]), name


def test_two_processes_building_one_cache_at_once_build_it_once(tmp_path, tiny_target):
    reference = build_here(tiny_target, tmp_path / "reference")
    ready, go = [tmp_path / "ready0", tmp_path / "ready1"], tmp_path / "go"
    # 8 batches of 0.2 s: a build lasts 1.6 s, so two builds started together overlap.
    procs = [
        builder(tiny_target, tmp_path / "cache", "--ready", str(r), "--go", str(go), "--delay", "0.2")
        for r in ready
    ]
    try:
        wait_for(lambda: all(r.exists() for r in ready), procs, "both builders loaded the data")
        go.touch()
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "rebuilding" not in err  # neither saw the other's arrays half-written or mismatched
    extracted = [json.loads(out.splitlines()[-1])["extracted"] for out, _ in outputs]
    assert sorted(extracted) == [[], NAMES]  # one extracted, the other read what it built
    waiter = outputs[extracted.index([])][0]
    assert "waiting for another process building the activation cache" in waiter
    assert_complete(ActivationCache(tmp_path / "cache", reference.key), reference)


def test_a_builder_killed_mid_write_leaves_nothing_that_is_read_and_no_orphan(tmp_path, tiny_target):
    reference = build_here(tiny_target, tmp_path / "reference")
    cache_dir = tmp_path / "cache"
    proc = builder(tiny_target, cache_dir, "--delay", "0.5")
    try:
        wait_for(lambda: any(cache_dir.glob("*/.layer7.*.npy.tmp")), [proc], "the first batch was written")
        time.sleep(0.2)  # into the build: some rows written, the array far from finished
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    (folder,) = cache_dir.iterdir()
    orphans = {p.name for p in folder.glob(".*.tmp")}
    assert any(name.startswith(".layer7.") for name in orphans), orphans  # what a killed builder leaves
    assert not (folder / "layer7.json").exists()  # nothing was published

    cache = build_here(tiny_target, cache_dir)  # the next build: no warning, no orphan read or left
    assert cache.dir == folder
    assert_complete(cache, reference)


def test_a_file_system_that_refuses_locks_still_builds_and_keeps_others_temporary_files(
    tmp_path, tiny_target, monkeypatch
):
    def refuse(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    reference = build_here(tiny_target, tmp_path / "reference")
    monkeypatch.setattr(fcntl, "flock", refuse)
    folder = tmp_path / "cache" / reference.dir.name
    folder.mkdir(parents=True)
    other = folder / ".layer7.999.feedbeef.npy.tmp"  # maybe a live builder's: unlocked, we cannot know
    other.write_bytes(b"partial")
    cache = build_here(tiny_target, tmp_path / "cache")
    assert {name: cache.problem(name) for name in NAMES} == dict.fromkeys(NAMES)
    assert {p.name for p in folder.iterdir()} == COMPLETE | {other.name}
    assert all(np.array_equal(cache.open(NAMES)[n], reference.open(NAMES)[n]) for n in NAMES)
