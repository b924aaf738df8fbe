"""A reference set read from its folder and checked: every reference belongs to the set and the target.

One `done.json` per finished reference names its index, its set, its checkpoint's sha256 and the
recipe it was trained with; each reference's `kept.npy` must be the seeded row of the set's keep
mask it was trained on. Swapped, forged or mixed files, and the target's own checkpoint given as a
reference, are refused, saying which record differs.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mint.data.membership import MembershipData
from mint.data.reference_masks import check_reference_count, check_reference_index, read_kept, reference_kept
from mint.data.split import index_hash
from mint.errors import MintError
from mint.files import check_input_file
from mint.records import load_target_checkpoint


@dataclass
class ReferenceSet:
    """Finished reference models of one target: checkpoints, keep mask over the pool, training cost."""

    folder: Path
    checkpoints: list[str]
    kept: np.ndarray  # (K, pool size) bool
    seconds: float
    mode: str
    sha256: list[str] = field(default_factory=list)  # of each checkpoint, as checked
    differences: list[str] | None = field(default_factory=list)  # recipe changes; None: not recorded
    notes: list[str] = field(default_factory=list)


# The target's recipe that its references must share (a LiRA / RMIA reference mimics the target).
RECIPE = ("arch", "num_classes", "image_size", "width", "block_dropout", "label_smoothing", "dp_epsilon")
DONE = "done.json"
MAX_RECORD_BYTES = 1 << 20  # a done.json is a few hundred bytes
# What a done.json holds, by type (`index` required; the others from `mint references`).
RECORD_TYPES = {"index": int, "key": str, "seconds": (int, float), "checkpoint_sha256": str,
                "reference": dict, "recipe_differences": list, "target_run": str}  # fmt: skip


def read_done(path: str | Path) -> dict:
    """A reference's `done.json` (what `mint references` records when it finishes one), checked.

    Raises `MintError` naming the file when it is not a JSON object with an integer `index`.
    """
    path = check_input_file(path, "reference record")
    size = path.stat().st_size
    try:
        if size > MAX_RECORD_BYTES:
            raise ValueError(f"{size:,} bytes")
        record = json.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(record, dict) or "index" not in record:
            raise ValueError(f"a {type(record).__name__} without the reference's index")
        typed = {k: v for k, v in record.items() if k in RECORD_TYPES}
        wrong = [k for k, v in typed.items() if isinstance(v, bool) or not isinstance(v, RECORD_TYPES[k])]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} of the wrong type")
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise MintError(
            f"reference record {str(path)!r} is damaged ({' '.join(str(err).split())[:120]}); `mint "
            "references` with this set's arguments trains that reference again (from its checkpoint)"
        ) from err
    return record


def _finished(folder: Path) -> dict[int, dict]:
    """{index: done.json record} of the finished references in a set's folder, by folder name."""
    records = {}
    for done in sorted(folder.glob("ref_*/version_0/" + DONE)):
        name = done.parent.parent.name
        if not name[4:].isdigit():
            continue  # not a reference's folder (references are ref_0, ref_1, ...)
        index = check_reference_index(f"{folder / name}: reference", int(name[4:]))
        record = read_done(done)
        if record["index"] != index:
            raise MintError(
                f"{done} records reference {record['index']}, but lies in the folder of reference {index}: "
                "the set's folders were renamed or mixed. Restore them, or train the set again"
            )
        record["checkpoint"] = str(done.parent / "checkpoints" / "last.ckpt")  # wherever the set now lies
        records[index] = record
    return records


