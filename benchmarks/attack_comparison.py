"""MINT beside the reference-model attacks (LiRA, RMIA) on one target, for several numbers of references.

Trains a memorizing target (the paper's CNN, width 0.5, no dropout, no augmentation; by default on the
bundled CIFAR-10 sample: 1,000 members, so it runs on 2 CPU cores in minutes), a MINT layer-7
class-conditioned detector on it (the paper's) and the default one (layer 7 + float64 output
features; the better of the two by validation AUROC is "MINT best variant", tested once: it reads no
reference model), and an online and an offline set of max(K) reference models with
the target's own recipe (`mint references`); then tests the detector with the first K references
of each set for every K, so every attack is scored on the same balanced test images, and prints
one table with AUROC [95% CI], TPR at 1% and 0.1% FPR and the cost in seconds (references: their
training; MINT: extraction + detector training). With several `--seeds` (target weights and split),
each seed's table and then the mean and the range over seeds. Each seed's runs go to
`<out>/seed_<s>`; a rerun reuses what is there.

    python benchmarks/attack_comparison.py --out /tmp/attack_comparison --counts 1 2 4 8 --seeds 0 1 2
    python benchmarks/attack_comparison.py --source-npz train.npz --source-test-npz test.npz --test-size 2000

The same command scales by config: `-- --trainer.accelerator=gpu --trainer.devices=4` goes to every fit.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mint.cli import main as mint
from mint.experiments.references import main as references
from mint.records.report import TestReport

ROWS = ("loss", "modified_entropy", "lira_online", "lira_offline", "lira_fixed_variance", "rmia_online",
        "rmia_offline", "calibrated_loss", "mint", "mint_best")  # fmt: skip
LABELS = {"mint": "MINT layer 7 + class", "mint_best": "MINT best variant (by validation)"}


def pct(value: float) -> str:
    """A rate in percent; NaN (a level the test set cannot resolve) as n/r."""
    return "n/r" if value != value else f"{100 * value:.1f}%"


def cell(r: dict) -> str:
    """AUROC [CI] | TPR@1% [CI] | TPR@0.1% [CI] of one report."""
    lo, hi = r["auroc_ci95"]
    tprs = []
    for level in ("1%", "0.1%"):
        ci = r.get(f"tpr@{level}fpr_ci95") or [float("nan")] * 2
        tprs.append(pct(r[f"tpr@{level}fpr"]) + (f" [{pct(ci[0])}, {pct(ci[1])}]" if ci[0] == ci[0] else ""))
    return f"{r['auroc']:.3f} [{lo:.3f}, {hi:.3f}] | {tprs[0]} | {tprs[1]}"


def target_line(results: dict) -> str:
    """The target's accuracy on the test set's members and non-members, and the test set's size."""
    t, mint = results["target_on_test_set"], results["mint"]
    return (f"target {t['target_member_acc']:.3f} members / {t['target_nonmember_acc']:.3f} non-members "
            f"on the test images (gap {t['target_gap']:.3f}); test {mint['n_members']} + "
            f"{mint['n_nonmembers']}")  # fmt: skip


def run_seed(args, seed: int, out: Path, quiet: list[str]) -> tuple[dict, float]:
    """Target, detector and reference sets of one target seed; {(K, mode): test results}, target seconds."""
    source = (["--data.source=mint.data.NpzSource", f"--data.source.train={args.source_npz}",
               f"--data.source.test={args.source_test_npz}"]
              if args.source_npz else ["--data.source=mint.data.SampleSource"])  # fmt: skip
    run = out / "target" / "version_0"
    start = time.perf_counter()
    if not (run / "checkpoints" / "last.ckpt").is_file():  # a rerun reuses the target (and references)
        mint([
            "fit", "--config", "configs/target_cifar10.yaml", *source, *quiet,
            f"--seed_everything={seed}", f"--data.split_seed={seed}",
            f"--data.member_fraction={args.members}", "--model.width=0.5",
            "--model.block_dropout=0", "--data.batch_size=50", f"--trainer.max_epochs={args.epochs}",
            "--trainer.check_val_every_n_epoch=5", f"--trainer.logger.init_args.save_dir={out}",
            "--trainer.logger.init_args.name=target", "--trainer.logger.init_args.version=version_0",
        ])  # fmt: skip
    target_seconds = time.perf_counter() - start
    detector = [
        "--config", "configs/mint_layer7.yaml", f"--data.init_args.target_ckpt={run}/checkpoints/last.ckpt",
        "--model.init_args.output_features=false",  # the paper's (more variants: detector_inputs.py)
        "--model.init_args.calibrated_base=false",
        *quiet, "--data.val_size=100", f"--data.test_size={args.test_size}", "--data.calibration_size=0",
        "--data.batch_size=50", f"--data.cache_dir={out / 'cache'}",
        f"--trainer.logger.init_args.save_dir={out}", "--trainer.logger.init_args.name=mint_layer7",
    ]  # fmt: skip
    best = fit_once(detector, out / "mint_layer7")
    # MINT's best variant: the paper's detector or the default one (layer 7 + float64 output
    # features), whichever has the better validation AUROC; it reads no references: tested once.
    paper_only = ("output_features", "calibrated_base", "init_args.name=")
    default = [a for a in detector if not any(k in a for k in paper_only)]
    default += ["--trainer.logger.init_args.name=mint_default"]
    variants = {"layer 7 + class": (detector, best)}
    variants["layer 7 + output + class"] = (default, fit_once(default, out / "mint_default"))
    picked = max(variants, key=lambda v: validation_auroc(variants[v][1]))
    args_of, ckpt = variants[picked]
    test = mint(["test", *args_of, f"--ckpt_path={ckpt}"])
    tested = TestReport.read(test.trainer.log_dir).raw
    mint_best = tested["mint"] | {"variant": picked, "seconds": tested["budget"]["mint_seconds"]}
    table = {}
    # One online and one offline set of max(K) references; a budget of K reads the first K of a set
    # (row k of the keep mask does not depend on the set's size), so every K costs nothing more.
    # Online sets need IN and OUT references for every image (K >= 2); offline sets never saw the
    # detector's test images (`--audited`), as an outside auditor's references would not.
    for mode in ("online", "offline"):
        counts = [k for k in args.counts if k > 1 or mode == "offline"]
        if not counts:
            continue
        audited = ["--audited", best] if mode == "offline" else []
        asked = ["--target-run", str(run), "--count", str(max(counts)), *audited]
        asked += ["--save-dir", str(out / mode)]
        records = references([*asked, "--", *quiet])
        folder = Path(records[0]["checkpoint"]).parents[3]  # <set>/ref_0/version_0/checkpoints/last.ckpt
        for k in counts:
            test = mint(["test", *detector, f"--ckpt_path={best}", f"--model.init_args.references={folder}",
                         f"--model.init_args.reference_count={k}"])  # fmt: skip
            table[(k, mode)] = TestReport.read(test.trainer.log_dir).raw
            table[(k, mode)]["mint_best"] = mint_best
    table = dict(sorted(table.items()))
    return table, target_seconds


