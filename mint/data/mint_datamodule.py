"""Data for the MINT detector: balanced members / non-members of a frozen classifier, as activations."""

from __future__ import annotations

from functools import cached_property
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mint.data.activation_cache import ActivationCache, ActivationDataset, collate_batch
from mint.data.membership import MembershipData, rebuild_membership
from mint.data.sources import Source
from mint.data.split import index_hash, partition
from mint.target import FrozenTarget, TargetRecord, load_target_checkpoint

# Cache row order; drawn in reverse (test first), so the test set does not depend on the others' sizes.
PORTIONS = ("train", "val", "calibration", "test")


class ImageMembershipDataset(Dataset):
    """Items `{"image", "member", "label", "id"}` for extraction on the fly (no cache)."""

    def __init__(
        self, images: np.ndarray, pool: np.ndarray, rows: np.ndarray, members: np.ndarray, labels: np.ndarray
    ) -> None:
        self.images, self.pool, self.rows, self.members, self.labels = images, pool, rows, members, labels

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        row = int(self.rows[i])
        image = (
            torch.from_numpy(self.images[self.pool[row]]).permute(2, 0, 1).float().div_(255.0)
        )  # HWC -> CHW
        return {"image": image, "member": float(self.members[row]), "label": int(self.labels[row]), "id": row}


