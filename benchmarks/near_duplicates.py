"""How many near-duplicate copies the finder links, how many false links it makes, and what it costs.

    python benchmarks/near_duplicates.py    # bundled CIFAR-10 sample only
    python benchmarks/near_duplicates.py --pools ../shared/data/cifar10_train.npz \
        ../shared/data/gtsrb_mini_train.npz

For each setting (gray-level bound : contrast share; `inf` switches a bound off) it prints the share of
resampled (32-24-32 px bilinear), JPEG q75 and brightness +10 copies of 1,000 sample images linked to
their original, and the links between distinct originals. For each pool (.npz with `images`, and
`groups` where images come in groups such as GTSRB tracks): the pairs found, the pairs across groups,
the largest cluster once groups and pairs are merged, and the seconds of the search.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image

from mint.data import SampleSource
from mint.data.duplicates import NEAR_CONTRAST, NEAR_TOL, merge_groups, near_pairs


def copies(images: np.ndarray) -> dict[str, np.ndarray]:
    def resampled(im):
        small = Image.fromarray(im).resize((24, 24), Image.BILINEAR)
        return np.asarray(small.resize((32, 32), Image.BILINEAR))

    def jpeg(im):
        buffer = io.BytesIO()
        Image.fromarray(im).save(buffer, "JPEG", quality=75)
        return np.asarray(Image.open(buffer).convert("RGB"))

    def brighter(im):
        return np.clip(im.astype(np.int16) + 10, 0, 255).astype(np.uint8)

    kinds = {"resampled": resampled, "JPEG q75": jpeg, "brightness +10": brighter}
    return {name: np.stack([f(im) for im in images]) for name, f in kinds.items()}


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Cluster id per image from the pairs (each pair's second image takes a key shared with the first)."""
    keys = np.arange(n)
    for i, j in pairs[np.argsort(pairs[:, 1])][::-1]:  # chains resolve in one pass from the back
        keys[keys == keys[j]] = keys[i]
    return keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    default = f"{NEAR_TOL:g}:{NEAR_CONTRAST:g}"
    parser.add_argument("--settings", nargs="+", default=["6:inf", "12:inf", default])
    parser.add_argument("--pools", nargs="*", default=[])
    args = parser.parse_args()
    settings = [tuple(float(v) for v in s.split(":")) for s in args.settings]

    originals = SampleSource().load("train").images[: args.images]
    n = len(originals)
    made = copies(originals)
    print(f"{n} bundled sample images + one copy each: share of copies linked to their original")
    print("| levels | contrast | " + " | ".join(made) + " | links between originals |")
    print("| --- | --- | " + " | ".join("---" for _ in made) + " | --- |")
    for tol, contrast in settings:
        cells, false = [], 0
        for images in made.values():
            pairs = near_pairs(np.concatenate([originals, images]), tol, contrast)
            cells.append(f"{np.isin(np.arange(n), pairs[pairs[:, 1] - pairs[:, 0] == n, 0]).mean():.1%}")
            false += int((pairs[:, 1] < n).sum())
        print(f"| {tol:g} | {contrast:g} | " + " | ".join(cells) + f" | {false} |")

    for path in args.pools:
        pool = np.load(path)
        images = pool["images"]
        groups = pool["groups"] if "groups" in pool.files else np.arange(len(images))
        print(f"\n{path}: {len(images)} images, {len(np.unique(groups))} groups")
        print("| levels | contrast | pairs | pairs across groups | largest cluster | seconds |")
        print("| --- | --- | --- | --- | --- | --- |")
        for tol, contrast in settings:
            start = time.perf_counter()
            pairs = near_pairs(images, tol, contrast)
            seconds = time.perf_counter() - start
            across = int((groups[pairs[:, 0]] != groups[pairs[:, 1]]).sum())
            largest = np.bincount(merge_groups(groups, components(len(images), pairs))).max()
            print(f"| {tol:g} | {contrast:g} | {len(pairs)} | {across} | {largest} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
