"""Which pool images each reference model trains on: one pure, seeded, group-aware function.

Reference models are trained with the target's recipe on subsets of the target's data pool (its
source's train split: members and non-members), each about as large as the target's training set.
References come in pairs: pair j puts the pool's images (or groups: GTSRB tracks stay together) in
one seeded random order; reference 2j trains on the images at the front of that order, reference
2j + 1 on those at the back. When the target trained on half of its pool (the default split), the
two are complementary, so every image is IN for exactly half of any even number of references, as
LiRA's keep mask wants; otherwise every image is IN with probability (target's training size /
pool). Row k depends only on (seed, k), never on K: the first K references of a larger set are a
set of K, so a set grows by training more references and a smaller budget reads a prefix.
Offline, the audited images are in no reference's data at all, and each reference still trains
on as many images as the target did, from the rest of the pool.
"""

from __future__ import annotations

import numpy as np

from mint.errors import MintError, check_count


def reference_kept(
    num_images: int,
    count: int,
    training_size: int,
    seed: int,
    groups: np.ndarray | None = None,
    audited: np.ndarray | None = None,
) -> np.ndarray:
    """(count, num_images) bool: True where reference k trains on pool image n.

    Args:
        num_images: images in the pool.
        count: number of reference models K (the mask of K is the first K rows of any larger one).
        training_size: images the target trained on; each reference trains on about as many.
        seed: seed of the draw; the same arguments always give the same mask.
        groups: group id of every image (None: each image its own group); a group is kept whole.
        audited: indices never given to any reference (offline attacks); None for online attacks.
    """
    check_count("count", count)
    groups = np.arange(num_images) if groups is None else np.asarray(groups)
    _, unit, sizes = np.unique(groups, return_inverse=True, return_counts=True)  # (N,), (G,)
    excluded = np.zeros(len(sizes), bool)
    if audited is not None and len(audited):
        excluded[unit[np.asarray(audited)]] = True  # a group with an audited image is left out whole
    eligible = int(sizes[~excluded].sum())
    if eligible < training_size:
        raise MintError(
            f"the references cannot train on {training_size} images (as the target did): only "
            f"{eligible} of the pool's {num_images} are not audited"
        )
    # Where the back of the order starts: the complement of the front when the target trained on
    # half of the pool (to within an image), so that pairs are exactly complementary.
    back = training_size if abs(eligible - 2 * training_size) <= 1 else eligible - training_size
    candidates = np.flatnonzero(~excluded)
    kept_units = np.zeros((count, len(sizes)), bool)
    for pair in range((count + 1) // 2):
        order = np.random.default_rng([seed, pair]).permutation(candidates)  # (G',) units in draw order
        start = np.cumsum(sizes[order]) - sizes[order]  # (G',) images before each unit in that order
        kept_units[2 * pair, order[start < training_size]] = True
        if 2 * pair + 1 < count:
            kept_units[2 * pair + 1, order[start >= back]] = True
    return kept_units[:, unit]  # (K, G) -> (K, N)
