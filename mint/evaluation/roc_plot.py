"""ROC curves on log-log axes, where low-FPR differences between attacks are visible."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display needed: figures go to files and TensorBoard

import matplotlib.pyplot as plt
from torch import Tensor

from mint.evaluation.metrics import auroc, roc_curve


def roc_figure(curves: dict[str, tuple[Tensor, Tensor]], title: str = "Membership ROC"):
    """A log-log ROC figure with one curve per `{name: (scores, members)}` and the chance diagonal."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for name, (scores, members) in curves.items():
        members = members.long()
        if members.unique().numel() < 2:
            continue
        fpr, tpr = roc_curve(scores, members)
        auc = auroc(scores, members)
        ax.plot(fpr.clamp_min(1e-5), tpr.clamp_min(1e-5), label=f"{name} (AUROC {auc:.3f})")
    ax.plot([1e-5, 1], [1e-5, 1], "k:", lw=0.8, label="chance")
    ax.set(
        xscale="log", yscale="log", xlim=(1e-4, 1), ylim=(1e-4, 1), xlabel="FPR", ylabel="TPR", title=title
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
