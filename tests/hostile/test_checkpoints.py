"""Hostile checkpoints: code in a pickle, code named by a record, damaged files, the wrong kind."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from tests.conftest import CONFIGS, detector_args, fit_args, quiet
from tests.hostile.conftest import leftovers


class Payload:
    """Pickles as a call of os.system: loading it unsafely would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _payload_checkpoint(path, marker, base):
    ckpt = torch.load(base, weights_only=True)
    ckpt["hyper_parameters"]["payload"] = Payload(marker)
    torch.save(ckpt, path)
    return path


def test_a_pickle_payload_in_a_detector_checkpoint_never_runs(tmp_path, refused, tiny_detector):
    marker = tmp_path / "pwned"
    evil = _payload_checkpoint(tmp_path / "evil.ckpt", marker, tiny_detector)
    out = tmp_path / "audit"
    refused(["audit", "--ckpt", evil, "--images", tmp_path, "--output", out], "contains code", "never runs")
    refused(["test", *detector_args(tmp_path, tiny_detector), f"--ckpt_path={evil}"], "contains code")
    assert not marker.exists() and not out.exists() and not leftovers(tmp_path)


def test_a_pickle_payload_in_a_target_checkpoint_never_runs(tmp_path, refused, tiny_target):
    marker = tmp_path / "pwned"
    evil = _payload_checkpoint(tmp_path / "evil.ckpt", marker, tiny_target)
    refused(["fit", *detector_args(tmp_path, evil), "--trainer.fast_dev_run=1"], "contains code")
    assert not marker.exists()


def test_a_checkpoint_naming_a_foreign_source_class_does_not_import_it(
    tmp_path, refused, tiny_target, monkeypatch
):
    marker = tmp_path / "imported"
    (tmp_path / "evilsource.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Evil: pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # the module is importable: only the check stops it
    ckpt = torch.load(tiny_target, weights_only=True)
    ckpt["TargetDataModule"]["manifest"]["source"] = {"class_path": "evilsource.Evil", "init_args": {}}
    torch.save(ckpt, tmp_path / "target.ckpt")
    args = detector_args(tmp_path, tmp_path / "target.ckpt", "--trainer.fast_dev_run=1")
    refused(["fit", *args], "evilsource.Evil", "not one of mint's own sources", "--data.source")
    assert not marker.exists() and "evilsource" not in sys.modules


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", ["empty"]),
        (b"PK\x03\x04 truncated zip", ["not a valid checkpoint"]),
        (bytes(range(256)) * 8, ["not a valid checkpoint", "weights_only=True"]),
    ],
    ids=["empty", "truncated", "random-bytes"],
)
def test_damaged_checkpoints_are_refused_by_every_command(tmp_path, refused, tiny_target, content, words):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(content)
    refused(["test", *detector_args(tmp_path, tiny_target), f"--ckpt_path={bad}"], *words)
    refused(["fit", *detector_args(tmp_path, bad), "--trainer.fast_dev_run=1"], *words)
    refused(["audit", "--ckpt", bad, "--images", tmp_path, "--output", tmp_path / "out"], *words)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_a_folder_or_a_missing_file_as_checkpoint(tmp_path, refused, tiny_target):
    refused(["test", *detector_args(tmp_path, tiny_target), f"--ckpt_path={tmp_path}"], "is a folder")
    refused(
        ["test", *detector_args(tmp_path, tiny_target), "--ckpt_path=nope.ckpt"], "not found", "nope.ckpt"
    )
    refused(["audit", "--ckpt", tmp_path, "--images", tmp_path, "--output", tmp_path / "o"], "is a folder")


def test_the_wrong_kind_of_checkpoint(tmp_path, refused, tiny_target, tiny_detector):
    # a target checkpoint given to a detector's test, and a detector checkpoint to a target's test
    args = detector_args(tmp_path, tiny_target)
    refused(["test", *args, f"--ckpt_path={tiny_target}"], "checkpoint of mint.tasks.TargetModule", "config")
    target_test = ["test", "--config", CONFIGS / "target_cifar10.yaml", *quiet(tmp_path)]
    refused([*target_test, f"--ckpt_path={tiny_detector}"], "checkpoint of mint.tasks.DetectorModule")
    refused(
        ["audit", "--ckpt", tiny_target, "--images", tmp_path, "--output", tmp_path / "o"],
        "target checkpoint",
    )
    refused(["fit", *detector_args(tmp_path, tiny_detector), f"--ckpt_path={tiny_target}"], "TargetModule")
    refused(
        [*fit_args(tmp_path), "--trainer.fast_dev_run=1", f"--ckpt_path={tiny_detector}"], "DetectorModule"
    )