def _check_reference(
    r: dict, folder: Path, manifest: dict, recipe: dict | None, target_sha256: str | None
) -> tuple:
    """One reference's checkpoint and mask, checked: (checkpoint sha256, reference record, kept indices).

    The mask (`kept.npy`) must be the one its checkpoint was trained on (`kept_sha256`), the
    checkpoint must say it is this reference (not the target's own checkpoint), and the done.json
    must describe this checkpoint.
    """
    index = r["index"]
    saved = load_target_checkpoint(r["checkpoint"])
    where = f"reference {index} in {folder}"
    if saved.sha256 == target_sha256:
        raise MintError(
            f"{where} is the audited target's own checkpoint (sha256 {saved.sha256[:12]}...): a reference "
            "must be trained apart from the target. Train it again (`mint references`)"
        )
    ref = saved.manifest.get("reference")
    valid = (
        isinstance(ref, dict) and ref.get("mode") in ("online", "offline") and type(ref.get("seed")) is int
    )
    if not valid or ref.get("index") != index:
        what = (
            f"reference {ref.get('index')}'s"
            if valid
            else "not a reference model's (it records no keep mask)"
        )
        raise MintError(
            f"the checkpoint of {where} is {what}: the set's files were mixed or replaced. Train that "
            "reference again (`mint references`)"
        )
    if r.get("checkpoint_sha256") not in (None, saved.sha256):
        raise MintError(
            f"the checkpoint of {where} has changed since `mint references` finished it (sha256 "
            f"{saved.sha256[:12]}..., recorded {r['checkpoint_sha256'][:12]}...): train it again"
        )
    if r.get("reference") not in (None, ref):
        raise MintError(f"{where}: its done.json and its checkpoint describe different references")
    # By content: the same pool and split wherever the files now lie (a path is no identity).
    diff = [k for k in ("train_fingerprint", "members_sha256", "nonmembers_sha256")
            if saved.manifest.get(k) != manifest.get(k)]  # fmt: skip
    diff += [f"{k} ({saved.hparams.get(k)} against the target's {recipe.get(k)})" for k in RECIPE
             if recipe is not None and saved.hparams.get(k) != recipe.get(k)]  # fmt: skip
    if diff:
        raise MintError(
            f"{where} was made for another target: its {', '.join(diff)} "
            "differ from the audited target's. Train references for this target (`mint references`)"
        )
    kept = read_kept(Path(r["checkpoint"]).parent.parent / "kept.npy", manifest["num_train"])
    if index_hash(kept) != ref.get("kept_sha256"):
        raise MintError(
            f"the kept.npy of {where} is not the mask its checkpoint was trained on (kept_sha256 differs): "
            "the set's masks were swapped or edited. Restore them, or train that reference again"
        )
    return saved.sha256, ref, kept


def load_reference_set(
    folder: str | Path,
    manifest: dict,
    count: int | None = None,
    recipe: dict | None = None,
    target_sha256: str | None = None,
    data: MembershipData | None = None,
    audited: np.ndarray | None = None,
) -> ReferenceSet:
    """Read references 0 ... count-1 in `folder` (None: all), checking that they belong to the target.

    Each reference's mask must be its checkpoint's, and (with `data`) row k of the seeded keep mask
    (`reference_kept`); its checkpoint must be a reference's, not the target's own or another
    reference's. Recipe changes recorded by `mint references` are named in the set's `differences`.

    Args:
        folder: the reference set (written by `mint references`).
        manifest: the audited target's split record.
        count: how many references to use, the first ones of the set (a set of K is the first K of
            a larger one); None: every finished reference, which must then be numbered 0 ... K-1.
        recipe: the audited target's hyperparameters (None: not compared), whose `RECIPE` keys each
            reference must share.
        target_sha256: the audited target checkpoint's sha256, which no reference may have.
        data: the target's pool (its groups and training set), to recompute the seeded masks; None:
            each mask is checked against its checkpoint only.
        audited: the detector's test images (pool indices), the audited set of offline references.
    """
    folder = Path(folder)
    records = _finished(folder)
    if not records:
        raise MintError(
            f"no finished reference models in {str(folder)!r} (train them with `mint references`)"
        )
    if count is not None:
        check_reference_count("the number of references to use", count)
    count = count or max(records) + 1
    _refuse_missing(folder, records, count)
    records = [records[i] for i in range(count)]
    kept = np.zeros((count, manifest["num_train"]), bool)
    shas, refs = [], []
    for r in records:
        sha, ref, indices = _check_reference(r, folder, manifest, recipe, target_sha256)
        if sha in shas:
            raise MintError(f"references {shas.index(sha)} and {r['index']} in {folder} are the same file")
        kept[r["index"], indices] = True
        shas.append(sha)
        refs.append(ref)
    notes = _check_set(folder, records, refs, kept, data, audited)
    differences = _recipe_differences(folder, records, notes)
    return ReferenceSet(
        folder, [r["checkpoint"] for r in records], kept, sum(r.get("seconds", 0) for r in records),
        refs[0]["mode"], shas, differences, notes,
    )  # fmt: skip


