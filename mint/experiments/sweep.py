"""`mint sweep`: MINT on every layer of a target (and the black-box baselines), one table.

    mint sweep --config configs/mint_layer7.yaml --layers all
    mint sweep --config configs/mint_layer7.yaml --layers layer2 layer5 layer7 -- --trainer.max_epochs=10

All requested layers are extracted into the activation cache in one forward pass; then one detector
per layer is trained and tested on the same balanced sets, each with and without what the detector
reads from the output (the float64 output features and the calibrated base; `--output-features
both`, the default), and one that reads the output alone. The scorer with the best *validation*
AUROC is picked (marked in the table and named above it), among the detectors and the black-box
attacks (thresholds and learned attacks, the loss attack among them), so the winner is never chosen
on the test set. Runs are logged side by side in TensorBoard
(`<save_dir>/sweep_<config>/run_N/<layer>`), and `sweep.csv`, `sweep.md` and `sweep_auroc.png`
(AUROC versus layer depth, baselines as lines) are written to the run folder.
Arguments after `--` go to every `fit` / `test` call (any LightningCLI override); with
`-- --model.init_args.references=SET` (a set from `mint references`), the reference attacks (LiRA,
RMIA, calibrated loss) join the table and the plot, on the same test images.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mint.attacks.registry import BY_NAME, curve_style
from mint.cli import MintCLI
from mint.commands import command_parser
from mint.evaluation.roc_plot import plt
from mint.experiments.runs import (
    error_bars,
    finish,
    fit_and_test,
    new_run_dir,
    scorer_row,
    target_name,
    write_tables,
)
from mint.files import write_json_atomic
from mint.models import PAPER_LAYERS, readable_layers
from mint.models.gradients import is_gradient
from mint.records.report import TestReport


def _parse(config: str, extra: list[str]) -> MintCLI:
    return MintCLI(
        args=["--config", config, *extra],
        run=False,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
    )


def prepare(config: str, layers: list[str], extra: list[str]) -> tuple[Path, dict]:
    """Check the layer names (a typo fails here, with the valid names) and extract them all in one pass.

    Returns the sweep folder and the activation shape of every layer.
    """
    cli = _parse(config, [*extra, f"--data.init_args.layers=[{', '.join(layers)}]"])
    cli.datamodule.prepare_data()  # (the data module read the target: one cache for every layer)
    return Path(cli.trainer.logger.save_dir) / f"sweep_{Path(config).stem}", cli.model.target.shapes


def all_layers(config: str, extra: list[str]) -> list[str]:
    """Every layer of the configured target: `layer1..8` for `paper_cnn`, else its top-level modules."""
    net = _parse(config, extra).model.target.net
    names = net.layer_names() if hasattr(net, "read") else readable_layers(net)  # a program: its graph
    return names if names == list(PAPER_LAYERS) else [n for n in names if "." not in n]


OUTPUT_CHOICES = {"off": (False,), "on": (True,), "both": (False, True)}
# The detectors' series: dark colours no attack's line has (the attacks take tab10 and Dark2, as in
# the ROC figure), each more than 50 apart on some channel from every one of them.
DETECTOR_COLOURS = {("CNN", False): "#08306b", ("CNN", True): "#3f007d", ("MLP", False): "#8c510a",
                    ("MLP", True): "#01665e"}  # fmt: skip


def run_sweep(
    config: str,
    layers: list[str],
    extra: list[str],
    detectors: list[str] | None = None,
    output_features: str = "both",
) -> list[dict]:
    """Train and test one detector per layer, path kind and output-feature choice; return the rows.

    The rows (also on disk) carry each detector's validation AUROC; `picked` marks the best of them.
    """
    if layers == ["all"]:
        layers = all_layers(config, extra)
    detectors = detectors or ["auto"]
    outputs = OUTPUT_CHOICES[output_features]
    start = time.perf_counter()
    sweep_dir, shapes = prepare(config, layers, extra)
    timing = {"extract_all_layers_s": time.perf_counter() - start, "runs_s": {}}
    run = new_run_dir(sweep_dir, "mint sweep")
    rows, first = [], None
    for layer in layers:
        is_map = len(shapes[layer]) == 3 and shapes[layer][1] * shapes[layer][2] > 1
        # `auto` is a CNN on maps and an MLP on vectors; a vector has no CNN path.
        resolved = {k: "cnn" if k == "cnn" or (k == "auto" and is_map) else "mlp" for k in detectors}
        runs = {r: k for k, r in reversed(resolved.items()) if is_map or r == "mlp"} or {"mlp": "auto"}
        for kind in runs.values():
            for output in outputs:
                version = (layer if kind == "auto" else f"{layer}-{kind}") + ("+output" if output else "")
                args = [f"--data.init_args.layers=[{layer}]"]
                args += [f"--model.init_args.output_features={str(output).lower()}"]
                args += [] if output else ["--model.init_args.calibrated_base=false"]  # the layer alone
                args += [f"--model.init_args.path_kind={kind}"] if kind != "auto" else []
                fit, res = timed(["--config", config, *extra, *args], run, version, timing)
                first = first or res
                used = fit.model.detector.kinds[layer].upper()  # `auto` resolved: CNN on maps, MLP on vectors
                depth = depth_of(layer, readable_layers(fit.model.target.net))
                rows.append(mint_row(f"MINT {layer} ({used})" + (" + output" if output else ""), depth,
                                     "x".join(map(str, shapes[layer])), fit, res))  # fmt: skip
    if True in outputs:  # the output features alone: what the detector adds to the loss attack's input
        args = ["--data.init_args.layers=[]", "--model.init_args.output_features=true"]
        fit, res = timed(["--config", config, *extra, *args], run, "output", timing)
        rows.append(mint_row("MINT output features", "", "3 (float64)", fit, res))
    rows += attack_rows(first)
    # The pick is over every scorer with a validation AUROC, the loss attack among them: a sweep never
    # reports a detector that the plain loss threshold beat on validation (ties go to the first row).
    scored = [r for r in rows if r["val_auroc"] == r["val_auroc"]] or rows  # (no validation: the first)
    best = max(scored, key=lambda r: r["val_auroc"] if r["val_auroc"] == r["val_auroc"] else 0)
    for r in rows:
        r["picked"] = "yes" if r is best else ""
    timing["total_s"] = time.perf_counter() - start
    write_json_atomic(run / "timing.json", timing)  # where a sweep's time goes (benchmarks/sweep_timing.py)
    _write_outputs(run, rows, first, layers, best)
    return rows


def attack_rows(first: TestReport) -> list[dict]:
    """The rows of every attack, from the first detector's test (the same images as every detector's)."""
    refs = first.references
    validation = first.validation_auroc  # the black-box attacks', on the same validation set
    others = [(f"baseline: {n}", n, r) for n, r in first.baselines.items()]
    others += [(f"learned: {n}", n, r) for n, r in first.learned_attacks.items()]
    # With `-- --model.init_args.references=SET`, the reference attacks on the same images (K models).
    others += [(f"reference ({refs.get('count')}, {refs.get('mode')}): {n}", n, r)
               for n, r in first.reference_attacks.items()]  # fmt: skip
    return [{"scorer": scorer, "depth": "", "shape": "logits", "val_auroc": validation.get(n, float("nan")),
             **scorer_row(report), "n": f"{report.members}+{report.nonmembers}", "picked": ""}
            for scorer, n, report in others]  # fmt: skip


def depth_of(layer: str, names: list[str]) -> int | str:
    """Position of a layer in the network (a gradient request: its module's); "" for the whole network."""
    module = layer.split(":", 1)[1] if is_gradient(layer) else layer
    return names.index(module) + 1 if module in names else ""


def timed(args: list[str], run: Path, version: str, timing: dict) -> tuple[object, TestReport]:
    """`fit_and_test` of one variant, its wall time (fit + test, reading the cache) kept in `timing`."""
    t0 = time.perf_counter()
    out = fit_and_test(args, run.parent, run.name, version)
    timing["runs_s"][version] = time.perf_counter() - t0
    return out


def mint_row(scorer: str, depth, shape: str, fit, res: TestReport) -> dict:
    """A detector's row: its test report and the validation AUROC of its kept epoch (what picks)."""
    score = fit.trainer.checkpoint_callback.best_model_score
    score = float(score) if score is not None else float("nan")
    # the test phase's validation AUROC (the same function as the black-box rows'), else the logged one
    score = res.validation_auroc.get("mint", score)
    return {"scorer": scorer, "depth": depth, "shape": shape, "val_auroc": score, **scorer_row(res.mint),
            "n": f"{res.mint.members}+{res.mint.nonmembers}", "picked": ""}  # fmt: skip


def _write_outputs(run: Path, rows: list[dict], first: TestReport, layers: list[str], best: dict) -> None:
    target = first.target_gap
    header = (
        f"Target on the test set: members {target.member_acc:.3f}, non-members "
        f"{target.nonmember_acc:.3f}, gap {target.gap:.3f}. n/r: not resolvable.\n"
        f"Picked by validation AUROC ({best['val_auroc']:.3f}): {best['scorer']}, test AUROC "
        f"{best['auroc']:.3f} {best['auroc_ci95']}."
    )
    md = write_tables(run, "sweep", rows, header)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind in ("CNN", "MLP"):
        for output, style in ((False, "o-"), (True, "s--")):
            colour = DETECTOR_COLOURS[kind, output]
            mint = [r for r in rows if r["scorer"].startswith("MINT") and f"({kind})" in r["scorer"]
                    and r["scorer"].endswith("+ output") == output and "grad" not in r["scorer"]
                    and r["depth"] != ""]  # fmt: skip
            if mint:  # with each detector's bootstrap 95% interval
                label = f"MINT {kind}" + (" + output" if output else "")
                y = [r["auroc"] for r in mint]
                yerr = error_bars(y, [r["auroc_ci95"] for r in mint])
                ax.errorbar(
                    [r["depth"] for r in mint], y, yerr=yerr, fmt=style, capsize=3, label=label, color=colour
                )
    grads = [r for r in rows if "grad" in r["scorer"] and r["depth"] != ""]
    if grads:  # gradient features at their module's depth
        ax.plot([r["depth"] for r in grads], [r["auroc"] for r in grads], "x", ms=8, label="MINT gradients")
    for r in rows:  # the attacks (and the output features alone): one line each, the ROC figure's style
        name = r["scorer"].split(": ", 1)[-1]
        if r["scorer"] == "MINT output features":
            ax.axhline(r["auroc"], color="black", lw=1.5, ls=(0, (5, 1)), label=r["scorer"])
        elif r["scorer"].startswith(("baseline", "learned", "reference")) and name in BY_NAME:
            ax.axhline(r["auroc"], label=r["scorer"], **curve_style(name))
    ax.axhline(0.5, color="grey", lw=0.8, ls=":", label="chance")
    names = {}  # depth -> the layer (or module) at it, for the ticks
    for layer in layers:
        depth = next((r["depth"] for r in rows if r["scorer"].startswith(f"MINT {layer} ")), "")
        if depth != "":
            names.setdefault(depth, layer.split(":", 1)[-1])
    ax.set(xticks=sorted(names), xticklabels=[names[d] for d in sorted(names)], xlabel="layer (depth)",
           ylabel="test AUROC (bars: bootstrap 95% interval)")  # fmt: skip
    ax.set_title(f"mint sweep: {len(layers)} layers of target {target_name(first)}", fontsize=8)
    ax.legend(fontsize=6, ncol=2)
    finish(fig, run / "sweep_auroc.png", md, "mint sweep")


def main(argv: list[str] | None = None) -> list[dict]:
    """Command-line entry point of `mint sweep`."""
    parser = command_parser("mint sweep", __doc__)
    parser.add_argument("--config", required=True, help="a MINT config (e.g. configs/mint_layer7.yaml)")
    parser.add_argument("--layers", nargs="+", default=["all"], help="layer names, or `all`")
    parser.add_argument(
        "--detectors",
        nargs="+",
        default=["auto"],
        choices=["auto", "cnn", "mlp"],
        help="path kinds per layer (`cnn mlp`: a detector of each on every map; vectors get the MLP)",
    )
    parser.add_argument(
        "--output-features",
        default="both",
        choices=list(OUTPUT_CHOICES),
        help="detectors with / without the float64 output features (`both`: each, and them alone)",
    )
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="-- then LightningCLI overrides")
    args = parser.parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    return run_sweep(args.config, args.layers, extra, args.detectors, args.output_features)


if __name__ == "__main__":
    main()
