"""The test phase of a detector: every scorer on the same held-out images, thresholds fitted first.

A mixin of `DetectorModule` (its target, detector, hyperparameters and data module), kept apart
because testing is its own procedure: MINT's threshold is chosen on the validation set, each
black-box baseline's and reference attack's on the detector's training set, all before the test
set is read; then one table of scores over the test images (synced over DDP ranks) gives every
report, the class-only control, the ROC figure and `test_results.json`.
"""

from __future__ import annotations

import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import move_data_to_device
from torch import Tensor
from torch.utils.data import DataLoader

from mint.attacks import BASELINES, SCORERS, score_batch
from mint.attacks.reference_set import budget, with_reference_columns
from mint.data.integrity import refuse_seen
from mint.evaluation import best_threshold
from mint.evaluation.test_report import (
    ClassOnlyControl,
    empirical_privacy,
    logged_summary,
    scorer_reports,
    target_accuracy,
    write_test_report,
)
from mint.models import LOGITS


class DetectorTesting:
    """`test` of a detector (mixed into `DetectorModule`)."""

    def on_test_start(self) -> None:
        dm = self.trainer.datamodule
        refuse_seen("test", dm.held_out_images("test"), self._recorded_sets)
        if self.hparams.get("references"):  # first: a detector may read the reference scores
            self.load_reference_table()
        # Thresholds are chosen before looking at the test set: MINT's on the validation set, the
        # baselines' on the detector's training set (the only data an attacker could fit them on).
        val, train = self._score_all(dm.eval_loader("val")), self._score_all(dm.eval_loader("train"))
        self.thresholds = {"mint": best_threshold(val["scores"][:, 0], val["members"])}
        for j, name in enumerate(BASELINES, start=1):
            self.thresholds[name] = best_threshold(train["scores"][:, j], train["members"])
        self.class_only = ClassOnlyControl(train["labels"], train["members"], self.target.num_classes)
        self.thresholds |= self.reference_thresholds

    @torch.no_grad()
    def _score_all(self, loader: DataLoader) -> dict[str, Tensor]:
        """Every scorer's scores over a whole loader, in this process (for fitting thresholds)."""
        scores, members, labels = [], [], []
        for batch in loader:
            batch = move_data_to_device(batch, self.device)
            with self.unrounded():
                scores.append(score_batch(self.detector, self.activations(batch), batch["label"]).cpu())
            members.append(batch["member"].cpu())
            labels.append(batch["label"].cpu())
        return {"scores": torch.cat(scores), "members": torch.cat(members), "labels": torch.cat(labels)}

    def test_step(self, batch: dict, batch_idx: int) -> None:
        with self.unrounded():
            acts = self.activations(batch)
            correct = (acts[LOGITS].argmax(1) == batch["label"]).double()[:, None]
            columns = torch.cat([score_batch(self.detector, acts, batch["label"]), correct], dim=1)
        self.test_scores.update(columns, batch["member"], batch["label"], batch["id"])

    def on_test_epoch_end(self) -> None:
        ids, columns, members, labels = self.test_scores.compute()  # synced over DDP ranks
        self.test_scores.reset()
        scores, target = columns[:, :-1], target_accuracy(columns[:, -1], members)
        scores, names = with_reference_columns(scores, ids, SCORERS, self.reference_table)
        reports = scorer_reports(scores, members, labels, names, self.thresholds)
        control = self.class_only.report(labels, members)
        control_logged = {"class_only_auroc": control["auroc"]}
        self.log_summary("test", logged_summary(reports) | target | control_logged, prog_bar=("auroc",))
        log_dir = self.trainer.log_dir  # a collective call (broadcast): every rank must make it
        if not self.trainer.is_global_zero:
            return
        results = {
            "mint": reports["mint"],
            "baselines": {n: reports[n] for n in BASELINES},
            "reference_attacks": {n: reports[n] for n in names[len(SCORERS) :]},
            "budget": budget(self._recorded_cost, self.reference_record),
            "references": self.reference_record,
            "target_on_test_set": target,
            "controls": {"class_only": control},
            "layers": self.hparams.layers,
            "path_kind": self.hparams.path_kind,
            "class_conditioning": self.hparams.class_conditioning,
            "output_features": self.hparams.output_features,
            "target_ckpt": self.target_meta["path"],
            "target_sha256": self.target_meta["sha256"],
            "target": self.target.record(),
            "data": self.trainer.datamodule.manifest(),
        }
        data = results["data"]  # a mint target records its split; one trained elsewhere, its known sets
        trained = data["target_split"]["num_members"] if "target_split" in data else None
        known = data.get("known", {}).get("members") or int(self.trainer.datamodule.plan["members"].sum())
        claim = self.target_meta.get("dp_sgd")
        results["privacy"] = empirical_privacy(scores, members, names, claim, trained, known)
        curves = {("MINT" if n == "mint" else n): (scores[:, j], members) for j, n in enumerate(names)}
        tensorboard = self.logger.experiment if isinstance(self.logger, TensorBoardLogger) else None
        write_test_report(log_dir, results, reports, curves, tensorboard, self.global_step)
