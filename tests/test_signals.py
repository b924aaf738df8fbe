"""Output features: float64, ordered where probabilities round to 1, and refused without class logits."""

from __future__ import annotations

import pytest
import torch

from mint.attacks.baselines import loss_score
from mint.errors import MintError
from mint.models.detector import Detector
from mint.signals import output_features


def test_output_features_stay_ordered_where_float32_probabilities_round_to_one():
    margins = torch.tensor([20.0, 25.0, 30.0, 40.0])  # p_y rounds to 1 in float32 from about 17 on
    logits = torch.stack([margins, torch.zeros(4), torch.zeros(4)], dim=1)  # (4, 3), true class 0
    labels = torch.zeros(4, dtype=torch.long)
    assert torch.softmax(logits, 1)[:, 0].eq(1).all()  # what a float32 pipeline would see: four ties
    feats = output_features(logits, labels)
    assert feats.dtype == torch.float64 and feats.isfinite().all()
    for column in range(3):  # confidence, margin, log entropy: strictly monotone in the margin
        values = feats[:, column] * (1 if column < 2 else -1)
        assert (values.diff() > 0).all(), (column, feats)
    assert torch.allclose(feats[:, 1], margins.double())
    # the loss attack's score is a monotone function of the first feature: same order on any logits
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(500, 10, generator=g) * 8, torch.randint(0, 10, (500,), generator=g)
    assert torch.equal(output_features(logits, labels)[:, 0].argsort(), loss_score(logits, labels).argsort())


def test_output_features_need_class_logits_and_a_detector_needs_an_input():
    with pytest.raises(MintError, match=r"shape \(1,\) per image"):
        output_features(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long))
    with pytest.raises(MintError, match="nothing to read"):
        Detector({}, 10, output_features=False)
    detector = Detector({}, 10, output_features=True, calibrated_base=False).eval()
    logits = torch.randn(6, 10)
    out = detector({"logits": logits}, torch.arange(6))
    assert out.shape == (6,) and out.isfinite().all()
