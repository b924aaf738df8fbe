"""Targets trained elsewhere: torchvision architectures with weights files, and `mint layers`."""

from __future__ import annotations

import sys

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torchvision.models.feature_extraction import create_feature_extractor

from mint.errors import MintError
from mint.models.gradients import is_gradient
from mint.models.layers import layer_table, main
from mint.models.target import Target
from mint.models.timm_target import TimmTarget
from mint.models.torchvision_target import TorchvisionTarget


@pytest.fixture(scope="module")
def resnet_files(tmp_path_factory):
    """One ResNet-18 (10 classes) saved four ways: state_dict, safetensors, DataParallel keys, pickled."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    folder = tmp_path_factory.mktemp("resnet")
    torch.save(net.state_dict(), folder / "weights.pt")
    save_file(net.state_dict(), folder / "weights.safetensors")
    torch.save({"module." + k: v for k, v in net.state_dict().items()}, folder / "ddp.pth")
    torch.save(net, folder / "whole.pt")
    return net, folder


def test_every_weights_format_gives_the_same_network(resnet_files):
    net, folder = resnet_files
    images = torch.rand(4, 3, 32, 32)
    reference = create_feature_extractor(net, {"layer4": "layer4", "fc": "fc"})(images)
    for name, prefix in (("weights.pt", ""), ("weights.safetensors", ""), ("ddp.pth", "module.")):
        loaded, sha256 = TorchvisionTarget(
            "resnet18", str(folder / name), 10, prefix, image_size=32
        ).network()
        out = create_feature_extractor(loaded, {"layer4": "layer4", "fc": "fc"})(images)
        assert torch.equal(out["layer4"], reference["layer4"]) and torch.equal(out["fc"], reference["fc"])
        assert len(sha256) == 64 and not loaded.training


def test_layer_table_of_a_resnet_and_of_a_mint_target(resnet_files, tiny_target, capsys):
    net, _ = resnet_files
    rows = {r["layer"]: r for r in layer_table(net, 32)}
    assert [*rows][-6:] == ["layer2", "layer3", "layer4", "avgpool", "flatten", "fc"]
    assert rows["layer4"]["shape"] == (512, 1, 1) and rows["fc"]["shape"] == (10,)
    # avgpool, not flatten (which only reshapes it): the layer README and mint_your_model.yaml read
    assert rows["avgpool"]["note"] == "penultimate" and rows["fc"]["note"] == "logits"
    assert rows["flatten"]["note"] == "" and rows["layer4"]["note"] == ""
    big = layer_table(net, 224)  # conv1 at 224 px: 64 x 112 x 112 values, too many to cache whole
    assert big[0]["values"] == 64 * 112 * 112 and big[0]["note"].startswith("large")
    assert len(layer_table(net, 32, every=True)) > 40  # every graph node, e.g. layer1.0.conv1
    rows = main(["--ckpt", str(tiny_target)])
    assert [r["layer"] for r in rows[:8]] == [f"layer{i}" for i in range(1, 9)]
    assert rows[6]["note"] == "penultimate" and rows[7]["shape"] == (10,)
    # Then the gradient features, sized from the network's own parameters.
    dense = rows[6]["values"]
    gradients = {r["layer"]: r["values"] for r in rows[8:]}
    assert gradients["grad:layer8"] == 10 * dense + 10 and gradients["gradnorm:all"] == 22
    assert [*gradients][:-1] == [f"grad:layer{i}" for i in range(1, 9)]
    assert "layer7" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, words",
    [
        (("resnet81", "weights.pt", 10), "close names: resnet18"),
        (("resnet18", "ddp.pth", 10), "starts with 'module.': set strip_prefix"),
        (("resnet18", "weights.pt", 100), "The weights hold 10 classes: set num_classes: 10"),
        (("resnet18", "whole.pt", 10), "contains code.*torch.save\\(model.state_dict\\(\\)"),
        (("resnet34", "weights.pt", 10), "96 keys missing"),
        (("resnet18", "missing.pt", 10), "weights file not found"),
        (("resnet18", "bad.safetensors", 10), "not a valid .safetensors file"),
    ],
    ids=["arch", "prefix", "classes", "pickled-model", "other-arch", "missing", "bad-safetensors"],
)
def test_weights_that_do_not_fit_say_what_to_change(resnet_files, args, words):
    _, folder = resnet_files
    (folder / "bad.safetensors").write_bytes(b"not safetensors")
    arch, weights, classes = args
    with pytest.raises(MintError, match=words):
        TorchvisionTarget(arch, str(folder / weights), classes).network()


def test_mint_layers_refuses_unclear_requests(resnet_files, refused):
    _, folder = resnet_files
    refused(["layers"], "give one of --ckpt")
    refused(["layers", "--arch", "resnet18"], "--arch needs --num-classes")
    refused(
        ["layers", "--arch", "resnet18", "--weights", folder / "ddp.pth", "--num-classes", "10"],
        "strip_prefix",
    )


def test_a_timm_architecture_with_its_weights(tmp_path, capsys):
    timm = pytest.importorskip("timm", reason="timm is the optional extra mint[timm]")

    torch.manual_seed(0)
    net = timm.create_model("resnet18", pretrained=False, num_classes=7).eval()
    save_file(net.state_dict(), tmp_path / "timm.safetensors")
    loaded, _ = TimmTarget("resnet18", str(tmp_path / "timm.safetensors"), 7, image_size=32).network()
    images = torch.rand(2, 3, 32, 32)
    assert torch.equal(loaded(images), net(images))
    rows = main(["--timm", "--arch", "resnet18", "--weights", str(tmp_path / "timm.safetensors"),
                 "--num-classes", "7", "--image-size", "32"])  # fmt: skip
    logits = next(r for r in rows if r["note"] == "logits")
    assert (
        logits["shape"] == (7,)
        and rows[-1]["layer"] == "gradnorm:all"
        and "layer4" in capsys.readouterr().out
    )
    with pytest.raises(MintError, match="unknown timm architecture 'resnet19'; close names: resnet18"):
        TimmTarget("resnet19", "x", 7)
    with pytest.raises(MintError, match="set num_classes: 7"):
        TimmTarget("resnet18", str(tmp_path / "timm.safetensors"), 10).network()


def test_an_exported_program_reads_the_same_layers_as_the_module(resnet_files, tmp_path):
    from torch.export import Dim, export, save

    from mint.models.exported import ExportedTarget

    net, folder = resnet_files
    images = torch.rand(3, 3, 32, 32)
    save(export(net, (images,), dynamic_shapes={"x": {0: Dim("batch")}}), tmp_path / "r.pt2")
    program, sha256 = ExportedTarget(str(tmp_path / "r.pt2"), image_size=32).network()
    assert [r["layer"] for r in layer_table(program, 32)] == [r["layer"] for r in layer_table(net, 32)]
    read = program.read(images, ["layer2", "layer4", "flatten", "fc"])
    reference = create_feature_extractor(net, {n: n for n in ("layer2", "layer4", "flatten", "fc")})(images)
    for name, value in reference.items():  # the same network, read from the saved graph
        torch.testing.assert_close(read[name], value, rtol=1e-5, atol=1e-5)
    assert len(sha256) == 64
    with pytest.raises(MintError, match="unknown layer.*valid names"):
        program.read(images, ["layer9"])
    save(export(net, (images,)), tmp_path / "fixed.pt2")  # exported for batches of 3 only
    fixed, _ = ExportedTarget(str(tmp_path / "fixed.pt2"), image_size=32).network()
    with pytest.raises(MintError, match="dynamic batch dimension"):
        fixed.read(torch.rand(2, 3, 32, 32), ["layer4"])
    with pytest.raises(MintError, match="is not a torch.export program"):
        ExportedTarget(str(folder / "weights.pt")).network()


def test_a_network_from_the_users_own_factory(tmp_path, monkeypatch, capsys):
    from mint.models.factory import FactoryTarget

    (tmp_path / "my_nets.py").write_text(
        "from torch import nn\n"
        "def small(classes=5):\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(classes))\n"
        "def not_a_module():\n"
        "    return 42\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_nets", raising=False)  # another test's module of that name
    built, _ = FactoryTarget("my_nets:small", {"classes": 5}, image_size=8).network()
    built(torch.zeros(1, 3, 8, 8))  # materialize the lazy layer, then save its weights
    torch.save(built.state_dict(), tmp_path / "small.pt")
    loaded, sha256 = FactoryTarget(
        "my_nets:small", {"classes": 5}, str(tmp_path / "small.pt"), image_size=8
    ).network()
    images = torch.rand(2, 3, 8, 8)
    assert torch.equal(loaded(images), built(images)) and len(sha256) == 64
    rows = main(["--factory", "my_nets:small", "--weights", str(tmp_path / "small.pt"), "--image-size", "8"])
    layers = [r for r in rows if not is_gradient(r["layer"])]
    assert layers[-1]["shape"] == (5,)
    # the ReLU's map, of which Flatten is a copy (the first of the parameter-free layers before the logits)
    assert [r["note"] for r in layers[-3:]] == ["penultimate", "", "logits"] and layers[-3]["layer"] == "1"
    for spec, words in (("my_nets.small", "must be 'package.module:function'"),
                        ("no_such_module:f", "cannot import the factory"),
                        ("my_nets:missing", "cannot import the factory"),
                        ("my_nets:not_a_module", "returned a int, not an nn.Module")):  # fmt: skip
        with pytest.raises(MintError, match=words):
            FactoryTarget(spec).network()


def test_a_frozen_target_from_weights_or_an_exported_program_reads_the_same(resnet_files, tmp_path):
    from torch.export import Dim, export, save

    from mint.models import LOGITS, Target
    from mint.models.exported import ExportedTarget

    net, folder = resnet_files
    images = torch.rand(3, 3, 32, 32)
    weights = TorchvisionTarget("resnet18", str(folder / "weights.safetensors"), 10, image_size=32)
    from_weights = Target.from_external(weights, ["layer4", "flatten"])
    assert (
        from_weights.shapes == {"layer4": (512, 1, 1), "flatten": (512,)} and from_weights.num_classes == 10
    )
    normalized = (images - torch.tensor(weights.mean)[:, None, None]) / torch.tensor(weights.std)[
        :, None, None
    ]
    out = from_weights(images)  # images in [0, 1]: the target applies the weights' preprocessing
    torch.testing.assert_close(out[LOGITS], net(normalized))
    meta = from_weights.meta
    assert meta["kind"] == "TorchvisionTarget" and len(meta["sha256"]) == 64
    assert (
        tuple(meta["preprocessing"]["mean"]) == weights.mean
        and meta["config"]["init_args"]["arch"] == "resnet18"
    )
    save(export(net, (images,), dynamic_shapes={"x": {0: Dim("batch")}}), tmp_path / "r.pt2")
    from_program = Target.from_external(
        ExportedTarget(str(tmp_path / "r.pt2"), image_size=32), ["layer4", "flatten"]
    )
    assert from_program.shapes == from_weights.shapes and from_program.num_classes == 10
    read = from_program(images)
    for name in ("layer4", "flatten", LOGITS):
        torch.testing.assert_close(read[name], out[name], rtol=1e-5, atol=1e-5)
    with pytest.raises(MintError, match="unknown layer.*valid names"):
        Target.from_external(weights, ["layer9"])


def test_timm_pretrained_weights_by_name_come_from_the_local_cache_only(tmp_path, monkeypatch):
    timm = pytest.importorskip("timm", reason="timm is the optional extra mint[timm]")
    from safetensors.torch import save_file

    # A Hugging Face cache holding timm's weights of a tiny test network, as `pretrained=True` leaves it.
    repo = tmp_path / "hub" / "models--timm--test_resnet.r160_in1k"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    net = timm.create_model("test_resnet", num_classes=1000).eval()
    save_file(net.state_dict(), repo / "snapshots" / "abc123" / "model.safetensors")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    kind = TimmTarget("test_resnet.r160_in1k", "pretrained", 1000)
    # the preprocessing of those weights (160 crop of a 168 resize, mean and std 0.5), not ImageNet's 224
    assert kind.preprocessing()["crop_size"] == 160 and kind.preprocessing()["image_size"] == 168
    assert kind.preprocessing()["mean"] == [0.5, 0.5, 0.5] and kind.image_size == 160
    loaded, sha256 = kind.network()
    assert (
        all(torch.equal(v, net.state_dict()[k]) for k, v in loaded.state_dict().items()) and len(sha256) == 64
    )
    target = Target.from_external(kind, ["global_pool"])
    acts = target(torch.rand(2, 3, 32, 32), torch.tensor([0, 1]))  # resized to 168, cropped to 160
    assert acts["logits"].shape == (2, 1000) and acts["global_pool"].dim() == 2
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))  # not cached: refused, never downloaded
    with pytest.raises(MintError, match="not in the local Hugging Face cache.*create_model"):
        TimmTarget("test_resnet.r160_in1k", "pretrained", 1000).network()
    with pytest.raises(MintError, match="no pretrained weights named 'test_resnet.nope'"):
        TimmTarget("test_resnet.nope", "pretrained", 1000)
