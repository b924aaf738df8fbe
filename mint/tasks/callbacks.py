"""Callbacks of both training stages (target and detector)."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from mint.errors import MintError


class LatestRunLink(Callback):
    """Point `<save_dir>/<name>/latest` at the newest finished run's `version_N` folder.

    Runs never overwrite each other (each gets a new `version_N`); the link lets the next stage's
    config name a fixed path, e.g. `lightning_logs/target_cifar10/latest/checkpoints/best.ckpt`.
    """

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = trainer.log_dir
        if not trainer.is_global_zero or log_dir is None or trainer.fast_dev_run:
            return
        run = Path(log_dir)
        link = run.parent / "latest"
        if link.exists() and not link.is_symlink():  # a copy made with `cp -rL`: not ours to replace
            warnings.warn(f"{link} is a folder, not a link: left as it is (newest run: {run})", stacklevel=2)
            return
        tmp = run.parent / f".latest.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run.name, target_is_directory=True)
        os.replace(tmp, link)  # atomic switch, readers never see a missing link
        print(f"mint: {link} -> {run.name}")


class EmptyRunCleanup(Callback):
    """Remove the `version_N` folder of a run refused for a user's mistake before it produced anything.

    A run refused during setup (data too small for the sizes, a test set the detector has seen)
    would otherwise leave a folder holding only its config and an empty log. Only a folder this run
    created is considered (one that existed when the run started, e.g. a resumed run's, never is),
    only `MintError`s count (a crash or an interrupt keeps its folder), and a folder with a
    checkpoint or a result in it is never touched.

    Args:
        trainer: the trainer about to run; its TensorBoard or CSV logger's folder is the run's.
    """

    KEEP = ("checkpoints", "test_results.json")

    def __init__(self, trainer: L.Trainer) -> None:
        logger = trainer.logger
        # The logger's own log_dir: Trainer.log_dir would broadcast, which a failing rank must not.
        folder = (
            getattr(logger, "log_dir", None) if isinstance(logger, TensorBoardLogger | CSVLogger) else None
        )
        fresh = folder is not None and trainer.is_global_zero and not Path(folder).exists()
        self.folder = Path(folder) if fresh else None

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        cause: BaseException | None = exception
        while cause is not None and not isinstance(cause, MintError):
            cause = cause.__cause__ or cause.__context__
        run = self.folder
        if cause is None or run is None or not run.is_dir() or not run.name.startswith("version_"):
            return
        if not any((run / name).exists() for name in self.KEEP):
            shutil.rmtree(run, ignore_errors=True)


class LastCheckpoint(ModelCheckpoint):
    """`checkpoints/last.ckpt`: the run's last epoch, whether or not it was the best one.

    Written after every validation, and at the end of training if the last epoch was not validated
    (`check_val_every_n_epoch` > 1). Lightning's own `save_last=True` rewrites `last.ckpt` only when
    the monitored checkpoint improves, so after the best epoch "last" would stay the best one: a
    resume would go back in time and a run's "end state" would be an earlier epoch.
    """

    def __init__(self) -> None:
        super().__init__(filename="last", monitor=None, save_top_k=1, enable_version_counter=False)
        self.saved_step = -1

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not trainer.sanity_checking and not trainer.fast_dev_run:
            self.saved_step = trainer.global_step

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if trainer.fast_dev_run or self.saved_step == trainer.global_step or self.dirpath is None:
            return
        self.best_model_path = str(Path(self.dirpath) / f"last{self.FILE_EXTENSION}")
        trainer.save_checkpoint(self.best_model_path)
        self.saved_step = trainer.global_step


def last_checkpoint(trainer: L.Trainer) -> str:
    """Path of a finished fit's last checkpoint, `checkpoints/last.ckpt`."""
    paths = [cb.best_model_path for cb in trainer.callbacks if isinstance(cb, LastCheckpoint)]
    if not paths or not paths[0]:
        raise MintError("this run saved no last checkpoint (did it train for an epoch?)")
    return paths[0]
