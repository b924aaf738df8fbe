"""ROC curves on log-log axes, where low-FPR differences between attacks are visible.

The x axis stops at the lowest FPR the test set resolves (one non-member: 1 / non-members), and the
curves named in `bands` carry a bootstrap 95% band, so that a gap between two curves can be told
from the noise of a few thousand test images.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # no display needed: figures go to files and TensorBoard

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Patch
from torch import Tensor

from mint.evaluation.metrics import auroc, roc_curve

BAND_RESAMPLES = 200
BAND_POINTS = 40


def tpr_band(scores: Tensor, members: Tensor, fpr: Tensor, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Bootstrap 95% band (low, high) of the TPR at each FPR in `fpr` (members and non-members resampled)."""
    scores, members = scores.double().cpu(), members.long().cpu()
    pos, neg = scores[members == 1], scores[members == 0]
    k = (fpr * len(neg)).floor().long().clamp(max=len(neg) - 1)  # non-members allowed above the cut
    gen = torch.Generator().manual_seed(seed)
    tprs = torch.empty(BAND_RESAMPLES, len(fpr), dtype=torch.float64)
    for b in range(BAND_RESAMPLES):
        p = pos[torch.randint(len(pos), (len(pos),), generator=gen)]
        n = neg[torch.randint(len(neg), (len(neg),), generator=gen)].sort(descending=True).values
        tprs[b] = (p[:, None] > n[k][None, :]).double().mean(0)  # (resampled members, FPR points)
    low, high = torch.quantile(tprs, torch.tensor([0.025, 0.975], dtype=torch.float64), dim=0)
    return low, high


def roc_figure(
    curves: dict[str, tuple[Tensor, Tensor]],
    title: str = "Membership ROC",
    styles: dict[str, dict] | None = None,
    bands: tuple[str, ...] = (),
):
    """A log-log ROC figure: one curve per `{name: (scores, members)}`, the chance diagonal, bands.

    Args:
        curves: {label: (scores, members)} of each scorer on the same test images.
        title: the figure's title (name the target and the layers read).
        styles: matplotlib line settings per label (colour, line style, width); others get defaults.
        bands: labels whose curves get a bootstrap 95% band.
    """
    styles = styles or {}
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    lowest = 1.0
    for name, (scores, members) in curves.items():
        members = members.long()
        if members.unique().numel() < 2:
            continue
        negatives = int((members == 0).sum())
        lowest = min(lowest, 1.0 / negatives)
        fpr, tpr = roc_curve(scores, members)
        floor = 1.0 / max(int((members == 1).sum()), 1)
        style = styles.get(name, {})
        label = f"{name} (AUROC {auroc(scores, members):.3f})"
        ax.plot(fpr.clamp_min(1.0 / negatives), tpr.clamp_min(floor), label=label, **style)
        if name in bands:
            grid = torch.logspace(math.log10(1.0 / negatives), 0, BAND_POINTS, dtype=torch.float64)
            low, high = tpr_band(scores, members, grid)
            ax.fill_between(grid, low.clamp_min(floor), high.clamp_min(floor), alpha=0.15, lw=0,
                            color=style.get("color"))  # fmt: skip
    ax.plot([lowest, 1], [lowest, 1], color="grey", ls=":", lw=0.8, label="chance")
    ax.set(xscale="log", yscale="log", xlim=(lowest, 1), ylim=(lowest, 1.02), ylabel="TPR")
    ax.set_xlabel("FPR (from 1 / non-members, the lowest the test set resolves)", fontsize=8)
    ax.set_title(title, fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    shaded = [b for b in bands if b in curves]
    if shaded:  # one legend entry says what the shading is
        handles.append(Patch(color="grey", alpha=0.25, lw=0))
        labels.append(f"95% bootstrap band ({', '.join(shaded)})")
    ax.legend(handles, labels, loc="lower right", fontsize=6.5, ncol=1 if len(labels) <= 9 else 2)
    fig.tight_layout()
    return fig
