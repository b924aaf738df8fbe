"""`ClassSubset`: the first k classes of any source, rebuildable from its record."""

import numpy as np
import pytest

from mint.data import ClassSubset, FakeSource


def test_class_subset_keeps_the_first_classes_and_rebuilds_from_its_record():
    full = FakeSource(num_classes=100)
    sub = ClassSubset(full, classes=20)
    train = sub.load("train")
    assert sub.num_classes == 20 and set(np.unique(train.labels)) == set(range(20))
    assert len(train) == int((full.load("train").labels < 20).sum())
    from mint.data.sources import source_from_config

    again = source_from_config(sub.config())
    assert (
        isinstance(again, ClassSubset) and again.load("test").fingerprint() == sub.load("test").fingerprint()
    )
    with pytest.raises(ValueError, match="only 100 classes"):
        ClassSubset(full, classes=101)
    with pytest.raises(ValueError, match="classes must be >= 2, got 1"):
        ClassSubset(full, classes=1)
