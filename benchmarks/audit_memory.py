"""Peak memory of `mint audit` over image folders of 10,000 and 100,000 files: it must not grow.

Writes N PNG files (CIFAR-10 training images, cycled) into a flat folder, audits each folder in a fresh
process, and prints peak resident memory (ru_maxrss of the child), wall time and images per second.

    python benchmarks/audit_memory.py --ckpt lightning_logs/mint_layer7/latest/checkpoints/best.ckpt \
        --sizes 10000 100000 --out /tmp/audit_memory
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_folder(folder: Path, n: int) -> None:
    images = np.load(SHARED / "cifar10_train.npz", allow_pickle=False)["images"]
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(images[i % len(images)]).save(folder / f"{i:06d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--sizes", nargs="+", type=int, default=[10000, 100000])
    parser.add_argument("--out", default="/tmp/audit_memory")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    rows = []
    for n in args.sizes:
        folder = out / f"images_{n}"
        write_folder(folder, n)
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "mint.audit", "--ckpt", args.ckpt, "--images", str(folder),
               "--output", str(out / f"report_{n}"), "--no-progress-bar"]  # fmt: skip
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the max over children
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise SystemExit(f"audit of {folder} failed ({child.returncode}): {' '.join(cmd)}")
        rows.append((n, usage.ru_maxrss / 1024, time.perf_counter() - t0))
        shutil.rmtree(folder)
    print("| images in the folder | peak RSS of the audit process | wall | images/s |")
    print("| --- | --- | --- | --- |")
    for n, mb, wall in rows:
        print(f"| {n:,} | {mb:,.0f} MB | {wall:.1f} s | {n / wall:,.0f} |")
    if len(rows) > 1:
        print(f"ratio of peak RSS, largest / smallest: {rows[-1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()
