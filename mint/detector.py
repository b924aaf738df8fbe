"""LightningModule that trains a MINT detector on the activations of a frozen classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import move_data_to_device
from lightning.pytorch.utilities.seed import isolate_rng
from torch import Tensor

from mint.atomic import write_json_atomic
from mint.baselines import BASELINES, baseline_scores
from mint.callbacks import LatestRunLink
from mint.metrics import MembershipMetrics, ScoreCollector, best_threshold, full_report, write_per_class_csv
from mint.models.detector import MINTDetector
from mint.resume import ResumeGuard, refuse_other_hparams
from mint.roc_plot import roc_figure
from mint.target import LOGITS, FrozenTarget, load_target_checkpoint


class MINTModule(L.LightningModule):
    """Train a detector that tells members of a classifier's training data from non-members.

    The classifier is loaded from `target_ckpt` (with `weights_only=True`), frozen and kept in eval
    mode; its weights, architecture and membership split are stored in this module's checkpoint,
    which therefore stands alone for `test` and audits. Batches carry either cached activations
    (`acts`) or images, which are then read through the frozen classifier on the fly.

    Logged: `train/loss`; `val/…` and `test/…` AUROC, accuracy, precision, recall and TPR at 10%, 1%
    and 0.1% FPR (NaN when the set has too few non-members to resolve the level). At test time also
    the AUROC's bootstrap 95% interval, balanced accuracy and precision at the threshold chosen on the
    validation set, the classifier's accuracy on the test set's members and non-members
    (`test/target_gap`), the four black-box baselines of `mint.baselines` on the same images (their
    thresholds fitted on the detector's training set), a log-log ROC figure, per-class AUROCs
    (`per_class_auroc.csv`) and everything in `test_results.json` beside the run.

    Args:
        target_ckpt: checkpoint of the classifier to audit (written by the classifier stage).
        layers: layers of the classifier to read (e.g. `[layer7]`, or `[layer2, layer7]`).
        detector: `auto` (CNN for maps, MLP for vectors), `cnn` or `mlp`.
        class_conditioning: tell the detector the true class: `none`, `embedding` or `per_class`
            (one output per class; the paper's class-specific MINT).
        cnn_filters: filters of each CNN path.
        cnn_kernel: kernel size of each CNN path.
        mlp_hidden: dense units of each MLP path.
        dropout: dropout of every path.
        optimizer: optimizer of the detector (Adam, lr 1e-3, as in the MINT papers).
        lr_scheduler: optional learning-rate scheduler.
        num_classes: classes of the data (linked from the data module); checked against the classifier.
        image_size: image side of the data (linked from the data module); checked against the classifier.
        channels_last: keep activation maps, images and the networks channels-last (NHWC): faster
            convolutions on recent GPUs. The results do not change.
        compile: `torch.compile` the detector (in place: checkpoints keep their keys). Compiling takes
            a minute or more on first use, so it pays for long GPU runs; on CPU it needs a C++ compiler.
    """

    def __init__(
        self,
        target_ckpt: str,
        layers: list[str] | None = None,
        detector: Literal["auto", "cnn", "mlp"] = "auto",
        class_conditioning: Literal["none", "embedding", "per_class"] = "per_class",
        cnn_filters: int = 64,
        cnn_kernel: int = 5,
        mlp_hidden: int = 128,
        dropout: float = 0.5,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        num_classes: int | None = None,
        image_size: int | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        layers = list(layers or ["layer7"])
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        record = load_target_checkpoint(target_ckpt)
        for name, value in (("num_classes", num_classes), ("image_size", image_size)):
            if value is not None and value != record.hparams.get(name):
                raise ValueError(
                    f"the data has {name}={value} but the classifier {target_ckpt} was built for "
                    f"{name}={record.hparams.get(name)}: use the data it was trained on"
                )
        self.target_meta = record.meta()
        self.target = FrozenTarget.from_record(record, layers)
        self.detector = MINTDetector(
            self.target.shapes,
            self.target.num_classes,
            kind=detector,
            class_conditioning=class_conditioning,
            cnn_filters=cnn_filters,
            cnn_kernel=cnn_kernel,
            mlp_hidden=mlp_hidden,
            dropout=dropout,
        )
        if channels_last:
            self.detector.to(memory_format=torch.channels_last)
            self.target.to(memory_format=torch.channels_last)
        if compile:
            self.detector.compile()
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.val_metrics = MembershipMetrics()
        self.test_scores = ScoreCollector()
        self.thresholds: dict[str, float] = {}

    def activations(self, batch: dict) -> dict[str, Tensor]:
        """Cached activations, or a pass of the frozen classifier over the batch's images."""
        if "acts" not in batch:
            images = batch["image"]
            if self.hparams.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            return self.target(images)
        if not self.hparams.channels_last:
            return batch["acts"]
        nhwc = torch.channels_last
        return {k: v.contiguous(memory_format=nhwc) if v.dim() == 4 else v for k, v in batch["acts"].items()}

    def forward(self, batch: dict) -> Tensor:
        """Membership logits (B,) for a batch (`acts` or `image`, and `label`)."""
        return self.detector(self.activations(batch), batch["label"])

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = F.binary_cross_entropy_with_logits(self(batch), batch["member"].float())
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch)
        self.val_metrics.update(logits, batch["member"], batch["id"])
        self.log(
            "val/loss", F.binary_cross_entropy_with_logits(logits, batch["member"].float()), sync_dist=True
        )

    def on_validation_epoch_end(self) -> None:
        self._log_summary("val", self.val_metrics.compute())
        self.val_metrics.reset()

    def on_test_start(self) -> None:
        # Thresholds are chosen before looking at the test set: MINT's on the validation set, the
        # baselines' on the detector's training set (the only data an attacker could fit them on).
        sets = self.trainer.datamodule.datasets
        val, train = self._score_set(sets["val"]), self._score_set(sets["train"])
        self.thresholds = {"mint": best_threshold(val["scores"][:, 0], val["members"])}
        for j, name in enumerate(BASELINES, start=1):
            self.thresholds[name] = best_threshold(train["scores"][:, j], train["members"])

    @torch.no_grad()
    def _score_set(self, dataset) -> dict[str, Tensor]:
        """MINT and baseline scores of a whole data set, in this process (for fitting thresholds)."""
        dm = self.trainer.datamodule
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=dm.batch_size, collate_fn=dm.collate_fn(dataset), num_workers=0
        )
        scores, members = [], []
        for batch in loader:
            batch = move_data_to_device(batch, self.device)
            scores.append(self._test_columns(batch).cpu())
            members.append(batch["member"].cpu())
        return {"scores": torch.cat(scores), "members": torch.cat(members)}

    def _test_columns(self, batch: dict) -> Tensor:
        """(B, columns): MINT logit, the four baselines, and whether the classifier is right."""
        acts = self.activations(batch)
        mint = self.detector(acts, batch["label"]).double()
        base = baseline_scores(acts[LOGITS], batch["label"])
        correct = (acts[LOGITS].argmax(1) == batch["label"]).double()
        return torch.stack([mint, *base.values(), correct], dim=1)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.test_scores.update(self._test_columns(batch), batch["member"], batch["label"], batch["id"])

    def on_test_epoch_end(self) -> None:
        _, cols, members, labels = self.test_scores.compute()  # synced over DDP ranks
        self.test_scores.reset()
        correct = cols[:, -1]
        target = {
            "target_member_acc": float(correct[members == 1].mean()),
            "target_nonmember_acc": float(correct[members == 0].mean()),
        }
        target["target_gap"] = target["target_member_acc"] - target["target_nonmember_acc"]
        names = ["mint", *BASELINES]
        reports = {
            n: full_report(cols[:, j], members, self.thresholds[n], labels) for j, n in enumerate(names)
        }
        flat = {k: v for k, v in reports["mint"].items() if isinstance(v, float | int)}
        flat |= {
            "auroc_ci95_low": reports["mint"]["auroc_ci95"][0],
            "auroc_ci95_high": reports["mint"]["auroc_ci95"][1],
        }
        for name in BASELINES:
            flat |= {f"{name}_{k}": reports[name][k] for k in ("auroc", "tpr@1%fpr", "tpr@0.1%fpr")}
        self._log_summary("test", flat | target)
        log_dir = self.trainer.log_dir  # a collective call (broadcast): every rank must make it
        if self.trainer.is_global_zero:
            curves = {("MINT" if n == "mint" else n): (cols[:, j], members) for j, n in enumerate(names)}
            self._write_test_results(reports, target, curves, log_dir)

    def _log_summary(self, stage: str, summary: dict[str, float]) -> None:
        # Values are already reduced over all ranks by the metrics: no further sync.
        for name, value in summary.items():
            self.log(f"{stage}/{name}", float(value), prog_bar=name == "auroc")

    def _write_test_results(self, reports: dict, target: dict, curves: dict, log_dir: str | None) -> None:
        results = {
            "mint": reports["mint"],
            "baselines": {n: reports[n] for n in BASELINES},
            "classifier_on_test_set": target,
            "layers": self.hparams.layers,
            "detector": self.hparams.detector,
            "class_conditioning": self.hparams.class_conditioning,
            "target_ckpt": self.target_meta["path"],
            "target_sha256": self.target_meta["sha256"],
        }
        dm = getattr(self.trainer, "datamodule", None)
        if hasattr(dm, "manifest"):
            results["data"] = dm.manifest()
        figure = roc_figure(curves)
        if log_dir is not None:
            write_json_atomic(Path(log_dir) / "test_results.json", results)
            write_per_class_csv(Path(log_dir) / "per_class_auroc.csv", reports)
            figure.savefig(Path(log_dir) / "roc_test.png", dpi=120)
        if isinstance(self.logger, TensorBoardLogger):
            self.logger.experiment.add_figure("test/roc", figure, self.global_step)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep the classifier's architecture, split and hash beside its weights (in `state_dict`).

        With a calibration set (`data.calibration_size > 0`), the detector's scores of those known
        members and non-members, made with the weights being saved, go in too: `mint audit`
        compares an audited set's scores with them.
        """
        checkpoint["mint_target"] = self.target_meta
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        dataset = getattr(dm, "datasets", {}).get("calibration")
        if dataset is not None and len(dataset):
            if getattr(self, "_calibration", (None,))[0] != self.global_step:  # best and last: once
                with isolate_rng():  # its loader draws a seed: saving must not change the training run
                    self._calibration = (self.global_step, self.calibration_scores(dataset))
            checkpoint["mint_calibration"] = self._calibration[1]
            checkpoint["mint_data"] = dm.manifest()

    @torch.no_grad()
    def calibration_scores(self, dataset) -> dict[str, Tensor]:
        """Scores (float64 logits) of a labelled member / non-member set, in eval mode.

        Scored twice: with the true class, and with the classifier's predicted class, which is what
        an audit of unlabelled images has to use.
        """
        was_training = self.training
        self.eval()
        dm = self.trainer.datamodule
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=dm.batch_size, collate_fn=dm.collate_fn(dataset), num_workers=0
        )
        out: dict[str, list[Tensor]] = {"true_label": [], "predicted_label": [], "members": [], "labels": []}
        for batch in loader:
            batch = move_data_to_device(batch, self.device)
            acts = self.activations(batch)
            out["true_label"].append(self.detector(acts, batch["label"]).double().cpu())
            out["predicted_label"].append(self.detector(acts, acts[LOGITS].argmax(1)).double().cpu())
            out["members"].append(batch["member"].long().cpu())
            out["labels"].append(batch["label"].long().cpu())
        self.train(was_training)
        return {k: torch.cat(v) for k, v in out.items()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        refuse_other_hparams(self, checkpoint)  # a fit resumed with another configuration

    def configure_optimizers(self):
        optimizer = self.optimizer(self.detector.parameters())
        if self.lr_scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.lr_scheduler(optimizer)}

    def configure_callbacks(self):
        best = ModelCheckpoint(filename="best", monitor="val/auroc", mode="max", save_last=True)
        return [best, LatestRunLink(), ResumeGuard()]
