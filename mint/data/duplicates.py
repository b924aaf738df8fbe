"""Exact and near-exact duplicate images, so a copy of a member is never counted as a non-member.

Exact duplicates share every pixel. Near duplicates are pairs whose 8 x 8 grayscale thumbnails
(area averages, brightness removed) differ by at most `tol` gray levels in every cell; candidates are
found cheaply by bucketing 4 x 4 thumbnails (two staggered quantizations, so a value near a bucket
edge is not missed). JPEG re-encodings, brightness shifts and slightly resampled copies are found;
heavily cropped or flipped copies are not.
"""

from __future__ import annotations

import hashlib

import numpy as np


def exact_keys(images: np.ndarray) -> np.ndarray:
    """One id per image; equal ids mean identical pixels. images: uint8 (N, H, W, 3)."""
    digests = [hashlib.blake2b(np.ascontiguousarray(im).data, digest_size=16).digest() for im in images]
    return np.unique(np.array(digests, dtype="S16"), return_inverse=True)[1]


def _thumbnails(images: np.ndarray, side: int) -> np.ndarray:
    """(N, side*side) grayscale cell means with each image's mean removed."""
    n, h, w, _ = images.shape
    out = np.empty((n, side * side), np.float32)
    for start in range(0, n, 4096):  # chunks bound the float copy
        gray = images[start : start + 4096].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        # (B, H, W) -> (B, side, H/side, side, W/side) -> mean of each cell -> (B, side*side)
        cells = gray[:, : h - h % side, : w - w % side].reshape(len(gray), side, h // side, side, w // side)
        out[start : start + len(gray)] = cells.mean(axis=(2, 4)).reshape(len(gray), -1)
    return out - out.mean(axis=1, keepdims=True)


def near_keys(images: np.ndarray, tol: float = 6.0, step: float = 16.0, max_bucket: int = 4096) -> np.ndarray:
    """One id per image; images linked by near-duplicate pairs share it."""
    fine = _thumbnails(images, 8)
    coarse = fine.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(len(fine), -1)  # 8x8 -> 4x4 cells
    parent = list(range(len(images)))  # union-find over the (few) near-duplicate pairs

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for offset in (0.0, 0.5):
        _, bucket = np.unique(np.floor(coarse / step + offset).astype(np.int16), axis=0, return_inverse=True)
        bucket = bucket.reshape(-1)
        order = np.argsort(bucket, kind="stable")
        for members in np.split(order, np.flatnonzero(np.diff(bucket[order])) + 1):
            if len(members) < 2:
                continue
            members = members[:max_bucket]  # bounds the pairwise check (such buckets are plain images)
            dist = np.abs(fine[members][:, None, :] - fine[members][None, :, :]).max(-1)  # (m, m)
            for i, j in zip(*np.nonzero(np.triu(dist <= tol, 1)), strict=True):
                parent[root(int(members[i]))] = root(int(members[j]))
    return np.unique([root(x) for x in range(len(images))], return_inverse=True)[1].astype(np.int64)


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
        "method": "exact pixels" + (" + 8x8 grayscale thumbnails within 6 levels" if near else ""),
        "exact_duplicate_images": int((np.bincount(exact)[exact] > 1).sum()),
        "duplicate_images": int((sizes[clusters] > 1).sum()),
        "duplicate_clusters": int((sizes > 1).sum()),
    }
    return clusters, report
