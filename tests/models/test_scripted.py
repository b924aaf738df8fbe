"""TorchScript targets: the same layers as the weights and the exported program, read from the file."""

from __future__ import annotations

import copy
import os
import warnings

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch.export import Dim, export, save
from torchvision.models.feature_extraction import create_feature_extractor

from mint.errors import MintError
from mint.models.exported import ExportedTarget
from mint.models.scripted import ScriptedNetwork, ScriptTarget
from mint.models.torchvision_target import TorchvisionTarget


@pytest.fixture(scope="module")
def resnet_files(tmp_path_factory):
    """One ResNet-18 (10 classes) saved as safetensors, scripted, traced, exported, and a state_dict .pt."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    folder = tmp_path_factory.mktemp("scripted")
    example = torch.rand(3, 3, 32, 32)
    save_file(net.state_dict(), folder / "weights.safetensors")
    torch.save(net.state_dict(), folder / "weights.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
        scripted = torch.jit.script(net)
        torch.jit.save(scripted, folder / "scripted.pt")
        torch.jit.save(torch.jit.freeze(scripted), folder / "frozen.pt")  # freeze works on a copy
        torch.jit.save(torch.jit.trace(net, example, check_trace=False), folder / "traced.ts")
    save(export(net, (example,), dynamic_shapes={"x": {0: Dim("batch")}}), folder / "r.pt2")
    return net, folder


def test_weights_export_and_torchscript_read_the_same_layers(resnet_files):
    _, folder = resnet_files
    images = torch.rand(2, 3, 32, 32)  # another batch size than the one traced and exported
    weights, _ = TorchvisionTarget(
        "resnet18", str(folder / "weights.safetensors"), 10, image_size=32
    ).network()
    # bn1 as computed, before the in-place ReLU that follows it changes the same tensor: as a hook sees it.
    seen = {}
    weights.bn1.register_forward_hook(lambda module, args, out: seen.update(bn1=out.clone()))
    reference = create_feature_extractor(weights, {"layer2": "layer2", "layer4": "layer4", "fc": "fc"})(
        images
    )
    exported, _ = ExportedTarget(str(folder / "r.pt2"), image_size=32).network()
    from_pt2 = exported.read(images, ["layer2", "layer4", "fc"])
    for name in ("layer2", "layer4", "fc"):
        torch.testing.assert_close(from_pt2[name], reference[name], rtol=1e-5, atol=1e-5)
    for kind in ("scripted.pt", "traced.ts"):
        scripted, sha256 = ScriptTarget(str(folder / kind), image_size=32).network()
        from_ts = scripted.read(images, ["bn1", "layer2", "layer4", "fc", "output"])
        for name in ("layer2", "layer4", "fc"):
            torch.testing.assert_close(from_ts[name], reference[name], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(from_ts["bn1"], seen["bn1"], rtol=1e-5, atol=1e-5)
        assert (from_ts["bn1"] < 0).any()
        torch.testing.assert_close(from_ts["output"], reference["fc"], rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            torch.testing.assert_close(scripted(images), from_ts["fc"], rtol=0, atol=0)
        assert isinstance(scripted, ScriptedNetwork) and len(sha256) == 64
        assert not scripted.train().training and not scripted.module.training
    # A deep copy (as Lightning makes) compiles its own reader.
    assert copy.deepcopy(scripted).read(images[:1], ["layer4"])["layer4"].shape == (1, 512, 1, 1)


@pytest.mark.parametrize("kind", ["scripted.pt", "traced.ts"])
def test_layer_names_in_forward_order_end_with_the_logits(resnet_files, kind):
    _, folder = resnet_files
    names = ScriptTarget(str(folder / kind), image_size=32).network()[0].layer_names()
    top = [n for n in names if "." not in n]
    assert top == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    assert names[-1] == "fc" and "layer1.0.conv1" in names and "layer4.1.downsample" not in names
    # Every module of the network that computes something, as the exported program names them.
    exported, _ = ExportedTarget(str(folder / "r.pt2"), image_size=32).network()
    assert names == [n for n in exported.layer_names() if n != "flatten"]


def test_a_frozen_file_reads_only_its_output(resnet_files):
    net, folder = resnet_files
    frozen, _ = ScriptTarget(str(folder / "frozen.pt"), image_size=32).network()
    images = torch.rand(1, 3, 32, 32)
    assert frozen.layer_names() == ["output"]
    with torch.no_grad():
        torch.testing.assert_close(
            frozen.read(images, ["output"])["output"], net(images), rtol=1e-5, atol=1e-5
        )
    with pytest.raises(MintError, match=r"valid names: \['output'\] \(the file records no module calls"):
        frozen.read(images, ["layer4"])


def test_files_that_are_not_torchscript_are_refused(resnet_files, tmp_path):
    _, folder = resnet_files
    (tmp_path / "random.pt").write_bytes(os.urandom(2000))
    refusals = {
        folder / "weights.pt": "is a torch.save checkpoint",
        folder / "r.pt2": "is a torch.export program .* ExportedTarget",
        tmp_path / "random.pt": "is not a zip archive",
        tmp_path / "missing.pt": "TorchScript file not found",
        tmp_path: "TorchScript file is a folder",
    }
    for path, words in refusals.items():
        with pytest.raises(MintError, match=words) as refused:
            ScriptTarget(str(path)).network()
        assert "torch.jit.save(torch.jit.script(model.eval()), 'model.pt')" in str(refused.value)
    scripted, _ = ScriptTarget(str(folder / "scripted.pt"), image_size=32).network()
    with pytest.raises(MintError, match=r"unknown layer\(s\) \['layer9'\].*valid names: \['conv1', 'bn1'"):
        scripted.read(torch.rand(1, 3, 32, 32), ["layer9", "layer4"])
    with pytest.raises(MintError, match=r"does not run on images of shape \(1, 3, 32\)"):
        scripted.read(torch.rand(1, 3, 32), ["layer4"])


def test_mint_layers_and_the_frozen_target_agree_across_weights_torchscript_and_pt2(resnet_files, capsys):
    """`mint layers` lists the same top-level layers and shapes for all three files of one network,
    and a frozen `Target` built from each reads the same activations and logits."""
    from mint.models import Target
    from mint.models.layers import main as layers

    _, folder = resnet_files
    weights = ["--arch", "resnet18", "--weights", str(folder / "weights.safetensors"), "--num-classes", "10"]
    tables = {
        name: layers([*args, "--image-size", "32"])
        for name, args in (
            ("weights", weights),
            ("torchscript", ["--program", str(folder / "scripted.pt")]),
            ("pt2", ["--program", str(folder / "r.pt2")]),
        )
    }
    shapes = {name: {r["layer"]: r["shape"] for r in rows} for name, rows in tables.items()}
    for name in ("layer1", "layer4", "avgpool", "fc"):
        assert shapes["weights"][name] == shapes["torchscript"][name] == shapes["pt2"][name], name
    assert shapes["weights"]["layer4"] == (512, 1, 1) and "layer4" in capsys.readouterr().out
    images = torch.rand(3, 3, 32, 32)
    kinds = [
        TorchvisionTarget("resnet18", str(folder / "weights.safetensors"), 10, image_size=32),
        ScriptTarget(str(folder / "scripted.pt"), image_size=32),
        ExportedTarget(str(folder / "r.pt2"), image_size=32),
    ]
    outs = [Target.from_external(kind, ["layer3", "avgpool"])(images) for kind in kinds]
    for out in outs[1:]:
        for name in ("layer3", "avgpool", "logits"):
            torch.testing.assert_close(out[name], outs[0][name], rtol=1e-5, atol=1e-5)
    pooled = Target.from_external(kinds[1], ["layer3"], pool="max", pool_size=1)(images)["layer3"]
    torch.testing.assert_close(pooled, outs[0]["layer3"].amax((2, 3), keepdim=True))  # (B, C, 2, 2) -> 1 x 1
