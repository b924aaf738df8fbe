"""Known members and non-members of a target trained elsewhere, from folders, npz files and CSVs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mint.data import SampleSource
from mint.data.known import NO_LABEL, load_known
from mint.errors import MintError

IMAGES = SampleSource().load("test").images[:30]


def _save(folder, images, names):
    folder.mkdir(parents=True, exist_ok=True)
    for image, name in zip(images, names, strict=True):
        Image.fromarray(image).save(folder / name)


def test_every_format_reads_the_same_images_and_shared_ones_are_dropped(tmp_path):
    # members: a folder with class subfolders (10 images); non-members: 10 in an npz, 10 in a CSV,
    # and 3 of the members copied into the non-member CSV (they must go from both sides)
    for i in range(10):
        _save(tmp_path / "members" / str(i % 3), IMAGES[i : i + 1], [f"m{i}.png"])
    np.savez(tmp_path / "non.npz", images=IMAGES[10:20], labels=np.arange(10) % 10)
    _save(tmp_path / "csv", [*IMAGES[20:30], *IMAGES[:3]], [f"n{i}.png" for i in range(13)])
    lines = [
        "path,label",
        *[f"csv/n{i}.png,{i % 10}" for i in range(10)],
        "csv/n10.png,",
        "csv/n11.png",
        "csv/n12.png,2",
    ]
    (tmp_path / "non.csv").write_text("\n".join(lines) + "\n")

    known = load_known(tmp_path / "members", tmp_path / "non.csv", 32, 10)
    assert known.images.shape == (7 + 10, 32, 32, 3)  # 10 members - 3, 13 non-members - 3
    assert known.members.sum() == 7 and (known.members == 0).sum() == 10
    assert "3 known members and 3 known non-members are the same images" in " ".join(known.notes)
    assert set(known.labels[known.members == 1]) <= {0, 1, 2}
    from_npz = load_known(tmp_path / "members", tmp_path / "non.npz", 32, 10)
    assert np.array_equal(from_npz.images[from_npz.members == 0], IMAGES[10:20])
    flat = tmp_path / "flat"
    _save(flat, IMAGES[:4], [f"{i}.png" for i in range(4)])
    unlabelled = load_known(flat, tmp_path / "non.npz", 16, 10)  # resized to the target's input
    assert unlabelled.images.shape[1:] == (16, 16, 3) and (unlabelled.labels[:4] == NO_LABEL).all()


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: (p / "m" / "cat").mkdir(parents=True), "class folder .* is not a class index"),
        (lambda p: (p / "m.csv").write_text("a.png,12\n"), "line 1: label '12' is not a class index"),
        (lambda p: (p / "m.csv").write_text("missing.png,1\n"), "missing.png.* not found"),
        (lambda p: np.savez(p / "m.npz", images=IMAGES[:4], labels=np.array([0, 1, 2, 99])), "outside 0..9"),
        (lambda p: (p / "m").mkdir(), "holds no images"),
    ],
    ids=["class-names", "csv-label", "csv-missing-file", "npz-labels", "empty"],
)
def test_unusable_known_sets_say_why(tmp_path, make, words):
    make(tmp_path)
    np.savez(tmp_path / "non.npz", images=IMAGES[10:20])
    members = next(p for p in (tmp_path / "m", tmp_path / "m.csv", tmp_path / "m.npz") if p.exists())
    with pytest.raises(MintError, match=words):
        load_known(members, tmp_path / "non.npz", 32, 10)
    with pytest.raises(MintError, match="known set not found"):
        load_known(tmp_path / "nope", tmp_path / "non.npz", 32, 10)