def fit_once(args: list[str], folder: Path) -> str:
    """The best checkpoint of a detector run in `folder`, fitted (20 epochs) unless one is there."""
    found = sorted(folder.glob("version_*/checkpoints/best.ckpt"))
    if found:
        return str(found[0])
    return mint(["fit", *args, "--trainer.max_epochs=20"]).trainer.checkpoint_callback.best_model_path


def validation_auroc(ckpt: str) -> float:
    """The validation AUROC that chose a detector checkpoint (its `ModelCheckpoint` state)."""
    import torch

    states = torch.load(ckpt, weights_only=True, map_location="cpu")["callbacks"]
    return max(float(v["best_model_score"]) for k, v in states.items() if k.startswith("ModelCheckpoint"))


def print_seed(seed: int, table: dict, target_seconds: float) -> None:
    """The table of one target seed, every report with its intervals."""
    print(f"\nseed {seed}: {target_line(next(iter(table.values())))}; target fit {target_seconds:.0f} s")
    print("\n| K | references | attack | AUROC [95% CI] | TPR@1% | TPR@0.1% | cost (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (k, mode), r in table.items():
        reports = {"mint": r["mint"], "mint_best": r["mint_best"], **r["baselines"], **r["reference_attacks"]}
        for name in ROWS:
            if name in reports:
                budget = r["budget"]
                cost = {"mint": budget["mint_seconds"], "mint_best": r["mint_best"]["seconds"]}.get(name, 0)
                cost = budget["reference_training_seconds"] if name in r["reference_attacks"] else cost
                label = LABELS.get(name, name)
                label += f": {r['mint_best']['variant']}" if name == "mint_best" else ""
                print(f"| {k} | {mode} | {label} | {cell(reports[name])} | {cost:.0f} |")
        notes = f"RMIA offline a = {r['references']['rmia_offline_a']:.1f}; {r['references']['notes']}"
        print(f"| {k} | {mode} | ({notes}) | | | | |")


def print_spread(tables: dict[int, dict]) -> None:
    """Mean and spread (min-max) over target seeds of AUROC and TPR at 1% FPR."""
    print(f"\nover {len(tables)} target seeds: mean [min, max]\n")
    print("| K | references | attack | AUROC | TPR@1% |\n| --- | --- | --- | --- | --- |")
    for key in next(iter(tables.values())):
        for name in ROWS:
            runs = [{"mint": t[key]["mint"], "mint_best": t[key]["mint_best"], **t[key]["baselines"],
                     **t[key]["reference_attacks"]} for t in tables.values()]  # fmt: skip
            if not all(name in r for r in runs):
                continue
            cells = []
            for metric in ("auroc", "tpr@1%fpr"):
                v = [r[name][metric] for r in runs]
                f = (lambda x: f"{x:.3f}") if metric == "auroc" else (lambda x: f"{100 * x:.1f}%")
                cells.append(f"{f(sum(v) / len(v))} [{f(min(v))}, {f(max(v))}]")
            print(f"| {key[0]} | {key[1]} | {name} | {cells[0]} | {cells[1]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/attack_comparison")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--epochs", type=int, default=30, help="target (and reference) epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="target seeds (weights, split)")
    parser.add_argument("--source-npz", help="a train .npz (default: the bundled CIFAR-10 sample)")
    parser.add_argument("--source-test-npz", help="the test .npz beside it (the target's validation data)")
    parser.add_argument(
        "--members", type=float, default=0.5, help="member fraction of the source's train split"
    )
    parser.add_argument("--test-size", type=int, default=250, help="detector test members (and non-members)")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    quiet = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", *extra]
    tables = {}
    for seed in args.seeds:
        tables[seed], seconds = run_seed(args, seed, Path(args.out) / f"seed_{seed}", quiet)
        print_seed(seed, tables[seed], seconds)
    if len(tables) > 1:
        print_spread(tables)


if __name__ == "__main__":
    main()
