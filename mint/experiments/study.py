r"""`mint study`: one factor of the MINT pipeline varied, everything else fixed, one table.

    # detector-side factors reuse one trained target:
    mint study --factor detector_size --values 500 2000 8000 --detector-config configs/mint_layer7.yaml \
        --target-ckpt lightning_logs/target_cifar10/latest/checkpoints/best.ckpt
    mint study --factor conditioning --values none embedding per_class --detector-config ... --target-ckpt ...
    # target-side factors train one target per value, then a detector on each:
    mint study --factor classes --values 10 20 50 100 --target-config configs/target_cifar100.yaml \
        --detector-config configs/mint_cifar100_layer7.yaml
    mint study --factor members --values 0.1 0.3 0.5 ...      # member_fraction of the train split
    mint study --factor target_epochs --values 5 10 20 40 ...
    mint study --factor defense --values none augment label_smoothing=0.1 weight_decay=5e-4 dp=8 ...

Factors (the paper's factor analysis, plus the ones the field asks about):

- `classes`: keep the first k classes of the target's source (`mint.data.ClassSubset`);
- `members`: `member_fraction`, the share of the train split the target is trained on;
- `target_epochs`: how long the target trains (its train/test gap grows with it);
- `defense`: one target per defense setting (`none`, `augment`, `label_smoothing=0.1`,
  `weight_decay=5e-4`, `dropout=0.3`, `early_stopping=3`, `dp=8`; see `mint.experiments.defenses`),
  with a privacy / utility figure and the epsilon each attack proves;
- `detector_size`: members (and as many non-members) the detector is trained on (`train_size`);
  the test set is drawn first, so every value is tested on the same images;
- `conditioning`: whether the detector is told the true class (`none`, `embedding`, `per_class`).

`--target-args` / `--detector-args` pass further LightingCLI overrides to every target / detector run
(quoted, e.g. `--detector-args "--data.test_size=500 --trainer.max_epochs=10"`). Every value gets its
TensorBoard runs under `<output>/study_<factor>/run_N/`, which also receives `study.csv`,
`study.md` and `study.png` (MINT and loss-attack AUROC, and the target's gap, versus the value).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from mint.attacks.registry import curve_style
from mint.commands import command_parser
from mint.errors import MintError, check_float
from mint.evaluation.roc_plot import plt
from mint.experiments import runs
from mint.experiments.defenses import (
    defense_columns,
    defense_override,
    parse_setting,
    privacy_utility_figure,
    with_references,
)
from mint.records.report import TestReport

TARGET_FACTORS = ("classes", "members", "target_epochs", "defense")
MINT_FACTORS = ("detector_size", "conditioning")


def _target_override(factor: str, value: str, source: dict) -> list[str]:
    if factor == "classes":
        subset = {
            "class_path": "mint.data.ClassSubset",
            "init_args": {"classes": int(value), "source": source},
        }
        return [f"--data.source={json.dumps(subset)}"]
    if factor == "members":
        return [f"--data.member_fraction={float(value)}"]
    if factor == "defense":
        return defense_override(value)
    return [f"--trainer.max_epochs={int(value)}"]


def _detector_override(factor: str, value: str) -> list[str]:
    if factor == "detector_size":
        return [f"--data.train_size={int(value)}"]
    if factor == "conditioning":
        return [f"--model.init_args.class_conditioning={value}"]
    return []


def _source_config(target_config: str, target_args: list[str]) -> dict:
    """The target config's source as a plain `class_path` / `init_args` dict (to wrap it)."""
    from mint.cli import MintCLI

    cli = MintCLI(
        args=["--config", target_config, *target_args],
        run=False,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
    )
    return cli.datamodule.source.config()


def check_values(factor: str, values: list[str]) -> None:
    """Fail before any training on values that cannot be used for `factor`."""
    kinds = {"classes": int, "members": float, "target_epochs": int, "detector_size": int}
    if factor == "defense":
        for v in values:
            parse_setting(v)
        return
    for v in values:
        try:
            number = kinds[factor](v) if factor in kinds else None
        except ValueError:
            raise MintError(f"--factor {factor} needs numbers, got {v!r}") from None
        if number is not None:
            check_float(f"--factor {factor} value", number)  # NaN passes every comparison below
        if factor == "members" and not 0 < number < 1:
            raise MintError(f"--factor members takes member fractions in (0, 1), got {v}")
        if factor in ("classes", "target_epochs", "detector_size") and number < 1:
            raise MintError(f"--factor {factor} needs positive values, got {v}")
        if factor == "conditioning" and v not in ("none", "embedding", "per_class"):
            raise MintError(f"conditioning values are none, embedding, per_class; got {v!r}")


