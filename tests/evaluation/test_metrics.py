import math

import pytest
import torch

from mint.evaluation import MembershipMetrics, membership_scores_summary, tpr_at_fpr


def test_perfect_and_inverted_scores():
    members = torch.tensor([1, 1, 0, 0])
    assert membership_scores_summary(torch.tensor([4.0, 3, 2, 1]), members)["auroc"] == 1.0
    assert membership_scores_summary(torch.tensor([1.0, 2, 3, 4]), members)["auroc"] == 0.0


def test_tpr_at_fpr_known_answer():
    # 100 non-members scored 0..99, 10 members scored 95..104: at FPR <= 1% (one false positive)
    # the threshold sits above 98, keeping members scored 99..104 -> 6 of 10.
    scores = torch.cat([torch.arange(100.0), torch.arange(95.0, 105.0)])
    members = torch.cat([torch.zeros(100), torch.ones(10)])
    assert tpr_at_fpr(scores, members, 0.01) == pytest.approx(0.6)
    assert tpr_at_fpr(scores, members, 0.1) == pytest.approx(1.0)


def test_ties_cannot_fake_a_low_fpr_tpr():
    # Saturated scores: every member and half the non-members tie at the top.
    scores = torch.cat([torch.zeros(100), torch.ones(100), torch.ones(100)])
    members = torch.cat([torch.zeros(200), torch.ones(100)])
    assert tpr_at_fpr(scores, members, 0.01) == 0.0


def test_unresolvable_fpr_is_nan():
    scores, members = torch.randn(150), torch.cat([torch.zeros(50), torch.ones(100)])
    assert math.isnan(tpr_at_fpr(scores, members, 0.01))  # 50 non-members cannot resolve 1%
    assert not math.isnan(tpr_at_fpr(scores, members, 0.1))


def test_metric_counts_ddp_padding_duplicates_once():
    metric = MembershipMetrics()
    metric.update(torch.tensor([3.0, -1.0]), torch.tensor([1, 0]), torch.tensor([0, 1]))
    metric.update(torch.tensor([-2.0, 3.0]), torch.tensor([0, 1]), torch.tensor([2, 0]))  # id 0 repeated
    out = metric.compute()
    assert out["n_members"] == 1 and out["n_nonmembers"] == 2 and out["auroc"] == 1.0
    assert out["acc"] == 1.0 and out["precision"] == 1.0 and out["recall"] == 1.0


def test_auroc_with_ties_equals_the_pairwise_definition():
    """Both AUROC implementations against P(member > non-member) + P(tie) / 2, counted pair by pair."""
    from mint.evaluation.metrics import _rank_auroc, auroc

    pos, neg = torch.tensor([1.0, 2.0, 2.0, 3.0]), torch.tensor([0.0, 2.0, 2.0])
    # wins: 1 + (1 + 2 halves) * 2 + 3 = 8 of 12 pairs
    both = torch.cat([pos, neg]), torch.cat([torch.ones(4), torch.zeros(3)]).long()
    assert _rank_auroc(pos, neg) == pytest.approx(8 / 12) and auroc(*both) == pytest.approx(8 / 12)
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (300,), generator=gen).double()
    members = torch.randint(0, 2, (300,), generator=gen)
    p, n = scores[members == 1], scores[members == 0]
    pairs = (p[:, None] > n[None, :]).double() + 0.5 * (p[:, None] == n[None, :]).double()
    assert auroc(scores, members) == pytest.approx(float(pairs.mean()), abs=1e-12)
    assert _rank_auroc(p, n) == pytest.approx(float(pairs.mean()), abs=1e-12)


def test_bootstrap_interval_covers_the_estimate_and_shrinks_with_data():
    from mint.evaluation.metrics import auroc, auroc_ci

    gen = torch.Generator().manual_seed(1)
    small = torch.randn(200, generator=gen) + torch.cat([torch.zeros(100), torch.ones(100)])
    members_small = torch.cat([torch.zeros(100), torch.ones(100)])
    large = torch.randn(2000, generator=gen) + torch.cat([torch.zeros(1000), torch.ones(1000)])
    members_large = torch.cat([torch.zeros(1000), torch.ones(1000)])
    lo, hi = auroc_ci(small, members_small, n_boot=300)
    assert lo < auroc(small, members_small) < hi
    lo2, hi2 = auroc_ci(large, members_large, n_boot=300)
    assert hi2 - lo2 < hi - lo
    assert lo2 < 0.76 < hi2  # the true AUROC of N(1,1) vs N(0,1) is Phi(1/sqrt(2)) = 0.760


def test_threshold_chosen_on_one_set_is_applied_to_another():
    from mint.evaluation.metrics import at_threshold, best_threshold

    val = torch.tensor([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    members = torch.tensor([0, 0, 0, 1, 1, 1])
    t = best_threshold(val, members)
    assert 0.3 < t < 0.7
    out = at_threshold(torch.tensor([0.0, 0.6, 0.2, 0.65]), torch.tensor([0, 0, 1, 1]), t)
    assert out == {"balanced_acc": 0.5, "precision": 0.5, "tpr": 0.5, "fpr": 0.5}


def test_per_class_auroc():
    from mint.evaluation.metrics import per_class_auroc

    scores = torch.tensor([1.0, 0.0, 0.0, 1.0])
    members = torch.tensor([1, 0, 1, 0])
    labels = torch.tensor([0, 0, 1, 1])
    table = per_class_auroc(scores, members, labels)
    assert table[0]["auroc"] == 1.0 and table[1]["auroc"] == 0.0


def test_tpr_interval_covers_the_true_rate_and_matches_the_point_estimate():
    """Members N(2, 1), non-members N(0, 1): TPR at 1% FPR is 1 - Phi(2.326 - 2) = 0.372."""
    from mint.evaluation.metrics import tpr_at_fpr, tpr_ci

    g = torch.Generator().manual_seed(0)
    scores = torch.cat([torch.randn(5000, generator=g) + 2, torch.randn(5000, generator=g)]).double()
    members = torch.cat([torch.ones(5000), torch.zeros(5000)]).long()
    lo, hi = tpr_ci(scores, members, 0.01, n_boot=300)
    point = tpr_at_fpr(scores, members, 0.01)
    assert lo < 0.372 < hi and lo <= point <= hi and hi - lo < 0.1
    ties = torch.cat([torch.ones(5000), torch.ones(5000)]).double()  # all tied: nothing passes
    assert tpr_ci(ties, members, 0.01, n_boot=50) == (0.0, 0.0) == (tpr_at_fpr(ties, members, 0.01),) * 2
    assert all(v != v for v in tpr_ci(scores[:5050], members[:5050], 0.01))  # 50 non-members: NaN
