"""A layer sweep end to end against the sum of its parts.

Parts: one `fit` + `test` per layer, each run alone with its own fresh cache (so each extracts its own
layer). End to end: `mint sweep` over the same layers with one fresh cache (one extraction pass for
all layers, then one detector per layer reading it). Prints both wall times, their ratio and where the
sweep's time went (`timing.json`).

    python benchmarks/sweep_timing.py \
        --target-ckpt lightning_logs/target_cifar10/latest/checkpoints/best.ckpt \
        --layers layer3 layer5 layer7 --out /tmp/sweep_timing
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from mint.experiments.runs import fit_and_test
from mint.experiments.sweep import run_sweep

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "mint_layer7.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-ckpt", required=True)
    parser.add_argument("--layers", nargs="+", default=["layer3", "layer5", "layer7"])
    parser.add_argument("--out", default="/tmp/sweep_timing")
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    common = [
        f"--data.init_args.target_ckpt={args.target_ckpt}", f"--data.train_size={args.train_size}",
        "--data.val_size=500", "--data.test_size=1000", "--data.calibration_size=0",
        f"--trainer.max_epochs={args.epochs}", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]  # fmt: skip
    parts = {}
    for layer in args.layers:
        cache = out / f"cache_{layer}"
        t0 = time.perf_counter()
        fit_and_test(
            ["--config", CONFIG, *common, f"--data.init_args.layers=[{layer}]", f"--data.cache_dir={cache}"],
            out / "parts", "parts", layer,
        )  # fmt: skip
        parts[layer] = time.perf_counter() - t0
    t0 = time.perf_counter()
    extra = [*common, f"--data.cache_dir={out / 'cache_sweep'}", f"--trainer.logger.init_args.save_dir={out}"]
    run_sweep(CONFIG, args.layers, extra)
    total = time.perf_counter() - t0
    timing = json.loads(next(out.glob("sweep_mint_layer7/run_*/timing.json")).read_text())
    print(
        f"\nlayers {args.layers}, {args.train_size} + {args.train_size} training images, {args.epochs} epochs"
    )
    print("| | wall time |\n| --- | --- |")
    for layer, s in parts.items():
        print(f"| part: {layer} alone (own extraction, fit, test) | {s:.1f} s |")
    print(f"| sum of the parts | {sum(parts.values()):.1f} s |")
    print(f"| `mint sweep`, end to end | {total:.1f} s |")
    print(f"| of which: one extraction pass for all layers | {timing['extract_all_layers_s']:.1f} s |")
    print(f"| of which: fit + test per layer from the cache | {sum(timing['runs_s'].values()):.1f} s |")
    print(f"| ratio sweep / sum of parts | {total / sum(parts.values()):.2f} |")


if __name__ == "__main__":
    main()
