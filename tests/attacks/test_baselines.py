"""Black-box baselines computed in float64 from logits, and the scoring table every test uses."""

import math

import pytest
import torch

from mint.attacks import SCORERS, baseline_scores, score_batch


def test_baselines_on_hand_made_logits():
    logits = torch.tensor([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [1.0, 1.0, 1.0], [300.0, 0.0, 0.0]])
    labels = torch.tensor([0, 0, 0, 0])
    s = baseline_scores(logits, labels)
    assert s["loss"][0] > s["loss"][2] > s["loss"][1]  # right and confident > unsure > confidently wrong
    assert s["confidence"][0] == pytest.approx(s["confidence"][1])  # label-free
    assert s["entropy"][2] == pytest.approx(-math.log(3))
    assert s["modified_entropy"][0] > s["modified_entropy"][1]  # uses the label, unlike entropy
    # float64 from logits: a saturated but correct prediction still ranks above a slightly less sure one
    assert s["loss"][3] > s["loss"][0] and s["modified_entropy"][3] > s["modified_entropy"][0]
    with pytest.raises(ValueError, match="need the target's logits"):
        baseline_scores(torch.zeros(3), labels[:3])


def test_score_batch_puts_the_detector_first_then_every_baseline():
    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0]])
    labels = torch.tensor([0, 0])

    def detector(acts, labels):
        return torch.tensor([0.25, -0.5])

    table = score_batch(detector, {"logits": logits}, labels)
    assert table.dtype == torch.float64 and table.shape == (2, len(SCORERS)) and SCORERS[0] == "mint"
    assert table[:, 0].tolist() == [0.25, -0.5]
    for j, name in enumerate(SCORERS[1:], start=1):
        assert torch.equal(table[:, j], baseline_scores(logits, labels)[name]), name
