"""LightningModule that trains the detector on the activations of a frozen target."""

from __future__ import annotations

import time
from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from mint.attacks.reference_set import reference_inputs, reference_table
from mint.attacks.registry import REFERENCE_ATTACKS
from mint.errors import MintError, check_count
from mint.evaluation import ScoreCollector
from mint.models import Detector, Target
from mint.models.detector import (
    CALIBRATED_BASE,
    CLASS_CONDITIONING,
    CNN_FILTERS,
    CNN_KERNEL,
    DROPOUT,
    MLP_HIDDEN,
    OPTIONS,
    PATH_KIND,
    READ_OUTPUT,
    REFERENCE,
    ClassConditioning,
    PathKind,
)
from mint.signals import check_class_logits
from mint.tasks.attack_comparison import AttackComparison
from mint.tasks.base import MintModule
from mint.tasks.detector_checkpoint import CalibrationScores, DetectorCheckpointing
from mint.tasks.detector_validation import DetectorValidation
from mint.tasks.report_writer import TestReportWriter


def check_reference_options(
    references: str | None, count: int | None, rmia_offline_a: float | None, reference_features: bool
) -> None:
    """Refuse reference options that cannot work, before anything is built."""
    if count is not None:
        check_count("reference_count", count)
    if rmia_offline_a is not None and not 0 <= rmia_offline_a <= 1:
        raise MintError(f"rmia_offline_a must be in [0, 1] (or null: fitted), not {rmia_offline_a}")
    if reference_features and not references:
        raise MintError(
            "reference_features reads the scores of a reference set: give `references` (a folder "
            "written by `mint references` for this target)"
        )


