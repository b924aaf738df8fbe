"""A detector's test report (`test_results.json`) as typed values: what experiments and scripts read.

`DetectorModule.test` writes the file (`write_results`); `TestReport.read(path)` gives every scorer's
numbers as attributes, checked for the schema version this mint writes. The format is described in
docs/test_results_format.md (and `test_results.schema.json`); `raw` keeps everything as written, for
the parts a table does not show (per-class AUROCs, intervals of the low-FPR numbers, the privacy bound).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from mint.errors import MintError
from mint.files import check_input_file, write_json_atomic
from mint.records.scores import RESULTS_FILE, SCHEMA_VERSION


@dataclass(frozen=True)
class ScorerReport:
    """One scorer (the detector or an attack) on the held-out test images.

    Attributes:
        auroc: area under the ROC curve (ties count one half).
        auroc_ci95: its bootstrap 95% interval.
        tpr_at_1pct_fpr: TPR at 1% FPR (NaN: fewer than 100 non-members resolve no such level).
        tpr_at_01pct_fpr: TPR at 0.1% FPR (NaN below 1,000 non-members).
        balanced_acc: balanced accuracy at the threshold chosen before the test set.
        members: members in the test set.
        nonmembers: non-members in the test set.
        raw: the scorer's whole report as written.
    """

    auroc: float
    auroc_ci95: tuple[float, float]
    tpr_at_1pct_fpr: float
    tpr_at_01pct_fpr: float
    balanced_acc: float
    members: int
    nonmembers: int
    raw: dict = field(repr=False)

    @classmethod
    def from_json(cls, report: dict) -> ScorerReport:
        lo, hi = report["auroc_ci95"]
        return cls(report["auroc"], (lo, hi), report["tpr@1%fpr"], report["tpr@0.1%fpr"],
                   report["balanced_acc_at_threshold"], report["n_members"], report["n_nonmembers"],
                   report)  # fmt: skip


@dataclass(frozen=True)
class TargetGap:
    """The target's accuracy on the test set's members and non-members: the memorization audited."""

    member_acc: float
    nonmember_acc: float
    gap: float


@dataclass(frozen=True)
class WhiteBoxGain:
    """What the detector adds to the best black-box attack on the same images (`white_box_gain`).

    Attributes:
        against: the black-box attack with the best test AUROC (chosen on test: it flatters that side).
        auroc: the detector's AUROC minus that attack's.
        auroc_ci95: the paired bootstrap 95% interval of the difference.
        tpr_ratio: the detector's TPR at 1% FPR over the attack's (None: not resolvable, or 0 / 0).
    """

    against: str
    auroc: float
    auroc_ci95: tuple[float, float]
    tpr_ratio: float | None


@dataclass(frozen=True)
class TestReport:
    """A detector's `test_results.json`, typed.

    Attributes:
        mint: the detector's report.
        baselines: the threshold attacks' reports ({name: report}).
        learned_attacks: the learned black-box attacks' (empty in files of mint before them).
        reference_attacks: the reference attacks' (empty without a reference set).
        validation_auroc: every scorer's AUROC on the validation set (what `picked` chose by).
        picked: the scorer with the best validation AUROC.
        white_box_gain: the detector over the best black-box attack (None in older files).
        target_gap: the target's accuracies on the test set.
        data: what the detector was trained and tested on (`DetectorDataModule.manifest()`).
        references: the reference set's record (empty without one).
        budget: the detector's and the references' cost.
        raw: the whole file as written.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class

    mint: ScorerReport
    baselines: dict[str, ScorerReport]
    learned_attacks: dict[str, ScorerReport]
    reference_attacks: dict[str, ScorerReport]
    validation_auroc: dict[str, float]
    picked: str
    white_box_gain: WhiteBoxGain | None
    target_gap: TargetGap
    data: dict
    references: dict
    budget: dict
    raw: dict = field(repr=False)

    @property
    def attacks(self) -> dict[str, ScorerReport]:
        """Every attack's report: thresholds, learned and reference attacks, in the file's order."""
        return self.baselines | self.learned_attacks | self.reference_attacks

    @property
    def target_split(self) -> dict | None:
        """A mint target's recorded split (members, classes, ...); None for a target trained elsewhere."""
        return self.data.get("target_split")

    @classmethod
    def from_json(cls, results: dict) -> TestReport:
        """The typed report of a parsed `test_results.json`."""
        reports = {k: {n: ScorerReport.from_json(r) for n, r in results.get(k, {}).items()}
                   for k in ("baselines", "learned_attacks", "reference_attacks")}  # fmt: skip
        gain = results.get("white_box_gain")
        if gain:
            lo, hi = gain["auroc_ci95"]
            gain = WhiteBoxGain(gain["against"], gain["auroc"], (lo, hi), gain.get("tpr@1%fpr_ratio"))
        target = results["target_on_test_set"]
        gap = TargetGap(target["target_member_acc"], target["target_nonmember_acc"], target["target_gap"])
        picked = results.get("picked", {}).get("scorer", "mint")
        return cls(ScorerReport.from_json(results["mint"]), **reports,
                   validation_auroc=results.get("validation_auroc", {}), picked=picked,
                   white_box_gain=gain or None, target_gap=gap, data=results.get("data", {}),
                   references=results.get("references") or {}, budget=results.get("budget", {}),
                   raw=results)  # fmt: skip

    @classmethod
    def read(cls, path: str | Path) -> TestReport:
        """Read a detector's `test_results.json` (or the run folder holding it)."""
        path = Path(path)
        path = path / RESULTS_FILE if path.is_dir() else path
        path = check_input_file(path, "test report", "give the test_results.json that `mint test` wrote")
        try:
            results = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise MintError(f"{str(path)!r} is not a JSON test report: {err}") from None
        version = results.get("schema_version") if isinstance(results, dict) else None
        if version != SCHEMA_VERSION or "mint" not in results:
            raise MintError(
                f"{str(path)!r} is not a detector's test report of version {SCHEMA_VERSION} (found "
                f"{version!r}): read it with the mint release that wrote it (its `mint_version`)"
            )
        return cls.from_json(results)


def target_label(record: dict) -> str:
    """A target's record (`test_results.json`'s `target`) in a few words: its architecture, its file."""
    return f"{record.get('arch') or record.get('kind')} ({Path(record.get('path') or '?').name})"


def write_results(folder: str | Path, results: dict) -> Path:
    """Write a run's `test_results.json` into `folder`, atomically."""
    return write_json_atomic(Path(folder) / RESULTS_FILE, results)
