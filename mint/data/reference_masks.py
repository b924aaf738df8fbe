"""Which pool images each reference model trains on: one pure, seeded, group-aware function.

Reference models are trained with the target's recipe on subsets of the target's data pool (its
source's train split: members and non-members), each about as large as the target's training set
(T images of a pool of E). References come in cycles: cycle c puts the pool's images (or groups:
GTSRB tracks stay together) in one seeded random order, and its reference j trains on the window
of T images from position j * T (wrapping around at the end; cycles of ceil(E / T)), or, when T is
more than half of E, on all but the window of E - T images from position j * (E - T). When the
target trained on half of its pool (the default split; to within an image) a cycle is a pair of
complementary halves, so every image is IN for exactly half of any even number of references, as
LiRA's keep mask wants; otherwise every image is IN, and OUT, at least once in every cycle (e.g.
IN for 1 or 2 of 4 when T / E = 0.3). Row k depends only on (seed, k), never on K: the first K
references of a larger set are a set of K, so a set grows by training more references and a
smaller budget reads a prefix. Offline, the audited images are in no reference's data at all, and
each reference still trains on as many images as the target did, from the rest of the pool.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mint.errors import MintError, check_count
from mint.files import check_input_file

# The largest reference set mint trains or reads. Each reference is a full training of the target:
# LiRA's largest published sets have 256 models, RMIA gets by with 1 to 8. A count beyond this is a
# typo (--count 100000000), and its (K, pool) mask alone would exhaust memory before any training.
MAX_REFERENCES = 1024


def check_reference_count(name: str, value: int, minimum: int = 1) -> int:
    """Refuse a number of references (or a reference index) outside [minimum, MAX_REFERENCES]."""
    check_count(name, value, minimum)
    if value > MAX_REFERENCES:
        raise MintError(
            f"{name} {value}: mint trains and reads reference sets of at most {MAX_REFERENCES} models "
            "(each is a full training of the target; LiRA's largest published sets have 256)"
        )
    return value


def check_reference_index(name: str, value: int) -> int:
    """Refuse a reference's number outside 0 ... MAX_REFERENCES - 1."""
    if not 0 <= value < MAX_REFERENCES:
        raise MintError(
            f"{name} {value}: references are numbered 0 ... {MAX_REFERENCES - 1} (mint trains and reads "
            f"reference sets of at most {MAX_REFERENCES} models)"
        )
    return value


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
    check_reference_count("the number of references", count)
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
    # A cycle of windows covers the pool: windows of the T images a reference keeps or, when T is
    # more than half the pool, of the E - T it leaves out, so that every image is IN (and OUT) at
    # least once a cycle. Half a pool (to within an image): a pair, the second exactly the rest.
    halves = abs(eligible - 2 * training_size) <= 1
    window = min(training_size, eligible - training_size) or training_size
    cycle = 2 if halves else -(-eligible // window)
    candidates = np.flatnonzero(~excluded)
    kept_units = np.zeros((count, len(sizes)), bool)
    for k in range(count):
        order = np.random.default_rng([seed, k // cycle]).permutation(candidates)  # (G',) draw order
        start = np.cumsum(sizes[order]) - sizes[order]  # (G',) images before each unit in that order
        if halves:
            chosen = start < training_size if k % cycle == 0 else start >= training_size
        else:  # the window from position j * window, wrapping around the end of the order
            chosen = (start - (k % cycle) * window) % eligible < window
            chosen = chosen if window == training_size else ~chosen
        kept_units[k, order[chosen]] = True
    return kept_units[:, unit]  # (K, G) -> (K, N)


def read_kept(path: str | Path, num_images: int) -> np.ndarray:
    """The pool indices a reference trained on (its `kept.npy`), refused unless they can be that.

    A list of distinct pool indices in increasing order, as `ReferenceDataModule` writes it; never
    unpickled (a `.npy` file can hold Python objects, whose loading runs code).
    """
    hint = "it is written by `mint references`; train that reference again"
    path = check_input_file(path, "reference mask", hint)
    size = path.stat().st_size
    if size > 8 * num_images + 4096:  # int64 indices of the pool and a header: no larger
        raise MintError(
            f"reference mask {str(path)!r} has {size:,} bytes, more than the indices of a pool of "
            f"{num_images:,} images take; {hint}"
        )
    try:
        kept = np.load(path, allow_pickle=False)
    except ValueError as err:
        pickled = "pickle" in str(err)  # numpy's words for object arrays and pickle files alike
        what = "holds Python objects (pickled), which mint never loads" if pickled else "is not a .npy file"
        raise MintError(f"reference mask {str(path)!r} {what}; {hint}") from err
    except (OSError, EOFError) as err:
        raise MintError(f"reference mask {str(path)!r} is truncated or unreadable ({err}); {hint}") from err
    if not isinstance(kept, np.ndarray) or kept.ndim != 1 or not np.issubdtype(kept.dtype, np.integer):
        shape = f"{kept.dtype} {kept.shape}" if isinstance(kept, np.ndarray) else "an archive"
        raise MintError(f"reference mask {str(path)!r} holds {shape}, not a list of pool indices; {hint}")
    if not len(kept) or kept.min() < 0 or kept.max() >= num_images:
        span = f"{kept.min()} ... {kept.max()}" if len(kept) else "none"
        raise MintError(
            f"reference mask {str(path)!r} names pool images {span}, but the pool has images "
            f"0 ... {num_images - 1}; {hint}"
        )
    if (np.diff(kept) <= 0).any():
        raise MintError(f"reference mask {str(path)!r} repeats images or is out of order; {hint}")
    return kept.astype(np.int64)
