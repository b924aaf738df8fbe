"""The images of an audit: a folder (with or without class subfolders) or an npz file, read in batches.

Nothing is decoded up front: files are listed, then decoded batch by batch, so a folder of 100k images
is audited in bounded memory. A file that cannot be decoded is skipped and listed, never a crash
halfway; grayscale, RGBA and differently sized images are converted and counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mint.data.images import IMAGE_EXTENSIONS, decode_image, resize_rgb, to_rgb_uint8
from mint.data.known import class_index
from mint.data.npz import check_labels, read_npz
from mint.errors import MintError

NO_LABEL = -1


@dataclass
class AuditBatch:
    """Decoded images (uint8 N x H x W x 3), their labels (`NO_LABEL` if unknown) and names."""

    images: np.ndarray
    labels: np.ndarray
    names: list[str]


@dataclass
class AuditInputs:
    """A listing of the images to audit; `batches()` decodes them and records what it met."""

    path: Path
    image_size: int
    items: list[tuple[str, int]] = field(default_factory=list)  # (file path or "index N", label)
    npz: Path | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    conversions: Counter = field(default_factory=Counter)
    label_note: str = ""

    @property
    def has_labels(self) -> bool:
        return bool(self.items) and all(label != NO_LABEL for _, label in self.items)

    def batches(self, batch_size: int) -> Iterator[AuditBatch]:
        """Decoded batches in listing order; undecodable files are skipped and listed in `skipped`."""
        if self.npz is not None:
            yield from self._npz_batches(batch_size)
            return
        for start in range(0, len(self.items), batch_size):
            images, labels, names = [], [], []
            for name, label in self.items[start : start + batch_size]:
                image = self._decode(name)
                if image is not None:
                    images.append(image)
                    labels.append(label)
                    names.append(name)
            if images:
                yield AuditBatch(np.stack(images), np.array(labels, np.int64), names)

    def _decode(self, name: str) -> np.ndarray | None:
        notes: list[str] = []
        try:
            image = decode_image(name, self.image_size, notes)
        except MintError as err:
            self.skipped.append((name, str(err).removeprefix(f"{name}").lstrip(": ")))
            return None
        for note in notes:
            self.conversions[note] += 1
        return image

    def _npz_batches(self, batch_size: int) -> Iterator[AuditBatch]:
        notes: list[str] = []
        images = to_rgb_uint8(read_npz(self.npz, ("images",))["images"], notes)
        for note in notes:
            self.conversions[f"npz: {note}"] = len(images)
        labels = np.array([label for _, label in self.items], np.int64)
        resize = images.shape[1:3] != (self.image_size, self.image_size)
        if resize:
            self.conversions[f"resized to {self.image_size}x{self.image_size}"] = len(images)
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            if resize:
                chunk = np.stack([resize_rgb(Image.fromarray(im), self.image_size) for im in chunk])
            end = start + len(chunk)
            yield AuditBatch(chunk, labels[start:end], [f"index {i}" for i in range(start, end)])


def _class_index(name: str, class_names: list[str] | None, num_classes: int) -> int:
    if class_names is not None:
        if name not in class_names:
            raise MintError(f"class folder {name!r} is not in --class-names ({', '.join(class_names)})")
        return class_names.index(name)
    index = class_index(name, num_classes)  # (not str.isdigit: '²' is a digit that int() refuses)
    if index is None:
        raise MintError(
            f"class folder {name!r} is not a class index of this target "
            f"(0..{num_classes - 1}). "
            "Name the subfolders by class index, or give the class names in index order with "
            "--class-names (e.g. --class-names airplane,automobile,...)."
        )
    return index


def list_inputs(
    path: str | Path,
    image_size: int,
    num_classes: int,
    class_names: list[str] | None = None,
    use_labels: bool = True,
) -> AuditInputs:
    """List the images of `path` (folder or `.npz`), with labels where they are known.

    A folder with subfolders: each subfolder is a class (named by index, or by `class_names`), and
    files directly in the folder are skipped (listed). A folder without subfolders: unlabelled
    images. An npz: `images` and, optionally, `labels`.
    """
    path = Path(path)
    if not path.exists():
        raise MintError(f"{str(path)!r} does not exist (give an image folder or an .npz file)")
    inputs = AuditInputs(path, image_size)
    if path.is_file():
        _list_npz(inputs, path, num_classes, use_labels)
    else:
        _list_folder(inputs, path, num_classes, class_names)
    if not inputs.items:
        skipped = (
            f" ({len(inputs.skipped)} files skipped: e.g. {inputs.skipped[0][1]})" if inputs.skipped else ""
        )
        raise MintError(f"no images to audit in {path}{skipped}")
    return inputs


def _list_npz(inputs: AuditInputs, path: Path, num_classes: int, use_labels: bool) -> None:
    """The images of an `.npz` (read lazily later), with its labels when it has them and they are used."""
    if path.suffix != ".npz":
        raise MintError(f"{path} is a file but not an .npz; give an image folder or an .npz file")
    wanted = ("labels",) if use_labels else ()
    arrays = read_npz(path, ("images",), optional=wanted, header_only=("images",))
    shape, labelled = arrays["images"][0], "labels" in arrays
    if len(shape) not in (3, 4):
        raise MintError(f"{path}: images must have shape (N, H, W[, C]), got {shape}")
    n = shape[0]
    labels = check_labels(arrays["labels"], n, num_classes, path) if labelled else np.full(n, NO_LABEL)
    inputs.npz, inputs.items = path, [(f"index {i}", int(lab)) for i, lab in enumerate(labels)]
    note = "labels from the npz" if labelled else "the npz has no labels"
    inputs.label_note = note if use_labels else "labels not read (--labels predicted)"


def _list_folder(inputs: AuditInputs, path: Path, num_classes: int, class_names: list[str] | None) -> None:
    """The image files of a folder (class subfolders give labels); every other file is skipped, with why."""
    subdirs = sorted(d for d in path.iterdir() if d.is_dir())
    files = sorted(p for p in path.iterdir() if not p.is_dir())
    if subdirs:
        for d in subdirs:
            label = _class_index(d.name, class_names, num_classes)
            inputs.items += [(str(f), label) for f in sorted(d.rglob("*")) if not f.is_dir()]
        inputs.skipped += [(str(f), "not in a class subfolder") for f in files]
        inputs.label_note = "labels from the class subfolders"
    else:
        inputs.items = [(str(f), NO_LABEL) for f in files]
        inputs.label_note = "no class subfolders: images unlabelled"
    keep = []
    for name, label in inputs.items:
        if Path(name).name.startswith("."):
            continue  # hidden files (.DS_Store, ...) are not part of the set
        if not Path(name).exists():
            inputs.skipped.append((name, "a link to nothing (dangling symbolic link)"))
        elif not Path(name).is_file():  # reading a FIFO would wait forever
            inputs.skipped.append((name, "not a regular file (a FIFO, socket or device)"))
        elif Path(name).suffix.lower() in IMAGE_EXTENSIONS:
            keep.append((name, label))
        else:
            inputs.skipped.append((name, f"not an image file ({', '.join(IMAGE_EXTENSIONS)})"))
    inputs.items = keep
