"""LightningModule that trains a target: the classifier a detector later audits."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy

from mint.errors import MintError, check_count
from mint.models import build_classifier
from mint.models.paper_cnn import BLOCK_DROPOUT, IMAGE_SIZE, WIDTH
from mint.records.checkpoint import read_dp_state, write_dp_state
from mint.records.report import write_results
from mint.tasks.base import MintModule
from mint.tasks.dp_sgd import PrivateTraining, check_settings, resolve_delta


class TargetModule(MintModule):
    """Train a target classifier on the members of a `TargetDataModule`.

    Images arrive as floats in [0, 1] and are normalized inside the module with the members'
    channel statistics, which are stored in the checkpoint: whoever loads the target later (a
    detector, an audit) feeds raw images and gets exactly the training-time input.

    Logged every epoch: `train/loss`, `train/acc` (train mode, running), `val/acc` (the official
    test split), `val/member_acc` (members, eval mode) and `val/gap` = member_acc - acc, the
    generalization gap that membership leakage grows with. Checkpoints `best.ckpt` (by `val/acc`)
    and `last.ckpt` go to the logger's `checkpoints/` folder; `<logger dir>/latest` points to the
    newest finished run.

    Args:
        num_classes: number of classes (linked from the data module).
        image_size: side of the input images (linked from the data module).
        arch: `paper_cnn` (the paper's CNN) or a torchvision architecture name, e.g. `resnet18`.
        width: width multiplier of `paper_cnn`.
        block_dropout: dropout after each `paper_cnn` block.
        optimizer: optimizer; Adam by default (the paper's classifier recipe is not published).
        lr_scheduler: optional learning-rate scheduler, stepped every epoch.
        label_smoothing: label smoothing of the cross-entropy (0 = none; smoothing reduces memorization).
        channels_last: keep the network and its inputs channels-last (NHWC): faster convolutions on
            recent GPUs, with `precision: bf16-mixed` especially. The results do not change.
        compile: `torch.compile` the network (in place: checkpoints keep their keys). Compiling takes
            a minute or more on first use, so it pays for long GPU runs; on CPU it needs a C++ compiler.
        early_stopping: stop when `val/acc` has not improved for this many validation checks (a
            defense: memorization grows after the best validation accuracy); None trains all epochs.
        dp_epsilon: train with DP-SGD (Opacus, `pip install 'mint-audit[dp]'`) to this epsilon, spent
            over `trainer.max_epochs`; None trains without. BatchNorm becomes GroupNorm, batches are
            Poisson samples of the members, the spent epsilon is logged as `train/epsilon` and stored
            in the checkpoint (`dp_sgd`).
        dp_delta: DP-SGD's delta, below 1 / members; None: members ** -1.1.
        dp_max_grad_norm: DP-SGD's per-image gradient clipping norm.
        dp_accountant: DP-SGD's privacy accountant: `rdp` (Renyi DP) or `prv` (tighter, numerical).
    """

    monitor = "val/acc"

    def __init__(
        self,
        num_classes: int,
        image_size: int = IMAGE_SIZE,
        arch: str = "paper_cnn",
        width: float = WIDTH,
        block_dropout: float = BLOCK_DROPOUT,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        compile: bool = False,
        early_stopping: int | None = None,
        dp_epsilon: float | None = None,
        dp_delta: float | None = None,
        dp_max_grad_norm: float = 1.0,
        dp_accountant: Literal["rdp", "prv"] = "rdp",
    ) -> None:
        super().__init__(optimizer, lr_scheduler)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        check_count("early_stopping", early_stopping)
        if dp_epsilon is not None:
            check_settings(dp_epsilon, dp_delta, dp_max_grad_norm, dp_accountant)
            if compile:
                raise MintError(
                    "DP-SGD's per-image gradient hooks do not run in a compiled network: set compile: false"
                )
        self.net = build_classifier(
            arch,
            num_classes,
            width=width,
            block_dropout=block_dropout,
            image_size=image_size,
            dp_compatible=dp_epsilon is not None,
        )
        self.private: PrivateTraining | None = None  # set up by `setup("fit")` under DP-SGD
        self.speed_up(channels_last, compile, self.net, compiled=self.net)
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("std", torch.ones(3))
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.member_acc = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, images: Tensor) -> Tensor:
        """Logits (B, classes) for images (B, 3, H, W) in [0, 1]."""
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net((images - self.mean[:, None, None]) / self.std[:, None, None])

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if getattr(dm, "mean", None) is not None:  # a restored checkpoint overwrites these later
            self.mean.copy_(torch.tensor(dm.mean))
            self.std.copy_(torch.tensor(dm.std))
        if stage == "fit" and self.hparams.dp_epsilon is not None:
            self._setup_private(dm)

    def _setup_private(self, dm) -> None:
        PrivateTraining.check_trainer(self.trainer)
        if getattr(dm, "members", None) is None or not hasattr(dm, "poisson_sampling"):
            raise MintError(
                "DP-SGD needs a data module that knows its members and can draw Poisson batches "
                f"(mint.data.TargetDataModule), not {type(dm).__name__}"
            )
        dm.poisson_sampling = True
        hp, members = self.hparams, len(dm.members)
        delta = resolve_delta(hp.dp_delta, members)
        self.private = PrivateTraining(
            hp.dp_epsilon, delta, hp.dp_max_grad_norm, hp.dp_accountant, members, dm.batch_size,
            self.trainer.max_epochs,
        )  # fmt: skip

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        return optimizer if self.private is None else self.private.wrap(self.net, optimizer)

    def on_train_start(self) -> None:
        super().on_train_start()
        if self.private is not None:
            self.private.check_loader(self.trainer.train_dataloader)

    def on_train_epoch_end(self) -> None:
        if self.private is not None:
            self.log("train/epsilon", self.private.spent())

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.private is not None:
            write_dp_state(checkpoint, self.private.state())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        state = read_dp_state(checkpoint)
        if self.private is not None and state is not None:  # a resumed DP-SGD fit: steps already spent
            self.private.load(state)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        self.train_acc(logits, labels)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def _eval_step(self, batch: tuple[Tensor, Tensor], stage: str, dataloader_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        if dataloader_idx == 1:  # members
            self.member_acc(logits, labels)
            return
        self.val_acc(logits, labels)
        self.log(f"{stage}/loss", F.cross_entropy(logits, labels), add_dataloader_idx=False, sync_dist=True)

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, "val", dataloader_idx)

    def test_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, "test", dataloader_idx)

    def _log_accuracies(self, stage: str) -> dict[str, float]:
        results = {"acc": float(self.val_acc.compute())}
        if self.member_acc.update_count:
            results["member_acc"] = float(self.member_acc.compute())
            results["gap"] = results["member_acc"] - results["acc"]
        if stage == "test" and self.private is not None:
            results["dp_epsilon_spent"] = self.private.spent()
        self.log_summary(stage, results, prog_bar=("acc", "gap"))
        self.val_acc.reset()
        self.member_acc.reset()
        return results

    def on_validation_epoch_end(self) -> None:
        self._log_accuracies("val")

    def on_test_epoch_end(self) -> None:
        results = self._log_accuracies("test")
        log_dir = self.trainer.log_dir  # a collective call (broadcast): every rank must make it
        if self.trainer.is_global_zero and log_dir:
            write_results(log_dir, results)

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        return self(batch[0]).softmax(-1)
