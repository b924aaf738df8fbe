"""Callbacks of both training stages (target and detector)."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback


class LatestRunLink(Callback):
    """Point `<save_dir>/<name>/latest` at the newest finished run's `version_N` folder.

    Runs never overwrite each other (each gets a new `version_N`); the link lets the next stage's
    config name a fixed path, e.g. `lightning_logs/classifier_cifar10/latest/checkpoints/best.ckpt`.
    """

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = trainer.log_dir
        if not trainer.is_global_zero or log_dir is None or trainer.fast_dev_run:
            return
        run = Path(log_dir)
        link = run.parent / "latest"
        tmp = run.parent / f".latest.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run.name, target_is_directory=True)
        os.replace(tmp, link)  # atomic switch, readers never see a missing link
        print(f"mint: {link} -> {run.name}")
