"""The detector's data: balanced disjoint sets, a test set that stays put, and the activation cache."""

import json

import numpy as np
import pytest
import torch

from mint.data import ActivationCache, DetectorDataModule, FakeSource
from tests.conftest import detector_data


def test_cache_is_reused_extended_and_corruption_is_detected(tmp_path, tiny_target):
    def setup(layers):
        dm = detector_data(tiny_target, layers, val_size=20, test_size=40, cache_dir=str(tmp_path / "c"))
        dm.setup("fit")
        return dm

    dm = setup(["layer3", "layer7"])
    cache = dm.cache()
    assert cache.problem("layer3") is None and cache.problem("logits") is None
    arrays = cache.open(["layer3", "logits"])
    assert arrays["layer3"].dtype == np.float16 and arrays["logits"].dtype == np.float32
    assert arrays["layer3"].shape[0] == len(dm.sets.pool)
    mtime = (cache.dir / "layer3.npy").stat().st_mtime_ns
    setup(["layer3", "layer5"])  # one more layer: added to the same folder, layer3 reused
    assert (cache.dir / "layer3.npy").stat().st_mtime_ns == mtime and cache.problem("layer5") is None
    with open(cache.dir / "layer3.npy", "r+b") as f:  # flip bytes in the middle
        f.seek(2000)
        f.write(b"\xff" * 16)
    assert "corrupted" in cache.problem("layer3")
    with pytest.warns(UserWarning, match="layer3 is corrupted.*rebuilding"):
        setup(["layer3"])
    assert cache.problem("layer3") is None
    (cache.dir / "layer5.npy").write_bytes(b"torn")
    assert "truncated" in cache.problem("layer5")
    stale = ActivationCache(tmp_path / "c", {"other": 1})
    stale.dir.mkdir()
    (stale.dir / "layer3.json").write_text(json.dumps({"key": {"old": 1}, "name": "layer3"}))
    assert stale.problem("layer3").startswith("stale")


def test_on_the_fly_matches_the_cache(tmp_path, tiny_target):
    cached = detector_data(tiny_target, val_size=20, test_size=40, cache_dir=str(tmp_path / "c"))
    fly = detector_data(tiny_target, val_size=20, test_size=40, cache_dir=None)
    cached.setup(), fly.setup()
    a = next(iter(cached.test_dataloader()))
    b = next(iter(fly.test_dataloader()))
    order = torch.argsort(b["id"])
    acts = fly.target(b["image"])["layer7"][order]
    assert torch.equal(a["id"], b["id"][order])
    assert torch.allclose(a["acts"]["layer7"], acts, rtol=1e-2, atol=1e-2)  # float16 cache


def test_data_of_another_source_is_refused(tiny_target):
    dm = detector_data(tiny_target, source=FakeSource(num_classes=10), cache_dir=None)
    with pytest.raises(ValueError, match="not the data the target was trained on"):
        dm.setup()


def test_too_few_images_for_the_requested_sizes(tiny_target):
    dm = detector_data(tiny_target, val_size=500, test_size=600, cache_dir=None)
    with pytest.raises(ValueError, match="not enough images for the requested sets.*only 1000 members"):
        dm.setup()


def test_sizes_are_checked_when_the_data_module_is_made():
    with pytest.raises(ValueError, match="test_size must be >= 1, got 0"):
        DetectorDataModule(test_size=0)
    with pytest.raises(ValueError, match="calibration_size must be >= 0, got -1"):
        DetectorDataModule(calibration_size=-1)


def test_without_a_target_the_data_module_says_how_to_name_one():
    with pytest.raises(ValueError, match="name the target once: `target_ckpt`.*or `target`"):
        DetectorDataModule()


def test_sets_are_balanced_and_disjoint(tiny_target):
    plan = detector_data(tiny_target, val_size=50, calibration_size=30, test_size=100, cache_dir=None).sets
    images = {n: set(plan.pool[rows]) for n, rows in plan.portions.items()}
    names = list(images)
    assert names == ["train", "val", "calibration", "test"]
    for i, a in enumerate(names):
        assert all(not images[a] & images[b] for b in names[i + 1 :]), a
    for name, rows in plan.portions.items():
        assert plan.members[rows].mean() == 0.5, name
    assert len(plan.portions["calibration"]) == 60 and len(plan.portions["test"]) == 200
    members = set(plan.data.split.members)
    assert all((idx in members) == bool(m) for idx, m in zip(plan.pool, plan.members, strict=True))


def test_test_set_does_not_depend_on_train_size(tiny_target):
    sizes = {"val_size": 50, "test_size": 100, "cache_dir": None}
    a = DetectorDataModule(str(tiny_target), train_size=100, **sizes).sets
    b = DetectorDataModule(str(tiny_target), train_size=600, **sizes).sets
    for name in ("test", "val"):
        assert np.array_equal(a.pool[a.portions[name]], b.pool[b.portions[name]]), name
    assert len(a.portions["train"]) == 200 and len(b.portions["train"]) == 1200
