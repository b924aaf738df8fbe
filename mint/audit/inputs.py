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
from PIL import Image, UnidentifiedImageError

from mint.data.images import IMAGE_EXTENSIONS, resize_rgb, to_rgb_uint8

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
        try:
            with Image.open(name) as im:
                im.load()  # decode now: a truncated file fails here, not later
                if im.mode != "RGB":
                    self.conversions[f"{im.mode} converted to RGB"] += 1
                if im.size != (self.image_size, self.image_size):
                    self.conversions[f"resized to {self.image_size}x{self.image_size}"] += 1
                return resize_rgb(im, self.image_size)
        except (UnidentifiedImageError, OSError, ValueError) as err:
            self.skipped.append((name, f"cannot be decoded as an image ({type(err).__name__}: {err})"))
            return None

    def _npz_batches(self, batch_size: int) -> Iterator[AuditBatch]:
        with np.load(self.npz, allow_pickle=False) as z:
            images = z["images"]
        labels = np.array([label for _, label in self.items], np.int64)
        recolour = images.ndim == 3 or images.shape[-1] != 3 or images.dtype != np.uint8
        resize = images.shape[1:3] != (self.image_size, self.image_size)
        if recolour:
            self.conversions[f"npz {images.dtype} {tuple(images.shape[1:])} converted to RGB uint8"] = len(
                images
            )
        if resize:
            self.conversions[f"resized to {self.image_size}x{self.image_size}"] = len(images)
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            if recolour or resize:
                chunk = _to_rgb_resized(chunk, self.image_size)
            end = start + len(chunk)
            yield AuditBatch(chunk, labels[start:end], [f"index {i}" for i in range(start, end)])


def _to_rgb_resized(chunk: np.ndarray, size: int) -> np.ndarray:

    rgb = to_rgb_uint8(chunk)
    if rgb.shape[1:3] == (size, size):
        return rgb
    return np.stack([resize_rgb(Image.fromarray(im), size) for im in rgb])


def _class_index(name: str, class_names: list[str] | None, num_classes: int) -> int:
    if class_names is not None:
        if name not in class_names:
            raise SystemExit(
                f"mint audit: class folder {name!r} is not in --class-names ({', '.join(class_names)})"
            )
        return class_names.index(name)
    if not name.isdigit() or int(name) >= num_classes:
        raise SystemExit(
            f"mint audit: class folder {name!r} is not a class index of this target "
            f"(0..{num_classes - 1}). "
            "Name the subfolders by class index, or give the class names in index order with "
            "--class-names (e.g. --class-names airplane,automobile,...)."
        )
    return int(name)


def list_inputs(
    path: str | Path, image_size: int, num_classes: int, class_names: list[str] | None = None
) -> AuditInputs:
    """List the images of `path` (folder or `.npz`), with labels where they are known.

    A folder with subfolders: each subfolder is a class (named by index, or by `class_names`), and
    files directly in the folder are skipped (listed). A folder without subfolders: unlabelled
    images. An npz: `images` and, optionally, `labels`.
    """
    path = Path(path)
    if not path.exists():
        raise SystemExit(f"mint audit: {str(path)!r} does not exist (give an image folder or an .npz file)")
    inputs = AuditInputs(path, image_size)
    if path.is_file():
        if path.suffix != ".npz":
            raise SystemExit(
                f"mint audit: {path} is a file but not an .npz; give an image folder or an .npz file"
            )
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z:
                raise SystemExit(f"mint audit: {path} has no `images` array (it holds {sorted(z.keys())})")
            n, labelled = len(z["images"]), "labels" in z
            labels = z["labels"].astype(np.int64) if labelled else np.full(n, NO_LABEL)
        if len(labels) != n:
            raise SystemExit(f"mint audit: {path} holds {n} images but {len(labels)} labels")
        if n and labels.max() >= num_classes:
            raise SystemExit(
                f"mint audit: {path} has label {labels.max()}, but the target has {num_classes} classes"
            )
        inputs.npz, inputs.items = path, [(f"index {i}", int(lab)) for i, lab in enumerate(labels)]
        inputs.label_note = "labels from the npz" if labelled else "the npz has no labels"
    else:
        subdirs = sorted(d for d in path.iterdir() if d.is_dir())
        files = sorted(p for p in path.iterdir() if p.is_file())
        if subdirs:
            for d in subdirs:
                label = _class_index(d.name, class_names, num_classes)
                inputs.items += [(str(f), label) for f in sorted(d.rglob("*")) if f.is_file()]
            inputs.skipped += [(str(f), "not in a class subfolder") for f in files]
            inputs.label_note = "labels from the class subfolders"
        else:
            inputs.items = [(str(f), NO_LABEL) for f in files]
            inputs.label_note = "no class subfolders: images unlabelled"
        keep = []
        for name, label in inputs.items:
            if Path(name).name.startswith("."):
                continue  # hidden files (.DS_Store, ...) are not part of the set
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                keep.append((name, label))
            else:
                inputs.skipped.append((name, f"not an image file ({', '.join(IMAGE_EXTENSIONS)})"))
        inputs.items = keep
    if not inputs.items:
        raise SystemExit(
            f"mint audit: no images to audit in {path}"
            + (
                f" ({len(inputs.skipped)} files skipped: e.g. {inputs.skipped[0][1]})"
                if inputs.skipped
                else ""
            )
        )
    return inputs
