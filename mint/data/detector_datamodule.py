"""Data for training a detector: balanced members / non-members of a frozen target, as activations."""

from __future__ import annotations

from functools import cached_property
from typing import Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from mint.data.activation_cache import ActivationCache, ActivationDataset, collate_batch
from mint.data.base import MintDataModule
from mint.data.candidates import Candidates, from_known, from_split
from mint.data.detector_target import build_target, predicted_classes
from mint.data.images import to_tensor
from mint.data.integrity import image_digests, set_indices
from mint.data.known import load_known
from mint.data.membership import MembershipData, rebuild_membership
from mint.data.portions import DetectorSets, draw_portions
from mint.data.sources import Source
from mint.data.split import index_hash
from mint.errors import MintError, check_count
from mint.models import ExternalTarget
from mint.models.target import Pool
from mint.records.checkpoint import data_module_state


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
        image = to_tensor(self.images[self.pool[row]])
        return {"image": image, "member": float(self.members[row]), "label": int(self.labels[row]), "id": row}


class DetectorDataModule(MintDataModule):
    """Balanced member / non-member sets for training and testing a detector.

    It reads the frozen target once (from `target_ckpt`, or a kind trained elsewhere named by `target`)
    and serves the activations of its `layers`; `mint` hands that target to the `DetectorModule`
    (linked), which stores it in the detector's checkpoint. For mint's own classifier,
    its split is rebuilt exactly from the record it carries (data whose fingerprint or split hashes
    differ is refused): members are the target's training images, non-members the rest of the
    source's train split (the official test split served as the target's validation data, so it is
    left out). For a classifier trained elsewhere, `members` and `nonmembers` name the known ones.
    Train, validation, calibration and test sets each hold as many members as non-members (chance =
    50%) and never share an image (or a group of images).

    Args:
        target_ckpt: checkpoint of the target to audit (written by `TargetModule`), or a detector
            checkpoint (which carries its target).
        target: a target trained elsewhere (`class_path: mint.models.TorchvisionTarget`,
            `TimmTarget`, `HuggingFaceTarget`, `ExportedTarget`, `ScriptTarget`, `FactoryTarget`; in Python
            also `ModuleTarget`), in place of
            `target_ckpt`; its known members and non-members are then given as `members` and
            `nonmembers`.
        layers: layers of the target to read (e.g. `[layer7]`, or `[layer2, layer7]`; `mint layers`
            lists them); `[]` with the detector's `output_features` reads only the output.
        pool: pool spatial maps larger than `pool_size` x `pool_size` to that size (`avg`, `max`)
            before caching them; `none` keeps them whole (large maps of big networks may not fit).
        pool_size: the side of pooled maps.
        members: known members of the target's training data, for a target trained elsewhere (or in
            place of a mint target's recorded split): an image folder (class subfolders named by
            class index give labels), an `.npz` (`images`, optionally `labels`) or a CSV of
            `path,label` lines (label optional). Unlabelled images get the target's predicted class.
        nonmembers: known non-members, in the same forms. Images in both sets are dropped from both.
        source: the data source; by default the one recorded with the target.
        train_size: members (and as many non-members) to train the detector; default: all that
            remain after the validation, calibration and test sets.
        val_size: members (and as many non-members) for validation.
        test_size: members (and as many non-members) held out for the test.
        calibration_size: members (and as many non-members) held out for `mint audit`: the
            detector's scores of these known members / non-members are stored in its checkpoint, and
            an audited set's scores are compared with them. 0: the detector cannot audit sets.
        balance: `per_class`: every set has the same class mix on both sides (exactly with groups,
            which are trimmed per class; to within one image per class without); `global`: only the
            totals are balanced.
        seed: seed of the drawing of the sets.
        batch_size: items per batch (per device under DDP).
        num_workers: data loader worker processes.
        persistent_workers: keep the loader's worker processes between epochs (with `num_workers` > 0).
            A resumed fit matches an uninterrupted one exactly only without them.
        pin_memory: pin host memory; default: when CUDA is available.
        cache_dir: folder of the activation cache; `null` extracts on the fly every epoch (for maps
            too large to store).
        extract_batch_size: images per forward pass when building the cache.
    """

    def __init__(
        self,
        target_ckpt: str | None = None,
        target: ExternalTarget | None = None,
        layers: list[str] | None = None,
        pool: Pool = "none",
        pool_size: int = 4,
        members: str | None = None,
        nonmembers: str | None = None,
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
        extract_batch_size: int = 512,
    ) -> None:
        super().__init__(batch_size, num_workers, persistent_workers, pin_memory)
        self.source, self.known_paths = source, {"members_path": members, "nonmembers_path": nonmembers}
        if (members is None) != (nonmembers is None):
            raise MintError("give both `members` and `nonmembers` (the known sets), or neither")
        self.sizes = {
            "train": check_count("train_size", train_size),
            "val": check_count("val_size", val_size),
            "calibration": check_count("calibration_size", calibration_size, minimum=0),
            "test": check_count("test_size", test_size),
        }
        self.balance, self.seed = balance, check_count("seed", seed, minimum=0)
        self.cache_dir = cache_dir
        self.extract_batch_size = check_count("extract_batch_size", extract_batch_size)
        self.datasets: dict[str, Dataset] = {}
        layers = ["layer7"] if layers is None else list(layers)
        pooling = {"pool": pool, "pool_size": check_count("pool_size", pool_size)}
        self.target = build_target(target_ckpt, target, layers, pooling, source)

    def candidates(self) -> Candidates:
        """The members and non-members the sets are drawn from: known ones, or the target's split."""
        meta = self.target.meta
        if self.known_paths["members_path"] is not None:
            known = load_known(
                self.known_paths["members_path"], self.known_paths["nonmembers_path"],
                self.target.image_size, self.target.num_classes,
            )  # fmt: skip
            for note in known.notes:
                rank_zero_info(f"mint: known data: {note}")
            return from_known(known, self._predict, self.known_paths)
        if not meta.get("manifest"):
            raise MintError(
                f"the target {meta.get('path')} was trained outside mint, so mint does not know its "
                "members: give the known members and non-members, --data.members PATH --data.nonmembers "
                "PATH (image folders, .npz or .csv)"
            )
        if "reference" in meta["manifest"]:
            raise MintError(
                f"{meta.get('path')} is a reference model (trained on a subset of the target's pool, not on "
                "the target's members): audit the target's own checkpoint"
            )
        data: MembershipData = rebuild_membership(meta["manifest"], self.source)
        if data.manifest["num_classes"] > self.target.num_classes:
            raise MintError(
                f"the data has {data.manifest['num_classes']} classes but the target "
                f"{meta.get('path')} has {self.target.num_classes} outputs"
            )
        return from_split(data)

    def _predict(self, images: np.ndarray) -> np.ndarray:
        return predicted_classes(self.target, images, self.extract_batch_size)

    @cached_property
    def sets(self) -> DetectorSets:
        """The detector's sets, drawn from the candidates: pure, so every rank computes the same."""
        return draw_portions(self.candidates(), self.sizes, self.balance, self.seed)

    def cache(self) -> ActivationCache:
        """The cache folder for this target and these images (one file per layer inside)."""
        key = {
            "target_sha256": self.target.meta["sha256"],
            "pool_sha256": index_hash(self.sets.pool),
            "train_fingerprint": self.sets.found.fingerprint,
        }
        if "kind" in self.target.meta:  # a target trained elsewhere: its config and preprocessing too
            key["target"] = self.target.record()
        elif self.target.pooling["pool"] != "none":  # (kept out otherwise: existing caches stay valid)
            key["pooling"] = self.target.pooling
        return ActivationCache(self.cache_dir, key)

    def _build_cache(self) -> dict[str, np.ndarray]:
        device = self.trainer.strategy.root_device if self.trainer is not None else "cpu"
        cache = self.cache()
        cache.check_space(self.target, len(self.sets.pool))
        images, rows = self.sets.found.images, self.sets.pool
        labels = self.sets.labels  # (pool rows,) the class of every cache row
        return cache.ensure(self.target, images, rows, self.extract_batch_size, device, labels)

    def prepare_data(self) -> None:
        """Build the activation cache once per node, before any rank reads it."""
        if self.cache_dir is not None:
            self._build_cache()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        sets = self.sets
        if self.cache_dir is not None:
            arrays = self._build_cache()  # opens it; rebuilds only if prepare_data's build is unusable
            make = lambda rows: ActivationDataset(arrays, rows, sets.members, sets.labels)  # noqa: E731
        else:
            images = sets.found.images
            make = lambda rows: ImageMembershipDataset(  # noqa: E731
                images, sets.pool, rows, sets.members, sets.labels
            )
        self.datasets = {name: make(rows) for name, rows in sets.portions.items()}

    def _loader(self, name: str, shuffle: bool = False, workers: bool = True) -> DataLoader:
        dataset = self.datasets[name]
        # Cached datasets return whole batches; image datasets use the default collation.
        collate = collate_batch if isinstance(dataset, ActivationDataset) else None
        return self.loader(dataset, shuffle, collate, workers)

    def eval_loader(self, name: str) -> DataLoader:
        """A one-off pass over a set (`train`, `val`, `calibration`, `test`) in this process, in order."""
        return self._loader(name, workers=False)

    def train_dataloader(self) -> DataLoader:
        size = len(self.datasets["train"])
        if size < self.batch_size:  # Lightning would end the fit at once ("No training batches")
            raise MintError(
                f"the detector's training set holds {size} images (members and non-members), fewer than "
                f"batch_size={self.batch_size}, and a training loader drops an incomplete batch: give more "
                "known images, smaller held-out sets, or a smaller --data.batch_size"
            )
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def set_indices(self) -> dict:
        """{set name: image indices} of every set, recorded in the detector checkpoint."""
        return set_indices(self.sets.pool, self.sets.portions)

    @cached_property
    def seen_digests(self) -> Tensor:
        """Digests of the images the detector learns from (train, val, calibration), for audits."""
        seen = [self.held_out_images(name) for name in ("train", "val", "calibration")]
        return image_digests(self.sets.found.images[np.concatenate(seen)])

    def images_of(self, rows: Tensor) -> Tensor:
        """Images (B, 3, H, W) in [0, 1] of cache rows (e.g. a batch's `id`), on the rows' device."""
        return to_tensor(torch.from_numpy(self.sets.found.images[self.sets.pool[rows.cpu().numpy()]])).to(
            rows.device
        )

    def held_out_images(self, name: str) -> np.ndarray:
        """Image indices (into the candidates: the target's train split, or the known data) of a set."""
        return self.sets.pool[self.sets.portions[name]]

    def state_dict(self) -> dict:
        """Stored in every checkpoint: what the detector learned from and is tested on (`DetectorRecord`)."""
        if not self.datasets:  # not set up: nothing drawn yet
            return {}
        state = self.manifest(), self.set_indices(), self.seen_digests
        return data_module_state(*state, self.target.layers, self.target.pooling)

    def manifest(self) -> dict:
        """What the detector was trained and tested on: sizes and index hashes of every set."""
        sets = self.sets
        return sets.found.record | {
            "sets": sets.sizes,
            "sets_sha256": {n: index_hash(sets.pool[rows]) for n, rows in sets.portions.items()},
            "requested_sizes": self.sizes,
            "balance": self.balance,
            "seed": self.seed,
        }
