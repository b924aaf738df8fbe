"""What a detector checkpoint records beside the weights: its target, its sets, its calibration scores.

A mixin of `DetectorModule` (its target, detector, data module and `unrounded`); the record itself
(`DetectorRecord`) is written and read by `mint.records`.
"""

from __future__ import annotations

import time

import torch
from lightning.pytorch.utilities import move_data_to_device
from lightning.pytorch.utilities.seed import isolate_rng
from torch import Tensor
from torch.utils.data import DataLoader

from mint.errors import MintError
from mint.models import LOGITS
from mint.records import DetectorRecord


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
        self._recorded_sets, self._recorded_cost = record.sets or {}, record.seconds

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep the target's record beside its weights (in `state_dict`), and what the detector saw.

        With a calibration set (`data.calibration_size > 0`), the detector's scores of those known
        members and non-members, made with the weights being saved, go in too: `mint audit`
        compares an audited set's scores with them.
        """
        # Wall time of this run so far: extraction and training (the detector's cost beside an attack's)
        earlier = self._recorded_cost or 0.0  # a resumed run adds its own time to the interrupted one's
        record = DetectorRecord(self.target_meta, round(earlier + time.perf_counter() - self._started, 1))
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        calibration = getattr(dm, "datasets", {}).get("calibration", ())
        if len(calibration):  # (the sets themselves: in the data module's own state)
            if getattr(self, "_calibration", (None,))[0] != self.global_step:  # best and last: once
                with isolate_rng():  # its loader draws a seed: saving must not change the training run
                    scores = self.calibration_scores(dm.eval_loader("calibration"))
                self._calibration = (self.global_step, scores)
            record.calibration = self._calibration[1]
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
