"""The one list of attacks mint reports beside the detector: threshold, learned and reference attacks.

Every test report, table, ROC figure, white-box gain and pick reads this list, and the tests
parametrize over it: an attack added here is scored, thresholded and reported like the others.
A threshold attack is a function of the target's float64 logits and the labels (`baselines.py`);
a learned one is fitted on the detector's known images (`learned.py`); a reference attack is
calibrated by reference models (`reference.py`, scored by `reference_set.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from mint.attacks.attack_model import AttackModel
from mint.attacks.baselines import confidence_score, entropy_score, loss_score, modified_entropy_score
from mint.attacks.class_calibrated import ClassCalibratedLoss
from mint.attacks.quantile import QuantileRegression

Family = Literal["threshold", "learned", "reference"]
# Where each family's reports go in `test_results.json` (their key since schema version 1).
REPORT_KEYS: dict[Family, str] = {
    "threshold": "baselines",
    "learned": "learned_attacks",
    "reference": "reference_attacks",
}


@dataclass(frozen=True)
class Attack:
    """One membership attack.

    Attributes:
        name: its key in `test_results.json`, `test_scores.npz` and every table.
        family: `threshold` (a score of the logits, thresholded), `learned` (fitted on the known
            images) or `reference` (calibrated by reference models).
        label: how figures and tables name it.
        source: the paper (or tool) it follows.
        make: a threshold attack's score function `(logits, labels) -> (B,) float64`; a learned
            attack's class, built as `make(num_classes, seed)`, with `fit(train, val)`,
            `score(logits, labels, images)` and `notes`. Reference attacks are scored together
            from the references' logits (`mint.attacks.reference.attack_scores`).
    """

    name: str
    family: Family
    label: str
    source: str
    make: Callable | None = field(default=None, repr=False, compare=False)

    @property
    def threshold_set(self) -> str:
        """The set its decision threshold is chosen on: the one it was not fitted on.

        Threshold and reference attacks fit nothing on the detector's sets, so their thresholds come
        from the detector's training set (all an attacker could fit them on); learned attacks were
        fitted there, so theirs come from the validation set, as the detector's does.
        """
        return "val" if self.family == "learned" else "train"

    @property
    def black_box(self) -> bool:
        """Whether it reads only the target's outputs (no reference models)."""
        return self.family != "reference"


# fmt: off
ATTACKS = (
    Attack("loss", "threshold", "loss attack", "Yeom et al., CSF 2018", loss_score),
    Attack("confidence", "threshold", "confidence", "Salem et al., NDSS 2019", confidence_score),
    Attack("entropy", "threshold", "entropy", "Salem et al., NDSS 2019", entropy_score),
    Attack("modified_entropy", "threshold", "modified entropy", "Song & Mittal, USENIX Security 2021",
           modified_entropy_score),
    Attack("class_calibrated_loss", "learned", "class-calibrated loss", "LiRA's statistic, per class",
           ClassCalibratedLoss),
    Attack("attack_model", "learned", "attack model", "Shokri et al., S&P 2017 (as IBM ART's black-box)",
           AttackModel),
    Attack("quantile_regression", "learned", "quantile regression", "Bertran et al., NeurIPS 2023",
           QuantileRegression),
    Attack("lira_online", "reference", "LiRA online", "Carlini et al., S&P 2022"),
    Attack("lira_offline", "reference", "LiRA offline", "Carlini et al., S&P 2022"),
    Attack("lira_fixed_variance", "reference", "LiRA fixed variance", "Carlini et al., S&P 2022"),
    Attack("rmia_online", "reference", "RMIA online", "Zarifzadeh et al., ICML 2024"),
    Attack("rmia_offline", "reference", "RMIA offline", "Zarifzadeh et al., ICML 2024"),
    Attack("calibrated_loss", "reference", "reference-calibrated loss", "Watson et al., ICLR 2022"),
)
# fmt: on
BY_NAME = {a.name: a for a in ATTACKS}


def names(family: Family | None = None) -> tuple[str, ...]:
    """The attacks of a family (None: all), in registry order."""
    return tuple(a.name for a in ATTACKS if family is None or a.family == family)


BASELINES = names("threshold")
LEARNED_ATTACKS = names("learned")
REFERENCE_ATTACKS = names("reference")
BLACK_BOX = BASELINES + LEARNED_ATTACKS


def report_families(reports: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """The attacks' reports grouped by family, under the keys of `REPORT_KEYS` (as `test_results.json`)."""
    return {
        key: {a.name: reports[a.name] for a in ATTACKS if a.family == family and a.name in reports}
        for family, key in REPORT_KEYS.items()
    }


# A line style per family and a colour per attack, so that no two curves look alike: matplotlib's
# `tab10` for the black-box attacks, `Dark2` for the reference attacks (greys left out: the chance
# line is grey, the detector black).
LINE_STYLES: dict[Family, str] = {"threshold": "--", "learned": "-.", "reference": ":"}


def curve_style(name: str) -> dict:
    """The matplotlib line settings of an attack's ROC curve (the detector, `mint`: solid and black)."""
    import matplotlib

    if name == "mint":
        return {"color": "black", "linestyle": "-", "linewidth": 2.0}
    attack = BY_NAME[name]
    family = [a.name for a in ATTACKS if a.black_box == attack.black_box]
    table = matplotlib.colormaps["tab10" if attack.black_box else "Dark2"].colors
    colours = [c for c in table if len(set(c)) > 1]  # greys have equal channels
    colour = matplotlib.colors.to_hex(colours[family.index(name) % len(colours)])
    return {"color": colour, "linestyle": LINE_STYLES[attack.family], "linewidth": 1.6}
