"""The empirical epsilon: exact binomial bounds, a proof at its confidence, and what cannot be proven."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mint.errors import MintError
from mint.evaluation.privacy_bound import (
    clopper_pearson,
    epsilon_from_counts,
    epsilon_lower_bound,
    fit_threshold,
    images_needed,
    largest_provable,
)


def test_clopper_pearson_matches_its_closed_forms_and_known_values():
    n = 40
    assert clopper_pearson(0, n, 0.95, "upper") == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-9)
    assert clopper_pearson(n, n, 0.95, "lower") == pytest.approx(0.05 ** (1 / n), rel=1e-9)
    assert clopper_pearson(0, n, 0.95, "lower") == 0 and clopper_pearson(n, n, 0.95, "upper") == 1
    # scipy.stats.beta.ppf(0.05, 5, 6) and beta.ppf(0.95, 6, 5)
    assert clopper_pearson(5, 10, 0.95, "lower") == pytest.approx(0.22244110, abs=1e-7)
    assert clopper_pearson(5, 10, 0.95, "upper") == pytest.approx(0.77755890, abs=1e-7)
    assert clopper_pearson(np.array([1, 5, 9]), 10, 0.95, "lower").shape == (3,)


def test_the_bound_is_below_the_true_epsilon_of_known_rates_and_near_it_with_many_images():
    members = np.r_[np.ones(1000), np.zeros(1000)].astype(bool)
    scores = np.zeros(2000)
    scores[:900] = 1  # TPR 0.9 at threshold 1
    scores[1000:1010] = 1  # FPR 0.01
    found = epsilon_lower_bound(scores, members, threshold=1.0)
    assert (found["true_positives"], found["false_positives"]) == (900, 10)
    assert 3.5 < found["epsilon_lower_bound"] < math.log(0.9 / 0.01)
    with_delta = epsilon_lower_bound(scores, members, 1.0, delta=0.5)["epsilon_lower_bound"]
    assert with_delta < found["epsilon_lower_bound"]
    assert fit_threshold(scores, members) == 1.0


def test_a_mechanism_with_exactly_epsilon_is_almost_never_caught_above_it():
    # Randomized response is (eps, 0)-DP with TPR / FPR = e^eps exactly: the 95% bound may exceed eps
    # in about 5% of audits, never much more.
    eps, n, rng = 2.0, 400, np.random.default_rng(0)
    p = math.exp(eps) / (1 + math.exp(eps))
    audits = 400
    tp, fp = rng.binomial(n, p, audits), rng.binomial(n, 1 - p, audits)  # flagged members, non-members
    bounds = epsilon_from_counts(tp, n, fp, n)
    assert (bounds > eps).mean() <= 0.07 and bounds.max() < eps + 1  # about 5%, never far above
    assert np.median(bounds) > 0.5 * eps  # and not vacuous


def test_what_a_test_set_can_prove_and_what_it_cannot():
    assert largest_provable(2000, 2000) == pytest.approx(math.log(2000 / 3), abs=0.01)
    needed = images_needed(8.0)  # about 3 e^8 a side
    assert largest_provable(needed, needed) >= 8 > largest_provable(needed - 1, needed - 1)
    assert abs(needed - 3 * math.exp(8)) < 0.01 * 3 * math.exp(8)
    with pytest.raises(MintError, match="epsilon must be positive"):
        images_needed(0)
    with pytest.raises(MintError, match="delta"):
        epsilon_lower_bound(np.zeros(4), np.array([1, 1, 0, 0]), 0.0, delta=1.0)
    with pytest.raises(MintError, match="both members and non-members"):
        epsilon_lower_bound(np.zeros(4), np.ones(4), 0.0)
