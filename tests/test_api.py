"""mint from Python: `mint.audit_model`, `mint.score` and `mint.audit_images` are the CLI's code."""

from __future__ import annotations

import csv
import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import load_file

import mint
from mint.cli import main
from mint.errors import MintError
from mint.records.scores import read_scores_npz
from tests.conftest import CONFIGS, quiet

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # as configs/mint_your_model.yaml
SIZES = {"test_size": 40, "val_size": 20, "calibration_size": 30, "batch_size": 32, "epochs": 1}


@pytest.fixture(scope="module")
def known(model_files):
    """The ResNet-18 of `model_files` as the model object a notebook holds, and the sample's images."""
    net = torchvision.models.resnet18(num_classes=10).eval()
    net.load_state_dict(load_file(model_files / "resnet18.safetensors"))
    data = np.load(files("mint") / "sample" / "cifar10_sample_train.npz")
    return {"net": net, "folder": model_files, "images": data["images"], "labels": data["labels"]}


@pytest.fixture(scope="module")
def result(known, tmp_path_factory):
    """`mint.audit_model` on the model object, the known sets given as arrays."""
    out = tmp_path_factory.mktemp("api_run")
    members = (known["images"][:150], known["labels"][:150])
    nonmembers = torch.from_numpy(known["images"][150:300]).permute(0, 3, 1, 2).float() / 255  # (N, 3, H, W)
    return mint.audit_model(known["net"], members, nonmembers, ["avgpool"], mean=MEAN, std=STD, output=out,
                            class_conditioning="per_class", **SIZES)  # fmt: skip


def test_audit_model_gives_the_results_of_mint_fit_and_test(known, result, tmp_path):
    """The same sets, detector and numbers as the CLI with configs/mint_your_model.yaml on the same files."""
    args = ["--config", str(CONFIGS / "mint_your_model.yaml"), *quiet(tmp_path),
            f"--data.cache_dir={tmp_path}/c",
            f"--data.init_args.target.init_args.weights={known['folder'] / 'resnet18.safetensors'}",
            f"--data.init_args.members={known['folder'] / 'members.npz'}",
            f"--data.init_args.nonmembers={known['folder'] / 'nonmembers.npz'}", "--data.val_size=20",
            "--data.test_size=40", "--data.calibration_size=30", "--data.batch_size=32"]  # fmt: skip
    fit = main(["fit", *args, "--trainer.max_epochs=1"])
    test = main(["test", *args, f"--ckpt_path={fit.trainer.checkpoint_callback.best_model_path}"])
    cli = mint.records.report.TestReport.read(Path(test.trainer.log_dir))
    assert result.report.mint.auroc == cli.mint.auroc and result.report.mint.members == cli.mint.members > 0
    assert {k: v.auroc for k, v in result.report.attacks.items()} == {
        k: v.auroc for k, v in cli.attacks.items()
    }
    assert result.report.target_gap == cli.target_gap
    ours, theirs = (
        read_scores_npz(result.run / "test_scores.npz"),
        read_scores_npz(Path(test.trainer.log_dir) / "test_scores.npz"),
    )
    assert ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k]) for k in ours)
    record = result.report.raw["target"]  # the model is named by its class and its weights' hash
    assert record["kind"] == "ModuleTarget" and "torchvision.models.resnet.ResNet" in record["arch"]
    assert result.checkpoint.is_file() and (result.run / "roc_test.png").is_file()
    assert "MINT AUROC" in str(result) and "gap" in str(result)


def test_the_model_given_is_left_as_it_was(known, result):
    net = known["net"]  # (eval mode when given: so it stays; mint froze and moved its own copy)
    assert not net.training and all(p.requires_grad for p in net.parameters())
    saved = load_file(known["folder"] / "resnet18.safetensors")
    assert all(torch.equal(value, saved[key]) for key, value in net.state_dict().items())


