"""The learned black-box attacks: each finds what a loss threshold cannot, falls back when data is short."""

import pytest
import torch

from mint.attacks.attack_model import AttackModel
from mint.attacks.class_calibrated import ClassCalibratedLoss
from mint.attacks.learned import LearnedAttacks
from mint.attacks.quantile import QuantileRegression
from mint.attacks.registry import LEARNED_ATTACKS
from mint.evaluation import auroc
from mint.evaluation.white_box_gain import white_box_gain
from mint.signals import logit_confidence


def two_class_logits(phi: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Logits whose logit-scaled confidence for the true label is exactly `phi` (2 classes)."""
    z = torch.zeros(len(phi), 2, dtype=torch.float64)
    z[torch.arange(len(phi)), labels] = phi
    return z


def easy_and_hard_classes(n: int, seed: int):
    """Class 0 confident either way (non-members ~ 5, members ~ 6), class 1 not (0 and 1)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    members = (torch.arange(n) // 2) % 2
    phi = torch.randn(n, generator=g, dtype=torch.float64) + 5.0 * (labels == 0) + members
    return two_class_logits(phi, labels), labels, members


def test_calibrated_loss_beats_the_loss_threshold_when_classes_differ_in_confidence():
    train, test = easy_and_hard_classes(2000, 0), easy_and_hard_classes(2000, 1)
    attack = ClassCalibratedLoss(2).fit(dict(zip(("logits", "labels", "members"), train, strict=True)))
    logits, labels, members = test
    calibrated = auroc(attack.score(logits, labels), members)
    plain = auroc(logit_confidence(logits, labels), members)  # the loss attack's order
    assert calibrated > plain + 0.05, (calibrated, plain)
    assert 0.72 < calibrated < 0.80  # one sd apart within each class: AUROC Phi(1/sqrt 2) = 0.76
    assert attack.pooled_classes == [] and attack.notes == []


def test_a_class_with_few_known_images_gets_the_pooled_fit_and_the_report_says_so():
    logits, labels, members = easy_and_hard_classes(400, 0)
    labels = labels.clone()
    labels[:30] = 2  # class 2: 30 images, about 15 per side, below the 20 a class needs
    logits = torch.cat([logits, torch.zeros(len(logits), 1, dtype=torch.float64)], dim=1)
    known = {"logits": logits, "labels": labels, "members": members}
    attack = ClassCalibratedLoss(4).fit(known)  # class 3 has no image at all
    assert attack.pooled_classes == [2]
    assert "1 classes (2) have fewer than 20" in attack.notes[0]
    assert torch.equal(attack.params[2], attack.params[3])  # both pooled, only 2 named


def images_with_difficulty(n: int, seed: int):
    """Images whose brightness sets how confident the target is on unseen ones; members 1 higher."""
    g = torch.Generator().manual_seed(seed)
    brightness = torch.rand(n, generator=g, dtype=torch.float64)
    images = brightness[:, None, None, None].float().expand(n, 3, 8, 8).clone()
    images += 0.05 * torch.randn(images.shape, generator=g)
    labels, members = torch.zeros(n, dtype=torch.long), torch.arange(n) % 2
    phi = 8.0 * brightness + 0.3 * torch.randn(n, generator=g, dtype=torch.float64) + members
    return {"logits": two_class_logits(phi, labels), "labels": labels, "members": members, "images": images}


def test_quantile_regression_judges_each_image_against_its_own_expectation():
    train, val, test = (images_with_difficulty(n, s) for n, s in ((1200, 0), (400, 1), (1000, 2)))
    attack = QuantileRegression(2, seed=0).fit(train, val)
    assert attack.net is not None and attack.notes == []
    score = attack.score(test["logits"], test["labels"], test["images"])
    plain = auroc(logit_confidence(test["logits"], test["labels"]), test["members"])
    learned = auroc(score, test["members"])
    assert plain < 0.65 and learned > 0.85, (plain, learned)  # difficulty hides membership from a threshold


def test_quantile_regression_with_few_non_members_falls_back_class_wise_and_says_so():
    train, val = images_with_difficulty(300, 0), images_with_difficulty(100, 1)  # 150 non-members
    attack = QuantileRegression(2, seed=0).fit(train, val)
    assert attack.net is None and "only 150 known non-members" in attack.notes[0]
    score = attack.score(train["logits"], train["labels"], None)
    assert torch.isfinite(score).all()


def test_the_attack_model_learns_a_pattern_the_loss_misses_and_is_deterministic():
    g = torch.Generator().manual_seed(0)
    n = 3000
    logits = torch.randn(n, 4, generator=g, dtype=torch.float64)
    labels, members = torch.arange(n) % 4, (torch.arange(n) // 4) % 2
    logits[members == 1, 3] += 3.0  # members: a high logit on class 3 whatever their label
    parts = [{"logits": logits[s], "labels": labels[s], "members": members[s]} for s in
             (slice(0, 2000), slice(2000, 2500), slice(2500, n))]  # fmt: skip
    first = AttackModel(4, seed=1).fit(parts[0], parts[1])
    score = first.score(parts[2]["logits"], parts[2]["labels"])
    assert auroc(score, parts[2]["members"]) > 0.9
    plain = auroc(logit_confidence(parts[2]["logits"], parts[2]["labels"]), parts[2]["members"])
    assert plain < 0.65
    again = AttackModel(4, seed=1).fit(parts[0], parts[1]).score(parts[2]["logits"], parts[2]["labels"])
    other = AttackModel(4, seed=2).fit(parts[0], parts[1]).score(parts[2]["logits"], parts[2]["labels"])
    assert torch.equal(score, again) and not torch.equal(score, other)


def test_the_learned_attacks_fit_inside_inference_mode_as_in_a_test_hook():
    train, val = images_with_difficulty(600, 0), images_with_difficulty(200, 1)
    with torch.inference_mode():  # what Lightning's test loop runs under
        train, val = ({k: v.clone() for k, v in part.items()} for part in (train, val))
        attacks = LearnedAttacks(2, seed=0).fit(train, val)
        scores = attacks.scores(val["logits"], val["labels"], val["images"])
    assert scores.shape == (200, len(LEARNED_ATTACKS)) and scores.dtype == torch.float64
    record = attacks.record()
    # class 1 has no image: not a pooled class worth a note; 300 non-members fit the regressor
    assert record["fit_seconds"] > 0 and record["pooled_classes"] == [] and record["notes"] == []


def test_white_box_gain_intervals_hold_the_point_and_name_the_strongest_black_box():
    g = torch.Generator().manual_seed(0)
    members = (torch.arange(2000) % 2).long()
    strong = members + 0.8 * torch.randn(2000, generator=g)  # the best black-box
    weak = members + 3.0 * torch.randn(2000, generator=g)
    detector = members + 0.5 * torch.randn(2000, generator=g)
    scores = torch.stack([detector, weak, strong], dim=1).double()
    gain = white_box_gain(scores, members, ("mint", "loss", "attack_model"), ("loss", "attack_model"))
    assert gain["against"] == "attack_model"
    lo, hi = gain["auroc_ci95"]
    assert 0 < lo <= gain["auroc"] <= hi
    r_lo, r_hi = gain["tpr@1%fpr_ratio_ci95"]
    assert r_lo <= gain["tpr@1%fpr_ratio"] <= r_hi and gain["tpr@1%fpr_ratio"] > 1


def test_white_box_gain_has_no_ratio_where_tpr_at_1_percent_is_not_resolvable():
    members = (torch.arange(100) % 2).long()  # 50 non-members: 1% FPR is below one image
    scores = torch.stack([members.double(), torch.rand(100, dtype=torch.float64)], dim=1)
    gain = white_box_gain(scores, members, ("mint", "loss"), ("loss",), n_boot=50)
    assert gain["tpr@1%fpr_ratio"] is None and gain["tpr@1%fpr_ratio_ci95"] == [None, None]
    assert gain["auroc"] == pytest.approx(1.0 - auroc(scores[:, 1], members))
