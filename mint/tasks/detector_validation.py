"""The validation side of a detector's fit: its calibrated base fitted first, the residual's scale chosen.

A mixin of `DetectorModule`. With `calibrated_base` the detector scores base + s * residual: the
base (the class-calibrated loss attack) is fitted on the detector's training set before the first
step, the residual is trained at s = 1, and after every validation pass s is chosen from
`SCALES` by the validation AUROC (ties: the smaller s), so a residual that does not help on held-out
images is scaled away, down to the base alone at s = 0. The logged `val/auroc`, which picks
`best.ckpt`, is the one at the chosen scale; `val/residual_scale` is logged beside it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import move_data_to_device
from torch import Tensor

from mint.data.integrity import refuse_seen
from mint.evaluation.metrics import auroc, membership_scores_summary
from mint.models import LOGITS
from mint.models.calibrated_loss import SCALES


class DetectorValidation:
    """`fit_base`, `validation_step` and the choice of the residual's scale (mixed into `DetectorModule`)."""

    def on_fit_start(self) -> None:
        self.fit_base()

    @torch.no_grad()
    def fit_base(self) -> None:
        """Fit the detector's class-calibrated base on its training set, once (a restored one is kept)."""
        base = self.detector.base
        if base is None or base.fitted:
            return
        out: dict[str, list[Tensor]] = {"logits": [], "labels": [], "members": []}
        for batch in self.trainer.datamodule.eval_loader("train"):  # every rank: the same whole set
            batch = move_data_to_device(batch, self.device)
            with self.unrounded():
                out["logits"].append(self.activations(batch)[LOGITS].double())
            out["labels"].append(batch["label"])
            out["members"].append(batch["member"])
        base.fit(*(torch.cat(v) for v in out.values()))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        labels, base = batch["label"], self.detector.base
        with self.unrounded():
            acts = self.activations(batch)
            residual = self.detector.residual(acts, labels).double()
            start = base.score(acts[LOGITS], labels) if base is not None else torch.zeros_like(residual)
        columns = torch.stack([start, residual], dim=1)  # (B, 2): base, residual
        self.val_scores.update(columns, batch["member"], labels, batch["id"])
        # The loss training minimizes (the whole residual), not the scaled score.
        loss = F.binary_cross_entropy_with_logits(start + residual, batch["member"].double())
        self.log("val/loss", loss, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        _, columns, members, _ = self.val_scores.compute()  # synced over DDP ranks: every rank chooses alike
        self.val_scores.reset()
        base, residual = columns[:, 0], columns[:, 1]
        extra = {}
        if self.detector.base is not None:
            if self.trainer.state.fn == TrainerFn.FITTING and not self.trainer.sanity_checking:
                self.detector.base.scale.fill_(choose_scale(base, residual, members))
            extra["residual_scale"] = float(self.detector.base.scale)
            residual = self.detector.base.scale.to(residual) * residual
        summary = membership_scores_summary(base + residual, members) | extra
        self.log_summary("val", summary, prog_bar=("auroc",))

    def on_validation_start(self) -> None:
        if self.trainer.state.fn == TrainerFn.VALIDATING:  # `validate` on a trained detector
            refuse_seen("val", self.trainer.datamodule.held_out_images("val"), self.recorded_sets)


def choose_scale(base: Tensor, residual: Tensor, members: Tensor) -> float:
    """The scale in `SCALES` with the best AUROC of base + scale * residual (ties: the smaller)."""
    base, residual = base.double().cpu(), residual.double().cpu()
    values = [auroc(base + s * residual, members) for s in SCALES]
    return SCALES[max(range(len(SCALES)), key=lambda i: (values[i], -i))]
