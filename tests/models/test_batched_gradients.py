"""The batched gradient path: the same per-image gradients as `torch.func`, or it steps aside."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import mint.models.batched_gradients as batched
from mint.models.gradients import GradientReader


class Mixed(nn.Module):
    """Every layer kind the batched path knows, with in-place activations between them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding="same", bias=True)
        self.bn = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, dilation=2, padding=2, bias=False)
        self.gn = nn.GroupNorm(2, 8)
        self.conv3 = nn.Conv2d(8, 24, 3, padding=1)  # a 4x4 map: its norm by the ghost-norm route
        self.tokens = nn.Linear(24, 5)  # on (B, 16 positions, 24): a sequence layer
        self.ln = nn.LayerNorm(5)
        self.dense = nn.Linear(80, 12)
        self.bn1 = nn.BatchNorm1d(12)
        self.out = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu_(self.bn(self.conv1(x)))
        x = self.conv3(torch.relu_(self.gn(self.conv2(x))))  # (B, 24, 4, 4)
        x = self.ln(self.tokens(x.flatten(2).transpose(1, 2)))  # (B, 24, 4, 4) -> (B, 16, 24) -> (B, 16, 5)
        return self.out(torch.relu_(self.bn1(self.dense(x.flatten(1)))))


def mixed() -> nn.Module:
    torch.manual_seed(0)
    net = Mixed()
    for bn in (net.bn, net.bn1):  # running statistics and affine parameters away from their defaults
        bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2)
    return net.eval().requires_grad_(False)


LAYERS = ["conv1", "bn", "conv2", "gn", "conv3", "tokens", "ln", "dense", "bn1", "out"]
REQUESTS = [*(f"grad:{layer}" for layer in LAYERS), "gradnorm:all", "gradnorm:conv3"]


def run_of(net: nn.Module):
    return lambda x: {"logits": net(x)}


def test_one_batched_pass_gives_each_images_own_gradients_on_every_known_layer():
    net = mixed()
    reader = GradientReader(net, REQUESTS)
    assert reader.owners is not None  # every owner is of a known kind: the batched path is taken
    assert batched._ghost(net.conv3, torch.zeros(1, 24, 4, 4)) and not batched._ghost(
        net.conv1, torch.zeros(1, 6, 8, 8)
    )
    x, labels = torch.randn(10, 3, 8, 8), torch.arange(10) % 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no disagreement with the per-image path
        out, features = reader.read(run_of(net), x, labels)
    assert reader.owners is not None and torch.allclose(out["logits"], net(x))
    exact = reader(x, labels)  # the per-image path: one vector-Jacobian product per image (torch.func)
    for name, value in exact.items():
        assert torch.allclose(features[name], value, rtol=1e-4, atol=1e-5 * float(value.abs().max())), name
    # no labels: the predicted class's loss; trainable parameters are left as they were, without .grad
    net.requires_grad_(True)
    _, predicted = reader.read(run_of(net), x, None)
    assert all(p.requires_grad and p.grad is None for p in net.parameters())
    assert torch.allclose(predicted["grad:out"], reader(x, net(x).argmax(1))["grad:out"], atol=1e-6)


def test_layers_it_cannot_read_send_every_batch_to_the_per_image_path():
    class Scaled(nn.Module):  # a parameter outside any known layer
        def __init__(self) -> None:
            super().__init__()
            self.gain = nn.Parameter(torch.ones(4))

        def forward(self, x):
            return x * self.gain

    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), Scaled()).eval()
    assert batched.batched_owners(net, ["1.weight", "2.gain"]) is None

    class Twice(nn.Module):  # one layer called twice in a forward pass: its gradient is a sum
        def __init__(self) -> None:
            super().__init__()
            self.same = nn.Linear(4, 4)

        def forward(self, x):
            return self.same(torch.tanh(self.same(x.flatten(1)[:, :4])))

    net = Twice().eval().requires_grad_(False)
    reader = GradientReader(net, ["grad:same"])
    x, labels = torch.randn(6, 3, 2, 2), torch.arange(6) % 4
    _, features = reader.read(run_of(net), x, labels)
    assert reader.owners is None  # it noticed, and answered per image
    assert torch.allclose(features["grad:same"], reader(x, labels)["grad:same"])


def test_a_batched_result_that_disagrees_with_the_per_image_path_is_replaced_and_named(monkeypatch):
    net = mixed()
    reader = GradientReader(net, ["gradnorm:all"])
    real = batched._layer
    monkeypatch.setattr(batched, "_layer", lambda *args: {k: 2 * v for k, v in real(*args).items()})
    x, labels = torch.randn(6, 3, 8, 8), torch.arange(6) % 4
    with pytest.warns(UserWarning, match="disagreed with the per-image one on 'gradnorm:all'"):
        _, features = reader.read(run_of(net), x, labels)
    assert reader.owners is None and torch.allclose(
        features["gradnorm:all"], reader(x, labels)["gradnorm:all"]
    )


def test_a_torchvision_resnet_takes_the_batched_path_and_matches_the_per_image_one():
    from torchvision.models import resnet18
    from torchvision.models.feature_extraction import create_feature_extractor

    torch.manual_seed(0)
    net = resnet18(num_classes=10).eval().requires_grad_(False)
    for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.2, 0.2)
    reader = GradientReader(net, ["gradnorm:all", "grad:fc", "grad:layer4"])
    extractor = create_feature_extractor(net, {"layer4": "layer4", "fc": "logits"})
    x, labels = torch.randn(3, 3, 32, 32), torch.tensor([0, 4, 9])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, features = reader.read(extractor, x, labels)
    assert reader.owners is not None and out["layer4"].shape == (3, 512, 1, 1)
    for name, value in reader(x, labels).items():
        assert torch.allclose(features[name], value, rtol=1e-4, atol=1e-5 * float(value.abs().max())), name
