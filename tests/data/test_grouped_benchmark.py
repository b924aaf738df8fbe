"""The grouped GTSRB-like benchmark's generator (`benchmarks/grouped_gtsrb.py`), on generated images."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mint.data import NpzSource
from mint.data.split import membership_split
from mint.errors import MintError

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "grouped_gtsrb.py"
spec = importlib.util.spec_from_file_location("grouped_gtsrb", PATH)
grouped = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grouped)


def smooth_images(n: int, seed: int = 0) -> np.ndarray:
    """Low-frequency random images (like photos, unlike noise): 4 x 4 colours upsampled to 32 x 32."""
    coarse = torch.from_numpy(np.random.default_rng(seed).uniform(30, 225, (n, 3, 4, 4))).float()
    up = F.interpolate(coarse, size=32, mode="bicubic", align_corners=False)
    return up.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.fixture
def sample():
    images = smooth_images(12)
    labels = np.arange(12) % 4
    groups = labels * 1000 + np.arange(12) // 2  # tracks of 2 images, as in the GTSRB sample
    return images, labels, groups


def test_frames_have_the_shape_and_keep_label_and_group(sample):
    images, labels, groups = sample
    out, out_labels, out_groups = grouped.make_grouped(images, labels, groups, 5, seed=0)
    assert out.shape == (60, 32, 32, 3) and out.dtype == np.uint8
    assert out_labels.dtype == np.int64 and out_groups.dtype == np.int64
    assert list(out_labels) == list(np.repeat(labels, 5)) and list(out_groups) == list(np.repeat(groups, 5))
    assert len(np.unique(out_groups)) == len(np.unique(groups))  # tracks become larger groups, no new ones
    ungrouped = grouped.make_grouped(images, labels, None, 3, seed=0)[2]
    assert list(ungrouped) == list(np.repeat(np.arange(12), 3))  # no groups: each image is its own


def test_frames_are_deterministic_per_seed(sample):
    a = grouped.make_grouped(*sample, 4, seed=1)[0]
    assert np.array_equal(a, grouped.make_grouped(*sample, 4, seed=1)[0])
    assert not np.array_equal(a, grouped.make_grouped(*sample, 4, seed=2)[0])


def test_frames_differ_from_their_source_but_stay_close(sample):
    images, labels, groups = sample
    out = grouped.make_grouped(images, labels, groups, 6, seed=0)[0].astype(float)
    frames = out.reshape(12, 6, 32, 32, 3)
    own = np.abs(frames - images[:, None].astype(float)).mean(axis=(2, 3, 4))  # (12, 6)
    assert own.min() > 0.2  # every frame jittered
    assert len({f.tobytes() for f in out.astype(np.uint8)}) == 72  # no two frames identical
    other = np.abs(frames - np.roll(images, 1, axis=0)[:, None].astype(float)).mean(axis=(2, 3, 4))
    assert (own < other).all()  # each frame is nearer its own image than another image
    assert own.max() < 25 and own.mean() < 0.5 * other.mean()  # and much nearer: a frame, not a new image
    brightness = frames.mean(axis=(2, 3, 4)) / images.mean(axis=(1, 2, 3))[:, None]
    assert np.abs(brightness - 1).max() < 0.08  # brightness jitter of a few percent


def test_bad_input_is_refused(sample):
    images, labels, groups = sample
    with pytest.raises(MintError, match="copies"):
        grouped.make_grouped(images, labels, groups, 0, seed=0)
    with pytest.raises(MintError, match="uint8"):
        grouped.make_grouped(images.astype(np.float32), labels, groups, 2, seed=0)
    with pytest.raises(MintError, match="labels"):
        grouped.make_grouped(images, labels[:5], groups, 2, seed=0)


def test_npz_loads_through_npz_source_and_splits_by_group(tmp_path, sample):
    out = grouped.make_grouped(*sample, 4, seed=0)
    path = grouped.write_grouped(tmp_path / "grouped.npz", *out)
    train = NpzSource(str(path), str(path)).load("train")
    assert np.array_equal(train.images, out[0]) and np.array_equal(train.groups, out[2])
    assert np.array_equal(train.labels, out[1])
    split = membership_split(train.labels, 0.5, seed=0, stratify=False, groups=train.groups)
    assert grouped.straddling_groups(train.groups, split.members, split.nonmembers) == 0
    per_image = membership_split(train.labels, 0.5, seed=0, stratify=False)  # groups ignored
    assert grouped.straddling_groups(train.groups, per_image.members, per_image.nonmembers) > 0


def test_make_command_writes_the_npz(tmp_path, sample, capsys):
    images, labels, groups = sample
    source = tmp_path / "sample.npz"
    np.savez(source, images=images, labels=labels, groups=groups)
    grouped.main(["make", "--source", str(source), "--out", str(tmp_path / "g.npz"), "--copies", "3"])
    with np.load(tmp_path / "g.npz", allow_pickle=False) as z:
        assert z["images"].shape == (36, 32, 32, 3) and list(z["groups"]) == list(np.repeat(groups, 3))
    assert "36 images from 12 (3 frames each)" in capsys.readouterr().out


def test_run_command_refuses_missing_data(tmp_path):
    with pytest.raises(MintError, match="--data"):
        grouped.main(["run", "--data", str(tmp_path / "none.npz"), "--out", str(tmp_path / "runs")])


def test_summary_reports_every_scorer_and_the_fit_ratio():
    report = {"auroc": 0.6, "auroc_ci95": [0.55, 0.65], "n_members": 10, "n_nonmembers": 10}
    results = {
        "mint": report,
        "baselines": {"loss": report | {"auroc": 0.55}, "entropy": report | {"auroc": 0.5}},
        "learned_attacks": {"attack_model": report | {"auroc": 0.58}},
        "reference_attacks": {},
        "learned": {"fit_seconds": 3.0},
        "budget": {"mint_seconds": 11.0},
        "target_on_test_set": {"target_member_acc": 0.99, "target_nonmember_acc": 0.9, "target_gap": 0.09},
        "controls": {"class_only": {"auroc": 0.5}},
    }
    info = {"images": 40, "source_groups": 4, "split_groups": 4, "duplicates": {}, "members": 20}
    info |= {"nonmembers": 20, "straddling_groups": 0, "fit_seconds": 1.0, "val_member_acc": 0.99}
    s = grouped.summarize(results, info | {"val_test_split_acc": 0.9}, 12.0, 2.0, "t.ckpt", "d.ckpt")
    assert s["auroc"] == {
        "mint": 0.6, "baselines.loss": 0.55, "baselines.entropy": 0.5, "learned_attacks.attack_model": 0.58
    }  # fmt: skip
    assert s["mint_minus_loss"] == pytest.approx(0.05) and s["learned_over_detector_fit"] == 0.25
    text = grouped.format_summary(s)
    assert "MINT - loss = +0.050" in text and "3.0 / 12.0 s = 0.250" in text
    del results["learned"]  # a report without the learned attacks' record
    assert "not in the report" in grouped.format_summary(
        grouped.summarize(results, s["target"], 12.0, 2.0, "t", "d")
    )