class DetectorModule(DetectorValidation, DetectorCheckpointing, MintModule):
    """Train a detector that tells members of a target's training data from non-members.

    The target is the one the data module read (`DetectorDataModule.target`: mint's own classifier
    from its checkpoint, or a classifier trained elsewhere), frozen and kept in eval mode; `mint`
    links it here. The target's weights and its record (kind, file, sha256, preprocessing; for mint's
    own classifier its membership split) are stored in this module's checkpoint, which therefore
    stands alone for `test` and audits. Batches carry either cached activations (`acts`) or images,
    which are then read through the frozen target on the fly.

    Logged: `train/loss`; `val/…` and `test/…` AUROC, accuracy, precision, recall and TPR at 10%, 1%
    and 0.1% FPR (NaN when the set has too few non-members to resolve the level). At test time also
    the AUROC's bootstrap 95% interval, balanced accuracy and precision at the threshold chosen on the
    validation set, the target's accuracy on the test set's members and non-members
    (`test/target_gap`), the four black-box baselines of `mint.attacks` on the same images (their
    thresholds fitted on the detector's training set), a log-log ROC figure, per-class AUROCs
    (`per_class_auroc.csv`) and everything in `test_results.json` beside the run.

    Args:
        target: the frozen target, with the layers it reads (`DetectorDataModule.target`; linked by
            `mint`, given by hand in Python).
        references: a reference set of the target (a folder written by `mint references`): `test`
            then adds LiRA (online, offline, fixed variance), RMIA (online, offline) and the
            reference-calibrated loss to the table, ROC figure and `test_results.json`, on the same
            images, with the references' count and training cost.
        reference_count: use the first K references of the set (None: all of them); one grown set
            then measures every budget.
        reference_queries: LiRA's queries per image: 1, 2 (and its mirror) or 18 (both, shifted by
            up to one pixel each way), as the LiRA paper does; mirrors suit data whose mirror
            image is the same class (CIFAR, not traffic signs).
        rmia_offline_a: offline RMIA's `a` (how a model's OUT probability relates to its IN one), in
            [0, 1]; None: fitted on the references, one playing the target (the RMIA paper's way).
        reference_features: the detector also reads, for each image, every reference attack's score
            from `references` (the calibrated attacks it can see), so that it learns at least what
            they know; the scores are computed for every image of its sets before training. A
            detector trained so is tested with the same set and `reference_count`.
        path_kind: the detector's path over each layer: `auto` (CNN for maps, MLP for vectors),
            `cnn` or `mlp`.
        class_conditioning: tell the detector the true class: `none`, `embedding` or `per_class`
            (one output per class; the paper's class-specific MINT).
        cnn_filters: filters of each CNN path.
        cnn_kernel: kernel size of each CNN path.
        mlp_hidden: dense units of each MLP path.
        dropout: dropout of every path.
        output_features: also read the float64 output features of the label (logit-scaled
            confidence, margin, log entropy; `mint.signals`), computed from the
            logits, which the float16 activations cannot carry. On by default (measured to help on
            every target); `false` is the paper's MINT, which reads the layers alone.
        calibrated_base: start from the class-calibrated loss attack (a per-class Gaussian likelihood
            ratio of the float64 logit-scaled confidence, fitted on the detector's training set
            before training) and learn only what the layers and features add to its score, so the
            detector begins where that black-box attack is; the scale of what it adds is chosen on
            the validation set (`val/residual_scale`). Both this and `output_features` false: the
            paper's MINT.
        optimizer: optimizer of the detector (Adam, lr 1e-3, as in the MINT papers).
        lr_scheduler: optional learning-rate scheduler.
        channels_last: keep activation maps, images and the networks channels-last (NHWC): faster
            convolutions on recent GPUs. The results do not change.
        compile: `torch.compile` the detector (in place: checkpoints keep their keys). Compiling takes
            a minute or more on first use, so it pays for long GPU runs; on CPU it needs a C++ compiler.
        early_stopping: stop when `val/auroc` has not improved for this many validation checks (a
            small detector overfits its few thousand known members; `best.ckpt` is kept either way);
            None trains all epochs.
    """

    monitor = "val/auroc"

    def __init__(
        self,
        target: Target | None = None,
        references: str | None = None,
        reference_count: int | None = None,
        reference_queries: Literal[1, 2, 18] = 1,
        rmia_offline_a: float | None = None,
        reference_features: bool = False,
        path_kind: PathKind = PATH_KIND,
        class_conditioning: ClassConditioning = CLASS_CONDITIONING,
        cnn_filters: int = CNN_FILTERS,
        cnn_kernel: int = CNN_KERNEL,
        mlp_hidden: int = MLP_HIDDEN,
        dropout: float = DROPOUT,
        output_features: bool = READ_OUTPUT,
        calibrated_base: bool = CALIBRATED_BASE,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        channels_last: bool = False,
        compile: bool = False,
        early_stopping: int | None = None,
    ) -> None:
        super().__init__(optimizer, lr_scheduler)
        check_count("early_stopping", early_stopping)
        check_reference_options(references, reference_count, rmia_offline_a, reference_features)
        if not isinstance(target, Target):
            raise MintError(
                "DetectorModule reads a target: give it the data module's (`DetectorModule(dm.target)` "
                "after `dm = DetectorDataModule(target_ckpt=PATH, layers=[...])`); `mint` links it itself"
            )
        # The target is recorded by its own record and weights (`on_save_checkpoint`), not pickled.
        self.save_hyperparameters(ignore=["target", "optimizer", "lr_scheduler"])
        self.target = target
        if output_features or calibrated_base or self.target.gradients is not None:  # a class's loss
            check_class_logits(self.target.output_shape)
        options = {k: self.hparams[k] for k in OPTIONS}
        inputs = 2 * len(REFERENCE_ATTACKS) if reference_features else 0  # scores and missing flags
        self.detector = Detector(
            self.target.shapes, self.target.num_classes, **options, reference_inputs=inputs
        )
        self.speed_up(channels_last, compile, self.detector, self.target, compiled=self.detector)
        self.val_scores = ScoreCollector()  # the base and the residual of each validation image
        self.reference_table: Tensor | None = None  # (rows, attacks) scores of the reference attacks
        self.reference_record: dict = {}
        self.reference_thresholds: dict[str, float] = {}
        self._started = time.perf_counter()  # the run's cost: extraction and training (see checkpoint)
        self.recorded_sets: dict[str, Tensor] | None = None  # from the checkpoint a test restores
        self.recorded_cost: float | None = None

    @property
    def target_meta(self) -> dict:
        """Where the target came from: hyperparameters, membership split, sha256, path."""
        return self.target.meta

    def trainable(self) -> nn.Module:
        return self.detector

    def activations(self, batch: dict) -> dict[str, Tensor]:
        """Cached activations, or a pass of the frozen target over the batch's images."""
        nhwc = torch.channels_last if self.hparams.channels_last else torch.contiguous_format
        if "acts" not in batch:
            acts = self.target(batch["image"].contiguous(memory_format=nhwc), batch["label"])
        else:
            acts = {
                k: v.contiguous(memory_format=nhwc) if v.dim() == 4 else v for k, v in batch["acts"].items()
            }
        if self.hparams.get("reference_features"):  # the rows of the reference table, by cache row
            if self.reference_table is None:  # computed on first use, for every row at once
                self.load_reference_table()
            acts[REFERENCE] = reference_inputs(self.reference_table[batch["id"].cpu()]).to(self.device)
        return acts

    def load_reference_table(self) -> None:
        """Every reference attack's scores of every row of the detector's sets, and their thresholds."""
        dm = self.trainer.datamodule
        table, thresholds, self.reference_record = reference_table(
            self.hparams.references,
            self.target,
            dm.sets,
            dm.seed,
            self.hparams.reference_queries,
            self.hparams.get("reference_count"),
            self.hparams.get("rmia_offline_a"),
        )
        self.reference_table, self.reference_thresholds = table, thresholds

    def forward(self, batch: dict) -> Tensor:
        """Membership logits (B,) for a batch (`acts` or `image`, and `label`)."""
        return self.detector(self.activations(batch), batch["label"])

    def unrounded(self):
        """Autocast off, for every score that is evaluated; training keeps the mixed precision.

        Under `bf16-mixed` the detector's outputs were rounded to bfloat16 (10,000 test scores
        collapsed to 1,726 distinct values), and ties erase low-FPR numbers.
        """
        return torch.autocast(self.device.type, enabled=False)

    def configure_callbacks(self) -> list:
        """Checkpoints and resume (`MintModule`), calibration scores in each checkpoint, the test's callbacks.

        `test` is the attack comparison (`AttackComparison`) and its report (`TestReportWriter`).
        """
        comparison = AttackComparison()
        return [*super().configure_callbacks(), CalibrationScores(), comparison, TestReportWriter(comparison)]

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        logits = self(batch)
        loss = F.binary_cross_entropy_with_logits(logits, batch["member"].to(logits.dtype))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def test_step(self, batch: dict, batch_idx: int) -> dict[str, dict[str, Tensor]]:
        """The target's activations of a test batch, autocast off.

        `AttackComparison` scores them with the detector and every attack of the registry.
        """
        with self.unrounded():
            return {"acts": self.activations(batch)}