def test_score_and_audit_images_are_mint_audits_code(known, result, tmp_path):
    suspect = (known["images"][300:340], known["labels"][300:340])
    scores = mint.score(result, suspect, model=known["net"])
    assert scores.scores.dtype == torch.float64 and len(scores.scores) == 40 == len(scores.names)
    assert torch.allclose(scores.member_probability, torch.sigmoid(scores.scores))
    assert scores.class_used.tolist() == suspect[1][:40].tolist()  # labelled: the labels are used
    np.savez(tmp_path / "suspect.npz", images=suspect[0], labels=suspect[1])
    set_audit = mint.audit_images(result, tmp_path / "suspect.npz", tmp_path / "report", model=known["net"])
    assert 0 <= set_audit.p_value <= 1 and set_audit.n_audited == 40 and set_audit.verdict
    assert (tmp_path / "report" / "report.html").is_file()
    with (tmp_path / "report" / "scores.csv").open() as f:  # the report's scores are `score`'s
        written = [float(row["score"]) for row in csv.DictReader(f)]
    assert np.allclose(written, scores.scores.numpy(), rtol=1e-7)
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["target"]["kind"] == "ModuleTarget" and summary["p_value"] == set_audit.p_value


def test_a_detector_of_a_model_object_needs_the_model_again(known, result, tmp_path, refused):
    """A file records the model's weights and class name, not its class: `mint audit` says so."""
    np.savez(tmp_path / "suspect.npz", images=known["images"][300:320])
    images = tmp_path / "suspect.npz"
    refused(["audit", "--ckpt", result.checkpoint, "--images", images, "--output", tmp_path / "r"],
            "given in Python", "give the model again")  # fmt: skip
    with pytest.raises(MintError, match="was a torchvision.models.resnet.ResNet, but the model given is a"):
        mint.score(result, tmp_path / "suspect.npz", model=torch.nn.Linear(2, 2))


def test_what_the_api_refuses(known, tmp_path):
    net = known["net"]
    with pytest.raises(MintError, match="must be a torch.nn.Module, got str"):
        mint.audit_model(
            "resnet18", known["images"][:10], known["images"][10:20], ["avgpool"], output=tmp_path
        )
    with pytest.raises(MintError, match="give image_size"):
        folder = str(known["folder"] / "members.npz")
        mint.audit_model(net, folder, str(known["folder"] / "nonmembers.npz"), ["avgpool"], output=tmp_path)
    with pytest.raises(MintError, match=r"images must be \(N, H, W, 3\) arrays"):
        mint.audit_model(net, np.zeros((4, 4)), known["images"][:10], ["avgpool"], output=tmp_path)
    with pytest.raises(MintError, match="unknown layer"):
        mint.audit_model(net, known["images"][:50], known["images"][50:100], ["layer9"], output=tmp_path)
    with pytest.raises(AttributeError, match="no attribute 'audit_modle'"):
        mint.audit_modle  # noqa: B018


def test_score_needs_no_calibration_set(known, tmp_path):
    """Scoring images needs only the detector; an audit of a set also needs the calibration scores."""
    images = known["images"][:100], known["labels"][:100]
    nonmembers = known["images"][100:200]
    with pytest.raises(MintError, match="training set holds .* fewer than batch_size=64"):
        mint.audit_model(known["net"], images, nonmembers, ["avgpool"], output=tmp_path, calibration_size=0)
    sizes = {"calibration_size": 0, "batch_size": 16, "test_size": 20, "val_size": 10, "epochs": 1}
    result = mint.audit_model(known["net"], images, nonmembers, ["avgpool"], output=tmp_path, **sizes)
    assert len(mint.score(result, known["images"][300:310], model=known["net"], device="auto").scores) == 10
    with pytest.raises(MintError, match="holds no calibration scores"):
        mint.audit_images(result, known["images"][300:310], tmp_path / "report", model=known["net"])


def test_an_option_the_detector_does_not_have_is_refused_before_any_work(tmp_path):
    model = torchvision.models.resnet18(num_classes=10)
    for option, words in (("class_standardize", "mint removed `class_standardize`"), ("lr", "Its options")):
        with pytest.raises(MintError, match=words):
            mint.audit_model(model, tmp_path / "m", tmp_path / "n", layers=["avgpool"], **{option: True})
    assert not any(tmp_path.iterdir())  # nothing read or written
