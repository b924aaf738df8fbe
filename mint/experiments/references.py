"""`mint references`: train (or find) the reference models of a target, with the target's own recipe.

    mint references --target-run lightning_logs/target_cifar10/version_0 --count 8
    mint references --target-run RUN --count 64 --index $SLURM_ARRAY_TASK_ID      # one per array job
    mint references --target-run RUN --count 4 --audited DETECTOR_CKPT            # offline references

Each reference is one `fit` of the target run's own `config.yaml` (architecture, optimizer, epochs,
augmentation) with its data module swapped for `ReferenceDataModule`: row k of a seeded keep mask
over the target's pool (`reference_kept`). A reference set lives in
`<save_dir>/references/<target run>-<key>/ref_<k>/version_0`, where the key hashes what the set
depends on (the target's recipe and pool, the seed, the audited images), not K: `--count 8` after
`--count 4` trains references 4 ... 7 beside the first four, and an attack given `count: 4` reads
the first four. A finished reference (`done.json`) is found again and reused, never retrained; a
crashed one resumes from its `last.ckpt`. Several `mint references` may work on one set at once
(array jobs): each reference is trained by one of them while the others wait for it. Arguments
after `--` go to every `fit` (e.g. `--trainer.devices=2`), as for a target; those that change how
the target was trained (`--trainer.max_epochs=1`) are refused unless `--other-recipe` is given.

The run's `config.yaml` is a file, perhaps from someone else: it may name only mint's, torch.optim's
and Lightning's classes (LightningCLI imports every class a config names, running its module).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mint.attacks.reference_loading import DONE, read_done
from mint.commands import command_parser
from mint.data.reference_datamodule import audited_images, set_key
from mint.data.reference_masks import check_reference_count
from mint.data.split import index_hash
from mint.errors import MintError, UnwritableError, check_count
from mint.experiments.reference_recipe import (
    NOT_RECIPE,
    recipe_changes,
    recipe_of,
    target_recipe,
    typed_names,
)
from mint.files import exclusive_lock, file_sha256, write_json_atomic
from mint.records import load_target_checkpoint
from mint.records.trusted import importing_only
from mint.tasks.preflight import check_writable


@dataclass
class ReferencePlan:
    """What every reference of one `mint references` command shares."""

    run: Path
    config: dict
    folder: Path
    key: str
    count: int
    seed: int
    audited: str | None
    extra: list[str]
    changes: list[str]  # recipe changes asked for with --other-recipe, recorded in every done.json


def set_folder(save_dir: Path, run: Path, config: dict, manifest: dict, seed: int, audited: str | None,
               extra: list[str]) -> tuple[Path, str]:  # fmt: skip
    """The folder of the reference set, named by the target run and the key of what the set depends on.

    The key covers the target's recipe, its pool, the seed, the audited images and the extra
    arguments that change training (not devices, workers or logging).
    """
    audited_sha = index_hash(sorted(audited_images(audited, manifest))) if audited else None
    recipe = recipe_of(config) | {"extra": [a for a in extra if not a.startswith(NOT_RECIPE)]}
    key = set_key(recipe, manifest, seed, audited_sha)
    return save_dir / "references" / f"{run.parent.name}-{run.name}-{key}", key


def found_done(plan: ReferencePlan, index: int) -> dict | None:
    """The record of reference `index` if it is finished; None if not (or its done.json is damaged)."""
    ref = plan.folder / f"ref_{index}" / "version_0"
    if not os.path.lexists(ref / DONE):
        return None
    try:
        record = read_done(ref / DONE)
    except MintError:
        # mint writes done.json atomically, after the checkpoint: a damaged one is not mint's. The
        # checkpoint beside it resumes (a finished one ends at once), so training again loses nothing,
        # where a refusal would leave the file to be deleted by hand.
        print(f"mint references: {ref / DONE} is damaged; training reference {index} again", flush=True)
        return None
    if record.get("key") != plan.key or record["index"] != index:
        return None
    return record | {"checkpoint": str((ref / "checkpoints" / "last.ckpt").resolve())}


def check_resumable(last: Path, index: int, seed: int) -> None:
    """Refuse to resume from a `last.ckpt` that is not reference `index`'s (a target's, another's)."""
    recorded = load_target_checkpoint(last).manifest.get("reference")
    if not isinstance(recorded, dict) or (recorded.get("index"), recorded.get("seed")) != (index, seed):
        raise MintError(
            f"{last} is not a checkpoint of reference {index} (seed {seed}), so it cannot be resumed: "
            "move it away to train that reference from scratch"
        )


def reference_seed(plan: ReferencePlan, index: int) -> int:
    """Another initialization and batch order for every reference, as independent models.

    Within Lightning's seeds (0 ... 2^32 - 1) whatever the target's seed and the mask's.
    """
    target = plan.config.get("seed_everything")
    target = target if type(target) is int else 0  # the fit's own seed is given on its command line
    return (target * 100_003 + plan.seed * 1_009 + index + 1) % 2**32


