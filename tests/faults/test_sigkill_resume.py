"""Fits killed from outside (SIGKILL) once an epoch's checkpoint exists resume to the same bits.

Unlike `tests/tasks/test_resume.py`, which kills a fit from inside at a chosen batch, the kill here
comes from another process at whatever point the fit has reached after `checkpoints/last.ckpt`
appears, as a scheduler's time limit or the kernel's OOM killer would. The resumed fit's final
`last.ckpt` is compared with an uninterrupted fit's, tensor by tensor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from mint.cli import main
from tests.conftest import ROOT, detector_args, fit_args

# 2 epochs of 3 batches: the kill comes in the second epoch, after the first epoch's checkpoint.
TINY = [
    "--data.num_workers=0",
    "--trainer.deterministic=true",
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=1",
    "--trainer.max_epochs=2",
]
SLOW = "--trainer.callbacks+=tests.faults.test_sigkill_resume.SlowAfterFirstEpoch"


class SlowAfterFirstEpoch(Callback):
    """Sleep before each batch after the first epoch: the kill lands mid-run, results are unchanged."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch >= 1:
            time.sleep(1)


def kill_after_first_checkpoint(args: list[str], save_dir: Path) -> Path:
    """Run `python -m mint.cli` with `args`, SIGKILL it once a `last.ckpt` exists; return that file."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mint.cli", *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        end = time.monotonic() + 300
        while not (found := list(save_dir.glob("*/version_*/checkpoints/last.ckpt"))):
            assert proc.poll() is None, f"the fit ended ({proc.returncode}) before a checkpoint was saved"
            assert time.monotonic() < end, "no checkpoint after 300 s"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]  # killed, not finished or crashed
    (last,) = found
    assert torch.load(last, weights_only=True)["epoch"] == 0  # the resume has an epoch left to train
    return last


def assert_same_final_weights(full: Path, resumed: Path) -> None:
    """The two `last.ckpt` files hold the same step and bit-identical tensors."""
    a, b = (torch.load(path, weights_only=True) for path in (full, resumed))
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) == (1, 6)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][key]), key
    for i, (sa, sb) in enumerate(zip(a["optimizer_states"], b["optimizer_states"], strict=True)):
        for param, state in sa["state"].items():  # Adam's moments: the resumed run continued them
            for name, value in state.items():
                assert torch.equal(value, sb["state"][param][name]), f"optimizer {i} {param} {name}"


def assert_run_folder_intact(last: Path, resumed_log_dir: str) -> None:
    """The resumed fit logged into the killed run's folder, which holds a whole run and nothing else."""
    run = last.parents[1]
    assert resumed_log_dir == str(run)
    assert [p.name for p in run.parent.glob("version_*")] == [run.name]  # no second run folder
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "hparams.yaml", "checkpoints"} <= names
    assert not [p for p in run.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def test_target_fit_killed_from_outside_resumes_bit_identically(tmp_path):
    def args(save_dir, *extra):
        return fit_args(save_dir, "--model.init_args.width=0.25", "--data.batch_size=32", *TINY, *extra)

    last = kill_after_first_checkpoint(args(tmp_path / "killed", SLOW), tmp_path / "killed")
    full = main(args(tmp_path / "full"))
    resumed = main(args(tmp_path / "killed", "--ckpt_path=last"))
    assert_same_final_weights(Path(full.trainer.log_dir) / "checkpoints" / "last.ckpt", last)
    assert_run_folder_intact(last, resumed.trainer.log_dir)


def test_detector_fit_killed_from_outside_resumes_bit_identically(tmp_path, tiny_target):
    cache_dir = tmp_path / "cache"  # shared by the three fits

    def args(save_dir, *extra):
        sizes = ["--data.train_size=100", "--data.val_size=20", "--data.test_size=20"]
        sizes += ["--data.calibration_size=20", "--data.batch_size=20"]  # calibration: scored at each save
        return [
            "fit",
            *detector_args(save_dir, tiny_target, *sizes, f"--data.cache_dir={cache_dir}", *TINY, *extra),
        ]

    # The killed fit builds the cache; the fits after it must find it whole and reuse it.
    last = kill_after_first_checkpoint(args(tmp_path / "killed", SLOW), tmp_path / "killed")
    (folder,) = cache_dir.iterdir()
    built = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    full = main(args(tmp_path / "full"))
    resumed = main(args(tmp_path / "killed", "--ckpt_path=last"))
    assert_same_final_weights(Path(full.trainer.log_dir) / "checkpoints" / "last.ckpt", last)
    assert_run_folder_intact(last, resumed.trainer.log_dir)
    cache = resumed.datamodule.cache()
    assert cache.dir == folder and {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == built
    assert set(built) == {".lock", "layer7.npy", "layer7.json", "logits.npy", "logits.json"}
    assert cache.problem("layer7") is None and cache.problem("logits") is None
