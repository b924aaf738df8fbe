"""mint from Python (a notebook): audit a model you hold, score images, audit a set, with the CLI's code.

    import mint
    result = mint.audit_model(model, members, nonmembers, layers=["avgpool"], image_size=32,
                              mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    print(result)                      # MINT and every black-box attack on the same held-out images
    scores = mint.score(result, suspect_images, model=model)
    verdict = mint.audit_images(result, suspect_images, "audit_suspect", model=model)

Each builds the same `DetectorDataModule`, `DetectorModule` and Trainer as `mint fit` / `mint test`
(the model as a `mint.models.ModuleTarget`), or runs `mint audit`'s own functions, and returns typed
results (`mint.records.TestReport` inside).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn

from mint.audit.command import audit_device, resolve_labels, run_audit, score_images
from mint.audit.detector import load_detector
from mint.audit.inputs import list_inputs
from mint.data import DetectorDataModule
from mint.data.known import known_count
from mint.errors import MintError
from mint.models import ModuleTarget
from mint.models.external import IMAGENET_MEAN, IMAGENET_STD
from mint.quiet import quiet_lightning
from mint.records.removed import refuse_unknown_options
from mint.records.report import TestReport
from mint.tasks import DetectorModule

# Images: a folder (class subfolders by index give labels) or an .npz (known sets: a CSV of path,label
# lines too); or arrays: uint8 / float in [0, 1] (N, H, W, 3), a tensor (N, 3, H, W), or (images, labels).
Images = str | Path | np.ndarray | Tensor | tuple


@dataclass(frozen=True)
class ModelAudit:
    """What `audit_model` measured and wrote.

    Attributes:
        report: MINT and every attack on the same held-out known members and non-members, and the
            target's accuracy on each (`report.mint.auroc`, `report.attacks`, `report.target_gap`).
        checkpoint: the detector's best checkpoint (its target's weights and calibration scores in it).
        run: the run folder: test_results.json, test_scores.npz, roc_test.png, TensorBoard logs.
    """

    report: TestReport
    checkpoint: Path
    run: Path

    def __str__(self) -> str:
        r, gap = self.report, self.report.target_gap
        best = max(r.attacks.items(), key=lambda kv: kv[1].auroc)
        return "\n".join([
            f"MINT AUROC {r.mint.auroc:.3f} [{r.mint.auroc_ci95[0]:.3f}, {r.mint.auroc_ci95[1]:.3f}] "
            f"({r.mint.members} members / {r.mint.nonmembers} non-members held out)",
            f"best black-box attack: {best[0]} {best[1].auroc:.3f}",
            f"target accuracy: members {gap.member_acc:.3f}, non-members {gap.nonmember_acc:.3f} "
            f"(gap {gap.gap:.3f})",
            f"detector: {self.checkpoint}",
            f"run: {self.run}",
        ])  # fmt: skip


@dataclass(frozen=True)
class ImageScores:
    """The detector's score of every image (`mint.score`); higher: more likely a member.

    Attributes:
        names: each image's name as scores.csv gives it (its file, or `index i` for arrays and .npz).
        scores: (N,) float64 membership logits.
        member_probability: (N,) their sigmoid (the detector's own calibration, not a p-value).
        predicted_class: (N,) the target's class for each image.
        class_used: (N,) the class the detector was given (the label, or the predicted class).
    """

    names: list[str]
    scores: Tensor
    member_probability: Tensor
    predicted_class: Tensor
    class_used: Tensor


@dataclass(frozen=True)
class SetAudit:
    """Was this set used to train the target? (`mint.audit_images`; the report folder holds the rest).

    Attributes:
        verdict: the report's sentence (strength of evidence, p-value, set size).
        p_value: one-sided Mann-Whitney p-value that the set scores higher than known non-members.
        effect_size: the set's AUROC against the known non-members' scores (0.5: no difference).
        n_audited: images scored.
        report: the report folder (report.html, scores.csv, summary.json).
        summary: every field of summary.json.
    """

    verdict: str
    p_value: float
    effect_size: float
    n_audited: int
    report: Path
    summary: dict


def audit_model(
    model: nn.Module,
    members: Images,
    nonmembers: Images,
    layers: list[str],
    image_size: int | None = None,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    epochs: int = 30,
    test_size: int | None = None,
    val_size: int | None = None,
    calibration_size: int | None = None,
    batch_size: int = 64,
    output: str | Path = "lightning_logs",
    name: str = "audit_model",
    seed: int = 0,
    accelerator: str = "auto",
    progress: bool = False,
    **detector_options,
) -> ModelAudit:
    """Train a detector on `model`'s activations and test it beside every black-box attack.

    The same steps as `mint fit` and `mint test` with `configs/mint_your_model.yaml`: the sets are
    balanced per class and disjoint; the test set is held out; a calibration set is kept so that
    `audit_images` can audit sets with the detector. `model` itself is never changed.

    Args:
        model: the classifier: images (B, 3, S, S) normalized by `mean` and `std` -> logits.
        members: images known to be in its training data (see `Images`).
        nonmembers: images known not to be (from the same distribution).
        layers: the layers the detector reads (`mint layers` lists them; e.g. `["avgpool"]`).
        image_size: the side the model reads; default: the side of the given arrays (needed for files).
        mean: per-channel mean subtracted from images in [0, 1], as in the model's training.
        std: per-channel standard deviation, as in its training.
        epochs: the detector's training epochs.
        test_size: held-out members (and as many non-members); default: 20% of the smaller set.
        val_size: members (and non-members) for validation; default: 10%.
        calibration_size: members (and non-members) kept for audits of sets; default: 10%.
        batch_size: images per batch.
        output: the runs' folder (`output/name/version_N`; the activation cache in `output`).
        name: the run's name.
        seed: seed of the sets and the detector.
        accelerator: Lightning's accelerator (`auto`, `cpu`, `gpu`).
        progress: show progress bars.
        **detector_options: `DetectorModule` options (`class_conditioning`, `output_features`, ...).
    """
    refuse_unknown_options(detector_options, DetectorModule, but=("target",))  # before any work
    known = Path(output) / name / "known"  # arrays are saved here, as the data module reads them
    (m_path, m_count, m_side), (n_path, n_count, n_side) = (
        _known_file(members, known, "members"), _known_file(nonmembers, known, "nonmembers"))  # fmt: skip
    image_size = image_size or m_side or n_side
    if image_size is None:
        raise MintError("give image_size: the side of the square images the model reads (e.g. 32, 224)")
    sizes = _held_out_sizes(min(m_count, n_count), test_size, val_size, calibration_size)
    L.seed_everything(seed, workers=True, verbose=False)  # as `mint fit` with seed_everything: SEED
    data = DetectorDataModule(
        target=ModuleTarget(model, image_size, mean, std), layers=layers, members=m_path, nonmembers=n_path,
        **sizes, batch_size=batch_size, seed=seed, cache_dir=str(Path(output) / ".mint_cache"),
    )  # fmt: skip
    return _fit_and_test(data, seed, detector_options, epochs, output, name, accelerator, progress)


def score(
    detector: ModelAudit | str | Path,
    images: Images,
    model: nn.Module | None = None,
    labels: str = "auto",
    batch_size: int = 256,
    device: str = "cpu",
) -> ImageScores:
    """The detector's membership score of every image, as `mint audit` writes them to scores.csv.

    Args:
        detector: a result of `audit_model`, or a detector checkpoint.
        images: the images to score (see `Images`).
        model: the target given to `audit_model` again (a file records its weights, not its class);
            None for a detector of a target in a file.
        labels: the class fed to a detector that reads one: `given`, `predicted` by the target, or
            `auto` (given when every image has one).
        batch_size: images per forward pass.
        device: `cpu`, `cuda`, `cuda:1`.
    """
    ckpt = detector.checkpoint if isinstance(detector, ModelAudit) else Path(detector)
    trained = load_detector(ckpt, audit_device(device), module=model, calibrated=False)
    with tempfile.TemporaryDirectory() as tmp:
        path, _, _ = _known_file(images, Path(tmp), "images")
        inputs = list_inputs(
            path, trained.target.image_size, trained.target.num_classes, None, labels != "predicted"
        )
        rows: list[list] = []  # `score_images` writes scores.csv's rows to anything with `writerow`
        sink = SimpleNamespace(writerow=rows.append)
        scores = score_images(
            trained, inputs, resolve_labels(labels, inputs, trained), batch_size, False, sink
        )
    names, _, predicted, used, _, _ = (list(column) for column in zip(*rows, strict=True))
    as_long = lambda v: torch.tensor([int(x) if x != "" else -1 for x in v])  # noqa: E731
    return ImageScores(names, scores, torch.sigmoid(scores), as_long(predicted), as_long(used))


def audit_images(
    detector: ModelAudit | str | Path,
    images: Images,
    output: str | Path,
    model: nn.Module | None = None,
    labels: str = "auto",
    overwrite: bool = False,
    device: str = "cpu",
) -> SetAudit:
    """Was this set used to train the target? `mint audit`: the set's scores against known non-members.

    Args:
        detector: a result of `audit_model`, or a detector checkpoint (trained with calibration data).
        images: the set to audit (see `Images`).
        output: the report folder to create.
        model: the target given to `audit_model` again; None for a target in a file.
        labels: as for `score`.
        overwrite: replace an existing report folder.
        device: `cpu`, `cuda`, `cuda:1`.
    """
    ckpt = detector.checkpoint if isinstance(detector, ModelAudit) else Path(detector)
    with tempfile.TemporaryDirectory() as tmp:
        path, _, _ = _known_file(images, Path(tmp), "images")
        summary = run_audit(str(ckpt), path, str(output), overwrite, labels, device=device, progress=False,
                            command="mint.audit_images (Python)", module=model)  # fmt: skip
    return SetAudit(summary["verdict"], summary["p_value"], summary["effect_size_auroc_vs_nonmembers"],
                    summary["n_audited"], Path(output), summary)  # fmt: skip


def _fit_and_test(data: DetectorDataModule, seed: int, options: dict, *trainer_args) -> ModelAudit:
    """`mint fit`, then `mint test` of the best checkpoint: a run of its own, seeded as `mint test` is."""
    quiet_lightning()
    fitting = _trainer(*trainer_args)
    fitting.fit(DetectorModule(data.target, **options), data)
    best = Path(fitting.checkpoint_callback.best_model_path)
    L.seed_everything(seed, workers=True, verbose=False)
    testing = _trainer(*trainer_args)
    testing.test(DetectorModule(data.target, **options), data, ckpt_path=best, verbose=False)
    run = Path(testing.logger.log_dir)
    return ModelAudit(TestReport.read(run), best, run)


def _held_out_sizes(smaller: int, test: int | None, val: int | None, calibration: int | None) -> dict:
    """The held-out sets' sizes: as given, or 20% / 10% / 10% of the smaller known set."""
    return {
        "test_size": test or max(1, smaller // 5),
        "val_size": val or max(1, smaller // 10),
        "calibration_size": smaller // 10 if calibration is None else calibration,
    }


def _trainer(epochs: int, output: str | Path, name: str, accelerator: str, progress: bool) -> L.Trainer:
    logger = TensorBoardLogger(str(output), name=name)
    return L.Trainer(max_epochs=epochs, logger=logger, accelerator=accelerator, devices=1,
                     enable_progress_bar=progress, enable_model_summary=False)  # fmt: skip


def _known_file(images: Images, folder: Path, name: str) -> tuple[str, int, int | None]:
    """A set as mint's readers take it: a path as given, or arrays saved to `folder/name.npz`.

    Returns the path, the number of images and, for arrays, their side.
    """
    if isinstance(images, str | Path):
        return str(images), known_count(images), None
    images, labels = images if isinstance(images, tuple) else (images, None)
    if isinstance(images, Tensor):
        images = images.detach().cpu()
        images = (
            images.permute(0, 2, 3, 1) if images.dim() == 4 and images.shape[1] in (1, 3, 4) else images
        ).numpy()
    array = np.asarray(images)
    if array.ndim not in (3, 4):
        raise MintError(
            f"{name}: images must be (N, H, W, 3) arrays or (N, 3, H, W) tensors, got {array.shape}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.npz"
    labels = (
        {}
        if labels is None
        else {"labels": np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels)}
    )
    np.savez(path, images=array, **labels)
    return str(path), len(array), array.shape[1]