def train_reference(plan: ReferencePlan, index: int) -> dict:
    """Fit reference `index` unless it is done; resume it if a crash left its `last.ckpt`."""
    found = found_done(plan, index)
    if found is not None:
        print(f"mint references: reference {index} of {plan.count} found, reused ({found['checkpoint']})")
        return found
    from mint.cli import main as cli_main  # the CLI imports every module: import it only when running

    ref = plan.folder / f"ref_{index}" / "version_0"
    last = ref / "checkpoints" / "last.ckpt"
    if os.path.lexists(last):
        check_resumable(last, index, plan.seed)
    args = [
        "fit", "--config", str(plan.run / "config.yaml"), "--data=mint.data.ReferenceDataModule",
        f"--data.init_args.index={index}", f"--data.init_args.seed={plan.seed}",
        f"--trainer.logger.init_args.save_dir={plan.folder}", f"--trainer.logger.init_args.name=ref_{index}",
        "--trainer.logger.init_args.version=version_0",
        f"--seed_everything={reference_seed(plan, index)}",
        *([f"--data.init_args.audited={plan.audited}"] if plan.audited else []),
        *([f"--ckpt_path={last}"] if last.is_file() else []),
        *plan.extra,
    ]  # fmt: skip
    resuming = " (resuming)" if last.is_file() else ""
    print(f"mint references: training reference {index} of {plan.count}{resuming}", flush=True)
    start = time.perf_counter()
    with importing_only(typed_names(plan.extra)):  # what the run's config names was checked; this enforces it
        cli = cli_main(args)
    trained = Path(cli.trainer.log_dir) / "checkpoints" / "last.ckpt"
    record = {
        "key": plan.key,
        "target_run": str(plan.run),
        "index": index,
        "checkpoint": str(trained.resolve()),
        "checkpoint_sha256": file_sha256(trained),
        "seconds": round(time.perf_counter() - start, 1),
        "reference": cli.datamodule.manifest["reference"],
        "recipe_differences": plan.changes,
    }
    write_json_atomic(ref / DONE, record)
    return record


def _first_rank() -> bool:
    """Whether this is the first process of a distributed run (or the only one).

    Lightning's DDP launcher runs this command again in each further process, inside rank 0's fit:
    those must not wait for the lock rank 0 holds (it waits for them), so only rank 0 locks.
    """
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0 and os.environ.get("NODE_RANK", "0") == "0"


def train_locked(plan: ReferencePlan, index: int) -> dict:
    """`train_reference` holding the reference's lock: another command on the set waits, then reuses it.

    Waiting (rather than training other references first) keeps every command's references in
    index order, the order a DDP launch's further processes assume.
    """
    if not _first_rank():
        return train_reference(plan, index)
    lock = plan.folder / f".ref_{index}.lock"

    def waiting() -> None:
        print(f"mint references: another process is training reference {index} ({lock}); waiting", flush=True)

    with exclusive_lock(lock, on_wait=waiting):
        return train_reference(plan, index)


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The command line's options, and the arguments after `--` (for every fit)."""
    parser = command_parser("mint references", __doc__)
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
    parser.add_argument(
        "--other-recipe",
        action="store_true",
        help="train with arguments after `--` that change the target's recipe (results name the change)",
    )
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    return parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv), extra


def main(argv: list[str] | None = None) -> list[dict]:
    """Command-line entry point of `mint references`."""
    args, extra = parse(list(argv if argv is not None else sys.argv[1:]))
    count = check_reference_count("--count", args.count)
    indices = list(dict.fromkeys(args.index)) if args.index else list(range(count))
    bad = [i for i in indices if not 0 <= i < count]
    if bad:
        raise MintError(f"--index {bad}: references are numbered 0 ... {count - 1}")
    run, seed = Path(args.target_run), check_count("--seed", args.seed, minimum=0)
    config, _, manifest = target_recipe(run)
    changes = recipe_changes(config, extra)
    if changes and not args.other_recipe:
        # A demanding auditor's default: LiRA and RMIA model the target's training, so references
        # trained otherwise are miscalibrated and compare unfairly with MINT. A study of cheaper
        # references says so with --other-recipe, and every result built on them names the change.
        raise MintError(
            f"the arguments after `--` change how the target was trained: {'; '.join(changes)}. References "
            "must be trained as the target was (LiRA and RMIA assume it); leave them out, or add "
            "--other-recipe to train such references anyway (every attack result then names the change)"
        )
    if changes:
        print(f"mint references: WARNING: references NOT trained as the target was: {'; '.join(changes)}",
              file=sys.stderr)  # fmt: skip
    folder, key = set_folder(Path(args.save_dir), run, config, manifest, seed, args.audited, extra)
    check_writable(folder, lambda f, why: UnwritableError(f"cannot write the reference set {f} ({why}); "
                                                          "choose another --save-dir"))  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    plan = ReferencePlan(run, config, folder, key, count, seed, args.audited, extra, changes)
    records = [train_locked(plan, i) for i in indices]
    total = sum(r.get("seconds", 0) for r in records)
    print(f"mint references: {len(records)} of {count} in {folder} ({total:.0f} s of training recorded)")
    return records
