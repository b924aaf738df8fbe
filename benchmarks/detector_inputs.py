"""What a detector should read: layers, float64 output features, or both, beside the black-box attacks.

For each target, trains one class-conditioned detector per variant on the same sets (the test set is
drawn first, so every variant and every baseline is scored on the same images) and prints AUROC
[95% CI], TPR at 1% FPR [CI] and at 0.1% FPR, the validation AUROC of the kept epoch, and which
variant validation picks (never the test set). Targets are either trained here on a sample
(`--data gtsrb cifar100 cifar10`: PaperCNN width 0.5, no dropout, group-aware split, as
`group_split_study.py`) or given (`--target-ckpt`, with `--detector-args` for their sets).

    python benchmarks/detector_inputs.py --data gtsrb cifar100 --out /tmp/detector_inputs
    python benchmarks/detector_inputs.py --target-ckpt RUN/checkpoints/last.ckpt --name cifar10_5k \
        --detector-args="--data.val_size=100 --data.test_size=2000 --data.calibration_size=0 \
        --data.batch_size=50"
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from attack_comparison import cell, target_line  # (the benchmarks folder is on the path of a script)

from mint.cli import main as cli
from mint.records.report import TestReport
from mint.tasks.callbacks import last_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
VARIANTS = {  # each names whether it reads the output features (on by default)
    "layer7": ["--data.init_args.layers=[layer7]", "--model.init_args.output_features=false",
               "--model.init_args.calibrated_base=false"],  # the paper's MINT: the layer alone
    "output": ["--data.init_args.layers=[]", "--model.init_args.output_features=true"],
    "layer7+output": ["--data.init_args.layers=[layer7]", "--model.init_args.output_features=true"],
    "grad": ["--data.init_args.layers=[grad:layer8, gradnorm:all]",
             "--model.init_args.output_features=false"],
    "layer7+output+grad": ["--data.init_args.layers=[layer7, grad:layer8, gradnorm:all]",
                           "--model.init_args.output_features=true"],
    # the last layer's gradients only (gradient_extraction.py measures the cost of each)
    "layer7+output+gradlast": ["--data.init_args.layers=[layer7, grad:layer8, gradnorm:layer8]",
                               "--model.init_args.output_features=true"],
}  # fmt: skip
# the same inputs with the class told otherwise, or not at all (few known members per class)
VARIANTS |= {f"{name}+{how}": [*VARIANTS[name], f"--model.init_args.class_conditioning={how}"]
             for name in ("output", "layer7+output") for how in ("none", "embedding")}  # fmt: skip
# the same inputs without the class-calibrated base (the default detector before issue 28)
VARIANTS |= {f"{name}+nobase": [*VARIANTS[name], "--model.init_args.calibrated_base=false"]
             for name in ("output", "layer7+output", "layer7+output+grad")}  # fmt: skip
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def train_target(data: str, epochs: int, out: Path, extra: list[str], tag: str) -> str:
    """A memorizing PaperCNN on a shared sample, group-aware split (reused when it exists); `extra`
    overrides its recipe, and `tag` then names its folder (`<data><tag>_target`)."""
    found = sorted((out / f"{data}{tag}_target").glob("version_*/checkpoints/last.ckpt"))
    if found:
        return str(found[-1])
    run = cli([
        "fit", "--model=mint.TargetModule", "--model.width=0.5", "--model.block_dropout=0",
        "--data=mint.TargetDataModule", "--data.source=mint.data.NpzSource",
        f"--data.source.train={SHARED / f'{data}_mini_train.npz'}",
        f"--data.source.test={SHARED / f'{data}_mini_test.npz'}", "--data.batch_size=50",
        f"--trainer.max_epochs={epochs}", "--trainer.check_val_every_n_epoch=10",
        "--trainer.logger=lightning.pytorch.loggers.TensorBoardLogger", f"--trainer.logger.save_dir={out}",
        f"--trainer.logger.name={data}{tag}_target", *QUIET, *extra,
    ])  # fmt: skip
    return last_checkpoint(run.trainer)


def run_variant(
    ckpt: str, name: str, variant: str, extra: list[str], epochs: int, out: Path, seed: int
) -> dict:
    """Fit and test one detector variant; its test results with the kept epoch's validation AUROC."""
    args = [
        "--config", "configs/mint_layer7.yaml", f"--data.init_args.target_ckpt={ckpt}", *QUIET,
        f"--seed_everything={seed}", f"--data.cache_dir={out / 'cache'}", *extra,
        *VARIANTS[variant],
        f"--trainer.logger.init_args.save_dir={out}", f"--trainer.logger.init_args.name={name}_{variant}",
    ]  # fmt: skip
    start = time.perf_counter()
    fit = cli(["fit", *args, f"--trainer.max_epochs={epochs}"])
    seconds = time.perf_counter() - start
    callback = fit.trainer.checkpoint_callback
    test = cli(["test", *args, f"--ckpt_path={callback.best_model_path}"])
    results = TestReport.read(test.trainer.log_dir).raw
    return results | {"val_auroc": float(callback.best_model_score), "seconds": seconds}