def check_arguments(
    factor: str, values: list[str], target_config: str | None, target_ckpt: str | None, references: int
) -> None:
    """Refuse a study that cannot run, before anything trains."""
    check_values(factor, values)
    if references < 0:
        raise MintError(f"--references counts reference models per target: 0 or more, not {references}")
    if references and factor != "defense":
        raise MintError("--references (offline reference models per target) goes with --factor defense")
    if (factor in TARGET_FACTORS or target_ckpt is None) and target_config is None:
        raise MintError(f"--factor {factor} trains targets: give --target-config")
    if target_ckpt is not None and not Path(target_ckpt).is_file():
        raise MintError(f"--target-ckpt {target_ckpt!r} is not a file")


def run_study(
    factor: str,
    values: list[str],
    detector_config: str,
    target_config: str | None = None,
    target_ckpt: str | None = None,
    target_args: list[str] | None = None,
    detector_args: list[str] | None = None,
    output: str = "lightning_logs",
    target_checkpoint: str = "last",
    references: int = 0,
) -> list[dict]:
    """Run the study; return its rows (also written to `<output>/study_<factor>/run_N/`)."""
    check_arguments(factor, values, target_config, target_ckpt, references)
    target_args, detector_args = target_args or [], detector_args or []
    run = runs.new_run_dir(Path(output) / f"study_{factor}", "mint study")
    source = _source_config(target_config, target_args) if factor == "classes" else None
    rows, shared_target, test_acc = [], target_ckpt, None
    for value in values:
        target = shared_target
        if factor in TARGET_FACTORS or target is None:
            from mint.cli import main as cli_main
            from mint.tasks.callbacks import last_checkpoint

            target_over = _target_override(factor, value, source) if factor in TARGET_FACTORS else []
            target_fit = cli_main([
                "fit", "--config", target_config, *target_args, *target_over,
                f"--trainer.logger.init_args.save_dir={run}", "--trainer.logger.init_args.name=target",
                f"--trainer.logger.init_args.version={factor}={value}",
            ])  # fmt: skip
            ckpt = target_fit.trainer.checkpoint_callback
            target = (
                last_checkpoint(target_fit.trainer) if target_checkpoint == "last" else ckpt.best_model_path
            )
            # The last validation's accuracy on the official test split: the target's utility.
            test_acc = float(target_fit.trainer.callback_metrics.get("val/acc", float("nan")))
            if factor not in TARGET_FACTORS:
                shared_target = target  # detector-side factors: one target for every value
        args = ["--config", detector_config, f"--data.init_args.target_ckpt={target}", *detector_args]
        fit, res = runs.fit_and_test(
            [*args, *_detector_override(factor, value)], run, "detector", f"{factor}={value}"
        )
        if references:  # the same detector tested again, beside offline references of its target
            log = [f"--trainer.logger.init_args.save_dir={run}", "--trainer.logger.init_args.name=detector",
                   f"--trainer.logger.init_args.version={factor}={value}-references"]  # fmt: skip
            best = fit.trainer.checkpoint_callback.best_model_path
            res = with_references(
                cli_main, [*args, *log], best, target_fit.trainer.log_dir, references, run / "references"
            )
        row = _row(factor, value, res)
        rows.append(row | defense_columns(res, test_acc) if factor == "defense" else row)
    _write_outputs(run, factor, rows, f"{runs.target_name(res)}; MINT reads {runs.detector_reads(res)}")
    return rows


def _row(factor: str, value: str, res: TestReport) -> dict:
    gap, split = res.target_gap, res.target_split
    m, loss = res.mint, res.baselines["loss"]
    return {
        factor: value,
        "classes": split["num_classes"],
        "target_members": split["num_members"],
        "target_acc_members": gap.member_acc,
        "target_acc_nonmembers": gap.nonmember_acc,
        "gap": gap.gap,
        "detector_train": res.data["sets"]["train"]["members"],
        **{f"mint_{k}": v for k, v in runs.scorer_row(m).items()},
        "loss_auroc": loss.auroc,
        "loss_auroc_ci95": runs.scorer_row(loss)["auroc_ci95"],
        "loss_tpr@1%fpr": loss.tpr_at_1pct_fpr,
        **_gain_columns(res),
        "n_test": f"{m.members}+{m.nonmembers}",
    }


