"""What mint's two LightningModules share: optimizer set-up, speed options, checkpoints, guarded resume."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from mint.tasks.callbacks import EmptyRunCleanup, LastCheckpoint, LatestRunLink
from mint.tasks.resume import ResumeGuard, refuse_other_hparams


class MintModule(L.LightningModule):
    """Base of `TargetModule` and `DetectorModule`.

    Subclasses set `monitor` (the validation metric that picks `best.ckpt`, maximized; with an
    `early_stopping` hyperparameter, training stops after that many checks without a better one) and may
    narrow `trainable()` (the detector trains its own network, never the frozen target).

    Args:
        optimizer: optimizer of the trainable parameters.
        lr_scheduler: optional learning-rate scheduler, stepped every epoch.
    """

    monitor: str

    def __init__(self, optimizer: OptimizerCallable, lr_scheduler: LRSchedulerCallable | None) -> None:
        super().__init__()
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler

    def trainable(self) -> nn.Module:
        """The module whose parameters the optimizer updates."""
        return self

    @staticmethod
    def speed_up(channels_last: bool, compile: bool, *nets: nn.Module, compiled: nn.Module | None = None):
        """Make `nets` channels-last and `torch.compile` `compiled` in place (its keys unchanged)."""
        for net in nets if channels_last else ():
            net.to(memory_format=torch.channels_last)
        if compile and compiled is not None:
            compiled.compile()

    def log_summary(self, stage: str, summary: dict[str, float], prog_bar: tuple[str, ...] = ()) -> None:
        """Log `{name: value}` as `<stage>/<name>`; values are already reduced over DDP ranks."""
        for name, value in summary.items():
            self.log(f"{stage}/{name}", float(value), prog_bar=name in prog_bar)

    def on_train_start(self) -> None:
        # Lightning logs `train/loss` every `log_every_n_steps` batches (50): with fewer batches an
        # epoch, TensorBoard showed it rarely or never. Log it at least once an epoch.
        batches = self.trainer.num_training_batches
        if isinstance(batches, int) and 0 < batches < self.trainer.log_every_n_steps:
            self.trainer.log_every_n_steps = batches

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """The optimizer the trainer steps (the target's DP-SGD wraps it; others step it as it is)."""
        return optimizer

    def configure_optimizers(self):
        optimizer = self.wrap_optimizer(self.optimizer(self.trainable().parameters()))
        if self.lr_scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.lr_scheduler(optimizer)}

    def configure_callbacks(self):
        best = ModelCheckpoint(filename="best", monitor=self.monitor, mode="max")
        callbacks = [best, LastCheckpoint(), LatestRunLink(), ResumeGuard(), EmptyRunCleanup(self.trainer)]
        patience = self.hparams.get("early_stopping")  # validation checks without a better `monitor`
        if patience is not None:
            callbacks.append(EarlyStopping(self.monitor, patience=patience, mode="max"))
        return callbacks

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        refuse_other_hparams(self, checkpoint)  # a fit resumed with another configuration
