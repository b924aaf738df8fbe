"""`mint sweep`: MINT on every layer of a target (and the black-box baselines), one table.

    mint sweep --config configs/mint_layer7.yaml --layers all
    mint sweep --config configs/mint_layer7.yaml --layers layer2 layer5 layer7 -- --trainer.max_epochs=10

All requested layers are extracted into the activation cache in one forward pass; then one detector
per layer is trained and tested on the same balanced sets. Runs are logged side by side in
TensorBoard (`<save_dir>/sweep_<config>/run_N/<layer>`), and `sweep.csv`, `sweep.md` and
`sweep_auroc.png` (AUROC versus layer depth, baselines as lines) are written to the run folder.
Arguments after `--` go to every `fit` / `test` call (any LightningCLI override); with
`-- --model.init_args.references=SET` (a set from `mint references`), the reference attacks (LiRA,
RMIA, calibrated loss) join the table and the plot, on the same test images.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mint.cli import MintCLI
from mint.evaluation.roc_plot import plt
from mint.experiments.runs import finish, fit_and_test, new_run_dir, scorer_row, write_tables
from mint.files import write_json_atomic
from mint.models import PAPER_LAYERS, readable_layers


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
    cli = _parse(config, [*extra, f"--model.init_args.layers=[{', '.join(layers)}]"])
    cli.datamodule.use_target(cli.model.target).prepare_data()
    return Path(cli.trainer.logger.save_dir) / f"sweep_{Path(config).stem}", cli.model.target.shapes


def all_layers(config: str, extra: list[str]) -> list[str]:
    """Every layer of the configured target: `layer1..8` for `paper_cnn`, else its top-level modules."""
    net = _parse(config, extra).model.target.net
    names = net.layer_names() if hasattr(net, "read") else readable_layers(net)  # a program: its graph
    return names if names == list(PAPER_LAYERS) else [n for n in names if "." not in n]


def run_sweep(
    config: str, layers: list[str], extra: list[str], detectors: list[str] | None = None
) -> list[dict]:
    """Train and test one detector per layer (and path kind); return the table rows (also on disk)."""
    if layers == ["all"]:
        layers = all_layers(config, extra)
    detectors = detectors or ["auto"]
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
            args = ["--config", config, *extra, f"--model.init_args.layers=[{layer}]"]
            args += [f"--model.init_args.path_kind={kind}"] if kind != "auto" else []
            version = layer if kind == "auto" else f"{layer}-{kind}"
            t0 = time.perf_counter()
            fit, res = fit_and_test(args, run.parent, run.name, version)
            timing["runs_s"][version] = time.perf_counter() - t0  # fit + test, reading the cache
            first = first or res
            shape = shapes[layer]
            used = fit.model.detector.kinds[layer]  # `auto` resolved: CNN for maps, MLP for vectors
            depth = readable_layers(fit.model.target.net).index(layer) + 1  # position in the network
            rows.append({"scorer": f"MINT {layer} ({used.upper()})", "depth": depth,
                         "shape": "x".join(map(str, shape)), **scorer_row(res["mint"]),
                         "n": f"{res['mint']['n_members']}+{res['mint']['n_nonmembers']}"})  # fmt: skip
    refs = first.get("references") or {}
    others = [(f"baseline: {n}", r) for n, r in first["baselines"].items()]
    # With `-- --model.init_args.references=SET`, the reference attacks on the same images (K models).
    others += [(f"reference ({refs.get('count')}, {refs.get('mode')}): {n}", r)
               for n, r in first.get("reference_attacks", {}).items()]  # fmt: skip
    for scorer, report in others:
        rows.append({"scorer": scorer, "depth": "", "shape": "logits", **scorer_row(report),
                     "n": f"{report['n_members']}+{report['n_nonmembers']}"})  # fmt: skip
    timing["total_s"] = time.perf_counter() - start
    write_json_atomic(run / "timing.json", timing)  # where a sweep's time goes (benchmarks/sweep_timing.py)
    _write_outputs(run, rows, first["target_on_test_set"], layers)
    return rows


def _write_outputs(run: Path, rows: list[dict], target: dict, layers: list[str]) -> None:
    header = (
        f"Target on the test set: members {target['target_member_acc']:.3f}, non-members "
        f"{target['target_nonmember_acc']:.3f}, gap {target['target_gap']:.3f}. n/r: not resolvable."
    )
    md = write_tables(run, "sweep", rows, header)
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind in ("CNN", "MLP"):
        mint = [r for r in rows if r["scorer"].startswith("MINT") and f"({kind})" in r["scorer"]]
        if mint:
            ax.plot([r["depth"] for r in mint], [r["auroc"] for r in mint], "o-", label=f"MINT {kind}")
    for r in rows:
        if r["scorer"].startswith(("baseline", "reference")):
            ls = "--" if r["scorer"].startswith("baseline") else ":"
            ax.axhline(r["auroc"], ls=ls, lw=0.8, label=r["scorer"])
    depths = sorted({r["depth"] for r in rows if r["scorer"].startswith("MINT")})
    ax.set(xticks=depths, xticklabels=layers, xlabel="layer (depth)", ylabel="AUROC")
    ax.legend(fontsize=7)
    finish(fig, run / "sweep_auroc.png", md, "mint sweep")


def main(argv: list[str] | None = None) -> list[dict]:
    """Command-line entry point of `mint sweep`."""
    parser = argparse.ArgumentParser(prog="mint sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a MINT config (e.g. configs/mint_layer7.yaml)")
    parser.add_argument("--layers", nargs="+", default=["all"], help="layer names, or `all`")
    parser.add_argument(
        "--detectors",
        nargs="+",
        default=["auto"],
        choices=["auto", "cnn", "mlp"],
        help="path kinds per layer (`cnn mlp`: a detector of each on every map; vectors get the MLP)",
    )
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="-- then LightningCLI overrides")
    args = parser.parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    return run_sweep(args.config, args.layers, extra, args.detectors)


if __name__ == "__main__":
    main()
