"""Hostile .npz files, given to `mint audit` and to a target's `NpzSource`."""

from __future__ import annotations

import struct
import zipfile

import numpy as np
import pytest

from mint.data import SampleSource
from tests.conftest import fit_args
from tests.hostile.conftest import leftovers

IMAGES = SampleSource().load("test").images[:40]  # uint8 (40, 32, 32, 3)
LABELS = np.arange(40) % 10


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _huge_header(path):
    """An npz whose `images.npy` claims 3 TB in its header and holds 16 bytes."""
    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000, 1000, 1000, 3), }"
    header = header.ljust(118) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(16)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("images.npy", npy)
    return path


CASES = {
    "no images array": (dict(pictures=IMAGES), ["no array", "images"]),
    "object array": (dict(images=np.array([IMAGES[0], "x"], dtype=object)), ["Python objects"]),
    "lengths differ": (dict(images=IMAGES, labels=LABELS[:30]), ["40 images but 30 labels"]),
    "NaN pixels": (dict(images=np.where(IMAGES > 250, np.nan, IMAGES / 255.0)), ["NaN or infinite"]),
    "inf pixels": (dict(images=np.full((4, 32, 32, 3), np.inf)), ["NaN or infinite"]),
    "floats just above 1": (dict(images=np.minimum(IMAGES / 255.0 * 1.01, 1.01)), [r"\[0, 1.01\]", "clip"]),
    "floats out of range": (dict(images=IMAGES / 255.0 * 2 - 1), ["span", "normalization"]),
    "16-bit integers": (dict(images=IMAGES.astype(np.uint16) * 257), ["257"]),
    "channels first": (dict(images=IMAGES.transpose(0, 3, 1, 2).repeat(2, axis=2)), ["channels-first"]),
    "five channels": (dict(images=np.zeros((4, 32, 32, 5), np.uint8)), [r"\(N, H, W"]),
    "labels 2-D": (dict(images=IMAGES, labels=LABELS[:, None]), ["1-D array of integers"]),
    "labels -1": (dict(images=IMAGES, labels=LABELS - 1), ["outside 0..9", "--labels predicted"]),
    "labels 2.7": (dict(images=IMAGES, labels=LABELS + 0.7), ["integers", "float64"]),
    "labels too large": (dict(images=IMAGES, labels=LABELS + 5), ["outside 0..9"]),
    "string pixels": (dict(images=np.array([["a"]] * 4)), ["shape|numbers"]),
}


@pytest.mark.parametrize("name", CASES)
def test_audit_refuses_a_bad_npz_naming_the_problem(tmp_path, refused, tiny_detector, name):
    arrays, words = CASES[name]
    path = _npz(tmp_path / "set.npz", **arrays)
    out = tmp_path / "report"
    refused(
        ["audit", "--ckpt", tiny_detector, "--images", path, "--output", out, "--no-progress-bar"], *words
    )
    assert not out.exists() and not leftovers(tmp_path)


def test_audit_refuses_a_forged_header_and_a_file_that_is_not_an_npz(tmp_path, refused, tiny_detector):
    audit = ["audit", "--ckpt", tiny_detector, "--output", tmp_path / "o", "--no-progress-bar", "--images"]
    refused([*audit, _huge_header(tmp_path / "huge.npz")], "claims", "but the file holds")
    (tmp_path / "fake.npz").write_bytes(b"this is text")
    refused([*audit, tmp_path / "fake.npz"], "not a readable .npz")
    refused([*audit, _npz(tmp_path / "empty.npz", images=np.zeros((0, 32, 32, 3), np.uint8))], "no images")
    assert not (tmp_path / "o").exists()


def test_audit_accepts_float_images_and_ignores_bad_labels_when_told(tmp_path, tiny_detector, capsys):
    from mint.audit.command import main

    floats = _npz(tmp_path / "f.npz", images=IMAGES / 255.0, labels=LABELS - 1)  # labels unusable
    summary = main(["--ckpt", str(tiny_detector), "--images", str(floats), "--output", str(tmp_path / "f"),
                    "--labels", "predicted", "--no-progress-bar"])  # fmt: skip
    assert summary["n_audited"] == 40 and summary["labels"] == "predicted"
    assert "scaled by 255" in " ".join(summary["conversions"]) and "scaled by 255" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["NaN pixels", "labels -1", "lengths differ", "object array"])
def test_a_target_on_a_bad_npz_is_refused_before_training(tmp_path, refused, name):
    arrays, words = CASES[name]
    _npz(tmp_path / "train.npz", **({"labels": LABELS} | arrays))
    _npz(tmp_path / "test.npz", images=IMAGES, labels=LABELS)
    source = ["--data.source=mint.data.NpzSource", f"--data.source.train={tmp_path / 'train.npz'}",
              f"--data.source.test={tmp_path / 'test.npz'}"]  # fmt: skip
    args = fit_args(tmp_path, "--trainer.max_epochs=1", "--data.num_workers=0")
    args = [a for a in args if not a.startswith("--data.source")] + source
    refused(args, "train.npz", *[w for w in words if "predicted" not in w and "0..9" not in w])
    assert not list(tmp_path.glob("target_cifar10/version_*"))


def test_a_compressed_npz_bomb_is_refused_before_decompressing(tmp_path, refused, tiny_detector):
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, images=np.zeros((6000, 256, 256, 3), np.uint8))  # 1.1 GiB in 1.1 MB
    assert bomb.stat().st_size < 2_000_000
    refused(
        ["audit", "--ckpt", tiny_detector, "--images", bomb, "--output", tmp_path / "o"], "expands", "-fold"
    )


def test_integer_masks_are_not_read_as_images(tmp_path, refused, tiny_detector):
    masks = _npz(tmp_path / "m.npz", images=(IMAGES > 128).astype(np.int64))  # 0/1 values
    refused(
        ["audit", "--ckpt", tiny_detector, "--images", masks, "--output", tmp_path / "o"], "masks", "too dark"
    )
