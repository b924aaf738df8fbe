"""A detector's test report: every scorer on the same held-out images, beside the target's gap.

Written beside the run as `test_results.json` (everything), `per_class_auroc.csv` (which classes
leak most) and `roc_test.png` (log-log ROC of every scorer).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from mint.evaluation.metrics import auroc, auroc_ci, full_report
from mint.evaluation.privacy_bound import audit_epsilon, images_needed
from mint.evaluation.roc_plot import plt, roc_figure
from mint.files import write_atomic
from mint.records.report import write_results


def target_accuracy(correct: Tensor, members: Tensor) -> dict[str, float]:
    """The target's accuracy on the test set's members and non-members, and their gap."""
    out = {
        "target_member_acc": float(correct[members == 1].double().mean()),
        "target_nonmember_acc": float(correct[members == 0].double().mean()),
    }
    return out | {"target_gap": out["target_member_acc"] - out["target_nonmember_acc"]}


class ClassOnlyControl:
    """A scorer that sees only the class label: per-class log-odds of membership, from the training set.

    Fitted on the detector's training set. On a clean protocol (both sides with the same class mix)
    it is at chance, AUROC 0.5 within its interval; above that, a class-conditioned detector could
    score from the label alone, and its AUROC would not measure memorization.

    Args:
        labels: class labels of the detector's training set.
        members: their membership (0/1).
        num_classes: classes of the target.
    """

    def __init__(self, labels: Tensor, members: Tensor, num_classes: int) -> None:
        labels, members = labels.long(), members.long()
        m = torch.bincount(labels[members == 1], minlength=num_classes).double()
        n = torch.bincount(labels[members == 0], minlength=num_classes).double()
        self.log_odds = torch.log((m + 1) / (n + 1))  # add-one: classes missing on one side stay finite

    def report(self, labels: Tensor, members: Tensor) -> dict:
        """AUROC with its bootstrap interval on a held-out set (ties count one half)."""
        scores = self.log_odds[labels.long().cpu()]
        lo, hi = auroc_ci(scores, members.cpu())
        return {"auroc": auroc(scores, members.cpu()), "auroc_ci95": [lo, hi]}


def scorer_reports(
    scores: Tensor, members: Tensor, labels: Tensor, names: tuple[str, ...], thresholds: dict[str, float]
) -> dict[str, dict]:
    """`full_report` of each scorer (column j of `scores` is scorer `names[j]`) on one held-out set."""
    return {n: full_report(scores[:, j], members, thresholds[n], labels) for j, n in enumerate(names)}


def empirical_privacy(scores: Tensor, members: Tensor, names: tuple[str, ...], claim: dict | None,
                      members_trained: int | None, known_members: int) -> dict:  # fmt: skip
    """The epsilon each scorer proves (`audit_epsilon`), beside a DP-SGD target's claimed epsilon.

    delta: the claim's; without a claim, what DP-SGD would use by default (members ** -1.1), so that
    the bounds of defended and undefended targets compare; for a target trained elsewhere, whose
    training-set size is unknown, 1 / (its known members): at least 1 / n, and a bound at a larger
    delta also holds for every smaller one.
    """
    if claim:
        delta, source = claim["delta"], "the DP-SGD claim's"
    elif members_trained:
        delta, source = float(members_trained) ** -1.1, "members ** -1.1 (DP-SGD's default)"
    else:
        delta, source = 1.0 / known_members, "1 / known members (training-set size unknown)"
    bounds = {n: audit_epsilon(scores[:, j].numpy(), members.numpy(), delta) for j, n in enumerate(names)}
    first = next(iter(bounds.values()))
    largest = first["largest_provable"]
    out = {"delta": delta, "delta_from": source, "confidence": first["confidence"],
           "largest_provable": largest,
           "claimed_epsilon": claim["epsilon_spent"] if claim else None,
           "epsilon_lower_bound": {n: b["epsilon_lower_bound"] for n, b in bounds.items()},
           "detail": bounds}  # fmt: skip
    if claim and largest < claim["epsilon_spent"]:
        needed = images_needed(claim["epsilon_spent"], delta, first["confidence"])
        out["note"] = (
            f"{first['members']} + {first['nonmembers']} test images (the half not used to fit thresholds) "
            f"can prove at most epsilon = {largest:.2f}, below the claimed {claim['epsilon_spent']:.2f}: "
            f"a test of the claim needs {2 * needed:,} members and as many non-members in the test set"
        )
    return out


def logged_summary(reports: dict[str, dict], main: str = "mint") -> dict[str, float]:
    """The numbers logged as `test/...`: the main scorer's metrics, the others' headline numbers."""
    flat = {k: v for k, v in reports[main].items() if isinstance(v, float | int)}
    lo, hi = reports[main]["auroc_ci95"]
    flat |= {"auroc_ci95_low": lo, "auroc_ci95_high": hi}
    for name, report in reports.items():
        if name != main:
            flat |= {f"{name}_{k}": report[k] for k in ("auroc", "tpr@1%fpr", "tpr@0.1%fpr")}
    return flat


def write_per_class_csv(path: str | Path, reports: dict[str, dict]) -> None:
    """One row per class: counts and every scorer's AUROC."""
    names = list(reports)
    first = reports[names[0]]["per_class_auroc"]
    lines = ["class,n_members,n_nonmembers," + ",".join(f"{n}_auroc" for n in names)]
    for c, row in first.items():
        aurocs = ",".join(f"{reports[n]['per_class_auroc'][c]['auroc']:.4f}" for n in names)
        lines.append(f"{c},{row['n_members']},{row['n_nonmembers']},{aurocs}")
    write_atomic(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))


def write_test_report(
    log_dir: str | Path | None,
    results: dict,
    reports: dict,
    curves: dict,
    tensorboard=None,
    step: int = 0,
    figure_args: dict | None = None,
) -> None:
    """Write the report files into `log_dir` (when set) and the ROC figure to TensorBoard (when given).

    Args:
        log_dir: the run's folder.
        results: everything for `test_results.json`.
        reports: {scorer: `full_report`} for the per-class table.
        curves: {name: (scores, members)} for the ROC figure.
        tensorboard: a TensorBoard `SummaryWriter`, or None.
        step: the global step the figure is logged at.
        figure_args: `roc_figure`'s title, styles and bands.
    """
    figure = roc_figure(curves, **(figure_args or {}))
    if log_dir is not None:
        write_results(log_dir, results)
        write_per_class_csv(Path(log_dir) / "per_class_auroc.csv", reports)
        figure.savefig(Path(log_dir) / "roc_test.png", dpi=120)
    if tensorboard is not None:
        tensorboard.add_figure("test/roc", figure, step)
    plt.close(figure)
