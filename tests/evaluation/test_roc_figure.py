"""The ROC figure as a person sees it (and Chromium shows it): every curve drawn, each in its own colour."""

import matplotlib
import numpy as np
import torch

from mint.attacks.registry import ATTACKS, curve_style
from mint.evaluation.roc_plot import plt, roc_figure
from tests.conftest import colour_pixels, shown_pixels


def test_every_roc_curve_shows_in_its_own_colour(tmp_path):
    names = ["mint", *(a.name for a in ATTACKS)]  # MINT and every attack: 14 curves
    gen = torch.Generator().manual_seed(0)
    members = torch.cat([torch.ones(500), torch.zeros(500)]).long()
    curves = {  # each scorer a little stronger than the last, so that the curves lie apart
        name: (torch.randn(1000, generator=gen, dtype=torch.float64) + 0.15 * (i + 1) * members, members)
        for i, name in enumerate(names)
    }
    styles = {name: curve_style(name) for name in names}
    colours = [style["color"] for style in styles.values()]
    assert len(set(colours)) == len(names), "two curves share a colour"
    figure = roc_figure(curves, "test figure", styles, bands=("mint", names[1]))
    try:
        figure.savefig(tmp_path / "roc.png", dpi=120)  # as the test report saves it: 768 x 624
    finally:
        plt.close(figure)
    for pixels in shown_pixels(tmp_path / "roc.png", tmp_path):  # the PNG, and Chromium's view of it
        shown = {name: colour_pixels(pixels, style["color"]) for name, style in styles.items()}
        assert min(shown.values()) >= 40, f"curves (pixels of their colour) barely visible: {shown}"
    # Told apart: curves of one line style (one family) differ by more than 40 on some channel, and
    # any two curves by more than 25 (a black-box and a reference attack may share a hue, not a style).
    rgb = np.array([matplotlib.colors.to_rgb(c) for c in colours]) * 255
    gaps = np.abs(rgb[:, None] - rgb[None]).max(axis=2) + np.eye(len(rgb)) * 255
    lines = [style["linestyle"] for style in styles.values()]
    same = np.array([[a == b for b in lines] for a in lines])
    assert gaps[same].min() > 40 and gaps.min() > 25, "two curves' colours are too close to tell apart"
