"""A small real data set shipped inside the package, like scikit-learn's toy data sets."""

from __future__ import annotations

from importlib.resources import files

from mint.data.sources import NpzSource


class SampleSource(NpzSource):
    """2,000 train and 500 test images of real CIFAR-10 (a seeded random sample), bundled with mint.

    Needs no path and no network, so the quickstart runs anywhere. The images are the official
    pixels (a few were recovered from JPEG copies of CIFAR-10 and are slightly lossy).
    """

    def __init__(self) -> None:
        folder = files("mint") / "sample"
        super().__init__(str(folder / "cifar10_sample_train.npz"), str(folder / "cifar10_sample_test.npz"))
        self._init_args = {}  # rebuilt from the package wherever it is installed
