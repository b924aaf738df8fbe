import numpy as np
import pytest

from mint.data.split import index_hash, membership_split, partition


def labels_of(n=1000, classes=10, seed=0):
    return np.random.default_rng(seed).integers(0, classes, n)


def test_split_is_deterministic_disjoint_and_complete():
    labels = labels_of()
    a, b = membership_split(labels, 0.5, seed=3), membership_split(labels, 0.5, seed=3)
    assert np.array_equal(a.members, b.members) and np.array_equal(a.nonmembers, b.nonmembers)
    assert not set(a.members) & set(a.nonmembers)
    assert np.array_equal(np.sort(np.concatenate([a.members, a.nonmembers])), np.arange(len(labels)))
    assert len(a.members) == 500
    other = membership_split(labels, 0.5, seed=4)
    assert not np.array_equal(a.members, other.members)
    assert a.record()["members_sha256"] == index_hash(a.members)


def test_split_is_stratified():
    labels = labels_of(2000, 10, seed=1)
    split = membership_split(labels, 0.3, seed=0, stratify=True)
    share = np.bincount(labels[split.members], minlength=10) / np.bincount(labels, minlength=10)
    assert np.all(np.abs(share - 0.3) < 0.01)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_member_fraction_outside_open_interval_is_refused(fraction):
    with pytest.raises(ValueError, match=r"member_fraction must be in \(0, 1\)"):
        membership_split(labels_of(), fraction)


def test_groups_never_cross_the_boundary():
    groups = np.repeat(np.arange(100), 10)  # 100 tracks of 10 frames
    labels = groups // 10  # a track belongs to one class
    split = membership_split(labels, 0.5, seed=0, groups=groups)
    assert not set(groups[split.members]) & set(groups[split.nonmembers])
    assert len(split.members) == 500


def test_partition_sizes_are_exact_and_portions_disjoint():
    labels = labels_of(1000)
    parts = partition(np.arange(1000), labels, [700, 100, 200], seed=0)
    assert [len(p) for p in parts] == [700, 100, 200]
    assert len(set(np.concatenate(parts))) == 1000
    with pytest.raises(ValueError, match="cannot draw portions"):
        partition(np.arange(10), labels[:10], [8, 5], seed=0)


def test_a_group_larger_than_any_portion_is_a_clear_error():
    groups = np.zeros(100, np.int64)
    with pytest.raises(ValueError, match="group 0 holds 100 images"):
        partition(np.arange(100), np.zeros(100, np.int64), [50, 50], seed=0, groups=groups)


def test_duplicates_planted_across_the_boundary_are_merged_or_dropped():
    from mint.data import ImageSet, SampleSource, build_membership
    from mint.data.sources import Source

    images = SampleSource().load("train").images[:400].copy()
    images[200:220] = images[:20]  # exact copies
    near = images[:20].astype(np.int16) + 3  # a brighter copy: every pixel off by three
    images[220:240] = np.clip(near, 0, 255).astype(np.uint8)
    labels = np.arange(400) % 4

    class Planted(Source):
        image_size, num_classes = 32, 4

        def __init__(self):
            self._init_args = {}

        def load(self, split):
            return ImageSet(images, labels) if split == "train" else ImageSet(images[:0], labels[:0])

    merged = build_membership(Planted(), 0.5, 0, True, duplicates="merge")
    members = set(merged.split.members)
    for orig in range(20):
        sides = {(i in members) for i in (orig, orig + 200, orig + 220)}
        assert len(sides) == 1, orig  # all three copies on one side
    report = merged.manifest["duplicates"]
    assert report["exact_duplicate_images"] == 40 and report["duplicate_images"] == 60
    assert report["duplicate_clusters"] == 20
    dropped = build_membership(Planted(), 0.5, 0, True, duplicates="drop")
    kept = np.concatenate([dropped.split.members, dropped.split.nonmembers])
    assert len(kept) == 360 and not set(range(200, 240)) & set(kept)
    ignored = build_membership(Planted(), 0.5, 0, True, duplicates="ignore")
    assert ignored.manifest["duplicates"] == {"action": "ignore"}
    assert np.array_equal(ignored.split.members, membership_split(labels, 0.5, 0, True).members)


def test_merge_groups_connects_shared_ids():
    from mint.data.duplicates import merge_groups

    tracks = np.array([0, 0, 1, 1, 2, 2])
    dupes = np.array([0, 1, 2, 1, 3, 4])  # image 1 and image 3 are copies: tracks 0 and 1 join
    comp = merge_groups(tracks, dupes)
    assert comp[0] == comp[1] == comp[2] == comp[3] and comp[4] == comp[5] != comp[0]
