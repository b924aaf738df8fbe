"""The membership protocol shared by every stage: load a source, split it, record and verify the split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from mint.data.duplicates import duplicate_clusters, merge_groups
from mint.data.images import ImageSet
from mint.data.sources import Source, source_from_config
from mint.data.split import MembershipSplit, membership_split
from mint.errors import MintError

MANIFEST_VERSION = 1


@dataclass
class MembershipData:
    """A source's images with the member / non-member split of its train split and its record."""

    train: ImageSet
    test: ImageSet
    split: MembershipSplit
    manifest: dict
    groups: np.ndarray | None = None  # the groups the split kept together (source groups + duplicates)


Duplicates = Literal["merge", "drop", "ignore"]


def build_membership(
    source: Source,
    member_fraction: float,
    seed: int,
    stratify: bool,
    group_aware: bool = True,
    duplicates: Duplicates = "merge",
) -> MembershipData:
    """Load `source` and split its train split into members and non-members (pure, seeded).

    Args:
        source: where the images come from.
        member_fraction: share of the train split that trains the target.
        seed: seed of the split.
        stratify: same member share in every class.
        group_aware: keep the source's groups (if any) on one side of the boundary.
        duplicates: exact / near-exact duplicate images of the train split: `merge` them into one
            group (one side of the boundary), `drop` all copies but the first from both sides, or
            `ignore` them (a copy of a member may then be a "non-member").
    """
    train, test = source.load("train"), source.load("test")
    if len(train) < 2:
        raise MintError(
            f"the train split of {source.config()} holds {len(train)} images; at least 2 are needed"
        )
    groups = train.groups if group_aware else None
    dup_report = {"action": duplicates}
    if duplicates != "ignore":
        clusters, found = duplicate_clusters(train.images)
        dup_report |= found
        if found["duplicate_clusters"]:
            groups = merge_groups(clusters, np.arange(len(train)) if groups is None else groups)
    split = membership_split(train.labels, member_fraction, seed, stratify, groups)
    if duplicates == "drop" and dup_report["duplicate_clusters"]:
        first = np.zeros(len(train), bool)
        first[np.unique(clusters, return_index=True)[1]] = True  # keep the first copy of each
        split = MembershipSplit(
            split.members[first[split.members]], split.nonmembers[first[split.nonmembers]]
        )
        dup_report["dropped_images"] = int((~first).sum())
    manifest = {
        "version": MANIFEST_VERSION,
        "source": source.config(),
        "member_fraction": member_fraction,
        "seed": seed,
        "stratify": stratify,
        "group_aware": group_aware and train.groups is not None,
        "num_groups": len(np.unique(groups)) if groups is not None else len(train),
        "duplicates": dup_report,
        "num_train": len(train),
        "num_test": len(test),
        "num_classes": int(max(train.labels.max(), test.labels.max(initial=0))) + 1,
        "image_shape": list(train.images.shape[1:]),
        "train_fingerprint": train.fingerprint(),
        "test_fingerprint": test.fingerprint(),
        **split.record(),
        "notes": train.notes[:20] + test.notes[:20],
    }
    return MembershipData(train, test, split, manifest, groups)


def rebuild_membership(manifest: dict, source: Source | None = None) -> MembershipData:
    """Rebuild exactly the split a manifest records, refusing data that differs from the recorded data.

    Args:
        manifest: the record written by `build_membership` (e.g. from a target checkpoint).
        source: the source to read; by default the recorded one.
    """
    source = source or source_from_config(manifest["source"])
    data = build_membership(
        source,
        manifest["member_fraction"],
        manifest["seed"],
        manifest["stratify"],
        manifest["group_aware"],
        manifest.get("duplicates", {}).get("action", "ignore"),  # manifests before the check: none done
    )
    keys = ("train_fingerprint", "test_fingerprint", "members_sha256", "nonmembers_sha256")
    diff = [k for k in keys if data.manifest[k] != manifest[k]]
    if diff:
        raise MintError(
            f"the data of {source.config()} is not the data the target was trained on "
            f"(mismatch in {', '.join(diff)}; recorded source: {manifest['source']}). "
            f"Use the recorded source, or retrain the target on this one."
        )
    return data


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 (N, H, W, 3) images, scaled to [0, 1]."""
    flat = images.reshape(-1, images.shape[-1])  # (N*H*W, 3)
    mean = np.zeros(flat.shape[1])
    sq = np.zeros(flat.shape[1])
    for start in range(0, len(flat), 1 << 22):  # chunks bound the float64 copy
        chunk = flat[start : start + (1 << 22)].astype(np.float64) / 255.0
        mean += chunk.sum(0)
        sq += (chunk**2).sum(0)
    mean /= len(flat)
    std = np.sqrt(np.maximum(sq / len(flat) - mean**2, 1e-12))
    return mean.tolist(), std.tolist()
