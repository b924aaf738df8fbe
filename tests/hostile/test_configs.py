"""Hostile settings: typos, wrong types, values out of range, impossible sizes, unusable folders."""

from __future__ import annotations

import pytest

from tests.conftest import detector_args, fit_args, read_only

FAST = ["--trainer.fast_dev_run=1", "--data.num_workers=0"]

TARGET_CASES = {
    "unknown data key": (
        ["--data.bogus=1"],
        [r"--data\.bogus is not an option of mint\.data\.TargetDataModule"],
    ),
    "unknown trainer key": (["--trainer.bogus=1"], ["unrecognized arguments: --trainer.bogus"]),
    "wrong type": (["--data.batch_size=abc"], [r"--data\.batch_size=abc: expected a value of type int"]),
    "wrong float": (["--model.width=wide"], [r"--model\.width=wide: expected a value of type float"]),
    "member_fraction 0": (["--data.member_fraction=0"], [r"member_fraction must be in \(0, 1\), got 0"]),
    "member_fraction 1.5": (
        ["--data.member_fraction=1.5"],
        [r"member_fraction must be in \(0, 1\), got 1.5"],
    ),
    "batch_size 0": (["--data.batch_size=0"], ["batch_size must be >= 1, got 0"]),
    "negative split_seed": (["--data.split_seed=-1"], ["split_seed must be >= 0, got -1"]),
    "unknown architecture": (["--model.arch=resnet999"], ["unknown architecture 'resnet999'"]),
    "image size": (["--model.arch=paper_cnn", "--data.source.image_size=30"], ["image_size|multiple of 8"]),
    "unknown model class": (["--model=nope.Module"], [r"--model \(nope.Module\)"]),
    "missing config": (["--config=nope.yaml"], ["nope.yaml", "does not exist"]),
}


@pytest.mark.parametrize("name", TARGET_CASES)
def test_target_settings(tmp_path, refused, name):
    extra, words = TARGET_CASES[name]
    args = fit_args(tmp_path, *FAST, *extra)
    if name == "image size":  # the bundled sample has no image_size option: use generated data
        args = fit_args(tmp_path, *FAST, *extra, data="cifar100")
    refused(args, *words)
    assert not list(tmp_path.glob("*/version_*"))


DETECTOR_CASES = {
    "unknown layer": (["--data.init_args.layers=[layer99]"], ["unknown layer", "layer99", "valid names"]),
    "sizes too large": (["--data.test_size=5000"], ["not enough images", "5000 test per side", "Lower"]),
    "negative seed": (["--data.seed=-2"], ["seed must be >= 0, got -2"]),
    "calibration -1": (["--data.calibration_size=-1"], ["calibration_size must be >= 0"]),
    "class conditioning": (["--model.init_args.class_conditioning=maybe"], ["class_conditioning", "maybe"]),
    "target missing": ([], ["target checkpoint .*missing.ckpt.* not found", "train the target first"]),
    # a config or command line written before the data module read the target
    "model layers": (["--model.init_args.layers=[layer7]"], ["not an option", "data.init_args.layers"]),
    "pool on the model": (["--model.pool=avg"], ["not an option", "--data.init_args.pool\\)"]),
}


@pytest.mark.parametrize("name", DETECTOR_CASES)
def test_detector_settings(tmp_path, refused, tiny_target, name):
    extra, words = DETECTOR_CASES[name]
    target = tmp_path / "missing.ckpt" if name == "target missing" else tiny_target
    refused(["fit", *detector_args(tmp_path, target, *extra, "--trainer.max_epochs=1")], *words)
    assert not list(tmp_path.glob("*/version_*")), "a refused run left a version folder"