class MINTDataModule(L.LightningDataModule):
    """Balanced member / non-member sets for training and testing a MINT detector.

    The classifier's split is rebuilt exactly from its checkpoint (the run refuses data whose
    fingerprint or split hashes differ). Members D are the classifier's training images; non-members
    E are the rest of the source's train split (the official test split served as the classifier's
    validation data, so it is left out). Train, validation and test sets each hold as many members as
    non-members (chance = 50%) and never share an image (or a group of images).

    Args:
        target_ckpt: classifier checkpoint (linked from `model.init_args.target_ckpt`).
        layers: layers to read (linked from `model.init_args.layers`).
        source: the data source; by default the one recorded in the classifier checkpoint.
        train_size: members (and as many non-members) to train the detector; default: all that
            remain after the validation and test sets.
        val_size: members (and as many non-members) for validation.
        test_size: members (and as many non-members) held out for the test.
        calibration_size: members (and as many non-members) held out for `mint audit`: the
            detector's scores of these known members / non-members are stored in its checkpoint, and
            an audited set's scores are compared with them. 0: the detector cannot audit sets.
        balance: `per_class`: every set has the same class mix on both sides; `global`: only the
            totals are balanced.
        seed: seed of the drawing of the sets.
        batch_size: items per batch.
        num_workers: data loader worker processes.
        persistent_workers: keep the loader's worker processes between epochs (with `num_workers` > 0).
            A resumed fit matches an uninterrupted one exactly only without them: workers keep
            random generators of their own, which a checkpoint cannot hold.
        pin_memory: pin host memory; default: when CUDA is available.
        cache_dir: folder of the activation cache; `null` extracts on the fly every epoch (for maps
            too large to store).
        verify_cache: check the cache's checksums on opening.
        extract_batch_size: images per forward pass when building the cache.
    """

    def __init__(
        self,
        target_ckpt: str,
        layers: list[str] | None = None,
        source: Source | None = None,
        train_size: int | None = None,
        val_size: int = 500,
        test_size: int = 1000,
        calibration_size: int = 0,
        balance: Literal["per_class", "global"] = "per_class",
        seed: int = 0,
        batch_size: int = 128,
        num_workers: int = 0,
        persistent_workers: bool = True,
        pin_memory: bool | None = None,
        cache_dir: str | None = ".mint_cache",
        verify_cache: bool = True,
        extract_batch_size: int = 512,
    ) -> None:
        super().__init__()
        self.target_ckpt, self.layers, self.source = target_ckpt, list(layers or ["layer7"]), source
        self.sizes = {
            "train": train_size,
            "val": val_size,
            "calibration": calibration_size,
            "test": test_size,
        }
        self.balance, self.seed = balance, seed
        self.batch_size, self.num_workers = batch_size, num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.cache_dir, self.verify_cache, self.extract_batch_size = (
            cache_dir,
            verify_cache,
            extract_batch_size,
        )
        self.datasets: dict[str, Dataset] = {}

    @cached_property
    def record(self) -> TargetRecord:
        """The classifier checkpoint's contents."""
        return load_target_checkpoint(self.target_ckpt)

    @property
    def num_classes(self) -> int:
        """Classes of the audited classifier."""
        return int(self.record.hparams["num_classes"])

    @property
    def image_size(self) -> int:
        """Image side the classifier was trained on."""
        return int(self.record.manifest["image_shape"][0])

    @cached_property
    def plan(self) -> dict:
        """The rebuilt split and the detector's sets: pure, so every rank computes the same."""
        data: MembershipData = rebuild_membership(self.record.manifest, self.source)
        if data.manifest["num_classes"] > self.num_classes:
            raise ValueError(
                f"the data has {data.manifest['num_classes']} classes but the classifier "
                f"{self.target_ckpt} has {self.num_classes} outputs"
            )
        groups = data.groups  # source groups and duplicate clusters: never split across sets
        labels = data.train.labels
        pools = {"member": data.split.members, "nonmember": data.split.nonmembers}
        fixed = self.sizes["val"] + self.sizes["calibration"] + self.sizes["test"]
        available = min(len(p) for p in pools.values())
        train = self.sizes["train"] if self.sizes["train"] is not None else available - fixed
        if train < 1 or train + fixed > available:
            raise ValueError(
                f"not enough images for the requested sets: {train} train + {self.sizes['val']} val + "
                f"{self.sizes['calibration']} calibration + {self.sizes['test']} test per side, but only "
                f"{len(pools['member'])} members and {len(pools['nonmember'])} non-members exist. "
                "Lower train_size / val_size / calibration_size / test_size."
            )
        # Drawn in the order test, calibration, val, train: the test set does not change with
        # train_size, so detectors trained on different amounts of data are compared on the same images.
        sizes = [self.sizes["test"], self.sizes["calibration"], self.sizes["val"], train]
        stratify = self.balance == "per_class"
        drawn = {
            side: partition(pool, labels, sizes, self.seed + k, stratify, groups)[::-1]  # -> PORTIONS order
            for k, (side, pool) in enumerate(pools.items())
        }
        if groups is not None:  # group sizes make the sides differ slightly: trim to exact balance
            rng = np.random.default_rng(self.seed)
            for p in range(len(PORTIONS)):
                n = min(len(drawn["member"][p]), len(drawn["nonmember"][p]))
                for side in drawn:
                    drawn[side][p] = np.sort(rng.choice(drawn[side][p], n, replace=False))
        # The cache holds one row per image, in PORTIONS order (members, then non-members, in each).
        pool, members, portions, start = [], [], {}, 0
        for p, name in enumerate(PORTIONS):
            for side in ("member", "nonmember"):
                pool.append(drawn[side][p])
                members.append(np.full(len(drawn[side][p]), side == "member", np.int64))
            end = start + len(drawn["member"][p]) + len(drawn["nonmember"][p])
            portions[name] = np.arange(start, end)
            start = end
        pool = np.concatenate(pool)
        return {
            "data": data,
            "pool": pool,
            "members": np.concatenate(members),
            "labels": labels[pool],
            "portions": portions,
            "sizes": {
                n: {"members": len(drawn["member"][p]), "nonmembers": len(drawn["nonmember"][p])}
                for p, n in enumerate(PORTIONS)
            },
        }

    def cache(self) -> ActivationCache:
        """The cache folder for this classifier, these layers and these images."""
        key = {
            "target_sha256": self.record.sha256,
            "pool_sha256": index_hash(self.plan["pool"]),
            "train_fingerprint": self.plan["data"].manifest["train_fingerprint"],
        }
        return ActivationCache(self.cache_dir, key, verify=self.verify_cache)

    def _build_cache(self) -> dict[str, np.ndarray]:
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        return self.cache().ensure(
            lambda layers: FrozenTarget.from_record(self.record, layers),
            self.plan["data"].train.images,
            self.plan["pool"],
            self.layers,
            self.extract_batch_size,
            device,
        )

    def prepare_data(self) -> None:
        """Build the activation cache once per node, before any rank reads it."""
        if self.cache_dir is not None:
            self._build_cache()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        plan = self.plan
        if self.cache_dir is not None:
            arrays = self._build_cache()  # opens it; rebuilds only if prepare_data's build is unusable
            make = lambda rows: ActivationDataset(arrays, rows, plan["members"], plan["labels"])  # noqa: E731
        else:
            images = plan["data"].train.images
            make = lambda rows: ImageMembershipDataset(  # noqa: E731
                images, plan["pool"], rows, plan["members"], plan["labels"]
            )
        self.datasets = {name: make(rows) for name, rows in plan["portions"].items()}

    @staticmethod
    def collate_fn(dataset: Dataset):
        """Cached datasets return whole batches; image datasets use the default collation."""
        return collate_batch if isinstance(dataset, ActivationDataset) else None

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[name],
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle,  # a last batch of one item would break BatchNorm
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            collate_fn=self.collate_fn(self.datasets[name]),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def manifest(self) -> dict:
        """What the detector was trained and tested on: sizes and index hashes of every set."""
        plan = self.plan
        return {
            "classifier_split": plan["data"].manifest,
            "sets": plan["sizes"],
            "sets_sha256": {n: index_hash(plan["pool"][rows]) for n, rows in plan["portions"].items()},
            "requested_sizes": self.sizes,
            "balance": self.balance,
            "seed": self.seed,
        }