def report(name: str, runs: dict[str, dict]) -> None:
    """One table per target: every variant, then the black-box attacks on the same test images."""
    first = next(iter(runs.values()))
    print(f"\n### {name}: {target_line(first)}\n")
    print("| scorer | val AUROC | AUROC [95% CI] | TPR@1% [CI] | TPR@0.1% | fit (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    picked = max(runs, key=lambda v: runs[v]["val_auroc"])
    for variant, r in runs.items():
        mark = " (picked by validation)" if variant == picked else ""
        label = f"MINT {variant} + class{mark}"
        print(f"| {label} | {r['val_auroc']:.3f} | {cell(r['mint'])} | {r['seconds']:.0f} |")
    for attack, r in first["baselines"].items():
        print(f"| {attack} | | {cell(r)} | |")
    for attack, r in first.get("learned_attacks", {}).items():  # fitted on the same known images
        print(f"| learned: {attack} | {first['validation_auroc'][attack]:.3f} | {cell(r)} | |")
    for variant, r in runs.items():
        g = r["white_box_gain"]
        lo, hi = g["auroc_ci95"]
        ratio = "-" if g["tpr@1%fpr_ratio"] is None else f"{g['tpr@1%fpr_ratio']:.2f}x"
        print(f"\nwhite-box gain of {variant} over {g['against']}: {g['auroc']:+.3f} [{lo:+.3f}, {hi:+.3f}], "
              f"TPR@1% {ratio}", end="")  # fmt: skip
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="*", default=[], help="shared samples to train targets on")
    parser.add_argument("--target-ckpt", help="a target checkpoint instead (with --name, --detector-args)")
    parser.add_argument("--name", default="target")
    parser.add_argument(
        "--detector-args",
        default="--data.val_size=100 --data.test_size=250 --data.calibration_size=0 --data.batch_size=50",
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS)[:5], choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0, help="seed of the detectors (the sets stay)")
    parser.add_argument("--epochs", type=int, default=30, help="target epochs (samples)")
    parser.add_argument("--target-args", default="", help="overrides of the sample targets' recipe")
    parser.add_argument("--target-tag", default="", help="suffix naming targets trained with them")
    parser.add_argument("--detector-epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("/tmp/detector_inputs"))
    args = parser.parse_args()
    recipe = shlex.split(args.target_args)
    targets = {
        d + args.target_tag: train_target(d, args.epochs, args.out, recipe, args.target_tag)
        for d in args.data
    }
    if args.target_ckpt:
        targets[args.name] = args.target_ckpt
    extra = shlex.split(args.detector_args)
    for name, ckpt in targets.items():
        runs = {
            v: run_variant(ckpt, name, v, extra, args.detector_epochs, args.out, args.seed)
            for v in args.variants
        }
        report(name, runs)


if __name__ == "__main__":
    main()
