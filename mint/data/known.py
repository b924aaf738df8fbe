"""Known members and known non-members of a target trained elsewhere, read from the user's files.

The paper's auditing scenario: the model's developer gives the auditor the model and images known to
have been in its training data, and the auditor adds images known not to have been. Each set is an
image folder (class subfolders named by class index give labels; a flat folder gives none), an `.npz`
(`images`, optionally `labels`) or a CSV of `path,label` lines (label optional; paths relative to
the CSV's folder). Images are decoded and resized once, to the target's input size.

An image present in both sets (same pixels after decoding) cannot be a member and a non-member: it
is dropped from both and counted, never silently kept on one side.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mint.data.duplicates import exact_keys
from mint.data.images import IMAGE_EXTENSIONS, decode_image, resize_rgb, to_rgb_uint8
from mint.data.npz import check_labels, read_npz
from mint.errors import MintError
from mint.files import check_input_file

NO_LABEL = -1  # the target's predicted class is used for images without a label


@dataclass
class KnownData:
    """Known members and non-members, decoded: the detector's pool when the target came from elsewhere.

    Attributes:
        images: uint8 (N, S, S, 3), members first.
        labels: int64 (N,), `NO_LABEL` where the files give none.
        members: int64 (N,), 1 for a known member, 0 for a known non-member.
        notes: conversions made and images dropped, for the run's records.
    """

    images: np.ndarray
    labels: np.ndarray
    members: np.ndarray
    notes: list[str] = field(default_factory=list)


def class_index(text: str, num_classes: int) -> int | None:
    """The class index a folder name or CSV label spells (ASCII digits below `num_classes`), else None.

    Not `str.isdigit`: it accepts '²' or '٣', which `int` then refuses (or reads as another number).
    """
    if text.isascii() and text.isdecimal() and int(text) < num_classes:
        return int(text)
    return None


def _folder(root: Path, num_classes: int) -> list[tuple[Path, int]]:
    subdirs = sorted(d for d in root.iterdir() if d.is_dir())
    if not subdirs:
        return [(f, NO_LABEL) for f in sorted(root.iterdir()) if f.suffix.lower() in IMAGE_EXTENSIONS]
    items = []
    for d in subdirs:
        label = class_index(d.name, num_classes)
        if label is None:
            raise MintError(
                f"class folder {str(d)!r} is not a class index of the target (0..{num_classes - 1}); name "
                "the subfolders by class index, or give a CSV of path,label lines"
            )
        items += [(f, label) for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_EXTENSIONS]
    return items


def _csv_text(path: Path) -> str:
    """The CSV's text: UTF-8 (a BOM allowed), no NUL bytes (those mark a binary file)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise MintError(
            f"{path} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}): save "
            "the CSV as UTF-8 (path,label lines)"
        ) from err
    except OSError as err:
        raise MintError(f"cannot read {path}: {err.strerror or err}") from err
    if "\0" in text:
        raise MintError(f"{path} holds NUL bytes: a binary file, not a CSV of path,label lines")
    return text


def _csv(path: Path, num_classes: int) -> list[tuple[Path, int]]:
    items = []
    rows = csv.reader(io.StringIO(_csv_text(path), newline=""))
    try:
        for number, row in enumerate(rows, start=1):
            if not row or (number == 1 and row[0].strip().lower() in ("path", "image", "file")):
                continue  # blank lines and a header
            where = f"{path}, line {number}"
            label = row[1].strip() if len(row) > 1 else ""
            index = class_index(label, num_classes) if label else NO_LABEL
            if index is None:
                raise MintError(f"{where}: label {label!r} is not a class index 0..{num_classes - 1}")
            if not row[0].strip():
                raise MintError(f"{where}: no image path (lines are path,label)")
            image = check_input_file(path.parent / row[0].strip(), f"{where}: image file")
            items.append((image, index))
    except csv.Error as err:
        raise MintError(f"{path} is not a readable CSV ({err})") from err
    if not items:
        raise MintError(f"{path} lists no images: give one path,label line per image")
    return items


def read_known_set(path: str | Path, image_size: int, num_classes: int, notes: list[str]) -> tuple:
    """Images (uint8, resized) and labels of one known set: a folder, an `.npz` or a `.csv`."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise MintError(f"known set not found: {str(path)!r} (give an image folder, an .npz or a .csv)")
    if not path.is_dir():  # a file: a dangling link, a FIFO, a .png or a .txt are told apart here
        check_input_file(path, "known set", "give an image folder, an .npz or a .csv of path,label lines")
        if path.suffix.lower() not in (".npz", ".csv"):
            raise MintError(
                f"known set {str(path)!r} is a file but not an .npz or a .csv; give an image folder, an "
                ".npz (images, optionally labels) or a .csv of path,label lines"
            )
    if path.suffix.lower() == ".npz" and not path.is_dir():
        arrays = read_npz(path, ("images",), optional=("labels",))
        images = to_rgb_uint8(arrays["images"], notes)
        n = len(images)
        labels = (
            check_labels(arrays["labels"], n, num_classes, path)
            if "labels" in arrays
            else np.full(n, NO_LABEL)
        )
        if images.shape[1:3] != (image_size, image_size):
            from PIL import Image

            images = np.stack([resize_rgb(Image.fromarray(im), image_size) for im in images])
            notes.append(f"{path}: resized to {image_size}x{image_size}")
        return images, labels
    items = _folder(path, num_classes) if path.is_dir() else _csv(path, num_classes)
    if not items:
        raise MintError(f"{path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    images = np.stack([decode_image(f, image_size, notes) for f, _ in items])  # names a damaged file
    return images, np.array([label for _, label in items], np.int64)


def known_count(path: str | Path) -> int:
    """How many images a known set holds, without decoding them (to size the held-out sets)."""
    path = Path(path)
    if path.is_dir():
        return sum(1 for f in path.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)
    if path.suffix.lower() == ".csv":
        return len(_csv(path, 2**31))  # (any class index is fine for counting)
    if path.suffix.lower() == ".npz":
        shape, _ = read_npz(path, ("images",), header_only=("images",))["images"]
        return shape[0] if shape else 0
    return 0  # (not a known set: the data module says why)


def load_known(members: str | Path, nonmembers: str | Path, image_size: int, num_classes: int) -> KnownData:
    """Both known sets, decoded; images found in both are dropped from both (and counted in `notes`)."""
    notes: list[str] = []
    (m_images, m_labels), (n_images, n_labels) = (
        read_known_set(p, image_size, num_classes, notes) for p in (members, nonmembers)
    )
    images = np.concatenate([m_images, n_images])
    labels = np.concatenate([m_labels, n_labels])
    member = np.concatenate([np.ones(len(m_images), np.int64), np.zeros(len(n_images), np.int64)])
    keys = exact_keys(images)
    in_members = np.isin(keys, keys[member == 1])
    in_nonmembers = np.isin(keys, keys[member == 0])
    both = in_members & in_nonmembers
    if both.any():
        notes.append(
            f"{int(both[member == 1].sum())} known members and {int(both[member == 0].sum())} known "
            "non-members are the same images (identical pixels): dropped from both sets"
        )
    keep = ~both
    return KnownData(images[keep], labels[keep], member[keep], notes)
