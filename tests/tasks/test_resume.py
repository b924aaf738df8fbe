"""Resumed fits: killed after an epoch, `--ckpt_path last` ends exactly where an uninterrupted fit ends."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from mint.cli import main
from mint.tasks.callbacks import last_checkpoint
from tests.conftest import ROOT, fit_args

TINY = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.deterministic=true",
    "--trainer.limit_train_batches=5",
    "--trainer.limit_val_batches=2",
    "--trainer.max_epochs=2",
]


class SigkillAt(Callback):
    """Kill this process (SIGKILL: no cleanup, no checkpoint) at a batch of a later epoch."""

    def __init__(self, epoch: int = 1, batch: int = 2) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


class FailAt(SigkillAt):
    """Raise at a batch of a later epoch (an in-process crash)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise RuntimeError("simulated crash")


class WorseEachEpoch(Callback):
    """Make the monitored metric fall every epoch, so the best epoch is the first one."""

    def on_validation_end(self, trainer, pl_module) -> None:
        trainer.callback_metrics["val/acc"] = torch.tensor(-float(trainer.current_epoch))


def test_last_checkpoint_is_the_last_epoch_even_when_an_earlier_one_was_best(tmp_path):
    args = target_args(
        tmp_path, "--trainer.max_epochs=3", "--trainer.callbacks+=tests.tasks.test_resume.WorseEachEpoch"
    )
    cli = main(args)
    folder = Path(cli.trainer.log_dir) / "checkpoints"
    assert torch.load(folder / "best.ckpt", weights_only=True)["epoch"] == 0
    assert torch.load(folder / "last.ckpt", weights_only=True)["epoch"] == 2  # not the best one again
    assert last_checkpoint(cli.trainer) == str(folder / "last.ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]
    # an end state that was never validated is still the last checkpoint
    cli = main(target_args(tmp_path / "unvalidated", "--trainer.check_val_every_n_epoch=5"))
    saved = torch.load(last_checkpoint(cli.trainer), weights_only=True)
    assert saved["global_step"] == cli.trainer.global_step == 10  # 2 epochs of 5 batches: the end state


def test_a_resume_outside_the_cli_is_refused_by_the_module_itself(one_epoch_run):
    """The check lives in the LightningModule, so `Trainer.fit(ckpt_path=...)` in Python is covered too."""
    import lightning as L

    from mint.data import SampleSource, TargetDataModule
    from mint.tasks import TargetModule

    module = TargetModule(num_classes=10, width=0.5)
    trainer = L.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ValueError, match=r"width: 0.25 \(checkpoint\) != 0.5 \(now\)"):
        trainer.fit(module, TargetDataModule(SampleSource(), batch_size=64), ckpt_path=one_epoch_run)


def target_args(save_dir, *extra):
    tiny = ["--model.init_args.width=0.25", "--data.batch_size=64", "--data.num_workers=0", *TINY]
    return fit_args(save_dir, *tiny, *extra)


def assert_same_run(a, b):
    assert a.trainer.global_step == b.trainer.global_step
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    ma, mb = a.trainer.callback_metrics, b.trainer.callback_metrics
    assert ma.keys() == mb.keys()
    for key in ma:  # NaN (a TPR at an FPR too low for the set) equals NaN
        torch.testing.assert_close(ma[key], mb[key], rtol=0, atol=0, equal_nan=True, msg=key)


def test_killed_target_fit_resumes_exactly(tmp_path):
    full = main(target_args(tmp_path / "full"))
    killed = subprocess.run(
        [
            *(sys.executable, "-m", "mint.cli"),
            *target_args(tmp_path / "killed", "--trainer.callbacks+=tests.tasks.test_resume.SigkillAt"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    (last,) = (tmp_path / "killed").glob("target_cifar10/version_*/checkpoints/last.ckpt")
    saved = torch.load(last, weights_only=True)
    assert saved["epoch"] == 0  # the epoch before the kill

    # `--ckpt_path last` alone finds the killed run (not the new run's empty folder) and logs into it
    resumed = main(target_args(tmp_path / "killed", "--ckpt_path=last"))
    assert resumed.trainer.log_dir == str(last.parents[1])
    assert_same_run(full, resumed)
    assert not torch.equal(saved["state_dict"]["net.layer1.0.weight"], resumed.model.net.layer1[0].weight)


def test_crashed_detector_fit_resumes_exactly(tmp_path, tiny_target):
    def args(save_dir, *extra):
        return [
            "fit",
            "--config",
            str(ROOT / "configs" / "mint_layer7.yaml"),
            f"--data.init_args.target_ckpt={tiny_target}",
            f"--trainer.logger.init_args.save_dir={save_dir}",
            f"--data.cache_dir={tmp_path / 'cache'}",
            "--data.train_size=100",
            "--data.val_size=20",
            "--data.test_size=20",
            "--data.calibration_size=20",  # scored at every checkpoint save, for `mint audit`
            "--data.batch_size=20",
            *TINY,
            *extra,
        ]

    full = main(args(tmp_path / "full"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(args(tmp_path / "crashed", "--trainer.callbacks+=tests.tasks.test_resume.FailAt"))
    resumed = main(args(tmp_path / "crashed", "--ckpt_path=last"))
    assert_same_run(full, resumed)


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one_epoch")
    cli = main(target_args(tmp, "--trainer.max_epochs=1"))
    return last_checkpoint(cli.trainer)


@pytest.mark.parametrize(
    ("change", "listed"),
    [
        ("--model.init_args.width=0.5", "width: 0.25 (checkpoint) != 0.5 (now)"),
        ("--model.init_args.block_dropout=0.1", "block_dropout: 0.25 (checkpoint) != 0.1 (now)"),
        (
            "--model.init_args.optimizer.init_args.lr=0.01",
            "optimizer0.0.lr: 0.001 (checkpoint) != 0.01 (now)",
        ),
        ("--data.split_seed=1", "different split"),
    ],
)
def test_resuming_with_another_config_is_refused(tmp_path, one_epoch_run, change, listed):
    with pytest.raises(ValueError, match="checkpoint") as err:
        main(target_args(tmp_path, f"--ckpt_path={one_epoch_run}", change))
    assert listed in str(err.value)


def test_resuming_with_only_speed_options_changed_is_allowed(tmp_path, one_epoch_run):
    speed = "--model.init_args.channels_last=true"
    cli = main(target_args(tmp_path, f"--ckpt_path={one_epoch_run}", speed))
    assert cli.trainer.current_epoch == 2
    assert cli.model.hparams.channels_last  # as asked, not the checkpoint's value


def test_an_option_mint_removed_differs_only_at_a_value_other_than_the_kept_one():
    from mint.tasks.resume import differences

    now = {"path_kind": "auto"}  # a module of this mint has no class_standardize
    assert differences({"path_kind": "auto", "class_standardize": False}, now) == {}
    assert differences({"path_kind": "auto", "class_standardize": True}, now) == {
        "class_standardize": (True, "<absent>")
    }
