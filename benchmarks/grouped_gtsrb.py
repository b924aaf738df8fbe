"""A full-size GTSRB-like benchmark built offline: each sample image becomes a track of near-identical frames.

Full GTSRB (39,209 training images in 1,307 tracks of about 30 frames of one physical sign) is not
available offline. This turns the 2,000-image GTSRB sample into about 40,000 images: each image gives
`copies` frames (random scale 0.9-1.1, shift up to 2 px, brightness and contrast within 4%, a slight
blur for about a third of them), and every frame keeps its source image's track id as its group, so
the sample's 1,055 tracks become groups of ~38 frames that a group-aware split keeps on one side.

    python benchmarks/grouped_gtsrb.py make --out /tmp/grouped_gtsrb.npz --copies 20
    python benchmarks/grouped_gtsrb.py run --data /tmp/grouped_gtsrb.npz --epochs 4 \
        --out lightning_logs/grouped_gtsrb
    # a small run (minutes on 2 cores):
    python benchmarks/grouped_gtsrb.py make --out /tmp/grouped_small.npz --copies 4
    python benchmarks/grouped_gtsrb.py run --data /tmp/grouped_small.npz --epochs 1 --detector-epochs 2 \
        --test-size 500 --val-size 300 --calibration-size 200

`run` trains the target with `configs/target_gtsrb.yaml` (its source replaced by an `NpzSource` of
the file; the official test images of the sample are its validation data), then fits and tests the
shipped `configs/mint_gtsrb_layer7.yaml` detector on it, and prints the target's accuracy on the test
set's members and non-members, every scorer's AUROC in `test_results.json` and the wall times.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mint.errors import MintError
from mint.files import write_atomic, write_json_atomic
from mint.records.report import TestReport

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SCALE = (0.9, 1.1)  # a sign seen from a little nearer or farther
SHIFT_PX = 2.0
JITTER = 0.04  # brightness and contrast factors within 1 +- 4%
BLUR_SHARE, BLUR_SIGMA = 0.3, (0.5, 0.9)  # motion / focus blur of some frames (3x3 Gaussian)


def make_grouped(
    images: np.ndarray, labels: np.ndarray, groups: np.ndarray | None, copies: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn each image into `copies` near-identical frames that keep its label and group.

    Args:
        images: uint8 (N, H, W, 3).
        labels: class of every image.
        groups: group (track) id of every image; None: each image is its own group.
        copies: frames per image.
        seed: seed of the frames' jitter; the same arguments always give the same frames.

    Returns:
        `images` uint8 (N * copies, H, W, 3), `labels` and `groups` int64 (N * copies,), frames of one
        source image next to each other.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise MintError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if copies < 1:
        raise MintError(f"copies counts frames per image: 1 or more, not {copies}")
    n = len(images)
    groups = np.arange(n, dtype=np.int64) if groups is None else np.asarray(groups, np.int64)
    if len(labels) != n or len(groups) != n:
        raise MintError(f"{n} images but {len(labels)} labels and {len(groups)} groups: give one of each")
    rng = np.random.default_rng(seed)
    m = n * copies
    blurred = rng.random(m) < BLUR_SHARE
    params = {
        "scale": rng.uniform(*SCALE, m),
        "shift": rng.uniform(-SHIFT_PX, SHIFT_PX, (m, 2)),
        "brightness": rng.uniform(1 - JITTER, 1 + JITTER, m),
        "contrast": rng.uniform(1 - JITTER, 1 + JITTER, m),
        "sigma": np.where(blurred, rng.uniform(*BLUR_SIGMA, m), 0.0),
    }
    source = np.repeat(np.arange(n), copies)
    out = np.empty((m, *images.shape[1:]), np.uint8)
    for start in range(0, m, 4096):  # chunks bound the float copies
        part = slice(start, start + 4096)
        out[part] = _frames(images[source[part]], {k: v[part] for k, v in params.items()})
    return out, np.asarray(labels, np.int64)[source], groups[source]


def _frames(batch: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """Apply one frame's scale, shift, blur and brightness / contrast to each image (float32, CPU)."""
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
    b, _, h, w = x.shape
    scale = torch.from_numpy(p["scale"]).float()
    shift = torch.from_numpy(p["shift"]).float()
    # Output pixel u samples the input at (u - shift) / scale around the centre (normalized coordinates).
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / scale
    theta[:, 0, 2] = -2.0 * shift[:, 0] / (w * scale)
    theta[:, 1, 2] = -2.0 * shift[:, 1] / (h * scale)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    sigma = torch.from_numpy(p["sigma"]).float()
    side = torch.where(sigma > 0, torch.exp(-0.5 / sigma.clamp(min=1e-3) ** 2), torch.zeros(b))
    side = (side / (1 + 2 * side))[:, None, None, None]  # 3-tap Gaussian [side, 1 - 2 side, side]
    for dim in (2, 3):  # separable blur; sigma 0 leaves the frame sharp
        pad = (0, 0, 1, 1) if dim == 2 else (1, 1, 0, 0)
        padded = F.pad(x, pad, mode="replicate")
        before, after = padded.narrow(dim, 0, x.shape[dim]), padded.narrow(dim, 2, x.shape[dim])
        x = (1 - 2 * side) * x + side * (before + after)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = torch.from_numpy(p["contrast"]).float()[:, None, None, None]
    brightness = torch.from_numpy(p["brightness"]).float()[:, None, None, None]
    x = (x - mean) * contrast + mean * brightness
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def write_grouped(path: str | Path, images: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> Path:
    """Write the arrays as the `.npz` an `NpzSource` reads (`images`, `labels`, `groups`)."""
    arrays = {"images": images, "labels": labels, "groups": groups}
    return write_atomic(path, lambda tmp: np.savez(tmp.open("wb"), **arrays))


def straddling_groups(groups: np.ndarray, members: np.ndarray, nonmembers: np.ndarray) -> int:
    """How many groups have frames among both the members and the non-members (0 for a group-aware split)."""
    return len(np.intersect1d(np.unique(groups[members]), np.unique(groups[nonmembers])))


def make(args: argparse.Namespace) -> None:
    """The `make` command: read the sample, write the grouped npz, print its size and time."""
    from mint.data.npz import read_npz

    z = read_npz(args.source, ("images", "labels"), optional=("groups",))
    images, labels, groups = z["images"], z["labels"], z.get("groups")
    start = time.perf_counter()
    out = make_grouped(images, labels, groups, args.copies, args.seed)
    made = time.perf_counter() - start
    write_grouped(args.out, *out)
    sizes = np.unique(out[2], return_counts=True)[1]
    print(
        f"{len(out[0])} images from {len(images)} ({args.copies} frames each) in {made:.1f} s "
        f"(+{time.perf_counter() - start - made:.1f} s writing {args.out}); {len(sizes)} groups of "
        f"{sizes.min()}-{sizes.max()} frames (median {int(np.median(sizes))})"
    )


def _cli(args: list[str]) -> object:
    from mint.cli import main as cli_main  # the CLI imports every module: only when running

    return cli_main(args)


def _log(run: Path, name: str) -> list[str]:
    return [f"--trainer.logger.init_args.save_dir={run}", f"--trainer.logger.init_args.name={name}"]


def train_target(args: argparse.Namespace, run: Path) -> tuple[str, dict]:
    """Fit the GTSRB target on the grouped npz; return its checkpoint and what it measured."""
    source = {"class_path": "mint.data.NpzSource", "init_args": {"train": args.data, "test": args.test}}
    start = time.perf_counter()
    clf = _cli([
        "fit", "--config", str(ROOT / "configs/target_gtsrb.yaml"), f"--data.source={json.dumps(source)}",
        f"--trainer.max_epochs={args.epochs}", *_log(run, "target"), *shlex.split(args.target_args),
    ])  # fmt: skip
    seconds = time.perf_counter() - start
    dm, metrics = clf.datamodule, clf.trainer.callback_metrics
    split, manifest = dm.data.split, dm.data.manifest
    groups = dm.data.train.groups
    info = {
        "fit_seconds": round(seconds, 1),
        "val_member_acc": float(metrics.get("val/member_acc", float("nan"))),
        "val_test_split_acc": float(metrics.get("val/acc", float("nan"))),
        "images": manifest["num_train"],
        "source_groups": len(np.unique(groups)) if groups is not None else None,
        "split_groups": manifest["num_groups"],
        "duplicates": manifest["duplicates"],
        "members": len(split.members),
        "nonmembers": len(split.nonmembers),
        "straddling_groups": straddling_groups(groups, split.members, split.nonmembers),
    }
    if args.target_ckpt == "last":
        from mint.tasks.callbacks import last_checkpoint

        return last_checkpoint(clf.trainer), info
    return clf.trainer.checkpoint_callback.best_model_path, info


def detector_args(args: argparse.Namespace, target: str, run: Path) -> list[str]:
    """The shipped GTSRB detector config against `target`, with this run's sizes and folders."""
    sizes = {"test_size": args.test_size, "val_size": args.val_size}
    sizes |= {"calibration_size": args.calibration_size, "train_size": args.train_size}
    over = [f"--data.{k}={v}" for k, v in sizes.items() if v is not None]
    if args.detector_epochs is not None:
        over.append(f"--trainer.max_epochs={args.detector_epochs}")
    return [
        "--config", str(ROOT / "configs/mint_gtsrb_layer7.yaml"), f"--data.init_args.target_ckpt={target}",
        f"--data.cache_dir={run / 'cache'}", *over, *_log(run, "detector"), *shlex.split(args.detector_args),
    ]  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    """The `run` command: target, then detector fit + test; print and return the summary."""
    from mint.experiments.runs import new_run_dir

    for path, flag in ((args.data, "--data"), (args.test, "--test")):
        if not Path(path).is_file():
            raise MintError(f"{flag} {path!r} is not a file (make the data with `grouped_gtsrb.py make`)")
    run_dir = new_run_dir(args.out, "grouped_gtsrb")
    if args.reuse_target:  # another detector on a target trained before: its measurements are that run's
        target, info = args.reuse_target, json.loads(Path(args.reuse_target_summary).read_text())["target"]
    else:
        target, info = train_target(args, run_dir)
    mint = detector_args(args, target, run_dir)
    start = time.perf_counter()
    fit = _cli(["fit", *mint, "--trainer.logger.init_args.version=fit"])
    fit_seconds = time.perf_counter() - start
    best = fit.trainer.checkpoint_callback.best_model_path
    start = time.perf_counter()
    test = _cli(["test", *mint, "--trainer.logger.init_args.version=test", f"--ckpt_path={best}"])
    test_seconds = time.perf_counter() - start
    results = TestReport.read(test.trainer.log_dir).raw
    summary = summarize(results, info, fit_seconds, test_seconds, target, best)
    write_json_atomic(run_dir / "summary.json", summary)
    print(format_summary(summary))
    return summary


def summarize(
    results: dict, info: dict, fit_seconds: float, test_seconds: float, target: str, best: str
) -> dict:
    """The numbers the benchmark reports, from a test report and the target's run."""
    scorers = {"mint": results["mint"]["auroc"]}
    for family in ("baselines", "learned_attacks", "reference_attacks"):
        for name, report in (results.get(family) or {}).items():
            if isinstance(report, dict) and "auroc" in report:
                scorers[f"{family}.{name}"] = report["auroc"]
    learned = (results.get("learned") or {}).get("fit_seconds")
    return {
        "target": info | {"ckpt": target},
        "target_on_test_set": results["target_on_test_set"],
        "n_test": f"{results['mint']['n_members']}+{results['mint']['n_nonmembers']}",
        "mint_auroc_ci95": results["mint"]["auroc_ci95"],
        "class_only_auroc": results["controls"]["class_only"]["auroc"],
        "residual_scale": (results.get("calibrated_base") or {}).get("residual_scale"),
        "auroc": scorers,
        "mint_minus_loss": scorers["mint"] - scorers["baselines.loss"],
        "picked": results.get("picked"),
        "white_box_gain": results.get("white_box_gain"),
        "learned_notes": (results.get("learned") or {}).get("notes"),
        "detector_fit_seconds": round(fit_seconds, 1),
        "detector_test_seconds": round(test_seconds, 1),
        "budget_mint_seconds": (results.get("budget") or {}).get("mint_seconds"),
        "learned_fit_seconds": learned,
        "learned_over_detector_fit": None if learned is None else learned / fit_seconds,
        "detector_ckpt": best,
    }


def format_summary(s: dict) -> str:
    """The lines `run` prints."""
    t, acc = s["target"], s["target_on_test_set"]
    lo, hi = s["mint_auroc_ci95"]
    ratio, fit = s["learned_over_detector_fit"], s["detector_fit_seconds"]
    learned = "not in the report" if ratio is None else f"{s['learned_fit_seconds']} / {fit} s = {ratio:.3f}"
    lines = [
        f"data: {t['images']} images, {t['source_groups']} source groups, {t['split_groups']} split groups "
        f"(duplicates: {t['duplicates'].get('duplicate_clusters', '-')} clusters); {t['members']} members / "
        f"{t['nonmembers']} non-members; groups on both sides: {t['straddling_groups']}",
        f"target: fit {t['fit_seconds']} s; last validation: members {t['val_member_acc']:.3f}, "
        f"official test split {t['val_test_split_acc']:.3f}",
        f"target on the detector's test set ({s['n_test']}): members {acc['target_member_acc']:.3f}, "
        f"non-members {acc['target_nonmember_acc']:.3f}, gap {acc['target_gap']:.3f}",
        *(f"  AUROC {name:<40} {value:.3f}" for name, value in s["auroc"].items()),
        f"  MINT AUROC 95% CI [{lo:.3f}, {hi:.3f}]; class-only control {s['class_only_auroc']:.3f}; "
        f"MINT - loss = {s['mint_minus_loss']:+.3f}; residual scale (calibrated base) {s['residual_scale']}",
        f"detector: fit {fit} s (checkpoint's mint_seconds {s['budget_mint_seconds']}), "
        f"test {s['detector_test_seconds']} s",
        f"learned attacks fit / detector fit: {learned}",
    ]
    if s.get("picked"):
        p = s["picked"]
        lines.append(f"picked on validation: {p['scorer']} (val {p['validation_auroc']:.3f}, "
                     f"test {p['test_auroc']:.3f})")  # fmt: skip
    if s.get("white_box_gain"):
        g = s["white_box_gain"]
        lo, hi = g["auroc_ci95"]
        ratio = "n/r" if g["tpr@1%fpr_ratio"] is None else f"{g['tpr@1%fpr_ratio']:.2f}x"
        lines.append(f"white-box gain over {g['against']}: AUROC {g['auroc']:+.3f} [{lo:+.3f}, {hi:+.3f}], "
                     f"TPR@1% {g['tpr@1%fpr'][0]:.3f} vs {g['tpr@1%fpr'][1]:.3f} ({ratio})")  # fmt: skip
    lines += [f"note: {n}" for n in s.get("learned_notes") or []]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line: `make` the grouped npz, or `run` the target and the detector on it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make", help="write the grouped npz")
    mk.add_argument("--source", default=str(SHARED / "gtsrb_mini_train.npz"), help="npz of the sample")
    mk.add_argument("--out", required=True, help="npz to write")
    mk.add_argument("--copies", type=int, default=20, help="frames per sample image")
    mk.add_argument("--seed", type=int, default=0)
    rn = sub.add_parser("run", help="train the target and test the shipped detector on the grouped npz")
    rn.add_argument("--data", required=True, help="npz written by `make`")
    rn.add_argument("--test", default=str(SHARED / "gtsrb_mini_test.npz"), help="the target's validation npz")
    rn.add_argument("--epochs", type=int, default=4, help="target epochs")
    rn.add_argument(
        "--detector-epochs", type=int, default=None, help="detector epochs (default: the config's)"
    )
    rn.add_argument("--out", default="lightning_logs/grouped_gtsrb", help="folder of the runs (run_N)")
    for size in ("test", "val", "calibration", "train"):
        rn.add_argument(f"--{size}-size", type=int, default=None, help=f"detector {size}_size (per side)")
    rn.add_argument("--target-ckpt", choices=["best", "last"], default="best", help="which target checkpoint")
    rn.add_argument("--reuse-target", default=None, help="an earlier run's target ckpt")
    rn.add_argument("--reuse-target-summary", default=None, help="that run's summary.json")
    rn.add_argument("--target-args", default="", help="further LightningCLI overrides of the target")
    rn.add_argument("--detector-args", default="", help="further LightningCLI overrides of the detector")
    args = parser.parse_args(argv)
    make(args) if args.command == "make" else run(args)


if __name__ == "__main__":
    try:
        main()
    except MintError as err:  # a person's mistake: one line, no traceback
        raise SystemExit(f"grouped_gtsrb: {err}") from None
