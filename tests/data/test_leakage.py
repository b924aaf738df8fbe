"""No group (GTSRB-like track) or duplicate cluster ever sits on both sides of any boundary."""

import numpy as np

from mint.data import FakeSource, build_membership, membership_split
from tests.conftest import detector_data


def test_no_track_crosses_any_boundary(tiny_grouped_target):
    dm = detector_data(tiny_grouped_target, val_size=50, calibration_size=60, test_size=100, cache_dir=None)
    plan = dm.sets
    data = plan.data
    tracks = data.train.groups
    assert data.manifest["group_aware"] and data.manifest["num_groups"] < len(tracks)
    assert not set(tracks[data.split.members]) & set(tracks[data.split.nonmembers])
    sets = {name: set(data.groups[plan.pool[rows]]) for name, rows in plan.portions.items()}
    names = list(sets)
    assert names == ["train", "val", "calibration", "test"]
    for i, a in enumerate(names):
        assert all(not sets[a] & sets[b] for b in names[i + 1 :]), a
    for name, rows in plan.portions.items():
        assert plan.members[rows].mean() == 0.5, name  # trimmed to exact balance
        labels, members = plan.labels[rows], plan.members[rows]
        on_each_side = [np.bincount(labels[members == side], minlength=43) for side in (1, 0)]
        assert np.array_equal(*on_each_side), name  # and the same class mix on both sides
    # as close to the request as groups allow: trimming every class to balance costs about a quarter
    # here (43 classes, 100 images a side: about 2 per class, in groups of up to 3)
    assert plan.sizes["test"]["members"] > 65


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


def test_held_out_sets_do_not_move_with_train_size_on_grouped_data(tiny_grouped_target):
    """Group sizes make the two sides differ, and each portion is trimmed to balance: the trimming
    of the training set must not change which images are held out."""
    from mint.data import DetectorDataModule

    sizes = {"val_size": 50, "calibration_size": 40, "test_size": 100, "cache_dir": None}
    plans = [DetectorDataModule(str(tiny_grouped_target), train_size=n, **sizes).sets for n in (100, 300)]
    for name in ("test", "calibration", "val"):
        a, b = (plan.pool[plan.portions[name]] for plan in plans)
        assert np.array_equal(a, b), name
    assert len(plans[0].portions["train"]) < len(plans[1].portions["train"])
