"""Data sources: where images come from. Each is chosen in YAML by `class_path`.

A source only loads images; how they are split into members and non-members is decided in
`mint.data.split`, so that every source gets the same, reproducible protocol.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from mint.data.images import ImageSet, resize_rgb
from mint.data.npz import read_npz
from mint.errors import MintError
from mint.files import write_atomic

Split = Literal["train", "test"]


class Source:
    """Base class of data sources: a train split (members and non-members are drawn from it) and a test split.

    Subclasses provide `load`, `num_classes` and `image_size` (side of the square images delivered).
    """

    image_size: int

    def prepare(self) -> None:
        """Download or convert files; called once per node from `prepare_data()`."""

    def load(self, split: Split) -> ImageSet:
        """Return the images of `split` ("train" or "test")."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        """Number of classes, for sizing the target's output."""
        raise NotImplementedError

    def config(self) -> dict:
        """The `class_path` / `init_args` that rebuild this source; recorded in every split manifest."""
        cls = type(self)
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(self._init_args)}


def mint_sources() -> list[type[Source]]:
    """The source classes of mint, not a user's: every subclass of `Source` defined in `mint.data`."""
    found, stack = [], [Source]
    while stack:
        for cls in stack.pop().__subclasses__():
            stack.append(cls)
            if cls.__module__.startswith("mint.data.") and cls not in found:
                found.append(cls)
    return found


def source_from_config(config: dict) -> Source:
    """Rebuild a source from `Source.config()` as recorded in a checkpoint: mint's own sources only.

    The record comes from a file, and a file may have been made by anyone: its class path is looked
    up in a fixed table of mint's source classes, never imported, so a checkpoint cannot make mint
    run a module of its choosing. A user's own source class is given explicitly (`--data.source`).
    """
    import mint.data  # noqa: F401  (every source of mint's own, defined by now: the table is built late)

    trusted = mint_sources()
    # Recorded by module path (`mint.data.sources.ImageFolderSource` before it got its own module).
    table = {f"{c.__module__}.{c.__qualname__}": c for c in trusted} | {
        f"mint.data.{module}{c.__name__}": c for c in trusted for module in ("", "sources.")
    }
    path = config.get("class_path") if isinstance(config, dict) else None
    cls = table.get(path) if isinstance(path, str) else None
    init_args = config.get("init_args", {}) if cls is not None else None
    if cls is None or not isinstance(init_args, dict):
        raise MintError(
            f"the checkpoint records the data source {str(path)[:200]!r}, which is not one of mint's own "
            "sources, so mint will not load it from a file. If it is your own source class, pass it "
            "explicitly: --data.source=<your class path> (with its init_args)."
        )
    refuse_unbounded(path, init_args)
    # A wrapping source (e.g. ClassSubset) records the source it wraps as a nested config.
    args = {k: source_from_config(v) if isinstance(v, dict) and "class_path" in v else v
            for k, v in init_args.items()}  # fmt: skip
    try:
        return cls(**args)
    except TypeError as err:
        raise MintError(f"the checkpoint's record of the data source {path} does not fit it ({err})") from err


# Bounds on a source's settings read from a file: larger ones would let a few bytes of record ask for
# tens of GB of generated or resized images, or a regular expression that runs for hours.
MAX_RECORDED_SIDE = 1024
MAX_RECORDED_IMAGES = 2_000_000
NESTED_QUANTIFIER = re.compile(r"\([^()]*[+*}][^()]*\)[+*{]")


def refuse_unbounded(path: str, init_args: dict) -> None:
    """Refuse recorded source settings that would exhaust memory or time (see the bounds above)."""
    side, images, pattern = (init_args.get(k) for k in ("image_size", "train_size", "group_pattern"))
    images = max(images or 0, init_args.get("test_size") or 0)
    problem = None
    if isinstance(side, int) and side > MAX_RECORDED_SIDE:
        problem = f"image_size {side} (at most {MAX_RECORDED_SIDE})"
    elif images > MAX_RECORDED_IMAGES:
        problem = f"{images} images (at most {MAX_RECORDED_IMAGES:,})"
    elif isinstance(pattern, str) and NESTED_QUANTIFIER.search(pattern):
        problem = f"group_pattern {pattern!r} (a nested repetition can run for hours)"
    if problem:
        raise MintError(
            f"the checkpoint's record of the data source {path} asks for {problem}; mint will not take "
            "it from a file. Pass the source explicitly: --data.source=... with its init_args"
        )