def _recipe_differences(folder: Path, records: list[dict], notes: list[str]) -> list[str] | None:
    """How the references' recipe differs from the target's (warned of); None, noted, if not recorded."""
    differences = _differences(records)
    if differences is None:
        notes.append("references trained before mint recorded their recipe: not compared with the target's")
    elif differences:
        warnings.warn(
            f"the references in {folder} were not trained as the target was: {'; '.join(differences)}. "
            "LiRA / RMIA assume they were; their results are named with this (recipe_differences)",
            stacklevel=3,
        )
    return differences


def _refuse_missing(folder: Path, records: dict[int, dict], count: int) -> None:
    """Refuse a set whose references 0 ... count-1 are not all finished, with the command that trains them."""
    missing = sorted(set(range(count)) - set(records))
    if missing:
        known = next(iter(records.values()))
        ref = known.get("reference") or {}
        audited_arg = f" --audited {ref['audited']}" if ref.get("audited") else ""
        raise MintError(
            f"{count} references asked for, but only {count - len(missing)} of references 0 ... {count - 1} "
            f"in {folder} are finished; train the rest: mint references --target-run "
            f"{known.get('target_run', 'TARGET_RUN')} --count {count} --index {' '.join(map(str, missing))} "
            f"--seed {ref.get('seed', 0)}{audited_arg} --save-dir {folder.parent.parent} (and after `--` the "
            "arguments the set was trained with, if any)"
        )


def _check_set(folder: Path, records: list[dict], refs: list[dict], kept: np.ndarray,
               data: MembershipData | None, audited: np.ndarray | None) -> list[str]:  # fmt: skip
    """Refuse references of different sets or masks other than their seeded rows; notes of what was not."""
    shared = ("seed", "mode", "audited_sha256", "target_training_size")
    for r, ref in zip(records, refs, strict=True):
        diff = [k for k in shared if ref.get(k) != refs[0].get(k)]
        diff += ["key"] if r.get("key") != records[0].get("key") else []
        if diff:
            raise MintError(
                f"references 0 and {r['index']} in {folder} belong to different reference sets "
                f"(their {', '.join(diff)} {'differ' if len(diff) > 1 else 'differs'}): a set's references "
                "share them. Train the set again"
            )
    if data is None:
        return []
    first = refs[0]
    if first["mode"] == "offline":
        if audited is None or index_hash(np.sort(audited)) != first.get("audited_sha256"):
            return [
                "offline references made for another detector's test set: their masks are checked "
                "against their checkpoints, not against the seeded rows"
            ]
    rows = reference_kept(len(data.train), len(refs), len(data.split.members), first["seed"], data.groups,
                          audited if first["mode"] == "offline" else None)  # fmt: skip
    wrong = [r["index"] for r in records if not np.array_equal(rows[r["index"]], kept[r["index"]])]
    if wrong:
        raise MintError(
            f"the masks of references {wrong} in {folder} are not rows {wrong} of the set's seeded keep "
            f"mask (seed {first['seed']}): they were trained on other images than their number says. "
            "Train them again (`mint references`)"
        )
    return []


def _differences(records: list[dict]) -> list[str] | None:
    """The recipe changes `mint references` recorded for any reference (None: a set that predates them)."""
    if any("recipe_differences" not in r for r in records):
        return None
    changes: list[str] = []
    for r in records:
        changes += [c for c in r["recipe_differences"] if c not in changes]
    return changes
