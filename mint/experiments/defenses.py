"""The `defense` factor of `mint study`: one target per defense setting, privacy against utility.

A setting is `name` or `name=value`:

- `none`: the recipe as configured;
- `augment[=crop|crop_flip]`: training augmentation (default `crop_flip`);
- `label_smoothing=S`, `weight_decay=W` (the optimizer's), `dropout=P` (after each `paper_cnn` block);
- `early_stopping=N`: stop when validation accuracy has not improved for N checks;
- `dp=EPSILON`: DP-SGD (Opacus) to that epsilon; `mint-audit[dp]`.

Each row gives the target's accuracy on the official test split (utility), its train/test gap, and
for each attack its AUROC, TPR at 1% FPR and the epsilon its scores prove (`privacy_bound`), beside
the epsilon a DP-SGD target claims. With `--references K`, each target also gets K offline reference
models (`mint references --audited`: none saw the detector's test images, as an outside auditor's
would not) and the detector is tested again with them, adding RMIA (offline) to the row.
"""

from __future__ import annotations

from pathlib import Path

from mint.attacks.registry import BY_NAME
from mint.errors import MintError, check_float
from mint.evaluation.roc_plot import plt
from mint.records.report import TestReport

DEFENSES = {
    "none": None,
    "augment": "--data.augment",
    "label_smoothing": "--model.init_args.label_smoothing",
    "weight_decay": "--model.optimizer.init_args.weight_decay",
    "dropout": "--model.init_args.block_dropout",
    "early_stopping": "--model.init_args.early_stopping",
    "dp": "--model.init_args.dp_epsilon",
}
# The detector beside the plain threshold, the learned black-box attack and RMIA (with `--references`).
ATTACKS = ("mint", "loss", "attack_model", "rmia_offline")
LABELS = {"mint": "MINT"} | {n: f"{BY_NAME[n].label} ({BY_NAME[n].family})" for n in ATTACKS[1:]}


def parse_setting(setting: str) -> tuple[str, str | None]:
    """(`name`, value) of a setting, checked: a misspelt one fails before any target trains."""
    name, _, value = setting.partition("=")
    if name not in DEFENSES:
        raise MintError(f"unknown defense {name!r} in {setting!r}; choose from {', '.join(DEFENSES)}")
    if name == "none" and value:
        raise MintError(f"`none` takes no value, got {setting!r}")
    if name == "augment":
        if value not in ("", "crop", "crop_flip"):
            raise MintError(f"augment takes crop or crop_flip, got {value!r}")
        return name, value or "crop_flip"
    if name != "none":
        kind = int if name == "early_stopping" else float
        try:
            number = kind(value)
        except ValueError:
            raise MintError(
                f"defense {name} needs a {kind.__name__} value ({name}=...), got {setting!r}"
            ) from None
        check_float(f"defense {name}", number)  # NaN passes every comparison below
        if number < 0 or (name in ("dp", "early_stopping") and number <= 0):
            raise MintError(f"defense {name} needs a positive value, got {value}")
        if name in ("label_smoothing", "dropout") and number >= 1:
            raise MintError(f"defense {name} needs a value in [0, 1), got {value}")
    return name, value or None


def defense_override(setting: str) -> list[str]:
    """The LightningCLI overrides of one setting."""
    name, value = parse_setting(setting)
    return [] if DEFENSES[name] is None else [f"{DEFENSES[name]}={value}"]


def defense_columns(res: TestReport, target_test_acc: float | None) -> dict:
    """The utility and privacy columns of one audited target."""
    privacy = res.raw["privacy"]
    reports = {"mint": res.mint, **res.attacks}
    row = {"target_test_acc": target_test_acc, "claimed_epsilon": privacy["claimed_epsilon"]}
    for name in (a for a in ATTACKS if a in reports):
        row |= {
            f"{name}_auroc": reports[name].auroc,
            f"{name}_tpr@1%fpr": reports[name].tpr_at_1pct_fpr,
            f"{name}_epsilon_lb": privacy["epsilon_lower_bound"][name],
        }
    row["largest_provable"] = privacy["largest_provable"]
    if "note" in privacy:
        row["note"] = privacy["note"]
    return row


def privacy_utility_figure(rows: list[dict]):
    """Utility (x: test accuracy) against what each attack finds (y: AUROC; TPR at 1% FPR)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = [r["target_test_acc"] for r in rows]
    for ax, metric, label, chance in zip(
        axes, ("auroc", "tpr@1%fpr"), ("AUROC", "TPR at 1% FPR"), (0.5, 0.01), strict=True
    ):
        ys = {
            name: [r[f"{name}_{metric}"] for r in rows] for name in ATTACKS if f"{name}_{metric}" in rows[0]
        }
        for xi, pair in zip(x, zip(*ys.values(), strict=True), strict=True):  # one setting: a thin line
            ax.plot([xi, xi], [min(pair), max(pair)], color="lightgrey", lw=1, zorder=0)
        for (name, y), marker in zip(ys.items(), "osD^", strict=False):
            ax.scatter(x, y, marker=marker, label=LABELS[name])
        for xi, yi, r in zip(x, ys["mint"], rows, strict=True):  # the setting's name, once
            ax.annotate(r["defense"], (xi, yi), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.axhline(chance, color="grey", lw=0.8, ls=":", label="chance")
        ax.set(xlabel="target accuracy on the test split (utility)", ylabel=label)
        ax.legend(fontsize=8)
    axes[0].set_title("privacy / utility: leakage found by each attack", fontsize=9)
    return fig


def with_references(
    cli_main, test_args: list[str], best: str, target_run: str, count: int, folder: Path
) -> TestReport:
    """Test results of the detector `best` again, beside `count` offline references of its target."""
    from mint.experiments.references import main as references

    quiet = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    asked = ["--target-run", target_run, "--count", str(count), "--audited", best, "--save-dir", str(folder)]
    records = references([*asked, "--", *quiet])
    refs = Path(records[0]["checkpoint"]).parents[3]  # <set>/ref_0/version_0/checkpoints/last.ckpt
    test = cli_main(["test", *test_args, f"--ckpt_path={best}", f"--model.init_args.references={refs}"])
    return TestReport.read(test.trainer.log_dir)
