"""Data for training reference model k of K: the target's recipe on a seeded subset of its data pool.

A reference model is trained exactly as the target was (same config: architecture, optimizer,
epochs, augmentation, normalization procedure), but on the pool images that row k of the keep mask
(`reference_kept`) gives it, about as many as the target trained on. The pool is the target's own:
the source's train split, rebuilt from the same split settings, so members and non-members of the
target are both in it. Online references see each pool image with probability about one half;
offline ones (`audited` given) never see the audited images. The mask row is stored in every
checkpoint and written beside the run (`reference.json`, `kept.npy`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from mint.data.reference_masks import check_reference_index, reference_kept
from mint.data.split import index_hash
from mint.data.target_datamodule import TargetDataModule
from mint.errors import MintError, check_count
from mint.files import read_checkpoint, write_json_atomic
from mint.records import DetectorRecord


def audited_images(detector_ckpt: str, manifest: dict) -> np.ndarray:
    """The test images (indices into the target's train split) of a detector of the target of `manifest`."""
    ckpt, _ = read_checkpoint(Path(detector_ckpt))
    record = DetectorRecord.read(ckpt)
    sets = record.sets if record is not None else None
    if not sets or "test" not in sets:
        raise MintError(f"{detector_ckpt} records no test set (a detector checkpoint written by `mint fit`)")
    split = (record.data or {}).get("target_split") or {}
    diff = [k for k in ("train_fingerprint", "members_sha256") if split.get(k) != manifest.get(k)]
    if diff:
        raise MintError(
            f"{detector_ckpt} is not a detector of this target's recorded split ({', '.join(diff)} differ, "
            "or it was trained on known members / non-members): give a detector of this target"
        )
    audited = sets["test"].numpy().astype(np.int64)
    if len(audited) and (audited.min() < 0 or audited.max() >= manifest["num_train"]):
        raise MintError(f"{detector_ckpt} names test images outside the target's pool")
    return audited


class ReferenceDataModule(TargetDataModule):
    """The target's data module, serving reference model `index` its subset of the pool.

    The target data module's options (`source`, `member_fraction`, `split_seed`, ..., the loader's)
    are taken as they are and mean the same: give the target's config, so the split, hence the pool
    and the training-set size, are rebuilt from them.

    Args:
        index: which reference of the set this run trains (0, 1, ...; e.g. `$SLURM_ARRAY_TASK_ID`):
            row `index` of the keep mask, which does not depend on how many references the set has.
        seed: seed of the keep mask (the same for every reference of a set).
        audited: for offline references, a detector checkpoint whose test images no reference may
            train on; None: online (every pool image is in about half of the references).
        **kwargs: `TargetDataModule`'s options.
    """

    def __init__(self, index: int = 0, seed: int = 0, audited: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.index = check_reference_index("index", index)
        self.seed, self.audited = check_count("seed", seed, minimum=0), audited

    def training_images(self, data) -> np.ndarray:
        """Row `index` of the keep mask over the target's pool (its source's train split)."""
        audited = audited_images(self.audited, data.manifest) if self.audited else None
        size = len(data.split.members)
        kept = reference_kept(len(data.train), self.index + 1, size, self.seed, data.groups, audited)[-1]
        members = np.flatnonzero(kept)
        data.manifest["reference"] = {
            "index": self.index,
            "seed": self.seed,
            "mode": "offline" if audited is not None else "online",
            "audited": self.audited,
            "audited_sha256": index_hash(np.sort(audited)) if audited is not None else None,
            "training_size": len(members),
            "target_training_size": len(data.split.members),
            "kept_sha256": index_hash(members),
        }
        return members

    def write_records(self, log_dir: Path) -> None:
        write_json_atomic(log_dir / "reference.json", self.data.manifest["reference"])
        np.save(log_dir / "kept.npy", self.members)

    def state_dict(self) -> dict:
        """The split's record with the reference's, and the kept pool indices."""
        state = super().state_dict()
        if self.members is not None:
            state["kept"] = torch.from_numpy(self.members)
        return state

    def load_state_dict(self, state: dict) -> None:
        """On resume, refuse a checkpoint of another reference (another mask row)."""
        super().load_state_dict(state)
        recorded = state.get("manifest", {}).get("reference")
        if recorded and self.data is not None and recorded != self.data.manifest.get("reference"):
            raise MintError(
                f"the checkpoint is of another reference model (checkpoint: {recorded}, "
                f"now: {self.data.manifest.get('reference')})"
            )


def set_key(target_config: dict, manifest: dict, seed: int, audited_sha256: str | None) -> str:
    """What a reference set depends on, hashed: the target's recipe and pool, the seed, the audited set.

    Not K: reference k is the same model in a set of any size (`reference_kept`), so a set grows.
    """
    h = hashlib.sha256()
    pool = (manifest.get("train_fingerprint"), manifest.get("members_sha256"))
    for part in (target_config, pool, seed, audited_sha256):
        h.update(repr(part).encode())
    return h.hexdigest()[:16]
