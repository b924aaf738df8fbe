"""`mint sweep`: MINT on every layer of a classifier (and the black-box baselines), one table.

    mint sweep --config configs/mint_layer7.yaml --layers all
    mint sweep --config configs/mint_layer7.yaml --layers layer2 layer5 layer7 -- --trainer.max_epochs=10

All requested layers are extracted into the activation cache in one forward pass; then one detector
per layer is trained and tested on the same balanced sets. Runs are logged side by side in
TensorBoard (`<save_dir>/sweep_<config>/run_N/<layer>`), and `sweep.csv`, `sweep.md` and
`sweep_auroc.png` (AUROC versus layer depth, baselines as lines) are written to the run folder.
Arguments after `--` go to every `fit` / `test` call (any LightningCLI override).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from mint.atomic import write_atomic
from mint.cli import MintCLI
from mint.cli import main as cli_main
from mint.models import PAPER_LAYERS, readable_layers
from mint.roc_plot import plt


def _new_run(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for p in folder.iterdir() if (m := re.fullmatch(r"run_(\d+)", p.name))]
    run = folder / f"run_{max(taken, default=-1) + 1}"
    run.mkdir()
    return run


def _parse(config: str, extra: list[str]) -> MintCLI:
    return MintCLI(
        args=["--config", config, *extra],
        run=False,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
    )


def prepare(config: str, layers: list[str], extra: list[str]) -> Path:
    """Check the layer names (a typo fails here, with the valid names) and extract them all in one pass."""
    cli = _parse(config, [*extra, f"--model.init_args.layers=[{', '.join(layers)}]"])
    cli.datamodule.prepare_data()
    return Path(cli.trainer.logger.save_dir) / f"sweep_{Path(config).stem}"


def all_layers(config: str, extra: list[str]) -> list[str]:
    """Every layer of the configured classifier: `layer1..8` for `paper_cnn`, else its top-level modules."""
    names = readable_layers(_parse(config, extra).model.target.net)
    return names if names == list(PAPER_LAYERS) else [n for n in names if "." not in n]


def run_sweep(config: str, layers: list[str], extra: list[str]) -> list[dict]:
    """Train and test one detector per layer; return the table rows (also written to disk)."""
    if layers == ["all"]:
        layers = all_layers(config, extra)
    sweep_dir = prepare(config, layers, extra)
    run = _new_run(sweep_dir)
    rows, results = [], {}
    for layer in layers:
        args = [
            "--config", config, *extra, f"--model.init_args.layers=[{layer}]",
            f"--trainer.logger.init_args.save_dir={run.parent}",
            f"--trainer.logger.init_args.name={run.name}",
        ]  # fmt: skip
        fit = cli_main(["fit", *args, f"--trainer.logger.init_args.version={layer}"])
        best = fit.trainer.checkpoint_callback.best_model_path
        test = cli_main(
            ["test", *args, f"--trainer.logger.init_args.version={layer}-test", f"--ckpt_path={best}"]
        )
        res = json.loads((Path(test.trainer.log_dir) / "test_results.json").read_text())
        results[layer] = res
        depth = readable_layers(fit.model.target.net).index(layer) + 1  # position in the network
        rows.append(_row(f"MINT {layer}", depth, fit.model.target.shapes[layer], res["mint"]))
    first = results[layers[0]]
    for name, report in first["baselines"].items():
        rows.append(_row(f"baseline: {name}", "", "logits", report))
    target = first["classifier_on_test_set"]
    _write_tables(run, rows, target, layers)
    return rows


def _row(name: str, depth, shape, r: dict) -> dict:
    lo, hi = r["auroc_ci95"]
    return {
        "scorer": name,
        "depth": depth,
        "shape": "x".join(map(str, shape)) if isinstance(shape, tuple | list) else shape,
        "auroc": r["auroc"],
        "auroc_ci95": f"[{lo:.3f}, {hi:.3f}]",
        "balanced_acc": r["balanced_acc_at_threshold"],
        "tpr@1%fpr": r["tpr@1%fpr"],
        "tpr@0.1%fpr": r["tpr@0.1%fpr"],
        "n": f"{r['n_members']}+{r['n_nonmembers']}",
    }


def _fmt(v) -> str:
    return "n/r" if isinstance(v, float) and v != v else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _write_tables(run: Path, rows: list[dict], target: dict, layers: list[str]) -> None:
    cols = list(rows[0])
    write_atomic(run / "sweep.csv", lambda t: t.write_text(
        "\n".join([",".join(cols)] + [",".join(f'"{r[c]}"' for c in cols) for r in rows]) + "\n"
    ))  # fmt: skip
    md = [
        f"Classifier on the test set: members {target['target_member_acc']:.3f}, non-members "
        f"{target['target_nonmember_acc']:.3f}, gap {target['target_gap']:.3f}. n/r: not resolvable.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + " --- |" * len(cols),
        *("| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows),
    ]
    write_atomic(run / "sweep.md", lambda t: t.write_text("\n".join(md) + "\n"))
    fig, ax = plt.subplots(figsize=(6, 4))
    mint = [r for r in rows if r["scorer"].startswith("MINT")]
    ax.plot([r["depth"] for r in mint], [r["auroc"] for r in mint], "o-", label="MINT")
    for r in rows:
        if r["scorer"].startswith("baseline"):
            ax.axhline(r["auroc"], ls="--", lw=0.8, label=r["scorer"])
    ax.set(xticks=[r["depth"] for r in mint], xticklabels=layers, xlabel="layer (depth)", ylabel="AUROC")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(run / "sweep_auroc.png", dpi=120)
    print("\n".join(md))
    print(f"mint sweep: tables and plot in {run}")


def main(argv: list[str] | None = None) -> list[dict]:
    """Command-line entry point of `mint sweep`."""
    parser = argparse.ArgumentParser(prog="mint sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a MINT config (e.g. configs/mint_layer7.yaml)")
    parser.add_argument("--layers", nargs="+", default=["all"], help="layer names, or `all`")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="-- then LightningCLI overrides")
    args = parser.parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    return run_sweep(args.config, args.layers, extra)


if __name__ == "__main__":
    main()
