"""Gradient features: exact per-image gradients, ordered where float32 losses tie, refused if impossible."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mint.errors import MintError
from mint.models.gradients import GradientReader
from mint.models.target import Target

HPARAMS = {"arch": "paper_cnn", "num_classes": 10, "width": 0.25}


def autograd_gradient(target: Target, image: torch.Tensor, label: int, module: str) -> torch.Tensor:
    """The reference: one image's loss differentiated by autograd, the module's parameters flattened."""
    x = (image[None] - target.mean[:, None, None]) / target.std[:, None, None]
    params = [p for name, p in target.net.named_parameters() if name.startswith(module + ".")]
    with torch.enable_grad():
        for p in params:
            p.requires_grad_(True)
        grads = torch.autograd.grad(F.cross_entropy(target.net(x), torch.tensor([label])), params)
        for p in params:
            p.requires_grad_(False)
    return torch.cat([g.flatten() for g in grads])


def test_gradient_features_are_each_images_own_gradient():
    torch.manual_seed(0)
    target = Target(HPARAMS, ["layer7", "grad:layer8", "grad:layer5", "gradnorm:all"])
    assert target.shapes["grad:layer8"] == (10 * 32 + 10,) and target.shapes["gradnorm:all"] == (22,)
    images, labels = torch.rand(6, 3, 32, 32), torch.tensor([0, 1, 2, 3, 4, 5])
    out = target(images, labels)
    for i in (0, 4):
        for module in ("layer8", "layer5"):
            expected = autograd_gradient(target, images[i], int(labels[i]), module)
            assert torch.allclose(out[f"grad:{module}"][i], expected, atol=1e-6, rtol=1e-4)
    weight, bias = out["grad:layer8"][0].split([320, 10])  # gradnorm:all ends with layer8's two tensors
    assert torch.allclose(
        out["gradnorm:all"][0, -2:].exp(), torch.stack([weight.norm(), bias.norm()]), rtol=1e-4
    )
    predicted = target(images)  # no labels: the predicted class's loss
    assert torch.allclose(
        predicted["grad:layer8"][1], target(images, predicted["logits"].argmax(1))["grad:layer8"][1]
    )


def test_gradient_norms_stay_ordered_where_float32_losses_are_exactly_zero():
    target = Target(HPARAMS, ["gradnorm:layer8"])
    images, labels = torch.rand(3, 3, 32, 32), torch.zeros(3, dtype=torch.long)
    norms = []
    for margin in (60.0, 80.0, 100.0):  # float32 softmax: p_y == 1, loss and its gradient exactly 0
        target.net.layer8.bias.zero_()
        target.net.layer8.weight.zero_()
        target.net.layer8.bias[0] = margin
        assert F.cross_entropy(target.net(images), labels).item() == 0.0
        norms.append(target(images, labels)["gradnorm:layer8"][:, 1])  # the bias's log norm: about -margin
    norms = torch.stack(norms)  # (margins, images)
    assert norms.isfinite().all() and (norms.diff(dim=0) < -15).all()


def test_gradient_requests_that_cannot_be_met_are_refused():
    with pytest.raises(MintError, match=r"'layer9' is not a module.*grad:layer8"):
        Target(HPARAMS, ["grad:layer9"])

    class Program(nn.Module):  # what a TorchScript / exported target looks like to mint
        def read(self, x):
            return {}

    with pytest.raises(MintError, match="no differentiable path"):
        GradientReader(Program(), ["grad:layer8"])
