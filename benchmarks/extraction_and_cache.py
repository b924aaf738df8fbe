"""Activation extraction vs a plain forward pass, and detector epochs from the cache vs on the fly.

Prints ratios measured in one run (targets from the MINT issue: extraction >= 0.9x the throughput of a
plain forward pass; an epoch from the cache >= 5x faster than extracting on the fly).

    python benchmarks/extraction_and_cache.py \
        --target-ckpt lightning_logs/target_cifar10/latest/checkpoints/best.ckpt

The MINT epochs take the speed options of the configs: `--precision bf16-mixed`, `--channels-last`,
`--compile`, `--num-workers N` (with persistent workers), `--pin-memory`.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import lightning as L
import numpy as np
import torch

from mint.data import ActivationCache, DetectorDataModule
from mint.data.images import to_tensor
from mint.models import Target
from mint.records import load_target_checkpoint
from mint.tasks import DetectorModule


def forward_throughput(target: Target, images: np.ndarray, batch: int) -> float:
    """Images per second of the target's plain forward pass (normalization included), no storing."""
    net = target.net
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = to_tensor(torch.from_numpy(images[i : i + batch]))
            net((x - target.mean[:, None, None]) / target.std[:, None, None])
    return len(images) / (time.perf_counter() - start)


def extraction_throughput(target: Target, images: np.ndarray, batch: int, folder: str) -> float:
    """Images per second of building an activation cache (extraction, float16 conversion, writing)."""
    cache = ActivationCache(folder, {"benchmark": time.time()})
    start = time.perf_counter()
    cache.ensure(target, images, np.arange(len(images)), batch)
    return len(images) / (time.perf_counter() - start)


def epoch_seconds(
    ckpt: str, layers: list[str], cache_dir: str | None, train_size: int, speed: argparse.Namespace
) -> float:
    """Wall time of one MINT training epoch (no validation), the cache already built if used."""
    dm = DetectorDataModule(
        ckpt, layers=layers, train_size=train_size, val_size=100, test_size=100, cache_dir=cache_dir,
        num_workers=speed.num_workers, pin_memory=speed.pin_memory,
    )  # fmt: skip
    model = DetectorModule(dm.target, channels_last=speed.channels_last, compile=speed.compile)
    dm.prepare_data()
    dm.setup("fit")
    trainer = L.Trainer(
        max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        precision=speed.precision,
    )  # fmt: skip
    model.configure_callbacks = lambda: []
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-ckpt", default="lightning_logs/target_cifar10/latest/checkpoints/best.ckpt")
    parser.add_argument("--images", type=int, default=10000, help="images for the throughput test")
    parser.add_argument("--train-size", type=int, default=5000, help="members (and non-members) per epoch")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--precision", default="32-true", help="e.g. bf16-mixed")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the detector")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--pin-memory", action="store_true")
    args = parser.parse_args()
    record = load_target_checkpoint(args.target_ckpt)
    from mint.data.membership import rebuild_membership

    images = rebuild_membership(record.manifest).train.images[: args.images]
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, CPU")  # fmt: skip
    print(f"MINT epochs: precision {args.precision}, channels_last {args.channels_last}, "
          f"compile {args.compile}, workers {args.num_workers}, pin_memory {args.pin_memory}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for layers in (["layer7"], ["layer2"]):
            target = Target.from_record(record, layers)
            forward_throughput(target, images[:1024], args.batch)  # warm-up
            fwd = forward_throughput(target, images, args.batch)
            ext = extraction_throughput(target, images, args.batch, tmp)
            print(f"{layers[0]}: plain forward {fwd:8.0f} img/s | cache build {ext:8.0f} img/s | "
                  f"ratio {ext / fwd:.2f} (target >= 0.9)")  # fmt: skip
        for layers in (["layer7"], ["layer2"]):
            cached = epoch_seconds(args.target_ckpt, layers, tmp, args.train_size, args)  # builds the cache
            cached = epoch_seconds(args.target_ckpt, layers, tmp, args.train_size, args)
            fly = epoch_seconds(args.target_ckpt, layers, None, args.train_size, args)
            n = 2 * args.train_size
            print(f"{layers[0]}: MINT epoch over {n} images: cached {cached:6.1f} s | "
                  f"on the fly {fly:6.1f} s | speed-up {fly / cached:.1f}x (target >= 5x)")  # fmt: skip


if __name__ == "__main__":
    main()
