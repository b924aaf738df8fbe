import math

import pytest
import torch

from mint.metrics import MembershipMetrics, membership_scores_summary, tpr_at_fpr


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
