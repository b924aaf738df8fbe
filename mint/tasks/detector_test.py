"""The test phase of a detector: every scorer on the same held-out images, thresholds fitted first.

A mixin of `DetectorModule` (its target, detector, hyperparameters and data module), kept apart
because testing is its own procedure. Before the test set is read: the learned black-box attacks
(`mint.attacks.learned`) are fitted on the detector's training set, early-stopped on its
validation set; MINT's and their thresholds are chosen on the validation set, each threshold
attack's and reference attack's on the training set; every scorer's validation AUROC is kept, and
the best of them is the `picked` scorer. Then one table of scores over the test images (synced
over DDP ranks) gives every report, the white-box gain, the class-only control, the ROC figure,
`test_results.json` and every image's every score (`test_scores.npz`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import move_data_to_device
from torch import Tensor
from torch.utils.data import DataLoader

import mint
from mint.attacks import SCORERS, score_batch
from mint.attacks.learned import LearnedAttacks
from mint.attacks.quantile import small_images
from mint.attacks.reference_set import budget, with_reference_columns
from mint.attacks.registry import BLACK_BOX, BY_NAME, LEARNED_ATTACKS, curve_style, report_families
from mint.data.integrity import refuse_seen
from mint.evaluation import best_threshold
from mint.evaluation.metrics import auroc
from mint.evaluation.test_report import (
    ClassOnlyControl,
    empirical_privacy,
    logged_summary,
    scorer_reports,
    target_accuracy,
    write_test_report,
)
from mint.evaluation.white_box_gain import white_box_gain
from mint.models import LOGITS
from mint.records.checkpoint import DP_KEY
from mint.records.report import target_label
from mint.records.scores import SCHEMA_VERSION, SCORES_FILE, write_scores_npz

SCORED = (*SCORERS, *LEARNED_ATTACKS)  # the score columns of a test batch, before reference attacks


class DetectorTesting:
    """`test` of a detector (mixed into `DetectorModule`)."""

    def on_test_start(self) -> None:
        dm = self.trainer.datamodule
        refuse_seen("test", dm.held_out_images("test"), self._recorded_sets)
        self.fit_base()  # an untrained detector tested as it is (a checkpoint's base is kept)
        if self.hparams.get("references"):  # first: a detector may read the reference scores
            self.load_reference_table()
        # Thresholds are chosen before looking at the test set: MINT's and the learned attacks' on the
        # validation set (they were fitted on the training set), the thresholds' on the detector's
        # training set (the only data an attacker could fit them on).
        val, train = self._score_all(dm.eval_loader("val")), self._score_all(dm.eval_loader("train"))
        self.learned = LearnedAttacks(self.target.num_classes, dm.seed).fit(train, val)
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
        self.class_only = ClassOnlyControl(train["labels"], train["members"], self.target.num_classes)
        self.thresholds |= self.reference_thresholds

    def figure_args(self, names: tuple[str, ...], best_black_box: str, members: Tensor) -> dict:
        """The ROC figure's title, a style per curve (the registry's), bands for MINT and the best attack."""
        hp = self.hparams
        title = figure_title(self.target.record(), self.target.layers, hp.output_features, members)
        styles = {("MINT" if n == "mint" else n): curve_style(n) for n in names}
        return {"title": title, "styles": styles, "bands": ("MINT", best_black_box)}

    def _images(self, batch: dict) -> Tensor:
        """The batch's images (averaged down), which the quantile-regression attack reads."""
        images = batch["image"] if "image" in batch else self.trainer.datamodule.images_of(batch["id"])
        return small_images(images)

    @torch.no_grad()
    def _score_all(self, loader: DataLoader) -> dict[str, Tensor]:
        """Every fixed scorer's scores over a whole loader, in this process, with what the learned read."""
        out: dict[str, list[Tensor]] = {k: [] for k in ("scores", "members", "labels", "logits", "images")}
        for batch in loader:
            batch = move_data_to_device(batch, self.device)
            with self.unrounded():
                acts = self.activations(batch)
                out["scores"].append(score_batch(self.detector, acts, batch["label"]).cpu())
            out["logits"].append(acts[LOGITS].double())
            out["images"].append(self._images(batch))
            out["members"].append(batch["member"])
            out["labels"].append(batch["label"])
        return {k: torch.cat(v) for k, v in out.items()}

    def test_step(self, batch: dict, batch_idx: int) -> None:
        with self.unrounded():
            acts = self.activations(batch)
            correct = (acts[LOGITS].argmax(1) == batch["label"]).double()[:, None]
            fixed = score_batch(self.detector, acts, batch["label"])
            learned = self.learned.scores(acts[LOGITS], batch["label"], self._images(batch)).to(fixed)
        columns = torch.cat([fixed, learned, correct], dim=1)
        self.test_scores.update(columns, batch["member"], batch["label"], batch["id"])

    def on_test_epoch_end(self) -> None:
        ids, columns, members, labels = self.test_scores.compute()  # synced over DDP ranks
        self.test_scores.reset()
        scores, target = columns[:, :-1], target_accuracy(columns[:, -1], members)
        scores, names = with_reference_columns(scores, ids, SCORED, self.reference_table)
        reports = scorer_reports(scores, members, labels, names, self.thresholds)
        control = self.class_only.report(labels, members)
        control_logged = {"class_only_auroc": control["auroc"]}
        self.log_summary("test", logged_summary(reports) | target | control_logged, prog_bar=("auroc",))
        log_dir = self.trainer.log_dir  # a collective call (broadcast): every rank must make it
        if not self.trainer.is_global_zero:
            return
        dm, base = self.trainer.datamodule, self.detector.base
        results = {
            "schema_version": SCHEMA_VERSION,
            "mint_version": mint.__version__,
            "scores_file": SCORES_FILE,
            "mint": reports["mint"],
            **report_families(reports),  # baselines, learned_attacks, reference_attacks
            "learned": self.learned.record(),
            "validation_auroc": self.validation_auroc,
            "picked": picked(self.validation_auroc, reports),
            "white_box_gain": white_box_gain(scores, members, names, BLACK_BOX),
            "budget": budget(self._recorded_cost, self.reference_record),
            "references": self.reference_record,
            "target_on_test_set": target,
            "controls": {"class_only": control},
            "layers": self.target.layers,
            "path_kind": self.hparams.path_kind,
            "class_conditioning": self.hparams.class_conditioning,
            "output_features": self.hparams.output_features,
            "calibrated_base": None if base is None else {"residual_scale": float(base.scale)},
            "target_ckpt": self.target_meta["path"],
            "target_sha256": self.target_meta["sha256"],
            "target": self.target.record(),
            "data": dm.manifest(),
        }
        data = results["data"]  # a mint target records its split; one trained elsewhere, its known sets
        trained = data["target_split"]["num_members"] if "target_split" in data else None
        known = data.get("known", {}).get("members") or int(dm.sets.members.sum())
        claim = self.target_meta.get(DP_KEY)
        results["privacy"] = empirical_privacy(scores, members, names, claim, trained, known)
        curves = {("MINT" if n == "mint" else n): (scores[:, j], members) for j, n in enumerate(names)}
        tensorboard = self.logger.experiment if isinstance(self.logger, TensorBoardLogger) else None
        figure = self.figure_args(names, results["white_box_gain"]["against"], members)
        write_test_report(log_dir, results, reports, curves, tensorboard, self.global_step, figure)
        if log_dir is not None:  # every image's every score, for re-plotting and merging with other tools
            write_scores_npz(Path(log_dir) / SCORES_FILE, ids=ids, image_index=dm.sets.pool[ids.numpy()],
                             labels=labels, members=members, correct=columns[:, -1].bool(), scores=scores,
                             names=names)  # fmt: skip


def figure_title(record: dict, layers: list[str], output_features: bool, members: Tensor) -> str:
    """What the ROC figure shows: the target, what the detector reads, the test set."""
    read = [*layers, *(["output features"] if output_features else [])]
    target = target_label(record)
    sides = f"{int((members == 1).sum()):,} + {int((members == 0).sum()):,} test images"
    return f"Membership ROC, target {target}\nMINT reads {', '.join(read) or 'nothing'}; {sides}"


def picked(validation_auroc: dict[str, float], reports: dict[str, dict]) -> dict:
    """The scorer with the best validation AUROC (the first on ties) and its test numbers."""
    candidates = (*BLACK_BOX, "mint")
    order = [n for n in candidates if validation_auroc.get(n) == validation_auroc.get(n)]  # not NaN
    best = max(order, key=lambda n: validation_auroc[n]) if order else "mint"
    return {
        "scorer": best,
        "validation_auroc": validation_auroc.get(best),
        "test_auroc": reports[best]["auroc"],
        "test_tpr@1%fpr": reports[best]["tpr@1%fpr"],
    }