def _gain_columns(res: TestReport) -> dict:
    """The strongest black-box attack on the same images (chosen on test) and MINT's gain over it."""
    gain = res.white_box_gain
    if gain is None:  # a results file of a mint before the learned attacks
        return {}
    return {
        "best_black_box": gain.against,
        "best_black_box_auroc": res.attacks[gain.against].auroc,
        "white_box_gain_auroc": gain.auroc,
        "white_box_gain_ci95": list(gain.auroc_ci95),
    }


def _write_outputs(run: Path, factor: str, rows: list[dict], what: str) -> None:
    header = (
        f"Factor `{factor}`. MINT and the loss attack are scored on the same held-out balanced set; "
        "`gap` is the target's accuracy on those members minus on those non-members. n/r: not resolvable."
    )
    if factor == "defense":
        notes = [f"- {r['defense']}: {r.pop('note')}" for r in rows if "note" in r]
        header += (
            " `target_test_acc`: accuracy on the official test split (utility). `*_epsilon_lb`: the "
            "epsilon each attack proves at 95% confidence (threshold fitted on half of the test images, "
            "bounded on the other half; delta: the DP-SGD target's, otherwise members ** -1.1); "
            "`claimed_epsilon`: what a DP-SGD target's accountant spent."
        ) + "".join(f"\n{n}" for n in notes)
        md = runs.write_tables(run, "study", rows, header)
        runs.finish(privacy_utility_figure(rows), run / "study.png", md, "mint study")
        return
    md = runs.write_tables(run, "study", rows, header)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = list(range(len(rows)))
    for key, label, style in (
        ("mint", "MINT AUROC", curve_style("mint")),
        ("loss", "loss attack AUROC", curve_style("loss")),
    ):
        y = [r[f"{key}_auroc"] for r in rows]
        yerr = runs.error_bars(y, [r[f"{key}_auroc_ci95"] for r in rows])
        ax.errorbar(x, y, yerr=yerr, capsize=3, marker="o" if key == "mint" else "s", label=label, **style)
    ax.plot(
        x,
        [r["gap"] for r in rows],
        "^:",
        color="tab:green",
        label="target gap (member - non-member accuracy)",
    )
    ax.axhline(0.5, color="grey", lw=0.8, ls=":", label="chance AUROC")
    ax.set(xticks=x, xticklabels=[str(r[factor]) for r in rows], xlabel=factor,
           ylabel="AUROC (bars: bootstrap 95% interval) / gap")  # fmt: skip
    ax.set_title(f"mint study of {factor}: {what}", fontsize=8)
    ax.legend(fontsize=7)
    runs.finish(fig, run / "study.png", md, "mint study")


def main(argv: list[str] | None = None) -> list[dict]:
    """Command-line entry point of `mint study`."""
    parser = command_parser("mint study", __doc__)
    parser.add_argument("--factor", required=True, choices=[*TARGET_FACTORS, *MINT_FACTORS])
    parser.add_argument("--values", nargs="+", required=True, help="the values of the factor (syntax: below)")
    parser.add_argument("--detector-config", required=True, help="MINT config, e.g. configs/mint_layer7.yaml")
    parser.add_argument(
        "--target-config", help="config that trains targets, e.g. configs/target_cifar10.yaml"
    )
    parser.add_argument("--target-ckpt", help="an already trained target (detector-side factors)")
    parser.add_argument("--target-args", default="", help="LightningCLI overrides for every target run")
    parser.add_argument("--detector-args", default="", help="LightningCLI overrides for every MINT run")
    parser.add_argument("--output", default="lightning_logs", help="folder receiving study_<factor>/run_N")
    parser.add_argument(
        "--target-checkpoint", choices=["last", "best"], default="last",
        help="which checkpoint of each trained target to audit (last: its end state)",
    )  # fmt: skip
    parser.add_argument(
        "--references", type=int, default=0,
        help="--factor defense: offline references per target, for RMIA beside MINT (each: a target fit)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    return run_study(
        args.factor, args.values, args.detector_config, args.target_config, args.target_ckpt,
        shlex.split(args.target_args), shlex.split(args.detector_args), args.output, args.target_checkpoint,
        args.references,
    )  # fmt: skip


if __name__ == "__main__":
    main()
