"""Member / non-member splits: one pure, seeded, group-aware function and its record.

Every stage (target training, detector training, audits) calls these functions with the same
arguments and gets the same indices, on every DDP rank, with no state of its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from mint.errors import MintError, check_fraction


def index_hash(indices: np.ndarray) -> str:
    """Sha256 of an index list (int64, in order): proves two runs used the same images."""
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()


def partition(
    indices: np.ndarray,
    labels: np.ndarray,
    sizes: list[int],
    seed: int,
    stratify: bool = True,
    groups: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Draw disjoint portions of the given sizes from `indices`, keeping every group on one side.

    Groups are shuffled (classes interleaved in proportion when `stratify`) and dealt out in turn:
    a group goes to the portion whose share its middle falls in, so with one image per group the
    sizes are exact, and with larger groups as close as group sizes allow. Leftovers are unused.

    Args:
        indices: candidate image indices (into `labels` / `groups`).
        labels: class label of every image.
        sizes: requested size of each portion; their sum must not exceed `len(indices)`.
        seed: seed of the shuffle; the same arguments always give the same portions.
        stratify: keep each class's share in every portion.
        groups: group id of every image (None: each image is its own group).

    Returns:
        One sorted int64 index array per portion.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if min(sizes, default=0) < 0 or sum(sizes) > len(indices):
        raise MintError(f"cannot draw portions of sizes {sizes} from {len(indices)} images")
    rng = np.random.default_rng(seed)
    gid = indices if groups is None else np.asarray(groups)[indices]
    uniq, first, inverse, counts = np.unique(gid, return_index=True, return_inverse=True, return_counts=True)
    if groups is not None and counts.max(initial=0) > max(sizes, default=0) > 0:
        g = int(counts.argmax())
        raise MintError(
            f"group {uniq[g]} holds {counts[g]} images, more than the largest requested portion "
            f"({max(sizes)}): this split is impossible with these groups"
        )
    order = rng.permutation(len(uniq))  # groups in random order
    if stratify:
        # Interleave classes: the r-th of a class's n groups sits at (r + 0.5) / n along the order,
        # so every stretch of the order (every portion) holds each class in its overall share.
        _, cls = np.unique(labels[indices[first[order]]], return_inverse=True)
        by_class = np.argsort(cls, kind="stable")
        class_size = np.bincount(cls)
        rank = np.empty(len(order))
        rank[by_class] = np.arange(len(order)) - np.repeat(np.cumsum(class_size) - class_size, class_size)
        order = order[np.argsort((rank + 0.5) / class_size[cls], kind="stable")]
    start = np.cumsum(counts[order]) - counts[order]
    slot = np.searchsorted(np.cumsum(sizes), start + counts[order] / 2.0, side="right")
    portion_of_group = np.full(len(uniq), -1, np.int64)
    portion_of_group[order] = np.where(slot < len(sizes), slot, -1)
    portion = portion_of_group[inverse]
    out = [np.sort(indices[portion == k]) for k in range(len(sizes))]
    for k, (want, got) in enumerate(zip(sizes, out, strict=True)):
        if want > 0 and len(got) == 0:
            raise MintError(f"portion {k} asked for {want} images but the groups left it empty")
    return out


@dataclass(frozen=True)
class MembershipSplit:
    """Indices (into a source's train split) of the target's members and non-members."""

    members: np.ndarray
    nonmembers: np.ndarray

    def record(self) -> dict:
        """Sizes and hashes of both index lists, for the split manifest."""
        return {
            "num_members": len(self.members),
            "num_nonmembers": len(self.nonmembers),
            "members_sha256": index_hash(self.members),
            "nonmembers_sha256": index_hash(self.nonmembers),
        }


def membership_split(
    labels: np.ndarray,
    member_fraction: float = 0.5,
    seed: int = 0,
    stratify: bool = True,
    groups: np.ndarray | None = None,
) -> MembershipSplit:
    """Split a train split into members (the target's training data) and non-members.

    Args:
        labels: class label of every image of the train split.
        member_fraction: share of images that become members (the target's training data), in (0, 1).
        seed: seed of the split.
        stratify: give each class the same member share.
        groups: optional group id per image; a group never straddles the boundary.

    Returns:
        The split; every image is on exactly one side.
    """
    check_fraction("member_fraction", member_fraction)
    labels = np.asarray(labels)
    n = len(labels)
    n_members = round(member_fraction * n)
    if n_members == 0 or n_members == n:
        raise MintError(f"member_fraction {member_fraction} of {n} images leaves one side empty")
    (members,) = partition(np.arange(n), labels, [n_members], seed, stratify, groups)
    nonmembers = np.setdiff1d(np.arange(n), members)  # the rest: the split is complete by construction
    if len(nonmembers) == 0:
        raise MintError(f"the groups left no non-members (all {n} images are members)")
    return MembershipSplit(members, nonmembers)