class TorchvisionSource(Source):
    """CIFAR-10, CIFAR-100 or GTSRB through torchvision's own data set classes and official splits.

    Args:
        name: which data set.
        root: folder holding (or receiving) torchvision's files.
        download: download missing files in `prepare_data()` (needs internet).
        image_size: side of the square images given to the target; GTSRB's varying sizes are
            resized to it (bilinear, whole image), CIFAR is left at 32 unless this differs.
    """

    NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "gtsrb": 43}

    def __init__(
        self,
        name: Literal["cifar10", "cifar100", "gtsrb"] = "cifar10",
        root: str = "data",
        download: bool = True,
        image_size: int = 32,
    ) -> None:
        if name not in self.NUM_CLASSES:
            raise MintError(f"unknown data set {name!r}; valid names: {', '.join(self.NUM_CLASSES)}")
        self.name, self.root, self.download, self.image_size = name, root, download, image_size
        self._init_args = {
            "name": name,
            "root": str(Path(root).absolute()),
            "download": download,
            "image_size": image_size,
        }

    @property
    def num_classes(self) -> int:
        return self.NUM_CLASSES[self.name]

    def _dataset(self, split: Split, download: bool):
        from torchvision import datasets

        try:
            if self.name == "gtsrb":
                return datasets.GTSRB(self.root, split=split, download=download)
            cls = datasets.CIFAR10 if self.name == "cifar10" else datasets.CIFAR100
            return cls(self.root, train=split == "train", download=download)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted."
            raise MintError(
                f"{self.name} ({split}) was not found under {os.path.abspath(self.root)!r} ({err}). "
                f"Set `download: true` on a machine with internet, copy torchvision's files there, "
                f"or point `root` at them; offline copies can be read with mint.data.NpzSource."
            ) from err
        except OSError as err:  # URLError and friends: no network
            raise MintError(
                f"downloading {self.name} into {os.path.abspath(self.root)!r} failed ({err}). "
                f"Without internet, use `download: false` with the files already there, "
                f"or mint.data.NpzSource / mint.data.ImageFolderSource."
            ) from err

    def prepare(self) -> None:
        for split in ("train", "test"):
            self._dataset(split, self.download)

    def load(self, split: Split) -> ImageSet:
        ds = self._dataset(split, download=False)
        if self.name == "gtsrb":
            return self._load_gtsrb(ds, split)
        images = np.asarray(ds.data)
        if self.image_size != images.shape[1]:
            images = np.stack([resize_rgb(Image.fromarray(im), self.image_size) for im in images])
        return ImageSet(images, np.asarray(ds.targets))

    def _load_gtsrb(self, ds, split: Split) -> ImageSet:
        # Decoding ~40k PPM files takes a while: keep a resized copy beside torchvision's files.
        cache = Path(self.root) / f"gtsrb_{split}_{self.image_size}px.npz"
        if cache.exists():
            with np.load(cache, allow_pickle=False) as z:
                return ImageSet(z["images"], z["labels"], z["groups"] if "groups" in z else None)
        samples = ds._samples  # list of (path, class): torchvision keeps no public accessor
        images = np.stack([resize_rgb(Image.open(p), self.image_size) for p, _ in samples])
        labels = np.array([c for _, c in samples], dtype=np.int64)
        groups = None
        if split == "train":  # file names TTTTT_FFFFF.ppm: track TTTTT of the class folder
            tracks = [int(Path(p).name.split("_")[0]) for p, _ in samples]
            groups = labels * 1000 + np.array(tracks, dtype=np.int64)
        arrays = {"images": images, "labels": labels} | ({"groups": groups} if groups is not None else {})
        write_atomic(cache, lambda tmp: np.savez(tmp.open("wb"), **arrays))
        return ImageSet(images, labels, groups)


class NpzSource(Source):
    """Arrays in `.npz` files: `images` (uint8 N x H x W x 3) and `labels`, optionally `groups`.

    This is the format of `../shared/data/*.npz`; files are read with `allow_pickle=False`.

    Args:
        train: path of the train split (members and non-members are drawn from it).
        test: path of the test split (extra non-members; the target's validation data).
    """

    def __init__(self, train: str, test: str) -> None:
        self.train, self.test = train, test
        # Absolute paths: later stages may run from another folder.
        self._init_args = {"train": str(Path(train).absolute()), "test": str(Path(test).absolute())}

    def _path(self, split: Split) -> Path:
        return Path(self.train if split == "train" else self.test)

    @property
    def num_classes(self) -> int:
        labels = [read_npz(self._path(s), ("labels",))["labels"] for s in ("train", "test")]
        return int(max(int(x.max()) for x in labels if len(x))) + 1

    @property
    def image_size(self) -> int:
        # Read the array header only: the images themselves may be large.
        shape = read_npz(self._path("train"), ("images",), header_only=("images",))["images"][0]
        if len(shape) < 3 or shape[1] != shape[2]:
            raise MintError(f"{self.train}: images must be square (N, H, H, 3), got {shape}")
        return int(shape[1])

    def load(self, split: Split) -> ImageSet:
        path = self._path(split)
        z = read_npz(path, ("images", "labels"), optional=("groups",))
        try:
            return ImageSet(z["images"], z["labels"], z.get("groups"))
        except MintError as err:
            raise MintError(f"{path}: {err}") from err
