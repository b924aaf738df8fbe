"""A source restricted to its first k classes: the "number of classes" factor of the paper's study."""

from __future__ import annotations

import numpy as np

from mint.data.images import ImageSet
from mint.data.sources import Source, Split
from mint.errors import MintError, check_count


class ClassSubset(Source):
    """Keep only classes `0 .. classes-1` of another source (labels unchanged, so they stay `0..k-1`).

    Used to ask whether more classes help the detector (e.g. CIFAR-100 with 10 / 20 / 50 / 100
    classes) with everything else fixed. In YAML:

        source:
          class_path: mint.data.ClassSubset
          init_args:
            classes: 20
            source: {class_path: mint.data.NpzSource, init_args: {train: ..., test: ...}}

    Args:
        source: the full source.
        classes: how many classes to keep (the first ones by index).
    """

    def __init__(self, source: Source, classes: int) -> None:
        check_count("classes", classes, minimum=2)  # a classifier needs two classes
        if classes > source.num_classes:
            raise MintError(f"classes={classes} but the source has only {source.num_classes} classes")
        self.source, self.classes = source, classes
        self.image_size = source.image_size
        self._init_args = {"source": source.config(), "classes": classes}

    @property
    def num_classes(self) -> int:
        return self.classes

    def prepare(self) -> None:
        self.source.prepare()

    def load(self, split: Split) -> ImageSet:
        full = self.source.load(split)
        keep = np.flatnonzero(full.labels < self.classes)
        groups = full.groups[keep] if full.groups is not None else None
        return ImageSet(full.images[keep], full.labels[keep], groups, full.notes)
