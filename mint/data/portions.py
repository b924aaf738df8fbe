"""The detector's train / val / calibration / test sets, drawn from the candidates by one pure function.

Every set holds as many members as non-members (chance = 50%) and no two sets share an image or a
group of images. Drawn in the order test, calibration, val, train, so the test set does not change
with the sizes of the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mint.data.candidates import Candidates
from mint.data.membership import MembershipData
from mint.data.split import partition
from mint.errors import MintError

# Cache row order; drawn in reverse (test first), so the test set does not depend on the others' sizes.
PORTIONS = ("train", "val", "calibration", "test")


@dataclass(frozen=True)
class DetectorSets:
    """The detector's sets as its activation cache holds them: one row per image, sets in `PORTIONS` order.

    Attributes:
        found: the candidates the sets were drawn from (a mint target's split, or known data).
        pool: (rows,) the candidate index of every cache row.
        members: (rows,) 1 for a member of the target's training data, 0 for a non-member.
        labels: (rows,) the class of every row.
        portions: {set: its rows} for `train`, `val`, `calibration` and `test`.
        sizes: {set: {"members": n, "nonmembers": n}} as drawn.
    """

    found: Candidates
    pool: np.ndarray
    members: np.ndarray
    labels: np.ndarray
    portions: dict[str, np.ndarray]
    sizes: dict[str, dict[str, int]]

    @property
    def data(self) -> MembershipData | None:
        """The rebuilt split of a mint target (None for known data): what reference models train on."""
        return self.found.membership

    def images(self, name: str) -> np.ndarray:
        """Candidate indices of the images of one set (into the target's train split, or the known data)."""
        return self.pool[self.portions[name]]


def balanced(
    member: np.ndarray, nonmember: np.ndarray, labels: np.ndarray, per_class: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Drop random images from the larger side until both sides match, in every class if `per_class`.

    With groups (GTSRB tracks) the two sides of a portion differ in size and in class mix; left so, a
    class-conditioned detector could score from the label alone (a class-only scorer reached AUROC
    0.53 on the GTSRB sample).
    """
    keys = (
        (labels[member], labels[nonmember])
        if per_class
        else (np.zeros(len(member)), np.zeros(len(nonmember)))
    )
    keep_m, keep_n = [], []
    for c in np.intersect1d(*keys):
        m, n = member[keys[0] == c], nonmember[keys[1] == c]
        k = min(len(m), len(n))
        keep_m.append(rng.choice(m, k, replace=False))
        keep_n.append(rng.choice(n, k, replace=False))
    empty = np.zeros(0, np.int64)
    return np.sort(np.concatenate([empty, *keep_m])), np.sort(np.concatenate([empty, *keep_n]))


def draw_portions(found: Candidates, sizes: dict, balance: str, seed: int) -> DetectorSets:
    """Rows of every set, in cache order, with membership, labels and the sizes drawn.

    Args:
        found: the candidates (members, non-members, labels, groups).
        sizes: requested members (and as many non-members) per set; `train` None: all that remain.
        balance: `per_class` (the same class mix on both sides) or `global`.
        seed: seed of the drawing.

    Returns:
        The sets, one row per image in cache order.
    """
    groups = found.groups  # source groups and duplicate clusters: never split across sets
    labels = found.labels
    pools = {"member": found.members, "nonmember": found.nonmembers}
    # Drawn in the order test, calibration, val, train: the test set does not change with
    # train_size, so detectors trained on different amounts of data are compared on the same images.
    order = [sizes["test"], sizes["calibration"], sizes["val"], train_size(pools, sizes)]
    stratify = balance == "per_class"
    drawn = {
        side: partition(pool, labels, order, seed + k, stratify, groups)[::-1]  # -> PORTIONS order
        for k, (side, pool) in enumerate(pools.items())
    }
    # Group sizes make the sides differ, and known sets come with their own class mixes (a
    # target's split gives both sides the same): trim to exact balance.
    if groups is not None or found.membership is None:
        for p in range(len(PORTIONS)):
            # One generator per portion: trimming the training set must not move the test set.
            rng = np.random.default_rng([seed, p])
            member, nonmember = balanced(drawn["member"][p], drawn["nonmember"][p], labels, stratify, rng)
            drawn["member"][p], drawn["nonmember"][p] = member, nonmember
    return DetectorSets(found, **cache_rows(drawn, labels))


def train_size(pools: dict[str, np.ndarray], sizes: dict) -> int:
    """Members (and as many non-members) of the training set: as asked, or all that remain."""
    fixed = sizes["val"] + sizes["calibration"] + sizes["test"]
    available = min(len(p) for p in pools.values())
    train = sizes["train"] if sizes["train"] is not None else available - fixed
    if train < 1 or train + fixed > available:
        asked = sizes["train"] if sizes["train"] is not None else "at least 1"
        raise MintError(
            f"not enough images for the requested sets: {asked} train + {sizes['val']} val + "
            f"{sizes['calibration']} calibration + {sizes['test']} test per side, but only "
            f"{len(pools['member'])} members and {len(pools['nonmember'])} non-members exist. "
            "Lower train_size / val_size / calibration_size / test_size."
        )
    return train


def cache_rows(drawn: dict[str, list[np.ndarray]], labels: np.ndarray) -> dict:
    """The cache's rows: one per image, in PORTIONS order (members, then non-members, in each)."""
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
        "pool": pool,
        "members": np.concatenate(members),
        "labels": labels[pool],
        "portions": portions,
        "sizes": {
            n: {"members": len(drawn["member"][p]), "nonmembers": len(drawn["nonmember"][p])}
            for p, n in enumerate(PORTIONS)
        },
    }
