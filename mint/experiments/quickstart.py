"""`mint quickstart`: the whole MINT pipeline on the bundled CIFAR-10 sample, offline, in minutes.

    mint quickstart                      # or: python -m mint quickstart
    mint quickstart --target-epochs 5 --detector-epochs 3 --output /tmp/mint_runs

1. trains a small `PaperCNN` target on 1,000 member images of the bundled sample until it memorizes;
2. trains the detector on its layer 7 (class-conditioned) with balanced members / non-members;
3. tests it on held-out members and non-members and prints the result beside the target's
   accuracy gap and the loss-threshold attack on the same images.

Every run gets a new folder `<output>/run_N`, so a second run never overwrites the first.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from mint.cli import main as cli_main
from mint.commands import command_parser
from mint.errors import check_count
from mint.experiments.runs import new_run_dir
from mint.records.report import TestReport
from mint.tasks.callbacks import last_checkpoint


def _trainer_args(run: Path, name: str, epochs: int, seed: int) -> list[str]:
    return [
        f"--seed_everything={seed}",
        f"--trainer.max_epochs={epochs}",
        "--trainer.logger=lightning.pytorch.loggers.TensorBoardLogger",
        f"--trainer.logger.save_dir={run}",
        f"--trainer.logger.name={name}",
        "--trainer.enable_model_summary=false",
        "--trainer.log_every_n_steps=5",
    ]


def run_quickstart(
    output: str | Path = "lightning_logs/quickstart",
    target_epochs: int = 30,
    detector_epochs: int = 20,
    seed: int = 0,
    progress_bar: bool = True,
) -> dict:
    """Run the pipeline; return a summary (also written to `<run>/summary.json`)."""
    check_count("--target-epochs", target_epochs)  # Lightning reads -1 as "train forever"
    check_count("--detector-epochs", detector_epochs)
    check_count("--seed", seed, minimum=0)
    run = new_run_dir(output, "mint quickstart")
    bar = [f"--trainer.enable_progress_bar={str(progress_bar).lower()}"]
    target_fit = cli_main([
        "fit", *_trainer_args(run, "target", target_epochs, seed), *bar,
        "--model=mint.TargetModule", "--model.width=0.5", "--model.block_dropout=0",
        "--data=mint.TargetDataModule", "--data.source=mint.data.SampleSource", "--data.batch_size=50",
        "--trainer.check_val_every_n_epoch=5",
    ])  # fmt: skip
    target_ckpt = last_checkpoint(target_fit.trainer)  # the memorized end state
    target_fit.trainer.validate(
        target_fit.model, datamodule=target_fit.datamodule, verbose=False
    )  # measure that end state
    detector_args = [
        *_trainer_args(run, "mint_layer7", detector_epochs, seed), *bar,
        "--model=mint.DetectorModule", "--model.class_conditioning=per_class",
        "--data=mint.DetectorDataModule", f"--data.target_ckpt={target_ckpt}", "--data.layers=[layer7]",
        "--data.val_size=100", "--data.test_size=250", "--data.calibration_size=100", "--data.batch_size=50",
        f"--data.cache_dir={run / 'activation_cache'}",
    ]  # fmt: skip
    det = cli_main(["fit", *detector_args])
    best = det.trainer.checkpoint_callback.best_model_path
    test = cli_main(["test", *detector_args, f"--ckpt_path={best}"])
    report = TestReport.read(test.trainer.log_dir)
    metrics = target_fit.trainer.callback_metrics
    summary = {
        "target_member_acc": float(metrics["val/member_acc"]),
        "target_test_acc": float(metrics["val/acc"]),
        "target_gap": float(metrics["val/gap"]),
        "mint": report.raw["mint"],
        "loss_attack_auroc": report.baselines["loss"].auroc,
        "white_box_gain": report.raw["white_box_gain"],
        "picked": report.picked,
        "target_ckpt": target_ckpt,
        "detector_ckpt": best,
        "test_results": str(Path(test.trainer.log_dir) / "test_results.json"),
        "run_dir": str(run),
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    print(format_summary(summary))
    return summary


def _fmt(value: float, n_nonmembers: int, fpr: float) -> str:
    if math.isnan(value):
        return f"not resolvable (needs >= {round(1 / fpr)} non-members, has {n_nonmembers})"
    return f"{value:.3f}"


def format_summary(s: dict) -> str:
    """The short table printed at the end of the quickstart."""
    m = s["mint"]
    rows = [
        ("target accuracy on members (train)", f"{s['target_member_acc']:.3f}"),
        ("target accuracy on test split", f"{s['target_test_acc']:.3f}"),
        ("generalization gap", f"{s['target_gap']:.3f}"),
        (
            f"MINT layer7 + output AUROC ({m['n_members']} members / {m['n_nonmembers']} non-members)",
            f"{m['auroc']:.3f}",
        ),
        ("MINT balanced accuracy (validation threshold)", f"{m['balanced_acc_at_threshold']:.3f}"),
        ("MINT TPR @ 1% FPR", _fmt(m["tpr@1%fpr"], m["n_nonmembers"], 0.01)),
        ("MINT TPR @ 0.1% FPR", _fmt(m["tpr@0.1%fpr"], m["n_nonmembers"], 0.001)),
        ("loss-threshold attack AUROC (same images)", f"{s['loss_attack_auroc']:.3f}"),
    ]
    gain = s.get("white_box_gain")
    if gain:  # the strongest black-box attack, and what reading the layers adds to it
        lo, hi = gain["auroc_ci95"]
        interval = f"{gain['auroc']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
        rows.append((f"MINT - best black-box ({gain['against']}) AUROC", interval))
        rows.append(("picked on validation (all scorers)", s["picked"]))
    width = max(len(r[0]) for r in rows)
    lines = ["", "mint quickstart: bundled CIFAR-10 sample, PaperCNN target, MINT at layer 7 (per class)"]
    lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
    lines += [
        f"  target checkpoint:     {s['target_ckpt']}",
        f"  detector checkpoint:   {s['detector_ckpt']}",
        f"  results:               {s['test_results']}",
        f"  TensorBoard:           tensorboard --logdir {s['run_dir']}",
        f"  audit a set of images: mint audit --ckpt {s['detector_ckpt']} --images FOLDER --output DIR",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point of `mint quickstart`."""
    parser = command_parser("mint quickstart", __doc__)
    parser.add_argument(
        "--output", default="lightning_logs/quickstart", help="folder of the runs (run_N inside)"
    )
    parser.add_argument("--target-epochs", type=int, default=30, help="epochs of the target")
    parser.add_argument("--detector-epochs", type=int, default=20, help="epochs of the detector")
    parser.add_argument("--seed", type=int, default=0, help="seed of everything")
    parser.add_argument("--no-progress-bar", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    return run_quickstart(
        args.output, args.target_epochs, args.detector_epochs, args.seed, not args.no_progress_bar
    )


if __name__ == "__main__":
    main()
