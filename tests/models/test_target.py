"""The target: read from its checkpoint exactly once, verified, frozen; bad checkpoints refused clearly."""

import os
import sys

import pytest
import torch

from mint.cli import main
from mint.errors import MintError
from mint.models import Target
from mint.records import load_target_checkpoint
from tests.conftest import detector_args

OPENED: list[str] = []  # files opened while `watching` holds a path
WATCHED: set[str] = set()


def _audit(event: str, args: tuple) -> None:
    if event == "open" and WATCHED and isinstance(args[0], str | os.PathLike):
        if os.fspath(args[0]) in WATCHED:
            OPENED.append(os.fspath(args[0]))


sys.addaudithook(_audit)  # sees every open() in Python code, whoever calls it (torch, numpy, mint)


def test_a_detector_fit_opens_the_target_checkpoint_exactly_once(tmp_path, tiny_target):
    small = [
        "--data.val_size=20",
        "--data.test_size=40",
        "--data.calibration_size=10",
        "--data.batch_size=20",
    ]
    WATCHED.add(str(tiny_target))
    try:
        cli = main(["fit", *detector_args(tmp_path, tiny_target, "--trainer.max_epochs=1", *small)])
    finally:
        WATCHED.clear()
    assert OPENED == [str(tiny_target)]  # read once: weights, split and sha256 from the same bytes
    assert cli.datamodule.target is cli.model.target  # one frozen target, shared
    assert cli.model.target_meta["sha256"] == load_target_checkpoint(tiny_target).sha256


def test_target_is_frozen_and_stays_in_eval_mode(tiny_target):
    target = Target.load(tiny_target, ["layer7"])
    target.train()
    assert not target.training and not any(p.requires_grad for p in target.parameters())
    assert target.shapes == {"layer7": (32,)} and target.num_classes == 10  # width 0.25: 128 -> 32


def test_missing_checkpoint_says_which_command_creates_it(tmp_path):
    with pytest.raises(MintError, match="configs/target_cifar10.yaml"):
        Target.load(tmp_path / "none.ckpt", ["layer7"])


def test_a_checkpoint_that_is_not_a_target(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "some.Other"}}, path)
    with pytest.raises(ValueError, match=r"not a mint target checkpoint \(some.Other"):
        Target.load(path, ["layer7"])
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(
        ValueError,
        match="not a valid checkpoint, or it contains code; mint loads checkpoints with weights_only",
    ):
        Target.load(tmp_path / "junk.ckpt", ["layer7"])


def test_class_count_mismatch_with_the_data(tiny_target):
    from mint.data import DetectorDataModule, FakeSource

    with pytest.raises(ValueError, match="num_classes=100 but the target"):
        DetectorDataModule(str(tiny_target), source=FakeSource(num_classes=100))


def test_unknown_layer_fails_at_once_with_valid_names(tiny_target):
    with pytest.raises(ValueError, match=r"valid names \(shape per image\): layer1 8x32x32, layer2"):
        Target.load(tiny_target, ["layer77"])
