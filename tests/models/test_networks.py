import pytest
import torch

from mint.models import (
    PAPER_LAYERS,
    CNNPath,
    Detector,
    MLPPath,
    PaperCNN,
    Target,
    build_classifier,
    readable_layers,
)


def test_paper_cnn_exposes_its_eight_layers_with_expected_shapes():
    net = PaperCNN(num_classes=10).eval()
    target = Target({"arch": "paper_cnn", "num_classes": 10}, list(PAPER_LAYERS), None)
    expected = {
        "layer1": (32, 32, 32),
        "layer2": (32, 32, 32),
        "layer3": (64, 16, 16),
        "layer4": (64, 16, 16),
        "layer5": (128, 8, 8),
        "layer6": (128, 8, 8),
        "layer7": (128,),
        "layer8": (10,),
    }
    assert target.shapes == expected
    assert readable_layers(net) == list(PAPER_LAYERS)


def test_width_multiplier_scales_layers():
    target = Target({"arch": "paper_cnn", "num_classes": 5, "width": 0.25}, ["layer1", "layer7"], None)
    assert target.shapes == {"layer1": (8, 32, 32), "layer7": (32,)}


def test_extracted_logits_equal_the_networks_output():
    target = Target({"arch": "paper_cnn", "num_classes": 10, "width": 0.25}, ["layer3"], None)
    x = torch.rand(4, 3, 32, 32)
    out = target(x)
    assert torch.allclose(out["logits"], target.net(x), atol=1e-6)
    assert not any(p.requires_grad for p in target.parameters())
    target.train()
    assert not target.training and not target.net.training


def test_unknown_layer_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown layer.*layer9.*valid names.*layer1"):
        Target({"arch": "paper_cnn", "num_classes": 10}, ["layer9"], None)


def test_torchvision_architectures_by_name():
    target = Target({"arch": "resnet18", "num_classes": 10}, ["layer4", "avgpool"], None)
    assert target.shapes == {"layer4": (512, 4, 4), "avgpool": (512, 1, 1)}  # 32x32 stem: no downsampling
    with pytest.raises(ValueError, match="unknown architecture 'resnet1'"):
        build_classifier("resnet1", 10, width=1.0, block_dropout=0.0, image_size=32)


def test_detector_paths_and_class_conditioning():
    shapes = {"layer2": (8, 32, 32), "layer7": (32,), "avgpool": (16, 1, 1)}
    acts = {name: torch.randn(6, *shape) for name, shape in shapes.items()} | {"logits": torch.randn(6, 3)}
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    for mode in ("none", "embedding", "per_class"):
        det = Detector(shapes, num_classes=3, class_conditioning=mode, calibrated_base=False)
        assert det(acts, labels).shape == (6,)
    det = Detector(shapes, num_classes=3)
    assert isinstance(det.paths["layer2"], CNNPath)
    assert isinstance(det.paths["layer7"], MLPPath) and isinstance(det.paths["avgpool"], MLPPath)
    with pytest.raises(ValueError, match="CNN path needs"):
        Detector({"layer7": (32,)}, 3, path_kind="cnn")


def test_per_class_head_reads_the_true_class_unit():
    det = Detector({"layer7": (4,)}, 3, output_features=False, calibrated_base=False).eval()
    acts = {"layer7": torch.randn(2, 4)}
    full = det.head(det.paths["layer7"](acts["layer7"]))
    assert torch.allclose(det(acts, torch.tensor([2, 0])), torch.stack([full[0, 2], full[1, 0]]))


def test_every_option_has_one_default():
    """The LightningModules expose the networks' options with the networks' own defaults."""
    import inspect

    from mint.models.detector import OPTIONS
    from mint.tasks import DetectorModule, TargetModule

    module, net = inspect.signature(DetectorModule).parameters, inspect.signature(Detector).parameters
    assert {name: module[name].default for name in OPTIONS} == {name: net[name].default for name in OPTIONS}
    module, net = inspect.signature(TargetModule).parameters, inspect.signature(PaperCNN).parameters
    for name in ("width", "block_dropout", "image_size"):
        assert module[name].default == net[name].default, name