def test_refused_runs_leave_no_empty_version_folders(tmp_path, refused, tiny_detector):
    # a test on other data settings is refused when it starts, after Lightning made its run folder
    sizes = ["--data.val_size=40", "--data.calibration_size=40", "--data.test_size=60", "--data.seed=1"]
    args = ["test", *detector_args(tmp_path, tiny_detector, *sizes), f"--ckpt_path={tiny_detector}"]
    for _ in range(3):
        refused(args, "were in the detector's own sets")
    assert not list(tmp_path.glob("*/version_*"))
    kept = tmp_path / "mint_layer7" / "version_7"
    (kept / "checkpoints").mkdir(parents=True)  # a run folder with something in it is never removed
    refused([*args, "--trainer.logger.init_args.version=version_7"], "were in the detector's own sets")
    assert kept.is_dir()


def test_read_only_run_folder_is_refused_before_work(tmp_path, refused):
    folder = tmp_path / "runs"
    folder.mkdir()
    with read_only(folder):
        refused(fit_args(folder / "sub", *FAST), "cannot write the run folder", "save_dir")


def test_subcommands(tmp_path, refused):
    refused(["fitt"], "invalid choice: 'fitt'", "quickstart, sweep, study, audit")
    refused([], "subcommand")
    refused(["quickstart", "--target-epochs", "-1", "--output", tmp_path], "--target-epochs must be >= 1")
    refused(["quickstart", "--target-epochs", "0", "--output", tmp_path], "--target-epochs must be >= 1")
    refused(["quickstart", "--detector-epochs", "x"], "invalid int value")
    refused(
        ["study", "--factor", "members", "--values", "1.5", "--detector-config", "x.yaml"], "member fractions"
    )


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--batch-size", "0"], ["--batch-size must be >= 1, got 0"]),
        (["--batch-size", "-3"], ["--batch-size must be >= 1, got -3"]),
        (["--device", "bogus"], ["--device 'bogus' is not a device name"]),
        (["--device", "cuda:7"], ["a GPU this machine does not have"]),
        (["--labels", "sometimes"], ["invalid choice"]),
    ],
    ids=["batch-0", "batch-negative", "device-bogus", "device-missing-gpu", "labels"],
)
def test_audit_settings(tmp_path, refused, tiny_detector, extra, words):
    out = tmp_path / "report"
    refused(["audit", "--ckpt", tiny_detector, "--images", tmp_path, "--output", out, *extra], *words)
    assert not out.exists()


def test_a_disk_that_fills_up_during_a_fit_is_said_in_one_line(tmp_path, refused, monkeypatch):
    import errno

    from lightning.fabric.plugins.io import torch_io

    def full(checkpoint, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(torch_io, "_atomic_save", full)
    refused(fit_args(tmp_path, "--trainer.max_epochs=1", "--data.num_workers=0",
                     "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"),
            r"the disk is full writing .*\.ckpt", "--ckpt_path last")  # fmt: skip


def test_a_disk_without_room_is_refused_before_work(tmp_path, refused, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 2**20, 2**20))
    refused(fit_args(tmp_path, *FAST), "cannot write the run folder", "only 1 MiB free")


@pytest.mark.parametrize(
    "record",
    [
        {"layers": "layer8"},  # not a list
        {"pooling": {"pool": "avg", "pool_size": 2, "cache_dir": "/elsewhere"}},  # a key that is no pooling
        {"pooling": {"pool": "median", "pool_size": 2}},
        {"pooling": {"pool": "avg", "pool_size": 0}},
    ],
)
def test_a_checkpoint_records_only_layers_and_pooling_for_the_test(tmp_path, refused, tiny_detector, record):
    """`mint test` reads what a detector reads from its checkpoint: nothing else a file could slip in."""
    import torch

    ckpt = torch.load(tiny_detector, weights_only=True)
    ckpt["DetectorDataModule"] |= record
    torch.save(ckpt, tmp_path / "edited.ckpt")
    args = ["test", *detector_args(tmp_path, tiny_detector), f"--ckpt_path={tmp_path / 'edited.ckpt'}"]
    refused(args, "edited.ckpt: its record of the (layers|pooling) it reads is damaged")
