"""The detector's test report, written from the attack comparison: a callback of `test`.

`test_results.json` (the typed `mint.records.TestReport`: every scorer's report by registry family,
the white-box gain, the pick, the empirical privacy bound, the controls, the target and data
records), the ROC figure, per-class AUROCs and every test image's every score (`test_scores.npz`),
beside the run; written by rank 0 once `AttackComparison` has its result.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

import mint
from mint.attacks.reference_set import budget
from mint.attacks.registry import BLACK_BOX, curve_style, report_families
from mint.evaluation.test_report import empirical_privacy, write_test_report
from mint.evaluation.white_box_gain import white_box_gain
from mint.records.checkpoint import DP_KEY
from mint.records.report import target_label
from mint.records.scores import SCHEMA_VERSION, SCORES_FILE, write_scores_npz
from mint.tasks.attack_comparison import AttackComparison, Comparison


class TestReportWriter(Callback):
    """Write what `comparison` measured beside the run (`trainer.log_dir`).

    Args:
        comparison: the callback that scored the test images (it runs first: listed before this one).
    """

    def __init__(self, comparison: AttackComparison) -> None:
        self.comparison = comparison

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = trainer.log_dir  # a collective call (broadcast): every rank must make it
        if not trainer.is_global_zero:
            return
        test = self.comparison.result
        results = report_of(trainer, pl_module, self.comparison)
        names = ["MINT" if n == "mint" else n for n in test.names]
        curves = {name: (test.scores[:, j], test.members) for j, name in enumerate(names)}
        logger = pl_module.logger
        tensorboard = logger.experiment if isinstance(logger, TensorBoardLogger) else None
        figure = figure_args(pl_module, test, results["white_box_gain"]["against"])
        write_test_report(log_dir, results, test.reports, curves, tensorboard, pl_module.global_step, figure)
        if log_dir is not None:  # every image's every score, for re-plotting and merging with other tools
            write_scores_npz(Path(log_dir) / SCORES_FILE, ids=test.ids,
                             image_index=trainer.datamodule.sets.pool[test.ids.numpy()], labels=test.labels,
                             members=test.members, correct=test.correct, scores=test.scores,
                             names=test.names)  # fmt: skip


def report_of(trainer: L.Trainer, pl_module: L.LightningModule, comparison: AttackComparison) -> dict:
    """`test_results.json`'s content: the comparison's reports, what the detector read, the records."""
    dm, hp, test = trainer.datamodule, pl_module.hparams, comparison.result
    base = pl_module.detector.base
    results = {
        "schema_version": SCHEMA_VERSION,
        "mint_version": mint.__version__,
        "scores_file": SCORES_FILE,
        "mint": test.reports["mint"],
        **report_families(test.reports),  # baselines, learned_attacks, reference_attacks
        "learned": comparison.learned.record(),
        "validation_auroc": comparison.validation_auroc,
        "picked": comparison.picked(),
        "white_box_gain": white_box_gain(test.scores, test.members, test.names, BLACK_BOX),
        "budget": budget(pl_module.recorded_cost, pl_module.reference_record),
        "references": pl_module.reference_record,
        "target_on_test_set": test.target,
        "controls": {"class_only": test.control},
        "layers": pl_module.target.layers,
        "path_kind": hp.path_kind,
        "class_conditioning": hp.class_conditioning,
        "output_features": hp.output_features,
        "calibrated_base": None if base is None else {"residual_scale": float(base.scale)},
        "target_ckpt": pl_module.target_meta["path"],
        "target_sha256": pl_module.target_meta["sha256"],
        "target": pl_module.target.record(),
        "data": dm.manifest(),
    }
    data = results["data"]  # a mint target records its split; one trained elsewhere, its known sets
    trained = data["target_split"]["num_members"] if "target_split" in data else None
    known = data.get("known", {}).get("members") or int(dm.sets.members.sum())
    claim = pl_module.target_meta.get(DP_KEY)
    results["privacy"] = empirical_privacy(test.scores, test.members, test.names, claim, trained, known)
    return results


def figure_args(pl_module: L.LightningModule, test: Comparison, best_black_box: str) -> dict:
    """The ROC figure's title, a style per curve (the registry's), bands for MINT and the best attack."""
    hp = pl_module.hparams
    title = figure_title(pl_module.target.record(), pl_module.target.layers, hp.output_features, test.members)
    styles = {("MINT" if n == "mint" else n): curve_style(n) for n in test.names}
    return {"title": title, "styles": styles, "bands": ("MINT", best_black_box)}


def figure_title(record: dict, layers: list[str], output_features: bool, members: Tensor) -> str:
    """What the ROC figure shows: the target, what the detector reads, the test set."""
    read = [*layers, *(["output features"] if output_features else [])]
    target = target_label(record)
    sides = f"{int((members == 1).sum()):,} + {int((members == 0).sum()):,} test images"
    return f"Membership ROC, target {target}\nMINT reads {', '.join(read) or 'nothing'}; {sides}"
