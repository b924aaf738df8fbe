"""A Hugging Face image classifier folder as a target: built from its config, safetensors weights, no code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from mint.audit.command import main as audit
from mint.cli import main
from mint.errors import MintError
from mint.models import HuggingFaceTarget, Target
from mint.models.layers import main as layers
from tests.conftest import CONFIGS, quiet

transformers = pytest.importorskip("transformers", reason="HuggingFaceTarget needs transformers (.[hf])")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny transformers ResNet (10 classes) saved as save_pretrained does, with its preprocessor."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("hf_resnet")
    config = transformers.ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=10
    )
    model = transformers.ResNetForImageClassification(config).eval()
    model.save_pretrained(out)  # config.json + model.safetensors
    processor = {"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3], "size": {"shortest_edge": 32}}
    (out / "preprocessor_config.json").write_text(json.dumps(processor))
    return out, model


def test_the_model_reads_as_transformers_runs_it(folder):
    path, model = folder
    target = Target.from_external(HuggingFaceTarget(str(path)), ["resnet.pooler", "resnet.encoder.stages.0"])
    assert target.image_size == 32 and target.num_classes == 10
    assert target.shapes == {"resnet.pooler": (16, 1, 1), "resnet.encoder.stages.0": (8, 8, 8)}
    images = torch.rand(4, 3, 32, 32)
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(3, 1, 1)
    normalized = (images - mean) / std
    with torch.no_grad():
        expected = model(pixel_values=normalized).logits
        out = target(images, gradients=False)
    assert torch.allclose(out["logits"], expected, atol=1e-5)  # the preprocessor's mean and std applied
    record = target.record()
    assert record["kind"] == "HuggingFaceTarget" and record["preprocessing"]["mean"] == [0.5, 0.4, 0.3]
    sha256 = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    assert target.meta["sha256"] == sha256  # the weights file's own hash, as sha256sum prints it
    rows = layers(["--hf", str(path), "--all"])
    listed = {r["layer"] for r in rows}  # (the classifier head gives the logits themselves: `output`)
    assert {"resnet.pooler", "output"} <= listed and "classifier" not in listed


def test_a_detector_fits_tests_and_audits_on_it(folder, model_files, tmp_path):
    path, _ = folder
    args = [
        "--config", str(CONFIGS / "mint_your_model.yaml"), *quiet(tmp_path), f"--data.cache_dir={tmp_path}/c",
        "--data.init_args.target=mint.models.HuggingFaceTarget",
        f"--data.init_args.target.init_args.folder={path}",
        "--data.init_args.layers=[resnet.pooler]", f"--data.init_args.members={model_files / 'members.npz'}",
        f"--data.init_args.nonmembers={model_files / 'nonmembers.npz'}", "--data.val_size=20",
        "--data.test_size=40", "--data.calibration_size=30", "--data.batch_size=32",
        "--data.balance=global",  # (a random model predicts few classes: per-class balance trims most)
    ]  # fmt: skip
    fit = main(["fit", *args, "--trainer.max_epochs=1"])
    ckpt = fit.trainer.checkpoint_callback.best_model_path
    test = main(["test", *args, f"--ckpt_path={ckpt}"])
    results = json.loads((Path(test.trainer.log_dir) / "test_results.json").read_text())
    assert results["target"]["kind"] == "HuggingFaceTarget" and 0 <= results["mint"]["auroc"] <= 1
    out = tmp_path / "audit"  # the detector checkpoint carries the weights; the folder gives the architecture
    summary = audit(["--ckpt", ckpt, "--images", str(model_files / "suspect.npz"), "--output", str(out)])
    assert summary["n_audited"] == 40 and summary["target"]["kind"] == "HuggingFaceTarget"


def test_what_is_refused(folder, tmp_path):
    _, model = folder
    with pytest.raises(MintError, match="not a Hugging Face model folder"):
        HuggingFaceTarget(str(tmp_path))
    pickled = tmp_path / "pickled"
    model.save_pretrained(pickled, safe_serialization=False)  # pytorch_model.bin: a pickle
    if (pickled / "model.safetensors").exists():  # (transformers that always write safetensors)
        (pickled / "model.safetensors").unlink()
    with pytest.raises(MintError, match="no model.safetensors; mint reads safetensors weights only"):
        HuggingFaceTarget(str(pickled)).network()
    remote = tmp_path / "remote"
    model.save_pretrained(remote)
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageClassification": "evil.Model"}
    (remote / "config.json").write_text(json.dumps(config))
    with pytest.raises(MintError, match="code of its own"):
        HuggingFaceTarget(str(remote)).network()


def test_configs_transformers_cannot_read_or_that_name_code_are_refused_in_a_line(folder, tmp_path):
    _, model = folder
    for name, change, words in (
        ("custom", {"model_type": "my_own_net", "auto_map": {"AutoConfig": "net.Config"}}, "code of its own"),
        ("unknown", {"model_type": "no_such_model_type"}, "transformers cannot read its config"),
    ):
        out = tmp_path / name
        model.save_pretrained(out)
        config = json.loads((out / "config.json").read_text()) | change
        (out / "config.json").write_text(json.dumps(config))
        with pytest.raises(MintError, match=words):
            HuggingFaceTarget(str(out)).network()


def test_a_config_without_return_dict_still_gives_the_logits(folder, tmp_path):
    _, model = folder
    model.save_pretrained(tmp_path / "tuples")
    config = json.loads((tmp_path / "tuples" / "config.json").read_text()) | {"return_dict": False}
    (tmp_path / "tuples" / "config.json").write_text(json.dumps(config))
    target = Target.from_external(
        HuggingFaceTarget(str(tmp_path / "tuples"), image_size=32), ["resnet.pooler"]
    )
    assert target.output_shape == (10,)