def test_evaluating_without_a_checkpoint_is_refused(tmp_path, refused, tiny_target):
    for sub in ("test", "validate"):
        refused([sub, *detector_args(tmp_path, tiny_target)], f"mint {sub}. needs --ckpt_path", "untrained")


@pytest.mark.parametrize("where", ["model", "optimizer"])
def test_a_checkpoint_naming_a_foreign_class_in_its_hyperparameters_is_not_imported(
    tmp_path, refused, tiny_target, monkeypatch, where
):
    marker = tmp_path / "imported"
    (tmp_path / "evilmod.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass TargetModule: pass\nclass Adam: pass\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    ckpt = torch.load(tiny_target, weights_only=True)
    if where == "model":
        ckpt["hyper_parameters"]["_class_path"] = "evilmod.TargetModule"
    else:
        ckpt["hyper_parameters"]["optimizer"] = {"class_path": "evilmod.Adam", "init_args": {}}
    torch.save(ckpt, tmp_path / "x.ckpt")
    target_test = ["test", "--config", CONFIGS / "target_cifar10.yaml", *quiet(tmp_path)]
    refused([*target_test, f"--ckpt_path={tmp_path / 'x.ckpt'}"], "evilmod", "does not import classes")
    assert not marker.exists() and "evilmod" not in sys.modules


def test_a_fifo_as_checkpoint_is_refused_without_waiting(tmp_path, refused, tiny_target):
    os.mkfifo(tmp_path / "pipe.ckpt")
    refused(["test", *detector_args(tmp_path, tiny_target), f"--ckpt_path={tmp_path / 'pipe.ckpt'}"], "FIFO")
    refused(
        ["audit", "--ckpt", tmp_path / "pipe.ckpt", "--images", tmp_path, "--output", tmp_path / "o"], "FIFO"
    )


@pytest.mark.parametrize(
    "init_args, words",
    [
        ({"num_classes": 10, "train_size": 10**8}, "100000000 images"),
        ({"num_classes": 10, "image_size": 100_000}, "image_size 100000"),
    ],
)
def test_a_recorded_source_asking_for_unbounded_work_is_refused(
    tmp_path, refused, tiny_target, init_args, words
):
    ckpt = torch.load(tiny_target, weights_only=True)
    ckpt["TargetDataModule"]["manifest"]["source"] = {
        "class_path": "mint.data.FakeSource",
        "init_args": init_args,
    }
    torch.save(ckpt, tmp_path / "target.ckpt")
    refused(
        ["fit", *detector_args(tmp_path, tmp_path / "target.ckpt", "--trainer.fast_dev_run=1")],
        words,
        "--data.source",
    )


def test_a_recorded_group_pattern_with_nested_repetition_is_refused():
    from mint.data.sources import source_from_config
    from mint.errors import MintError

    record = {
        "class_path": "mint.data.ImageFolderSource",
        "init_args": {"train": ".", "group_pattern": "^((.+)+)+Z"},
    }
    with pytest.raises(MintError, match="nested repetition"):
        source_from_config(record)
    record["init_args"]["group_pattern"] = r"^(\d+)_"  # an ordinary pattern passes
    assert source_from_config(record).group_pattern == r"^(\d+)_"


def test_a_detector_recording_a_removed_option_reads_as_before_or_is_refused(
    tmp_path, refused, tiny_target, tiny_detector
):
    """mint removed `class_standardize` (no gain measured): a checkpoint recording it off is tested as
    before; on, it is refused by `mint test` and `mint audit`; an option mint never had, in one line."""
    from mint.cli import main

    sizes = ["--data.val_size=40", "--data.calibration_size=40", "--data.test_size=60"]
    args = detector_args(tmp_path, tiny_target, "--data.layers=[layer8]", *sizes, "--data.batch_size=50")
    ckpt = torch.load(tiny_detector, weights_only=True)
    for value in (False, True, "other"):
        hparams = dict(ckpt["hyper_parameters"])
        hparams["class_standardize" if value != "other" else "standardize_more"] = value
        torch.save({**ckpt, "hyper_parameters": hparams}, tmp_path / f"{value}.ckpt")
    cli = main(["test", *args, f"--ckpt_path={tmp_path / 'False.ckpt'}"])
    assert "class_standardize" not in cli.model.hparams
    assert 0 <= cli.trainer.callback_metrics["test/auroc"] <= 1
    refused(["test", *args, f"--ckpt_path={tmp_path / 'True.ckpt'}"], "class_standardize=True", "train again")
    audit = ["--images", tmp_path / "False.ckpt", "--output", tmp_path / "audit"]
    refused(["audit", "--ckpt", tmp_path / "True.ckpt", *audit], "class_standardize=True", "no gain")
    refused(["test", *args, f"--ckpt_path={tmp_path / 'other.ckpt'}"], "standardize_more", "does not have")
