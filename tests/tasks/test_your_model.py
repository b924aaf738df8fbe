"""A detector on a classifier trained elsewhere: weights or programs, known members / non-members."""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import save_file

from mint.audit.command import main as audit
from mint.cli import main
from mint.errors import MintError
from tests.conftest import CONFIGS, quiet

CONFIG = str(CONFIGS / "mint_your_model.yaml")
SIZES = ["--data.val_size=20", "--data.test_size=40", "--data.calibration_size=30", "--data.batch_size=32"]


def target_args(folder, *extra: str) -> list[str]:
    return [
        f"--data.init_args.target.init_args.weights={folder / 'resnet18.safetensors'}",
        f"--data.init_args.members={folder / 'members.npz'}",
        f"--data.init_args.nonmembers={folder / 'nonmembers.npz'}",
        *SIZES,
        *extra,
    ]


def test_the_shipped_config_runs(model_files, tmp_path):
    cli = main(["fit", "--config", CONFIG, *target_args(model_files), *quiet(tmp_path),
                "--trainer.fast_dev_run=true", f"--data.cache_dir={tmp_path / 'cache'}"])  # fmt: skip
    assert cli.trainer.state.finished and cli.model.target.meta["kind"] == "TorchvisionTarget"


def test_fit_test_and_audit_record_the_target_and_stand_alone(model_files, tmp_path, capsys):
    args = ["--config", CONFIG, *target_args(model_files), *quiet(tmp_path), f"--data.cache_dir={tmp_path}/c"]
    cli = main(["fit", *args, "--trainer.max_epochs=1"])
    ckpt = cli.trainer.checkpoint_callback.best_model_path
    known = cli.datamodule.manifest()["known"]
    assert (known["members"], known["nonmembers"], known["labels_predicted"]) == (150, 150, 150)
    test = main(["test", *args, f"--ckpt_path={ckpt}"])
    results = json.loads(Path(test.trainer.log_dir, "test_results.json").read_text())
    record = results["target"]
    sha256 = hashlib.sha256((model_files / "resnet18.safetensors").read_bytes()).hexdigest()
    assert record["kind"] == "TorchvisionTarget" and record["sha256"] == sha256
    assert record["preprocessing"]["image_size"] == 32 and record["preprocessing"]["mean"][0] == 0.4914
    assert results["controls"]["class_only"]["auroc"] == 0.5  # both sides hold the same class mix
    # The training-set size is unknown: delta 1 / the 150 known members (a bound there holds below it).
    assert results["privacy"]["delta"] == 1 / 150 and results["privacy"]["claimed_epsilon"] is None
    saved = torch.load(ckpt, weights_only=True)
    assert saved["mint_target"]["config"]["init_args"]["arch"] == "resnet18"
    # The checkpoint carries the weights: the audit needs no weights file.
    (model_files / "resnet18.safetensors").rename(tmp_path / "moved.safetensors")
    try:
        summary = audit(["--ckpt", ckpt, "--images", str(model_files / "suspect.npz"),
                         "--output", str(tmp_path / "audit"), "--no-progress-bar"])  # fmt: skip
    finally:
        (tmp_path / "moved.safetensors").rename(model_files / "resnet18.safetensors")
    assert summary["target"]["kind"] == "TorchvisionTarget" and summary["target"]["sha256"] == sha256
    html = (tmp_path / "audit" / "report.html").read_text()
    assert "TorchvisionTarget" in html and "0.4914" in html


def test_a_torchscript_target_audits_only_the_file_it_was_trained_on(model_files, tmp_path):
    program = tmp_path / "model.pt"
    program.write_bytes((model_files / "resnet18.pt").read_bytes())
    cli = main(["fit", "--config", CONFIG, *target_args(model_files), *quiet(tmp_path),
                "--data.init_args.target=mint.models.ScriptTarget",
                f"--data.init_args.target.init_args.program={program}",
                "--data.init_args.target.init_args.image_size=32", "--data.init_args.layers=[layer4]",
                "--trainer.max_epochs=1", "--data.cache_dir=null"])  # fmt: skip
    ckpt = cli.trainer.checkpoint_callback.best_model_path
    assert cli.model.target.shapes == {"layer4": (512, 1, 1)}
    out = ["--images", str(model_files / "suspect.npz"), "--no-progress-bar"]
    assert audit(["--ckpt", ckpt, *out, "--output", str(tmp_path / "a")])["target"]["kind"] == "ScriptTarget"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        changed = torch.jit.load(program)
        changed.fc.bias.data += 1
        torch.jit.save(changed, program)
    with pytest.raises(MintError, match="has changed since the detector was trained"):
        audit(["--ckpt", ckpt, *out, "--output", str(tmp_path / "b")])


