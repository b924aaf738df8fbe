"""Per-class standardization: exact running moments, pooled fallback, frozen in eval, saved in checkpoints."""

from __future__ import annotations

import pytest
import torch

from mint.errors import MintError
from mint.models.class_standardize import ClassStandardize
from mint.models.detector import Detector


def batches(seed: int = 0):
    """Seven batches of 3 features on very different scales, classes 0-2 of 4 (class 3 never seen)."""
    g = torch.Generator().manual_seed(seed)
    scale, shift = torch.tensor([1.0, 5.0, 1e4]), torch.tensor([3.0, -2.0, 1e6])
    return [
        (torch.randn(37, 3, generator=g) * scale + shift, torch.randint(0, 3, (37,), generator=g))
        for _ in range(7)
    ]


def test_running_moments_are_the_exact_per_class_moments_and_unseen_classes_get_the_pooled_ones():
    standardize = ClassStandardize(3, 4).train()
    for x, y in batches():
        standardize(x, y)
    x = torch.cat([b[0] for b in batches()]).double()
    y = torch.cat([b[1] for b in batches()])
    mean, std = standardize.moments()
    for c in range(3):
        torch.testing.assert_close(mean[c], x[y == c].mean(0))
        torch.testing.assert_close(std[c], x[y == c].std(0))
    torch.testing.assert_close(mean[3], x.mean(0))  # class 3 was never in a training batch
    torch.testing.assert_close(std[3], x.std(0))
    # in eval mode the moments stay put, and each class comes out centred with unit spread
    standardize.eval()
    out = standardize(x.float(), y)
    assert torch.equal(standardize.count, torch.bincount(y, minlength=4).double())
    for c in range(3):
        assert out[y == c].mean(0).abs().max() < 1e-3 and (out[y == c].std(0) - 1).abs().max() < 1e-3


def test_before_any_training_inputs_pass_through_and_a_class_free_detector_refuses():
    x = torch.randn(5, 2)
    assert torch.equal(ClassStandardize(2, 3).eval()(x, torch.zeros(5, dtype=torch.long)), x)
    with pytest.raises(MintError, match="class_conditioning: per_class"):
        Detector({"layer7": (8,)}, 3, class_conditioning="none", class_standardize=True)


def test_a_detector_standardizes_its_vector_paths_only_and_keeps_the_moments_in_its_state():
    shapes = {"layer2": (4, 6, 6), "layer7": (8,)}
    detector = Detector(shapes, 3, class_standardize=True, calibrated_base=False)
    assert set(detector.standardize) == {"layer7", "output:features"}  # the map's CNN path is left alone
    g = torch.Generator().manual_seed(1)
    acts = {"layer2": torch.randn(20, 4, 6, 6, generator=g), "layer7": torch.randn(20, 8, generator=g) * 50,
            "logits": torch.randn(20, 3, generator=g)}  # fmt: skip
    labels = torch.arange(20) % 3
    detector.train()(acts, labels)
    state = detector.state_dict()
    assert torch.equal(state["standardize.layer7.count"], torch.tensor([7.0, 7.0, 6.0], dtype=torch.float64))
    again = Detector(shapes, 3, class_standardize=True, calibrated_base=False)
    again.load_state_dict(state)  # strict: an audit rebuilds the same detector from the options
    torch.testing.assert_close(again.eval()(acts, labels), detector.eval()(acts, labels))
    # without the option the state has no standardizers, so checkpoints from before it still load
    assert not any(k.startswith("standardize.") for k in Detector(shapes, 3).state_dict())
