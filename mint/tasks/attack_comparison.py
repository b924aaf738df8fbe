"""Every attack of the registry beside the detector, on the same held-out images: a callback of `test`.

Before the test set is read (`on_test_start`): the learned black-box attacks (`mint.attacks.learned`)
are fitted on the detector's training set, early-stopped on its validation set; MINT's and their
thresholds are chosen on the validation set, each threshold attack's and reference attack's on the
training set (`Attack.threshold_set`); every scorer's validation AUROC is kept, and the best of them
is the `picked` scorer. Each test batch: the activations `DetectorModule.test_step` read are scored
by the detector and every threshold and learned attack, with whether the target classifies the image
correctly. At the end: one table of scores over the test images (synced over DDP ranks), the
reference attacks' columns added, gives every scorer's report, logged as `test/...`; `TestReportWriter`
writes it out.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import move_data_to_device
from torch import Tensor
from torch.utils.data import DataLoader

from mint.attacks import SCORERS, score_batch
from mint.attacks.learned import LearnedAttacks
from mint.attacks.quantile import small_images
from mint.attacks.reference_set import with_reference_columns
from mint.attacks.registry import BLACK_BOX, BY_NAME, LEARNED_ATTACKS
from mint.data.integrity import refuse_seen
from mint.evaluation import ScoreCollector, best_threshold
from mint.evaluation.metrics import auroc
from mint.evaluation.test_report import ClassOnlyControl, logged_summary, scorer_reports, target_accuracy
from mint.models import LOGITS

SCORED = (*SCORERS, *LEARNED_ATTACKS)  # the score columns of a test batch, before reference attacks


@dataclass(frozen=True)
class Comparison:
    """What the test measured: every scorer's scores of every test image, and their reports.

    Attributes:
        ids: the test images' rows of the activation cache (N,), sorted.
        scores: (N, len(names)) float64 scores, higher = more member-like.
        names: the scorers, `mint` first, in registry order.
        members: membership 0/1 (N,).
        labels: the true classes (N,).
        correct: whether the target classifies each image correctly (N,).
        reports: each scorer's report (`full_report`), thresholds chosen before the test set.
        target: the target's accuracy on the test set's members and non-members, and the gap.
        control: the class-only control's report (the label alone as a score).
    """

    ids: Tensor
    scores: Tensor
    names: tuple[str, ...]
    members: Tensor
    labels: Tensor
    correct: Tensor
    reports: dict[str, dict]
    target: dict[str, float]
    control: dict


class AttackComparison(Callback):
    """Score the test images with the detector and every attack of `mint.attacks.registry`.

    Added by `DetectorModule.configure_callbacks`; `result` holds the `Comparison` after the test.
    """

    def __init__(self) -> None:
        self.collector = ScoreCollector()
        self.learned: LearnedAttacks | None = None
        self.thresholds: dict[str, float] = {}
        self.validation_auroc: dict[str, float] = {}
        self.class_only: ClassOnlyControl | None = None
        self.result: Comparison | None = None

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        refuse_seen("test", dm.held_out_images("test"), pl_module.recorded_sets)
        pl_module.fit_base()  # an untrained detector tested as it is (a checkpoint's base is kept)
        if pl_module.hparams.get("references"):  # first: a detector may read the reference scores
            pl_module.load_reference_table()
        # Thresholds are chosen before looking at the test set: MINT's and the learned attacks' on the
        # validation set (they were fitted on the training set), the thresholds' on the detector's
        # training set (the only data an attacker could fit them on).
        val = score_loader(pl_module, dm.eval_loader("val"))
        train = score_loader(pl_module, dm.eval_loader("train"))
        self.learned = LearnedAttacks(pl_module.target.num_classes, dm.seed).fit(train, val)
        for part in (train, val):
            learned = self.learned.scores(part["logits"], part["labels"], part["images"])
            part["scores"] = torch.cat([part["scores"], learned.cpu()], dim=1)
        self.thresholds = {}
        for j, name in enumerate(SCORED):
            fitted_on = val if name == "mint" or BY_NAME[name].threshold_set == "val" else train
            self.thresholds[name] = best_threshold(fitted_on["scores"][:, j], fitted_on["members"])
        # What an auditor picks before the test set: the scorer with the best validation AUROC, the
        # loss attack among the candidates (ties go to the simpler attack: listed first).
        self.validation_auroc = {n: auroc(val["scores"][:, j], val["members"]) for j, n in enumerate(SCORED)}
        self.class_only = ClassOnlyControl(train["labels"], train["members"], pl_module.target.num_classes)
        self.thresholds |= pl_module.reference_thresholds
        self.collector = self.collector.to(pl_module.device)  # its DDP sync gathers on this device
        self.collector.reset()
        self.result = None

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: dict[str, dict[str, Tensor]],
        batch: dict,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        acts, labels = outputs["acts"], batch["label"]
        with pl_module.unrounded():
            correct = (acts[LOGITS].argmax(1) == labels).double()[:, None]
            fixed = score_batch(pl_module.detector, acts, labels)
            learned = self.learned.scores(acts[LOGITS], labels, batch_images(trainer, batch)).to(fixed)
        columns = torch.cat([fixed, learned, correct], dim=1)
        self.collector.update(columns, batch["member"], labels, batch["id"])

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Synced over DDP ranks; on the CPU, where the report's numpy reads them.
        ids, columns, members, labels = (t.cpu() for t in self.collector.compute())
        self.collector.reset()
        scores, target = columns[:, :-1], target_accuracy(columns[:, -1], members)
        scores, names = with_reference_columns(scores, ids, SCORED, pl_module.reference_table)
        reports = scorer_reports(scores, members, labels, names, self.thresholds)
        control = self.class_only.report(labels, members)
        control_logged = {"class_only_auroc": control["auroc"]}
        pl_module.log_summary("test", logged_summary(reports) | target | control_logged, prog_bar=("auroc",))
        correct = columns[:, -1].bool()
        self.result = Comparison(ids, scores, names, members, labels, correct, reports, target, control)

    def picked(self) -> dict:
        """The scorer with the best validation AUROC (the first on ties) and its test numbers."""
        seen = self.validation_auroc
        order = [n for n in (*BLACK_BOX, "mint") if seen.get(n) == seen.get(n)]  # not NaN
        best = max(order, key=lambda n: seen[n]) if order else "mint"
        report = self.result.reports[best]
        return {
            "scorer": best,
            "validation_auroc": seen.get(best),
            "test_auroc": report["auroc"],
            "test_tpr@1%fpr": report["tpr@1%fpr"],
        }


def batch_images(trainer: L.Trainer, batch: dict) -> Tensor:
    """The batch's images (averaged down), which the quantile-regression attack reads."""
    images = batch["image"] if "image" in batch else trainer.datamodule.images_of(batch["id"])
    return small_images(images)


@torch.no_grad()
def score_loader(pl_module: L.LightningModule, loader: DataLoader) -> dict[str, Tensor]:
    """Every fixed scorer's scores over a whole loader, in this process, with what the learned read."""
    out: dict[str, list[Tensor]] = {k: [] for k in ("scores", "members", "labels", "logits", "images")}
    for batch in loader:
        batch = move_data_to_device(batch, pl_module.device)
        with pl_module.unrounded():
            acts = pl_module.activations(batch)
            out["scores"].append(score_batch(pl_module.detector, acts, batch["label"]).cpu())
        out["logits"].append(acts[LOGITS].double())
        out["images"].append(batch_images(pl_module.trainer, batch))
        out["members"].append(batch["member"])
        out["labels"].append(batch["label"])
    return {k: torch.cat(v) for k, v in out.items()}
