"""The calibrated base: a detector starts as the class-calibrated attack, keeps a residual that helps."""

import pytest
import torch

from mint.attacks.class_calibrated import ClassCalibratedLoss
from mint.errors import MintError
from mint.evaluation import auroc
from mint.models.calibrated_loss import CalibratedLossBase
from mint.models.detector import Detector
from mint.tasks.detector_validation import choose_scale


def known_images(n: int, seed: int, classes: int = 3):
    """Logits of `classes` classes whose true-class confidence is higher for members, by class."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    members = (torch.arange(n) // classes) % 2
    logits = torch.randn(n, classes, generator=g, dtype=torch.float64)
    noise = torch.randn(n, generator=g, dtype=torch.float64)
    logits[torch.arange(n), labels] += 3.0 * labels + members + noise
    return logits, labels, members


def test_an_untrained_detector_scores_exactly_as_the_class_calibrated_attack():
    logits, labels, members = known_images(600, 0)
    attack = ClassCalibratedLoss(3).fit({"logits": logits, "labels": labels, "members": members})
    detector = Detector({"layer7": (8,)}, 3)  # the defaults: per-class head, output features, base
    assert not detector.base.fitted
    with pytest.raises(MintError, match="calibrated base is not fitted"):
        detector({"layer7": torch.randn(4, 8), "logits": logits[:4].float()}, labels[:4])
    detector.base.fit(logits, labels, members)
    detector.eval()
    test_logits, test_labels, _ = known_images(200, 1)
    acts = {"layer7": torch.randn(200, 8), "logits": test_logits.float()}
    scores = detector(acts, test_labels)
    assert scores.dtype == torch.float64
    expected = attack.score(test_logits.float().double(), test_labels)
    assert torch.allclose(scores, expected, rtol=0, atol=1e-9)


def test_the_base_is_a_buffer_of_the_detectors_state_and_pooled_without_class_conditioning():
    logits, labels, members = known_images(600, 0)
    pooled = CalibratedLossBase(3, per_class=False)
    assert pooled.fit(logits, labels, members) == []
    assert torch.equal(pooled.params[0], pooled.params[2])  # one fit for every class
    per_class = CalibratedLossBase(3)
    per_class.fit(logits, labels, members)
    assert not torch.equal(per_class.params[0], per_class.params[2])
    state = Detector({"layer7": (8,)}, 3).state_dict()
    assert {"base.params", "base.scale"} <= set(state) and state["base.params"].dtype == torch.float64


def test_the_residual_scale_drops_noise_and_keeps_signal():
    g = torch.Generator().manual_seed(0)
    members = torch.arange(2000) % 2
    base = torch.randn(2000, generator=g, dtype=torch.float64) + 0.5 * members
    noise = 5 * torch.randn(2000, generator=g, dtype=torch.float64)
    assert choose_scale(base, noise, members) == 0.0  # a residual that only adds noise: the base alone
    signal = torch.randn(2000, generator=g, dtype=torch.float64) + 2.0 * members
    kept = choose_scale(base, signal, members)
    assert kept > 0.5 and auroc(base + kept * signal, members) > auroc(base, members) + 0.1
    assert choose_scale(base, torch.zeros(2000), members) == 0.0  # ties: the smaller scale
