"""A cache folder that cannot be written is refused before any work; a complete one is still read.

`tests/tasks/test_preflight.py` covers the command line's check of `cache_dir` itself (and skips
its permission-bit case as root); these also run as root (`read_only`) and cover the cache's own
folder: `cache_dir` writable, the folder of one target's cache inside it not.
"""

from __future__ import annotations

import numpy as np
import pytest

from mint.cli import main
from mint.data import ActivationCache
from tests.conftest import detector_args, detector_data, read_only

SIZES = {"val_size": 20, "test_size": 40}


@pytest.fixture
def extractions(monkeypatch) -> list[list[str]]:
    """The arrays of every extraction started in this test."""
    calls: list[list[str]] = []
    extract = ActivationCache._extract

    def recorded(self, target, images, rows, batch_size, names, labels=None):
        calls.append(list(names))
        return extract(self, target, images, rows, batch_size, names, labels)

    monkeypatch.setattr(ActivationCache, "_extract", recorded)
    return calls


def test_a_read_only_cache_dir_is_refused_before_any_work(tmp_path, tiny_target, extractions):
    root = tmp_path / "shared"
    root.mkdir()
    with read_only(root):
        args = detector_args(tmp_path / "logs", tiny_target, f"--data.cache_dir={root / 'cache'}")
        with pytest.raises(PermissionError, match="cannot write the activation cache.*is not writable"):
            main(["fit", *args])
        assert not (tmp_path / "logs").exists()  # refused before the run folder was made
        data = detector_data(tiny_target, cache_dir=str(root / "cache"), **SIZES)
        with pytest.raises(PermissionError, match="cannot write the activation cache.*cache_dir: null"):
            data.prepare_data()  # the library alone refuses it too
    assert extractions == [] and list(root.iterdir()) == []


def test_a_read_only_cache_is_read_but_never_extended(tmp_path, tiny_target, extractions):
    def data(layers):
        return detector_data(tiny_target, layers, cache_dir=str(tmp_path / "cache"), **SIZES)

    built = data(("layer7",))
    built.prepare_data()
    folder = built.cache().dir
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    expected = {name: np.array(a) for name, a in built.cache().open(["layer7", "logits"]).items()}
    with read_only(folder):
        reader = data(("layer7",))
        reader.setup("fit")  # complete: opened without writing anything, not even taking the lock
        arrays = reader.cache().open(["layer7", "logits"])
        assert all(np.array_equal(arrays[name], expected[name]) for name in expected)
        with pytest.raises(PermissionError, match="cannot write the activation cache"):
            data(("layer5", "layer7")).prepare_data()  # layer5 missing: refused before extracting it
    assert extractions == [["layer7", "logits"]]  # the first build only
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