def test_a_factory_target_runs_only_when_the_user_names_it(model_files, tmp_path, monkeypatch):
    (tmp_path / "my_audited_nets.py").write_text(
        "import torchvision\n\ndef small(num_classes=10):\n"
        "    return torchvision.models.resnet18(num_classes=num_classes)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_audited_nets", raising=False)
    cli = main(["fit", "--config", CONFIG, *target_args(model_files), *quiet(tmp_path),
                "--data.init_args.target=mint.models.FactoryTarget",
                "--data.init_args.target.init_args.factory=my_audited_nets:small",
                f"--data.init_args.target.init_args.weights={model_files / 'resnet18.safetensors'}",
                "--data.init_args.target.init_args.image_size=32",
                "--trainer.max_epochs=1", "--data.cache_dir=null"])  # fmt: skip
    ckpt = cli.trainer.checkpoint_callback.best_model_path
    out = ["--ckpt", ckpt, "--images", str(model_files / "suspect.npz"), "--no-progress-bar"]
    with pytest.raises(MintError, match="--trust-factory my_audited_nets:small"):
        audit([*out, "--output", str(tmp_path / "a")])
    assert not (tmp_path / "a").exists()
    assert (
        audit([*out, "--output", str(tmp_path / "b"), "--trust-factory", "my_audited_nets:small"])[
            "n_audited"
        ]
        == 40
    )


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--data.init_args.members=null", "--data.init_args.nonmembers=null"],
         ["trained outside mint", "--data.members"]),
        (["--data.test_size=140"], ["not enough images", "150 members"]),
        (["--data.init_args.layers=[layer9]"], ["unknown layer", "layer4"]),
        (["--data.init_args.target_ckpt=x.ckpt"], ["name the target once"]),
        (["--data.init_args.target.init_args.num_classes=100"], ["num_classes: 10"]),
        (["--data.init_args.target.init_args.arch=resnet181"],
         ["unknown torchvision architecture", "resnet18"]),
    ],
)  # fmt: skip
def test_bad_requests_say_what_to_do(model_files, tmp_path, refused, extra, words):
    args = ["fit", "--config", CONFIG, *target_args(model_files), *quiet(tmp_path), *extra]
    refused([*args, "--trainer.fast_dev_run=true", "--data.cache_dir=null"], *words)


def test_a_factory_named_only_by_a_checkpoint_is_refused(model_files, tmp_path, refused):
    """LightningCLI takes a checkpoint's hyperparameters as the model's arguments: a module that names a
    target (as older detectors did) is refused before anything is built, so the factory never runs."""
    ckpt = tmp_path / "factory.ckpt"
    torch.save({"hyper_parameters": {"_class_path": "mint.tasks.DetectorModule", "target": {
        "class_path": "mint.models.FactoryTarget", "init_args": {"factory": "os:system"}}},
        "state_dict": {}}, ckpt)  # fmt: skip
    refused(
        ["test", "--config", CONFIG, *target_args(model_files), f"--ckpt_path={ckpt}"], "older mint", "target"
    )


def test_known_images_of_another_size_are_resized_and_said(model_files, tmp_path):
    from mint.data import DetectorDataModule
    from mint.models import TorchvisionTarget

    data = np.load(model_files / "members.npz")
    big = np.repeat(np.repeat(data["images"], 2, axis=1), 2, axis=2)  # (150, 64, 64, 3)
    np.savez(tmp_path / "big.npz", images=big, labels=data["labels"])
    kind = TorchvisionTarget("resnet18", str(model_files / "resnet18.safetensors"), 10, image_size=32)
    dm = DetectorDataModule(
        target=kind, layers=["avgpool"], members=str(tmp_path / "big.npz"),
        nonmembers=str(model_files / "nonmembers.npz"), val_size=10, test_size=20, calibration_size=0,
        cache_dir=None,
    )  # fmt: skip
    known = dm.manifest()["known"]
    assert any("resized to 32x32" in note for note in known["notes"]), known["notes"]
    assert dm.sets.found.images.shape[1:] == (32, 32, 3)
    for rows in dm.sets.portions.values():  # every set: as many members as non-members per class
        labels, members = dm.sets.labels[rows], dm.sets.members[rows]
        assert np.array_equal(*(np.bincount(labels[members == s], minlength=10) for s in (1, 0)))


def test_maps_too_large_for_the_disk_are_refused_with_the_way_out(
    model_files, tmp_path, refused, monkeypatch
):
    """A cache that cannot fit says how much it needs, the largest layer, and the pooling option."""
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(
        "mint.data.activation_cache.shutil.disk_usage",
        # the required 256 MiB margin + 0.5 MiB: room for pooled maps, not for layer1 whole (1 MiB here)
        lambda path: usage(1 << 40, 0, int(256.5 * 2**20)),
    )
    args = [
        "fit",
        "--config",
        CONFIG,
        *target_args(model_files),
        *quiet(tmp_path),
        "--trainer.fast_dev_run=true",
    ]
    layers = "--data.init_args.layers=[layer1,avgpool]"  # layer1: 64 x 8 x 8 per image
    refused([*args, layers, f"--data.cache_dir={tmp_path / 'cache'}"], "MiB", "layer1", "pool avg")
    cli = main([*args, layers, f"--data.cache_dir={tmp_path / 'cache2'}", "--data.init_args.pool=avg",
                "--data.init_args.pool_size=1"])  # fmt: skip
    assert cli.model.target.shapes["layer1"] == (64, 1, 1)


def test_a_test_refuses_a_target_whose_weights_changed_since_training(model_files, tmp_path, refused):
    """The activations of other weights would be scored as if they were the detector's target's."""
    import shutil

    weights = tmp_path / "resnet18.safetensors"
    shutil.copy(model_files / "resnet18.safetensors", weights)
    moved = f"--data.init_args.target.init_args.weights={weights}"
    args = [
        "--config",
        CONFIG,
        *target_args(model_files),
        moved,
        *quiet(tmp_path),
        f"--data.cache_dir={tmp_path}/c",
    ]
    ckpt = main(["fit", *args, "--trainer.max_epochs=1"]).trainer.checkpoint_callback.best_model_path
    torch.manual_seed(1)
    save_file(torchvision.models.resnet18(num_classes=10).state_dict(), weights)  # retrained, same path
    refused(["test", *args, f"--ckpt_path={ckpt}"], "trained on the target .* but the target given now")
