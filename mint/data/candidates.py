"""The images a detector's sets are drawn from: the members and non-members of one target.

Two origins, one shape. For mint's own classifier they are the split recorded in its checkpoint,
rebuilt exactly. For a classifier trained elsewhere they are the user's known members and known
non-members (`load_known`); images without a label get the target's predicted class (as an audit
does), and duplicates within the known data (identical or near-identical pixels) form groups that
stay on one side of every boundary between the detector's sets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mint.data.duplicates import duplicate_clusters
from mint.data.known import NO_LABEL, KnownData
from mint.data.membership import MembershipData


@dataclass
class Candidates:
    """Images with labels, which of them are members and non-members, their groups and their record.

    Attributes:
        images: uint8 (N, S, S, 3).
        labels: int64 (N,) class of every image.
        members: indices of the members.
        nonmembers: indices of the non-members.
        groups: group id per image (None: every image is its own group).
        record: where they came from, for the detector's manifest (`target_split` or `known`).
        fingerprint: sha256 of pixels, labels and membership (keys the activation cache).
        membership: the rebuilt split of a mint target (None for known data).
    """

    images: np.ndarray
    labels: np.ndarray
    members: np.ndarray
    nonmembers: np.ndarray
    groups: np.ndarray | None
    record: dict
    fingerprint: str
    membership: MembershipData | None = None


def from_split(data: MembershipData) -> Candidates:
    """The members and non-members of a mint target's recorded split (its source's train split)."""
    train = data.train
    return Candidates(
        train.images, train.labels, data.split.members, data.split.nonmembers, data.groups,
        {"target_split": data.manifest}, data.manifest["train_fingerprint"], data,
    )  # fmt: skip


def from_known(
    known: KnownData, predict: Callable[[np.ndarray], np.ndarray], paths: dict[str, str]
) -> Candidates:
    """Known members and non-members; missing labels are the target's predictions (`predict(images)`).

    Near-duplicates (within `duplicate_clusters`' tolerance) form groups kept within one of the
    detector's sets. A group holding both a known member and a known non-member (the same photo,
    resized or recompressed) cannot be either: its images are dropped, as identical ones are.
    """
    clusters, found = duplicate_clusters(known.images)
    notes = list(known.notes)
    across = np.intersect1d(clusters[known.members == 1], clusters[known.members == 0])
    if len(across):
        drop = np.isin(clusters, across)
        m, n = (int((drop & (known.members == side)).sum()) for side in (1, 0))
        notes.append(
            f"{m} known members and {n} known non-members are near-identical to an image of the other "
            "set: dropped from both sets"
        )
        keep = ~drop
        known = KnownData(known.images[keep], known.labels[keep], known.members[keep], notes)
        clusters = clusters[keep]
    groups = clusters if found["duplicate_clusters"] else None
    if groups is not None:
        notes.append(
            f"{found['duplicate_images']} images in {found['duplicate_clusters']} groups of "
            "(near-)duplicates: each group kept within one of the detector's sets"
        )
    labels = known.labels.copy()
    missing = labels == NO_LABEL
    if missing.any():
        labels[missing] = predict(known.images[missing])
    h = hashlib.sha256()
    for array in (known.images, labels, known.members):
        h.update(str(array.shape).encode())
        h.update(np.ascontiguousarray(array).data)
    members, nonmembers = np.flatnonzero(known.members == 1), np.flatnonzero(known.members == 0)
    record = {
        "known": {
            **paths,
            "members": len(members),
            "nonmembers": len(nonmembers),
            "labels_predicted": int(missing.sum()),
            "duplicates": found,
            "notes": notes,
        }
    }
    return Candidates(known.images, labels, members, nonmembers, groups, record, h.hexdigest())
