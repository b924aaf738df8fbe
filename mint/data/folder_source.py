"""A user's own images in class folders as a data source (`train/<class>/*.png`, optionally `test/`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mint.data.images import IMAGE_EXTENSIONS, ImageSet, decode_image
from mint.data.sources import Source, Split
from mint.errors import MintError


class ImageFolderSource(Source):
    r"""A user's own images in class folders: `train/<class>/*.png`, and optionally `test/<class>/...`.

    Class indices follow the sorted folder names of `train`. Grayscale, RGBA and other sizes are
    converted to RGB and resized to `image_size`.

    Args:
        train: folder of class subfolders for the train split.
        test: same for the test split; without it, the test split is empty.
        image_size: side of the square images given to the target.
        group_pattern: optional regular expression applied to each file name; its first group
            identifies images that must stay together (e.g. `"^(\\d+)_"` for `TRACK_FRAME.png`).
    """

    def __init__(
        self, train: str, test: str | None = None, image_size: int = 32, group_pattern: str | None = None
    ) -> None:
        self.train, self.test, self.image_size, self.group_pattern = train, test, image_size, group_pattern
        self._init_args = {
            "train": str(Path(train).absolute()),
            "test": str(Path(test).absolute()) if test else None,
            "image_size": image_size,
            "group_pattern": group_pattern,
        }

    def classes(self) -> list[str]:
        """Class names: the sorted subfolders of `train`."""
        root = Path(self.train)
        if not root.is_dir():
            raise MintError(f"image folder not found: {str(root)!r}")
        names = sorted(d.name for d in root.iterdir() if d.is_dir())
        if not names:
            raise MintError(f"{root} has no class subfolders (expected {root}/<class>/<image files>)")
        return names

    @property
    def num_classes(self) -> int:
        return len(self.classes())

    def load(self, split: Split) -> ImageSet:
        classes = self.classes()
        folder = self.train if split == "train" else self.test
        if folder is None:
            empty = np.zeros((0, self.image_size, self.image_size, 3), np.uint8)
            return ImageSet(empty, np.zeros(0, np.int64))
        images, labels, names, notes = [], [], [], []
        for label, name in enumerate(classes):
            files = sorted(p for p in (Path(folder) / name).glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise MintError(
                    f"class folder {Path(folder) / name} holds no images ({', '.join(IMAGE_EXTENSIONS)})"
                )
            for f in files:
                converted: list[str] = []
                images.append(decode_image(f, self.image_size, converted))  # names a damaged file
                notes += [f"{f}: {note}" for note in converted]
                labels.append(label)
                names.append(f.name)
        return ImageSet(np.stack(images), np.array(labels), self._groups(names, labels), notes)

    def _groups(self, names: list[str], labels: list[int]) -> np.ndarray | None:
        if self.group_pattern is None:
            return None
        regex = re.compile(self.group_pattern)
        matches = [regex.search(n) for n in names]
        unmatched = [n for n, m in zip(names, matches, strict=True) if m is None]
        if unmatched:
            raise MintError(
                f"group_pattern {self.group_pattern!r} matches no group in {len(unmatched)} of "
                f"{len(names)} file names (e.g. {unmatched[:3]})"
            )
        keys = [
            (lab, m.group(1) if m.groups() else m.group(0)) for lab, m in zip(labels, matches, strict=True)
        ]
        _, ids = np.unique(np.array([f"{k[0]}/{k[1]}" for k in keys]), return_inverse=True)
        return ids.astype(np.int64)
