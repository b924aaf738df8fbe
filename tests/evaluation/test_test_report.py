"""The class-only control: a scorer that sees only the label, fitted on the detector's training set."""

import torch

from mint.evaluation.test_report import ClassOnlyControl


def test_class_only_control_is_at_chance_when_both_sides_share_the_class_mix():
    labels = torch.arange(400) % 4
    members = (torch.arange(400) // 4) % 2  # every class half members
    control = ClassOnlyControl(labels, members, num_classes=4)
    assert torch.all(control.log_odds == 0)
    report = control.report(labels, members)
    assert report["auroc"] == 0.5 and report["auroc_ci95"][0] <= 0.5 <= report["auroc_ci95"][1]


def test_class_only_control_exposes_a_class_imbalance():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (2000,), generator=gen)
    # members are mostly of classes 0 and 1: the label alone then predicts membership
    members = (torch.rand(2000, generator=gen) < torch.where(labels < 2, 0.7, 0.3)).long()
    control = ClassOnlyControl(labels[:1000], members[:1000], num_classes=4)
    report = control.report(labels[1000:], members[1000:])
    assert report["auroc"] > 0.65 and report["auroc_ci95"][0] > 0.5
