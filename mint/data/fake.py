"""Generated images: a source for smoke tests and configs, needing no download and no files.

Like `torchvision.datasets.FakeData`, but with what mint's protocol needs: an official-style test
split, and optional groups of near-identical images (like GTSRB's tracks of frames of one sign), so
group-aware splitting can be exercised without the real data.
"""

from __future__ import annotations

import numpy as np

from mint.data.images import ImageSet
from mint.data.sources import Source, Split


class FakeSource(Source):
    """Random images with random labels, the same for the same arguments.

    Every image is uniform noise; with `group_size` > 1 images come in groups of 1 to `group_size`
    frames of one noise image (each frame shifted by a little fresh noise), one class per group.
    Nothing here can be learned beyond memorization: a target trained on it has no test accuracy.

    Args:
        num_classes: number of classes.
        train_size: images of the train split (members and non-members are drawn from it).
        test_size: images of the test split.
        image_size: side of the square images.
        group_size: largest group of the train split (1: no groups).
        seed: seed of the generator.
    """

    def __init__(
        self,
        num_classes: int = 10,
        train_size: int = 2000,
        test_size: int = 500,
        image_size: int = 32,
        group_size: int = 1,
        seed: int = 0,
    ) -> None:
        self._num_classes, self.train_size, self.test_size = num_classes, train_size, test_size
        self.image_size, self.group_size, self.seed = image_size, group_size, seed
        self._init_args = {
            "num_classes": num_classes,
            "train_size": train_size,
            "test_size": test_size,
            "image_size": image_size,
            "group_size": group_size,
            "seed": seed,
        }

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def load(self, split: Split) -> ImageSet:
        rng = np.random.default_rng([self.seed, split == "train"])
        n = self.train_size if split == "train" else self.test_size
        grouped = split == "train" and self.group_size > 1
        lengths = rng.integers(1, self.group_size + 1, size=n) if grouped else np.ones(n, np.int64)
        groups = np.repeat(np.arange(n), lengths)[:n]  # group id of every image
        shape = (int(groups.max(initial=-1)) + 1, self.image_size, self.image_size, 3)
        base = rng.integers(0, 256, size=shape, dtype=np.int16)  # one noise image per group
        jitter = rng.integers(-6, 7, size=(n, *shape[1:]), dtype=np.int16) if grouped else 0
        images = np.clip(base[groups] + jitter, 0, 255).astype(np.uint8)
        labels = rng.integers(0, self._num_classes, size=shape[0])[groups]
        return ImageSet(images, labels, groups if grouped else None)
