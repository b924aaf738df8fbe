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


def test_loss_and_confidence_stay_ordered_when_members_saturate():
    """Margins of 35-500 logits: log_softmax would give exactly 0.0 from about 37 on (all tied)."""
    margins = torch.tensor([35.0, 37.0, 40.0, 50.0, 100.0, 300.0, 500.0], dtype=torch.float64)
    logits = torch.stack([margins, torch.zeros_like(margins), torch.zeros_like(margins)], dim=1)
    labels = torch.zeros(len(margins), dtype=torch.long)
    assert torch.log_softmax(logits, 1)[:, 0].unique().numel() < len(margins)  # the old way ties
    scores = baseline_scores(logits, labels)
    for name in ("loss", "confidence"):
        assert torch.all(scores[name][1:] > scores[name][:-1]), name  # strictly increasing
        assert torch.all(scores[name] < 0), name
    # still the exact value where it is representable: log p = -log(1 + 2 e^-m)
    assert scores["loss"][0].item() == pytest.approx(-math.log1p(2 * math.exp(-35.0)), rel=1e-12)
    wrong = baseline_scores(torch.tensor([[0.0, 50.0]]), torch.tensor([0]))["loss"]
    assert wrong.item() == pytest.approx(-50.0, rel=1e-12)  # a confidently wrong prediction
