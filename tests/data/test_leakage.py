"""No group (GTSRB-like track) or duplicate cluster ever sits on both sides of any boundary."""

import numpy as np

from mint.data import FakeSource, build_membership, membership_split
from tests.conftest import detector_data


def test_no_track_crosses_any_boundary(tiny_grouped_target):
    dm = detector_data(tiny_grouped_target, val_size=50, calibration_size=60, test_size=100, cache_dir=None)
    plan = dm.plan
    data = plan["data"]
    tracks = data.train.groups
    assert data.manifest["group_aware"] and data.manifest["num_groups"] < len(tracks)
    assert not set(tracks[data.split.members]) & set(tracks[data.split.nonmembers])
    sets = {name: set(data.groups[plan["pool"][rows]]) for name, rows in plan["portions"].items()}
    names = list(sets)
    assert names == ["train", "val", "calibration", "test"]
    for i, a in enumerate(names):
        assert all(not sets[a] & sets[b] for b in names[i + 1 :]), a
    for name, rows in plan["portions"].items():
        assert plan["members"][rows].mean() == 0.5, name  # trimmed to exact balance
    assert plan["sizes"]["test"]["members"] > 80  # as close to the request as track sizes allow


def test_random_split_of_grouped_data_mixes_tracks():
    src = FakeSource(num_classes=43, group_size=6)
    data = build_membership(src, 0.5, 0, True, group_aware=False, duplicates="ignore")
    tracks = data.train.groups
    assert set(tracks[data.split.members]) & set(tracks[data.split.nonmembers])
    assert not data.manifest["group_aware"]


def test_without_groups_or_duplicates_the_split_is_unchanged():
    src = FakeSource(num_classes=100)
    data = build_membership(src, 0.5, 7, True)
    assert data.manifest["duplicates"]["duplicate_clusters"] == 0 and data.groups is None
    assert np.array_equal(data.split.members, membership_split(data.train.labels, 0.5, 7, True).members)
