"""mint's own statistics equal those of well-kept libraries (scipy.stats, torchmetrics) where both exist.

mint computes them itself (float64 throughout, ties as the field counts them, no sigmoid on raw
scores); these tests pin them to the libraries on data with ties and at the edges.
"""

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_auroc

from mint.audit.statistics import mann_whitney_greater
from mint.evaluation.metrics import auroc
from mint.evaluation.privacy_bound import clopper_pearson

stats = pytest.importorskip("scipy.stats", reason="scipy is in the [test] extra")


def scores_with_ties(n_x: int, n_y: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores rounded to 2 decimals (many ties), x shifted up a little."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n_x, generator=g, dtype=torch.float64) + 0.3).round(decimals=1)
    y = torch.randn(n_y, generator=g, dtype=torch.float64).round(decimals=1)
    return x, y


@pytest.mark.parametrize(("n_x", "n_y", "seed"), [(30, 40, 0), (200, 150, 1), (5, 500, 2)])
def test_mann_whitney_equals_scipy_with_ties(n_x, n_y, seed):
    x, y = scores_with_ties(n_x, n_y, seed)
    ours = mann_whitney_greater(x, y)
    theirs = stats.mannwhitneyu(x.numpy(), y.numpy(), alternative="greater", method="asymptotic")
    assert ours["u"] == pytest.approx(theirs.statistic, abs=1e-9)
    assert ours["p_value"] == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-15)


def test_clopper_pearson_equals_scipys_beta_quantiles():
    for n in (1, 10, 250, 2000):
        k = np.unique(np.linspace(0, n, 9).round())
        alpha = 0.05
        lower = np.where(k > 0, stats.beta.ppf(alpha, np.maximum(k, 1), n - k + 1), 0.0)
        upper = np.where(k < n, stats.beta.ppf(1 - alpha, k + 1, np.maximum(n - k, 1)), 1.0)
        np.testing.assert_allclose(clopper_pearson(k, n, 0.95, "lower"), lower, rtol=0, atol=1e-12)
        np.testing.assert_allclose(clopper_pearson(k, n, 0.95, "upper"), upper, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_equals_torchmetrics_and_the_u_statistic(seed):
    x, y = scores_with_ties(300, 250, seed)
    scores = torch.cat([x, y])
    members = torch.cat([torch.ones(300), torch.zeros(250)]).long()
    ours = auroc(scores, members)
    # torchmetrics applies a sigmoid to scores outside [0, 1] and works in float32: give it the
    # scores' ranks mapped into [0, 1] (a monotone map, exact in float32; ties stay ties).
    ranks = torch.unique(scores, return_inverse=True)[1]
    theirs = float(binary_auroc((ranks / ranks.max()).float(), members))
    assert ours == pytest.approx(theirs, abs=1e-6)
    u = stats.mannwhitneyu(x.numpy(), y.numpy(), alternative="greater").statistic
    assert ours == pytest.approx(u / (300 * 250), abs=1e-12)
