"""A set of reference models (from `mint references`) scoring a target's images with LiRA, RMIA, ...

The set is read from its folder: one `done.json` per finished reference, each naming its checkpoint
(a target checkpoint of the same recipe) and the pool images it trained on. It must belong to the
audited target: the same source pool and the same member / non-member split; anything else is
refused, saying which record differs. Every attack is computed on the same images as MINT, from
float64 logits (`mint.attacks.reference`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mint.attacks.reference import attack_scores
from mint.attacks.reference_loading import ReferenceSet, load_reference_set
from mint.attacks.registry import REFERENCE_ATTACKS
from mint.data.portions import DetectorSets
from mint.errors import MintError, check_finite
from mint.models.build import readable_layers
from mint.models.target import LOGITS, Target, build_network
from mint.records import load_target_checkpoint


def _queries(count: int) -> list[tuple[bool, int, int]]:
    """(mirror, dy, dx) of each query, the image itself first.

    1, 2 (the image and its mirror) or 18 (both, shifted by up to one pixel each way), as LiRA queries.
    """
    shifts = [(0, 0)] + (
        [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx] if count == 18 else []
    )
    return [(mirror, dy, dx) for mirror in ((False, True) if count > 1 else (False,)) for dy, dx in shifts]


def _query(images: Tensor, mirror: bool, dy: int, dx: int) -> Tensor:
    """Images (B, 3, H, W) mirrored and shifted (reflect-padded by one pixel, then cropped)."""
    if mirror:
        images = images.flip(-1)
    if dy or dx:
        h, w = images.shape[-2:]
        padded = torch.nn.functional.pad(images, (1, 1, 1, 1), mode="reflect")
        images = padded[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    return images


@torch.no_grad()
def _logits(model: Target, images: np.ndarray, device, batch_size: int, queries: int) -> Tensor:
    """Float64 logits (N, queries, C) of uint8 images (N, H, W, 3) through a frozen target."""
    from mint.data.images import to_tensor

    out = []
    for i in range(0, len(images), batch_size):
        batch = to_tensor(torch.from_numpy(images[i : i + batch_size]).to(device))
        logits = [model(_query(batch, *q), gradients=False)[LOGITS] for q in _queries(queries)]
        out.append(torch.stack(logits, 1).double().cpu())
    return torch.cat(out)


def _reference_logits(
    refs: ReferenceSet, images: np.ndarray, device, batch_size: int, queries: int, hint: str
) -> Tensor:
    """Float64 logits (K, N, queries, C) of every reference model, each read once from its checkpoint."""
    ref_logits = []
    for i, path in enumerate(refs.checkpoints):
        record = load_target_checkpoint(path)
        if refs.sha256 and record.sha256 != refs.sha256[i]:  # replaced since the set was checked
            raise MintError(f"{path} changed while the reference set was being read: run again")
        last = readable_layers(build_network(record.hparams))[-1]
        model = Target.from_record(record, [last]).to(device)
        logits = _logits(model, images, device, batch_size, queries)
        ref_logits.append(check_finite(f"reference {i}'s logits", logits, hint))
    return torch.stack(ref_logits)


def reference_scores(
    refs: ReferenceSet,
    target: Target,
    images: np.ndarray,
    x: np.ndarray,
    z: np.ndarray,
    labels: np.ndarray,
    queries: int = 1,
    batch_size: int = 512,
    rmia_a: float | None = None,
) -> tuple[dict[str, Tensor], dict]:
    """Scores {attack: (len(x),)} of pool images `x`, with population images `z`, and a record.

    Args:
        refs: the reference set.
        target: the audited target (its logits; it stays where it is).
        images: the pool's uint8 images (N, H, W, 3); `x`, `z` index them.
        x: the images to score.
        z: population images for RMIA (non-members of the target, none of them in `x`'s test part).
        labels: class labels of the pool (N,).
        queries: LiRA's queries per image: 1, 2 (and its mirror) or 18 (both, shifted by up to a
            pixel); RMIA and the calibrated loss read the image itself.
        batch_size: images per forward pass.
        rmia_a: offline RMIA's `a`, given (None: fitted, a reference playing the target).
    """
    device = next(target.buffers()).device
    both = np.concatenate([x, z])
    if queries not in (1, 2, 18):
        raise MintError(f"reference attacks query each image 1, 2 or 18 times, not {queries}")
    # A NaN logit would make a score NaN, which reads as "attack not applicable": refused instead.
    hint = "a model with NaN or infinite outputs cannot calibrate an attack"
    target_all = _logits(target, images[both], device, batch_size, queries)  # (N, queries, C)
    check_finite("the audited target's logits", target_all, hint)
    ref_all = _reference_logits(refs, images[both], device, batch_size, queries, hint)  # (K, N, queries, C)
    kept = torch.from_numpy(refs.kept[:, both])
    online_form = refs.mode == "online" and len(refs.checkpoints) > 1
    notes: list[str] = []
    y = torch.from_numpy(labels[both])
    scores, a = attack_scores(target_all, ref_all, kept, y, len(x), online_form, rmia_a, notes)
    if refs.differences:
        notes.insert(0, f"references NOT trained as the target was: {'; '.join(refs.differences)}")
    record = {
        "count": len(refs.checkpoints), "mode": refs.mode, "training_seconds": refs.seconds,
        "rmia_offline_a": a, "population_size": len(z), "folder": str(refs.folder),
        "notes": [*refs.notes, *notes], "recipe_differences": refs.differences,
        "lira_queries": queries,
        "lira_fixed_variance": "online" if online_form else "offline",
    }  # fmt: skip
    return scores, record


def reference_table(
    folder: str | Path,
    target: Target,
    sets: DetectorSets,
    seed: int,
    queries: int = 1,
    count: int | None = None,
    rmia_a: float | None = None,
) -> tuple[Tensor, dict, dict]:
    """Every reference attack's score of every row of a detector's sets, thresholds fitted on its train set.

    Args:
        folder: the reference set.
        target: the audited target (a mint target: references train on its recorded pool).
        sets: the detector data module's sets (their rows, membership, the rebuilt split).
        seed: seed of the population sample.
        queries: LiRA's queries per image (1, 2 or 18; see `reference_scores`).
        count: use the first `count` references of the set (None: all).
        rmia_a: offline RMIA's `a` (None: fitted).

    Returns:
        (rows, attacks) float64 scores in `REFERENCE_ATTACKS` order (NaN where an attack does not apply),
        {attack: threshold}, and the record for `test_results.json`.
    """
    from mint.evaluation import best_threshold

    data = sets.data
    if data is None:
        raise MintError(
            "reference attacks need the target's data pool, which only a target trained by mint records; "
            "with known members / non-members, leave `references` unset"
        )
    test_rows = sets.portions["test"]
    refs = load_reference_set(folder, data.manifest, count, target.meta["hparams"], target.meta.get("sha256"),
                              data, sets.pool[test_rows])  # fmt: skip
    # Population z: non-members of the target outside the detector's test set, at most 5,000.
    z = np.setdiff1d(data.split.nonmembers, sets.pool[test_rows])
    z = np.sort(np.random.default_rng(seed).permutation(z)[:5000])
    scores, record = reference_scores(
        refs, target, data.train.images, sets.pool, z, data.train.labels, queries, rmia_a=rmia_a
    )
    table = torch.full((len(sets.pool), len(REFERENCE_ATTACKS)), float("nan"), dtype=torch.float64)
    train, test = (torch.from_numpy(sets.portions[k]) for k in ("train", "test"))
    thresholds = {}
    for j, name in enumerate(REFERENCE_ATTACKS):
        if scores[name][test].isnan().any():  # an attack is reported on every test image or not at all
            record["notes"].append(
                f"{name}: not applicable to this set (test images without IN / OUT references)"
            )
            thresholds[name] = float("nan")
            continue
        table[:, j] = scores[name]
        fit = train[~scores[name][train].isnan()]  # thresholds from the training images it can score
        members = torch.from_numpy(sets.members).long()[fit]
        thresholds[name] = best_threshold(table[fit, j], members) if len(fit) else float("nan")
    return table, thresholds, record


def with_reference_columns(
    scores: Tensor, ids: Tensor, names: tuple[str, ...], table: Tensor | None
) -> tuple[Tensor, tuple[str, ...]]:
    """Scores (N, len(names)) of the test images `ids` (cache rows) with the applicable attacks appended."""
    if table is None:
        return scores, names
    attacks = [n for j, n in enumerate(REFERENCE_ATTACKS) if not table[:, j].isnan().all()]
    columns = [REFERENCE_ATTACKS.index(n) for n in attacks]
    return torch.cat([scores, table[ids.cpu()][:, columns].to(scores)], dim=1), (*names, *attacks)


def reference_inputs(rows: Tensor) -> Tensor:
    """Detector inputs (B, 2 x attacks) from reference-table rows (B, attacks): scores, and which are missing.

    An attack that cannot score an image (an offline set's reference that trained on it, an online
    attack without IN references) leaves NaN: the detector reads 0 there and a flag saying so.
    """
    missing = rows.isnan()
    return torch.cat([rows.nan_to_num(0.0), missing.to(rows.dtype)], dim=1)


def budget(mint_seconds: float | None, record: dict) -> dict:
    """What each side cost: the detector run's seconds, the references' count and training seconds."""
    return {
        "mint_seconds": mint_seconds,
        "reference_models": record.get("count", 0),
        "reference_training_seconds": record.get("training_seconds", 0.0),
    }
