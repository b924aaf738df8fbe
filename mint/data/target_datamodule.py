"""Data for training a target: its members, and the official test split for validation."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from mint.data.base import MintDataModule
from mint.data.images import ImageDataset
from mint.data.membership import MembershipData, build_membership, channel_stats
from mint.data.sources import Source
from mint.errors import MintError, check_count, check_fraction
from mint.files import write_json_atomic


class TargetDataModule(MintDataModule):
    """Split a source into members / non-members and serve the members to train the target.

    The split is made in `setup()` by a pure seeded function, so every DDP rank agrees. Its record
    (seed, fraction, source, sizes, hashes of both index lists) is written beside the run as
    `split.json` and stored in every checkpoint, from which the detector's data module rebuilds it.

    Args:
        source: where the images come from (`mint.data.TorchvisionSource`, `NpzSource`, ...).
        member_fraction: share of the source's train split used to train the target (members).
        split_seed: seed of the member / non-member split.
        stratify: give every class the same member share.
        group_aware: keep images of one group (e.g. a GTSRB track) on one side of the split.
        duplicates: exact / near-exact duplicate images: `merge` them into one group (default),
            `drop` all copies but one, or `ignore` them. The manifest records what was found.
        augment: training augmentation. Off by default on purpose: augmentation reduces
            memorization, and so the membership signal a later audit can find. `crop` is a random
            crop with 4-pixel reflect padding; `crop_flip` adds horizontal flips (not for GTSRB:
            mirrored signs change meaning).
        batch_size: images per batch (per device under DDP).
        num_workers: data loader worker processes.
        persistent_workers: keep the loader's worker processes between epochs (with `num_workers` > 0).
            A resumed fit matches an uninterrupted one exactly only without them: workers keep
            random generators of their own, which a checkpoint cannot hold.
        pin_memory: pin host memory for faster GPU copies; default: when CUDA is available.
        member_eval_size: members also scored at every validation (eval mode), so the target can
            log its accuracy on members and the generalization gap.

    A DP-SGD target sets `poisson_sampling`: each training batch is then a Poisson sample of the
    members (each member in with probability 1 / batches per epoch), as DP-SGD's accountant assumes.
    """

    poisson_sampling = False

    def __init__(
        self,
        source: Source,
        member_fraction: float = 0.5,
        split_seed: int = 0,
        stratify: bool = True,
        group_aware: bool = True,
        duplicates: Literal["merge", "drop", "ignore"] = "merge",
        augment: Literal["none", "crop", "crop_flip"] = "none",
        batch_size: int = 128,
        num_workers: int = 0,
        persistent_workers: bool = True,
        pin_memory: bool | None = None,
        member_eval_size: int = 5000,
    ) -> None:
        super().__init__(batch_size, num_workers, persistent_workers, pin_memory)
        self.source = source
        self.member_fraction = check_fraction("member_fraction", member_fraction)
        self.split_seed, self.stratify = check_count("split_seed", split_seed, minimum=0), stratify
        self.group_aware, self.duplicates, self.augment = group_aware, duplicates, augment
        self.member_eval_size = check_count("member_eval_size", member_eval_size, minimum=0)
        self.data: MembershipData | None = None
        self.members: np.ndarray | None = None  # what the model trains on (set up with the split)
        self.mean: list[float] | None = None
        self.std: list[float] | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes of the source (linked to the target's `num_classes`)."""
        return self.source.num_classes

    @property
    def image_size(self) -> int:
        """Side of the source's square images (linked to the target's `image_size`)."""
        return self.source.image_size

    def prepare_data(self) -> None:
        self.source.prepare()

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        self.data = build_membership(
            self.source,
            self.member_fraction,
            self.split_seed,
            self.stratify,
            self.group_aware,
            self.duplicates,
        )
        self.members = self.training_images(self.data)
        if len(self.members) < self.batch_size:
            raise MintError(
                f"only {len(self.members)} member images for a batch_size of {self.batch_size}: "
                f"lower `batch_size` or use more data"
            )
        self.mean, self.std = channel_stats(self.data.train.images[self.members])
        self.data.manifest |= {"mean": self.mean, "std": self.std}
        log_dir = self.trainer.log_dir if self.trainer is not None else None  # collective: all ranks call it
        if log_dir and self.trainer.is_global_zero:
            write_json_atomic(Path(log_dir) / "split.json", self.data.manifest)
            self.write_records(Path(log_dir))

    def training_images(self, data: MembershipData) -> np.ndarray:
        """Indices (into the train split) of the images the model trains on: the target's members."""
        return data.split.members

    def write_records(self, log_dir: Path) -> None:
        """Write further records beside the run (none for a target)."""

    @property
    def manifest(self) -> dict:
        """The split's record (available after `setup()`)."""
        if self.data is None:
            raise RuntimeError("call setup() first")
        return self.data.manifest

    def train_dataloader(self) -> DataLoader:
        size = self.data.train.images.shape[1]
        transform = None
        if self.augment != "none":
            steps = [v2.RandomCrop(size, padding=4, padding_mode="reflect")]
            steps += [v2.RandomHorizontalFlip()] if self.augment == "crop_flip" else []
            transform = v2.Compose(steps)
        dataset = ImageDataset(self.data.train, self.members, transform)
        if not self.poisson_sampling:
            return self.loader(dataset, shuffle=True)
        from opacus.data_loader import DPDataLoader

        # Poisson batches at rate 1 / len(loader), `dp_sgd.sample_rate`; no batch is dropped.
        return DPDataLoader.from_data_loader(self.loader(dataset, shuffle=False))

    def val_dataloader(self) -> list[DataLoader]:
        """The official test split (or, without one, the non-members), then a sample of members."""
        if len(self.data.test):
            held_out = ImageDataset(self.data.test, range(len(self.data.test)))
        else:
            warnings.warn("the source has no test split: validating on the non-members instead", stacklevel=2)
            held_out = ImageDataset(self.data.train, self.data.split.nonmembers)
        rng = np.random.default_rng(self.split_seed)
        sample = np.sort(rng.permutation(self.members)[: self.member_eval_size])
        loaders = [self.loader(held_out, shuffle=False)]
        if len(sample):
            loaders.append(self.loader(ImageDataset(self.data.train, sample), shuffle=False))
        return loaders

    def test_dataloader(self) -> list[DataLoader]:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return self.val_dataloader()[0]

    def state_dict(self) -> dict:
        """Stored in every checkpoint: the split's record."""
        return {"manifest": self.manifest} if self.data is not None else {}

    def load_state_dict(self, state: dict) -> None:
        """On resume, refuse a checkpoint whose split differs from this run's."""
        recorded = state.get("manifest")
        if recorded is None or self.data is None:
            return
        # The data by content (its files may have moved since), and how it was split.
        keys = (
            "train_fingerprint",
            "test_fingerprint",
            "member_fraction",
            "seed",
            "stratify",
            "members_sha256",
        )
        diff = {
            k: (recorded.get(k), self.manifest.get(k))
            for k in keys
            if recorded.get(k) != self.manifest.get(k)
        }
        if diff:
            raise MintError(f"the checkpoint was made with a different split (checkpoint, now): {diff}")
