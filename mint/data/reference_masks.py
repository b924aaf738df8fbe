"""Which pool images each reference model trains on: one pure, seeded, group-aware function.

Reference models are trained with the target's recipe on subsets of the target's data pool (its
source's train split: members and non-members). LiRA's keep mask gives every image the same number of
references that trained on it: for each image (or group: GTSRB tracks stay together) the K
references are put in a random order and the first `share * K` keep it. When `share * K` is not a
whole number, each image takes the floor or the ceiling at random, in the right proportion, so one
reference (K = 1) still sees about `share` of the pool. Offline, the audited images are in no
reference's data at all, and `share` is raised so that each reference still trains on as many
images as the target did.
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
        count: number of reference models K.
        training_size: images the target trained on; each reference trains on about as many.
        seed: seed of the draw; the same arguments always give the same mask.
        groups: group id of every image (None: each image its own group); a group is kept whole.
        audited: indices never given to any reference (offline attacks); None for online attacks.
    """
    check_count("count", count)
    groups = np.arange(num_images) if groups is None else np.asarray(groups)
    _, unit = np.unique(groups, return_inverse=True)  # (N,) group index of each image
    excluded = np.zeros(unit.max(initial=-1) + 1, bool)
    if audited is not None and len(audited):
        excluded[unit[np.asarray(audited)]] = True  # a group with an audited image is left out whole
    eligible = int((~excluded[unit]).sum())
    if eligible < training_size:
        raise MintError(
            f"the references cannot train on {training_size} images (as the target did): only "
            f"{eligible} of the pool's {num_images} are not audited"
        )
    share = training_size / eligible
    rng = np.random.default_rng(seed)
    order = rng.random((count, len(excluded))).argsort(axis=0)  # (K, G): each column a permutation
    quota = np.floor(share * count + rng.random(len(excluded)))  # (G,) floor or ceiling of share * K
    kept_units = (order < quota) & ~excluded
    return kept_units[:, unit]  # (K, G) -> (K, N)
