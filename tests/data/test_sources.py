import numpy as np
import pytest
from PIL import Image

from mint.data import (
    FakeSource,
    ImageFolderSource,
    ImageSet,
    NpzSource,
    SampleSource,
    TargetDataModule,
    TorchvisionSource,
)
from mint.data.sources import source_from_config
from mint.errors import MintError


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_bundled_sample_is_real_cifar10_read_as_npz():
    src = SampleSource()
    train, test = src.load("train"), src.load("test")
    assert train.images.shape == (2000, 32, 32, 3) and train.images.dtype == np.uint8
    assert len(test) == 500 and src.num_classes == 10 and src.image_size == 32
    assert np.bincount(train.labels).min() > 150  # every class present, roughly balanced
    assert train.images.std() > 40  # natural images, not a constant


def test_npz_source_reads_groups(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    path = write_npz(
        tmp_path / "g.npz", images=images, labels=np.zeros(6, np.int64), groups=np.arange(6) // 2
    )
    assert list(NpzSource(path, path).load("train").groups) == [0, 0, 1, 1, 2, 2]


def test_fake_source_is_reproducible_and_groups_frames_of_one_image():
    src = FakeSource(num_classes=43, train_size=300, test_size=50, image_size=16, group_size=5, seed=3)
    train, again = src.load("train"), source_from_config(src.config()).load("train")
    assert train.fingerprint() == again.fingerprint() and src.load("test").groups is None
    assert train.images.shape == (300, 16, 16, 3) and src.num_classes == 43
    sizes = np.bincount(train.groups)
    assert sizes.max() == 5 and sizes.min() >= 1 and len(sizes) < 300
    for g in np.flatnonzero(sizes > 1)[:10]:
        frames = train.images[train.groups == g].astype(int)
        assert np.abs(frames - frames[0]).max() <= 12  # near-identical frames, one label
        assert len(set(train.labels[train.groups == g])) == 1
    other = FakeSource(num_classes=43, train_size=300, test_size=50, image_size=16, group_size=5, seed=4)
    assert other.load("train").fingerprint() != train.fingerprint()


def test_npz_without_images_or_labels(tmp_path):
    bad = write_npz(tmp_path / "bad.npz", pixels=np.zeros((2, 8, 8, 3), np.uint8), labels=np.zeros(2))
    with pytest.raises(MintError, match=r"has no array \['images'\]"):
        NpzSource(bad, bad).load("train")


def test_npz_with_mismatched_lengths(tmp_path):
    bad = write_npz(
        tmp_path / "bad.npz", images=np.zeros((3, 8, 8, 3), np.uint8), labels=np.zeros(2, np.int64)
    )
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        NpzSource(bad, bad).load("train")


def test_missing_npz_says_where_it_looked(tmp_path):
    with pytest.raises(MintError, match="nope.npz"):
        NpzSource(str(tmp_path / "nope.npz"), str(tmp_path / "nope.npz")).load("train")


@pytest.mark.parametrize("shape", [(4, 8, 8), (4, 8, 8, 1), (4, 8, 8, 4)])
def test_grayscale_and_rgba_are_converted(shape):
    with pytest.warns(UserWarning, match="converted to RGB"):
        data = ImageSet(np.full(shape, 7, np.uint8), np.zeros(4, np.int64))
    assert data.images.shape == (4, 8, 8, 3) and data.notes


def test_groups_of_wrong_length_or_type():
    images, labels = np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="one id per image"):
        ImageSet(images, labels, groups=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="integer array"):
        ImageSet(images, labels, groups=np.zeros(4, np.float32))


def test_unknown_torchvision_name_lists_valid_ones():
    with pytest.raises(ValueError, match="cifar10, cifar100, gtsrb"):
        TorchvisionSource("mnist")


def test_missing_torchvision_data_says_how_to_fix(tmp_path):
    src = TorchvisionSource("cifar10", root=str(tmp_path), download=False)
    with pytest.raises(MintError, match=r"not found under .*download: true"):
        src.load("train")


def make_folder(root, classes, n=3, size=(10, 12), mode="RGB"):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.new(mode, size, color=40 * i).save(root / c / f"{i:03d}_{i}.png")


def test_image_folder_converts_modes_and_sizes(tmp_path):
    make_folder(tmp_path / "train", ["cat", "dog"], mode="L")
    make_folder(tmp_path / "test", ["cat", "dog"], mode="RGBA", size=(40, 40))
    src = ImageFolderSource(str(tmp_path / "train"), str(tmp_path / "test"), image_size=16)
    train, test = src.load("train"), src.load("test")
    assert train.images.shape == (6, 16, 16, 3) and test.images.shape == (6, 16, 16, 3)
    assert list(train.labels) == [0, 0, 0, 1, 1, 1] and src.num_classes == 2
    assert any("converted" in note for note in train.notes)


def test_image_folder_empty_class_is_a_clear_error(tmp_path):
    make_folder(tmp_path / "train", ["cat"])
    (tmp_path / "train" / "dog").mkdir()
    with pytest.raises(ValueError, match="dog holds no images"):
        ImageFolderSource(str(tmp_path / "train")).load("train")


def test_image_folder_group_pattern(tmp_path):
    make_folder(tmp_path / "train", ["a", "b"], n=4)
    groups = ImageFolderSource(str(tmp_path / "train"), group_pattern=r"^(\d+)_").load("train").groups
    assert len(np.unique(groups)) == 8
    with pytest.raises(ValueError, match="matches no group in 8 of 8"):
        ImageFolderSource(str(tmp_path / "train"), group_pattern=r"^x(\d+)").load("train")


def test_fewer_members_than_a_batch(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    path = write_npz(tmp_path / "s.npz", images=images, labels=np.arange(20) % 2)
    dm = TargetDataModule(NpzSource(path, path), batch_size=64)
    with pytest.raises(ValueError, match="only 10 member images for a batch_size of 64"):
        dm.setup("fit")


def test_member_fraction_checked_at_construction(tmp_path):
    with pytest.raises(ValueError, match=r"member_fraction must be in \(0, 1\), got 1.0"):
        TargetDataModule(NpzSource("a", "b"), member_fraction=1.0)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        TargetDataModule(NpzSource("a", "b"), batch_size=0)
