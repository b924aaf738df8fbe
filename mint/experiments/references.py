"""`mint references`: train (or find) the reference models of a target, with the target's own recipe.

    mint references --target-run lightning_logs/classifier_cifar10/version_0 --count 8
    mint references --target-run RUN --count 64 --index $SLURM_ARRAY_TASK_ID      # one per array job
    mint references --target-run RUN --count 4 --audited DETECTOR_CKPT            # offline references

Each reference is one `fit` of the target run's own `config.yaml` (architecture, optimizer, epochs,
augmentation) with its data module swapped for `ReferenceDataModule`: row k of a seeded keep mask
over the target's pool (`reference_kept`). A reference set lives in
`<save_dir>/references/<target run>-<key>/ref_<k>/version_0`, where the key hashes what the set
depends on (the target's recipe and pool, the seed, the audited images), not K: `--count 8` after
`--count 4` trains references 4 ... 7 beside the first four, and an attack given `count: 4` reads
the first four. A finished reference (`done.json`) is found again and reused, never retrained; a
crashed one resumes from its `last.ckpt`. Arguments after `--` go to every `fit` (e.g.
`--trainer.devices=2`), as for a target.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

from mint.data.reference_datamodule import audited_images, set_key
from mint.data.split import index_hash
from mint.errors import MintError, check_count
from mint.files import write_json_atomic
from mint.models.target import load_target_checkpoint

DONE = "done.json"
# Trainer settings that change how a model trains (the rest, e.g. devices or logging, do not).
RECIPE_TRAINER_KEYS = ("max_epochs", "max_steps", "precision", "accumulate_grad_batches", "gradient_clip_val")
# Extra arguments that decide where and how fast a run goes, not what it learns: left out of the key.
NOT_RECIPE = ("--trainer.devices", "--trainer.accelerator", "--trainer.strategy", "--trainer.num_nodes",
              "--trainer.enable_", "--trainer.logger", "--data.num_workers", "--data.persistent_workers",
              "--data.pin_memory", "--trainer.callbacks")  # fmt: skip


def target_recipe(run: Path) -> tuple[dict, Path, dict]:
    """The target run's config (as saved by LightningCLI), its checkpoint, and its split record."""
    config_path = run / "config.yaml"
    ckpt = run / "checkpoints" / "last.ckpt"
    if not config_path.is_file() or not ckpt.is_file():
        raise MintError(
            f"{run} is not a finished target run: it needs config.yaml and checkpoints/last.ckpt "
            "(give a folder like lightning_logs/classifier_cifar10/version_0)"
        )
    config = yaml.safe_load(config_path.read_text())
    if "TargetModule" not in str(config.get("model", {}).get("class_path", "")):
        raise MintError(
            f"{run} is not a target run (its model is {config.get('model', {}).get('class_path')})"
        )
    return config, ckpt, load_target_checkpoint(ckpt).manifest


def recipe_of(config: dict) -> dict:
    """The parts of a config that decide how a model trains: model, data, seed, training length."""
    trainer = config.get("trainer") or {}
    return {
        "model": config.get("model"),
        "data": config.get("data"),
        "seed_everything": config.get("seed_everything"),
        "trainer": {k: trainer.get(k) for k in RECIPE_TRAINER_KEYS},
    }


def set_folder(
    save_dir: Path, run: Path, seed: int, audited: str | None, extra: list[str]
) -> tuple[Path, str]:
    """The folder of the reference set, named by the target run and the key of what the set depends on.

    The key covers the target's recipe, its pool, the seed, the audited images and the extra
    arguments that change training (not devices, workers or logging).
    """
    config, _, manifest = target_recipe(run)
    audited_sha = index_hash(sorted(audited_images(audited, manifest))) if audited else None
    recipe = recipe_of(config) | {"extra": [a for a in extra if not a.startswith(NOT_RECIPE)]}
    key = set_key(recipe, manifest, seed, audited_sha)
    return save_dir / "references" / f"{run.parent.name}-{run.name}-{key}", key


def train_reference(run: Path, folder: Path, key: str, count: int, index: int, seed: int,
                    audited: str | None, extra: list[str]) -> dict:  # fmt: skip
    """Fit reference `index` unless it is done; resume it if a crash left its `last.ckpt`."""
    ref = folder / f"ref_{index}" / "version_0"
    if (ref / DONE).is_file():
        record = json.loads((ref / DONE).read_text())
        if record.get("key") == key:
            print(f"mint references: reference {index} of {count} found, reused ({ref})", flush=True)
            return record | {"checkpoint": str((ref / "checkpoints" / "last.ckpt").resolve())}
    from mint.cli import main as cli_main  # the CLI imports every module: import it only when running

    config, _, _ = target_recipe(run)
    last = ref / "checkpoints" / "last.ckpt"
    args = [
        "fit", "--config", str(run / "config.yaml"), "--data=mint.data.ReferenceDataModule",
        f"--data.init_args.index={index}", f"--data.init_args.seed={seed}",
        f"--trainer.logger.init_args.save_dir={folder}", f"--trainer.logger.init_args.name=ref_{index}",
        "--trainer.logger.init_args.version=version_0",
        # another initialization and batch order for every reference, as independent models
        f"--seed_everything={int(config.get('seed_everything') or 0) * 100_003 + seed * 1_009 + index + 1}",
        *([f"--data.init_args.audited={audited}"] if audited else []),
        *([f"--ckpt_path={last}"] if last.is_file() else []),
        *extra,
    ]  # fmt: skip
    print(
        f"mint references: training reference {index} of {count}" + (" (resuming)" if last.is_file() else "")
    )
    start = time.perf_counter()
    cli = cli_main(args)
    record = {
        "key": key,
        "target_run": str(run),
        "index": index,
        "checkpoint": str((Path(cli.trainer.log_dir) / "checkpoints" / "last.ckpt").resolve()),
        "seconds": round(time.perf_counter() - start, 1),
        "reference": cli.datamodule.manifest["reference"],
    }
    write_json_atomic(ref / DONE, record)
    return record


def main(argv: list[str] | None = None) -> list[dict]:
    """Command-line entry point of `mint references`."""
    parser = argparse.ArgumentParser(prog="mint references", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--target-run", required=True, help="the target's run folder (version_N)")
    parser.add_argument(
        "--count", type=int, required=True, help="K: references 0 ... K-1 of the set (finished ones reused)"
    )
    parser.add_argument("--index", type=int, nargs="*", help="which of them to train (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the keep mask")
    parser.add_argument(
        "--audited", help="offline: a detector checkpoint whose test images no reference sees"
    )
    parser.add_argument("--save-dir", default="lightning_logs", help="where the reference set's folder goes")
    argv = list(argv if argv is not None else sys.argv[1:])
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    count = check_count("--count", args.count)
    indices = args.index if args.index else list(range(count))
    bad = [i for i in indices if not 0 <= i < count]
    if bad:
        raise MintError(f"--index {bad}: references are numbered 0 ... {count - 1}")
    run = Path(args.target_run)
    seed = check_count("--seed", args.seed, minimum=0)
    folder, key = set_folder(Path(args.save_dir), run, seed, args.audited, extra)
    records = [train_reference(run, folder, key, count, i, args.seed, args.audited, extra) for i in indices]
    total = sum(r["seconds"] for r in records)
    print(f"mint references: {len(records)} of {count} in {folder} ({total:.0f} s of training recorded)")
    return records
