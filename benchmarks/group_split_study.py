"""Random vs group-aware (and duplicate-merged) membership splits, side by side.

For each data sample and each split protocol: train a PaperCNN on the members, train and test MINT at
layer 7 (class-conditioned), and print the classifier's gap on the test set's members / non-members,
the loss-threshold attack's AUROC and MINT's AUROC on the same held-out images.

    python benchmarks/group_split_study.py --data gtsrb cifar10 --epochs 30 --out /tmp/group_study
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mint.cli import main as cli
from mint.records.report import TestReport
from mint.tasks.callbacks import last_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PROTOCOLS = {
    "random": ["--data.group_aware=false", "--data.duplicates=ignore"],
    "group-aware": ["--data.group_aware=true", "--data.duplicates=merge"],
}


def run_arm(data: str, protocol: str, epochs: int, detector_epochs: int, out: Path) -> dict:
    name = f"{data}_{protocol}"
    log = [f"--trainer.logger.save_dir={out}", "--trainer.enable_progress_bar=false"]
    clf = cli([
        "fit", "--model=mint.TargetModule", "--model.width=0.5", "--model.block_dropout=0",
        "--data=mint.TargetDataModule", "--data.source=mint.data.NpzSource",
        f"--data.source.train={SHARED / f'{data}_mini_train.npz'}",
        f"--data.source.test={SHARED / f'{data}_mini_test.npz'}", "--data.batch_size=50",
        *PROTOCOLS[protocol], f"--trainer.max_epochs={epochs}", "--trainer.check_val_every_n_epoch=10",
        "--trainer.logger=lightning.pytorch.loggers.TensorBoardLogger",
        f"--trainer.logger.name={name}_clf", *log,
    ])  # fmt: skip
    ckpt = last_checkpoint(clf.trainer)
    mint = [
        "--model=mint.DetectorModule", "--model.class_conditioning=per_class",
        "--data=mint.DetectorDataModule", f"--data.target_ckpt={ckpt}", "--data.layers=[layer7]",
        "--data.val_size=100",
        "--data.test_size=250", "--data.batch_size=50", f"--data.cache_dir={out / 'cache'}",
        f"--trainer.max_epochs={detector_epochs}",
        "--trainer.logger=lightning.pytorch.loggers.TensorBoardLogger",
        f"--trainer.logger.name={name}_mint", *log,
    ]  # fmt: skip
    det = cli(["fit", *mint])
    test = cli(["test", *mint, f"--ckpt_path={det.trainer.checkpoint_callback.best_model_path}"])
    res = TestReport.read(test.trainer.log_dir)
    split, control = res.target_split, res.raw["controls"]["class_only"]
    return {
        "data": data,
        "protocol": protocol,
        "groups": split["num_groups"],
        "duplicates": split["duplicates"].get("duplicate_images", "-"),
        "test set": f"{res.mint.members}+{res.mint.nonmembers}",
        "acc members": res.target_gap.member_acc,
        "acc non-members": res.target_gap.nonmember_acc,
        "gap": res.target_gap.gap,
        "loss AUROC": res.baselines["loss"].auroc,
        "MINT AUROC": res.mint.auroc,
        "class-only AUROC [95% CI]": "{:.3f} [{:.3f}, {:.3f}]".format(
            control["auroc"], *control["auroc_ci95"]
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=["gtsrb", "cifar10"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--detector-epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("lightning_logs/group_split_study"))
    args = parser.parse_args()
    rows = [run_arm(d, p, args.epochs, args.detector_epochs, args.out) for d in args.data for p in PROTOCOLS]
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |\n|" + " --- |" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
