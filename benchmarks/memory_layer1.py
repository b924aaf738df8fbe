"""Peak resident memory of building the activation cache and of one MINT epoch, at 10k and 50k images.

CIFAR-10's `layer1` is a 32x32x32 map (64 KB per image in float16: 3.3 GB for 50k images), so a
pipeline that holds the activations in RAM, or lets memory-mapped pages pile up in the process,
shows it at once. Each phase runs in a fresh subprocess, which reports its peak RSS (VmHWM, page
cache mapped into the process included) and its peak anonymous memory (sampled every 20 ms). The
images themselves (uint8, 150 MB for CIFAR-10's 50k train images) are loaded whole by every run and
are the same for both sizes.

    python benchmarks/memory_layer1.py \
        --target-ckpt lightning_logs/target_cifar10/latest/checkpoints/best.ckpt

Needs about 64 KB x the largest size of free disk under `--cache-dir` (deleted afterwards).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

VAL, TEST = 500, 500  # per side; the rest of each size trains the detector


def status_kb(field: str) -> int:
    """A `/proc/self/status` field in kB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def sample_peak_anon(peak: dict, stop: threading.Event) -> None:
    while not stop.wait(0.02):
        peak["anon"] = max(peak["anon"], status_kb("RssAnon"))


def child(args: argparse.Namespace) -> None:
    """One phase in this (fresh) process; prints one JSON line."""
    import lightning as L

    from mint.data import DetectorDataModule
    from mint.tasks import DetectorModule

    peak, stop = {"anon": 0}, threading.Event()
    threading.Thread(target=sample_peak_anon, args=(peak, stop), daemon=True).start()
    base = status_kb("VmRSS")
    side = args.size // 2 - VAL - TEST
    dm = DetectorDataModule(
        args.target_ckpt, layers=[args.layer], train_size=side, val_size=VAL, test_size=TEST,
        batch_size=args.batch_size, cache_dir=args.cache_dir,
    )  # fmt: skip
    model = DetectorModule(dm.target, path_kind="cnn")
    start = time.perf_counter()
    if args.phase == "build":
        dm.prepare_data()
    else:
        dm.setup("fit")
        model.configure_callbacks = lambda: []
        trainer = L.Trainer(
            max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        )  # fmt: skip
        trainer.fit(model, datamodule=dm)
    seconds = time.perf_counter() - start
    stop.set()
    images = len(dm.sets.pool)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    print(json.dumps({"images": images, "seconds": seconds, "peak_rss_mb": peak_rss / 1024,
                      "peak_anon_mb": peak["anon"] / 1024, "after_import_mb": base / 1024}))  # fmt: skip


def run_phase(args: argparse.Namespace, phase: str, size: int, cache_dir: str) -> dict:
    cmd = [sys.executable, __file__, "--child", phase, "--size", str(size), "--cache-dir", cache_dir,
           "--target-ckpt", args.target_ckpt, "--layer", args.layer,
           "--batch-size", str(args.batch_size)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{phase} at {size} images failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-ckpt", default="lightning_logs/target_cifar10/latest/checkpoints/best.ckpt")
    parser.add_argument("--layer", default="layer1")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 50000])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--cache-dir", default=None, help="where the cache is built (default: a temp folder)")
    parser.add_argument("--child", choices=["build", "epoch"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.phase = args.child
        return child(args)
    print(f"machine: {platform.processor() or platform.machine()}, CPU; layer {args.layer}; "
          f"peak RSS = VmHWM of a fresh process per phase")  # fmt: skip
    results = {}
    for size in args.sizes:
        root = tempfile.mkdtemp(prefix="mint_mem_", dir=args.cache_dir)
        try:
            free = shutil.disk_usage(root).free / 2**30
            print(f"{size} images: cache under {root} ({free:.0f} GB free)", flush=True)
            results[size] = {phase: run_phase(args, phase, size, root) for phase in ("build", "epoch")}
        finally:
            shutil.rmtree(root, ignore_errors=True)
        for phase, r in results[size].items():
            print(f"  {phase:5s}: {r['images']:6d} images, {r['seconds']:7.1f} s, "
                  f"peak RSS {r['peak_rss_mb']:7.0f} MB, peak anonymous {r['peak_anon_mb']:7.0f} MB",
                  flush=True)  # fmt: skip
    small, large = min(results), max(results)
    for phase in ("build", "epoch"):
        a, b = results[small][phase], results[large][phase]
        ratio, anon = b["peak_rss_mb"] / a["peak_rss_mb"], b["peak_anon_mb"] / a["peak_anon_mb"]
        print(f"{phase}: peak RSS {large // 1000}k / {small // 1000}k = {ratio:.2f} (anonymous {anon:.2f})")


if __name__ == "__main__":
    main()
