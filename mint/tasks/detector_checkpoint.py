"""What a detector checkpoint records beside the weights: its target, its sets, its calibration scores.

A mixin of `DetectorModule` (its target, detector and `unrounded`), and the callback that scores the
calibration set into every checkpoint; the record itself (`DetectorRecord`) is written and read by
`mint.records`, the sets by the data module's own state.
"""

from __future__ import annotations

import time

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import move_data_to_device
from lightning.pytorch.utilities.seed import isolate_rng
from torch import Tensor
from torch.utils.data import DataLoader

from mint.errors import MintError
from mint.models import LOGITS
from mint.records import DetectorRecord


class CalibrationScores(Callback):
    """Put the detector's scores of its calibration set into every checkpoint it saves.

    With a calibration set (`data.calibration_size > 0`), the scores of those known members and
    non-members are made with the weights being saved: `mint audit` compares an audited set's scores
    with them. Scored once per step (the best and the last checkpoint of a step share them), with the
    random generators isolated: saving never changes the training run.
    """

    def __init__(self) -> None:
        self._scored: tuple[int, dict[str, Tensor]] | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        data = trainer.datamodule
        if not len(getattr(data, "datasets", {}).get("calibration", ())):
            return
        if self._scored is None or self._scored[0] != trainer.global_step:
            with isolate_rng():  # its loader draws a seed
                self._scored = (
                    trainer.global_step,
                    pl_module.calibration_scores(data.eval_loader("calibration")),
                )
        DetectorRecord.write_calibration(checkpoint, self._scored[1])


class DetectorCheckpointing:
    """`on_save_checkpoint` / `on_load_checkpoint` of a detector (mixed into `DetectorModule`)."""

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if self.detector.base is not None and "detector.base.params" not in checkpoint.get("state_dict", {}):
            raise MintError(
                "this detector checkpoint has no calibrated base (trained before mint had one, or with "
                "calibrated_base: false): load it with --model.init_args.calibrated_base=false"
            )
        record = DetectorRecord.read(checkpoint) or DetectorRecord(target={})
        self.recorded_sets, self.recorded_cost = record.sets or {}, record.seconds
        trained, now = record.target.get("sha256"), self.target_meta.get("sha256")
        if trained and now and trained != now:  # e.g. a weights file replaced since: its activations differ
            raise MintError(
                f"this detector was trained on the target {trained[:12]}... (sha256) but the target given "
                f"now is {now[:12]}... ({self.target_meta.get('path')}): give the file it was trained on"
            )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep the target's record beside its weights (in `state_dict`), and the run's cost so far.

        (The calibration scores: `CalibrationScores`; the sets: the data module's own state.)
        """
        # Wall time of this run so far: extraction and training (the detector's cost beside an attack's)
        earlier = self.recorded_cost or 0.0  # a resumed run adds its own time to the interrupted one's
        record = DetectorRecord(self.target_meta, round(earlier + time.perf_counter() - self._started, 1))
        record.write(checkpoint)

    @torch.no_grad()
    def calibration_scores(self, loader: DataLoader) -> dict[str, Tensor]:
        """Scores (float64 logits) of a labelled member / non-member set, in eval mode.

        Scored twice: with the true class, and with the target's predicted class, which is what an
        audit of unlabelled images has to use.
        """
        was_training = self.training
        self.eval()
        out: dict[str, list[Tensor]] = {"true_label": [], "predicted_label": [], "members": [], "labels": []}
        out["predicted_class"] = []  # the target's own class: an audit names a target at chance accuracy
        for batch in loader:
            batch = move_data_to_device(batch, self.device)
            with self.unrounded():
                acts = self.activations(batch)
                out["true_label"].append(self.detector(acts, batch["label"]).double().cpu())
                predicted = acts[LOGITS].argmax(1)
                out["predicted_class"].append(predicted.long().cpu())
                if self.target.gradients is not None:  # of the true label: read again for the predicted one
                    images = (
                        batch["image"] if "image" in batch else self.trainer.datamodule.images_of(batch["id"])
                    )
                    acts = self.target(images, predicted)
                out["predicted_label"].append(self.detector(acts, predicted).double().cpu())
            out["members"].append(batch["member"].long().cpu())
            out["labels"].append(batch["label"].long().cpu())
        self.train(was_training)
        return {k: torch.cat(v) for k, v in out.items()}
