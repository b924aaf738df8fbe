"""One mint target audited through two loading paths: its checkpoint, and its weights as a file.

Exports a mint classifier checkpoint's network weights to `.safetensors` (keys without `net.`) and
its split's members / non-members to `.npz`, then fits and tests the same detector config twice on
those known sets: once with `target_ckpt` (mint's checkpoint path), once with a `FactoryTarget`
(`mint.models.build:build_classifier` + the weights file + the checkpoint's mean and std: the path
of a model trained elsewhere). Identical activations give identical detectors and AUROCs; the
script prints both and their difference. The known files list the split's members and non-members
in index order, and the drawing depends only on that order, the labels and the duplicate groups, so
both runs also test on the same images as a run on the recorded split (`mint fit` of the config
as shipped): compare with its `test_results.json`.

    python benchmarks/two_loading_paths.py \
        --target-ckpt lightning_logs/target_cifar10/latest/checkpoints/best.ckpt --out /tmp/two_paths
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from safetensors.torch import save_file

from mint.cli import main as mint
from mint.data.membership import rebuild_membership
from mint.models.paper_cnn import BLOCK_DROPOUT, WIDTH
from mint.records import load_target_checkpoint
from mint.records.report import TestReport


def export(ckpt: str, out: Path) -> list[str]:
    """Weights, known sets and the FactoryTarget arguments of a mint target checkpoint."""
    record = load_target_checkpoint(ckpt)
    weights = {
        k.removeprefix("net."): v.contiguous() for k, v in record.state_dict.items() if k.startswith("net.")
    }
    save_file(weights, out / "weights.safetensors")
    data = rebuild_membership(record.manifest)
    train = data.train
    for name, rows in (("members", data.split.members), ("nonmembers", data.split.nonmembers)):
        np.savez(out / f"{name}.npz", images=train.images[rows], labels=train.labels[rows])
    h = record.hparams
    args = {"arch": h["arch"], "num_classes": h["num_classes"], "image_size": h.get("image_size", 32)}
    args |= {"width": h.get("width", WIDTH), "block_dropout": h.get("block_dropout", BLOCK_DROPOUT)}
    mean, std = (record.state_dict[k].tolist() for k in ("mean", "std"))
    return [
        "--data.init_args.target=mint.models.FactoryTarget",
        "--data.init_args.target.init_args.factory=mint.models.build:build_classifier",
        f"--data.init_args.target.init_args.factory_args={json.dumps(args)}",
        f"--data.init_args.target.init_args.weights={out / 'weights.safetensors'}",
        f"--data.init_args.target.init_args.image_size={args['image_size']}",
        f"--data.init_args.target.init_args.mean={mean}",
        f"--data.init_args.target.init_args.std={std}",
    ]


def fit_and_test(config: str, out: Path, name: str, target: list[str]) -> dict:
    """Fit and test the detector config on the exported known sets; the test results."""
    common = [
        "--config", config, *target,
        f"--data.init_args.members={out / 'members.npz'}",
        f"--data.init_args.nonmembers={out / 'nonmembers.npz'}",
        f"--trainer.logger.init_args.save_dir={out / 'logs'}",
        f"--trainer.logger.init_args.name={name}",
        "--trainer.enable_progress_bar=false",
        f"--data.cache_dir={out / 'cache'}",
    ]  # fmt: skip
    start = time.time()
    cli = mint(["fit", *common])
    test = mint(["test", *common, f"--ckpt_path={cli.trainer.checkpoint_callback.best_model_path}"])
    results = TestReport.read(test.trainer.log_dir).raw
    results["seconds"] = round(time.time() - start)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-ckpt", required=True)
    parser.add_argument("--config", default="configs/mint_layer7.yaml")
    parser.add_argument("--out", default="/tmp/two_paths")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    factory = export(args.target_ckpt, out)
    runs = {
        "checkpoint": fit_and_test(
            args.config, out, "checkpoint", [f"--data.init_args.target_ckpt={args.target_ckpt}"]
        ),
        "weights file": fit_and_test(
            args.config, out, "weights_file", ["--data.init_args.target_ckpt=null", *factory]
        ),
    }
    print(f"\n{'path':<14} {'AUROC [95% CI]':<26} {'TPR@1%':>7} {'loss AUROC':>10} {'test':>11} {'s':>5}")
    for name, r in runs.items():
        m, lo, hi = r["mint"], *r["mint"]["auroc_ci95"]
        n = r["data"]["sets"]["test"]
        loss, sizes = r["baselines"]["loss"]["auroc"], f"{n['members']}+{n['nonmembers']}"
        print(f"{name:<14} {m['auroc']:.4f} [{lo:.4f}, {hi:.4f}]   {m['tpr@1%fpr']:>7.4f} {loss:>10.4f} "
              f"{sizes:>11} {r['seconds']:>5}")  # fmt: skip
    a, b = (r["mint"]["auroc"] for r in runs.values())
    print(f"AUROC difference: {abs(a - b):.2e}")


if __name__ == "__main__":
    main()
