"""Exact and near-exact duplicate images, so a copy of a member is never counted as a non-member.

Exact duplicates share every pixel. Near duplicates are pairs whose 8 x 8 grayscale thumbnails
(area averages, brightness removed) differ in every cell by at most `tol` gray levels and by at most
half the thumbnails' contrast (the larger standard deviation of the two), found by an exact search
over all pairs. The contrast bound keeps dark, flat images (night frames of road signs) from chaining
into one large cluster: on the GTSRB sample an absolute bound alone linked 2,820 pairs across tracks.
JPEG re-encodings, brightness shifts and resampled copies are found;
heavily cropped or flipped copies are not.
"""

from __future__ import annotations

import hashlib

import numpy as np

# Largest per-cell difference of a near duplicate: gray levels, and a share of the contrast. Measured
# (benchmarks/near_duplicates.py, docs/results.md): on 1,000 CIFAR-10 images they find 93% of bilinear
# 24-px round trips, all JPEG q75 copies and all +10 brightness shifts; on the 50,000 CIFAR-10
# training images 27 pairs, all true duplicates (the closest distinct pair differs by 13.4 levels);
# on the GTSRB sample no pair across tracks.
NEAR_TOL = 12.0
NEAR_CONTRAST = 0.5


def exact_keys(images: np.ndarray) -> np.ndarray:
    """One id per image; equal ids mean identical pixels. images: uint8 (N, H, W, 3)."""
    digests = [hashlib.blake2b(np.ascontiguousarray(im).data, digest_size=16).digest() for im in images]
    return np.unique(np.array(digests, dtype="S16"), return_inverse=True)[1]


def thumbnails(images: np.ndarray, side: int) -> np.ndarray:
    """(N, side*side) grayscale cell means with each image's mean removed."""
    n, h, w, _ = images.shape
    out = np.empty((n, side * side), np.float32)
    for start in range(0, n, 4096):  # chunks bound the float copy
        gray = images[start : start + 4096].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        # (B, H, W) -> (B, side, H/side, side, W/side) -> mean of each cell -> (B, side*side)
        cells = gray[:, : h - h % side, : w - w % side].reshape(len(gray), side, h // side, side, w // side)
        out[start : start + len(gray)] = cells.mean(axis=(2, 4)).reshape(len(gray), -1)
    return out - out.mean(axis=1, keepdims=True)


def near_pairs(
    images: np.ndarray, tol: float = NEAR_TOL, contrast: float = NEAR_CONTRAST, block: int = 1024
) -> np.ndarray:
    """Every pair (i < j) of near duplicates (see the module docstring): (P, 2).

    The search is exact, not bucketed: a max-difference within `tol` in each of the 64 cells implies
    a Euclidean distance within 8 * tol, so blocks of Euclidean distances (one matrix product each)
    give every candidate and the max-difference test confirms it. Cost grows with N^2: about 6 s
    for the 50,000 CIFAR-10 training images on 2 CPU cores.
    """
    if len(images) < 2 or min(images.shape[1:3]) < 8:
        return np.zeros((0, 2), np.int64)  # nothing to pair; images below 8 px have no thumbnail
    thumbs = thumbnails(images, 8)
    spread = thumbs.std(1)
    sq = (thumbs * thumbs).sum(1)
    radius2 = (8.0 * tol) ** 2 * 1.01 + 1.0  # float32 rounding slack; the exact test follows
    found = []
    for start in range(0, len(thumbs), block):
        rows = thumbs[start : start + block]
        # (B, N - start): squared distances to this block and every later image
        d2 = sq[start : start + block, None] + sq[None, start:] - 2.0 * rows @ thumbs[start:].T
        i, j = np.nonzero(d2 <= radius2)
        i, j = i + start, j + start
        keep = i < j
        i, j = i[keep], j[keep]
        gap = np.abs(thumbs[i] - thumbs[j]).max(1)
        bound = np.minimum(tol, contrast * np.maximum(spread[i], spread[j]))
        close = (gap <= bound) & (bound > 0)  # flat images pair only as exact duplicates
        found.append(np.stack([i[close], j[close]], 1))
    return np.concatenate(found) if found else np.zeros((0, 2), np.int64)


def near_keys(images: np.ndarray) -> np.ndarray:
    """One id per image; images linked by a chain of near-duplicate pairs share it."""
    i, j = near_pairs(images).T
    comp = np.arange(len(images))
    while True:  # label propagation along the pairs: both ends take the smaller component id
        before = comp.copy()
        low = np.minimum(comp[i], comp[j])
        np.minimum.at(comp, i, low)
        np.minimum.at(comp, j, low)
        comp = comp[comp]
        if np.array_equal(comp, before):
            return np.unique(comp, return_inverse=True)[1].astype(np.int64)


def merge_groups(*ids: np.ndarray) -> np.ndarray:
    """Connected components of images that share any of the given ids (e.g. a track or a duplicate key)."""
    n = len(ids[0])
    comp = np.arange(n)
    while True:  # label propagation: each image takes the smallest component id it is linked to
        before = comp.copy()
        for key in ids:
            low = np.full(key.max() + 1 if n else 0, n, np.int64)
            np.minimum.at(low, key, comp)
            comp = low[key]
        comp = comp[comp]  # path compression
        if np.array_equal(comp, before):
            return np.unique(comp, return_inverse=True)[1].astype(np.int64)


def duplicate_clusters(images: np.ndarray, near: bool = True) -> tuple[np.ndarray, dict]:
    """Group ids that put duplicates together, and counts for the split manifest."""
    exact = exact_keys(images)
    keys = [exact, near_keys(images)] if near else [exact]
    clusters = merge_groups(*keys)
    sizes = np.bincount(clusters)
    report = {
        "method": "exact pixels"
        + (f" + 8x8 thumbnails within {NEAR_TOL:g} levels, {NEAR_CONTRAST:g} x contrast" if near else ""),
        "exact_duplicate_images": int((np.bincount(exact)[exact] > 1).sum()),
        "duplicate_images": int((sizes[clusters] > 1).sum()),
        "duplicate_clusters": int((sizes > 1).sum()),
    }
    return clusters, report
