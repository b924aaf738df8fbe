"""The command line: help texts, every shipped config with `fast_dev_run`, the console script."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mint.cli import main
from tests.conftest import CONFIGS, ROOT, SOURCES, detector_args, quiet, train_target

SHIPPED = sorted(CONFIGS.glob("*.yaml"))


def dataset_of(config: Path) -> str:
    return next((name for name in ("cifar100", "gtsrb") if name in config.stem), "cifar10")


def test_module_help_lists_the_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "mint.cli", "--help"], capture_output=True, text=True, check=True
    )
    for sub in ("fit", "validate", "test", "predict", "quickstart", "sweep", "study", "audit", "layers"):
        assert f"\n  {sub} " in out.stdout, sub  # each command on its own line, with what it does
    assert out.stdout.startswith("usage: mint COMMAND") and "mint quickstart" in out.stdout  # an example
    assert "--trainer.accelerator" not in out.stdout  # mint's own page, not LightningCLI's
    stage = subprocess.run([sys.executable, "-m", "mint", "fit", "--help"], capture_output=True, text=True)
    assert stage.stdout.startswith("usage: mint [options] fit") and "--trainer.accelerator" in stage.stdout


def test_help_shows_the_docstrings(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--data.help", "mint.data.TargetDataModule"])
    text = " ".join(capsys.readouterr().out.split())  # help text is wrapped
    assert "share of the source's train split used to train the target" in text
    with pytest.raises(SystemExit):
        main(["fit", "--model.help", "mint.tasks.DetectorModule"])
    assert "tell the detector the true class" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("config", [c for c in SHIPPED if c.stem.startswith("target")], ids=lambda c: c.stem)
def test_target_configs_run(config, tmp_path):
    cli = main(
        [
            "fit",
            "--config",
            str(config),
            *SOURCES[dataset_of(config)],
            *quiet(tmp_path),
            "--trainer.fast_dev_run=true",
            "--data.num_workers=0",
            "--data.batch_size=32",
        ]
    )
    assert cli.trainer.state.finished
    assert cli.model.hparams.num_classes == cli.datamodule.num_classes  # linked, not typed twice


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    """One tiny trained target per data set, for the detector configs."""
    cache = {}

    def get(name):
        if name not in cache:
            tmp = tmp_path_factory.mktemp(f"clf_{name}")
            cache[name] = train_target(
                tmp,
                f"target_{name}.yaml",
                name,
                "--trainer.max_epochs=1",
                "--trainer.limit_train_batches=2",
                "--trainer.limit_val_batches=1",
                "--model.width=0.25",
                "--data.batch_size=32",
            )
        return cache[name]

    return get


# mint_your_model.yaml names a model trained elsewhere: tests/tasks/test_your_model.py runs it.
OWN_TARGET = [c for c in SHIPPED if c.stem.startswith("mint") and c.stem != "mint_your_model"]


@pytest.mark.parametrize("config", OWN_TARGET, ids=lambda c: c.stem)
def test_mint_configs_run(config, tmp_path, targets):
    ckpt = targets(dataset_of(config))
    cli = main(
        [
            "fit",
            "--config",
            str(config),
            f"--data.init_args.target_ckpt={ckpt}",
            *quiet(tmp_path),
            "--trainer.fast_dev_run=true",
            f"--data.cache_dir={tmp_path / 'cache'}",
            "--data.val_size=20",
            "--data.test_size=40",
            "--data.calibration_size=10",
            "--data.batch_size=16",
        ]
    )
    assert cli.trainer.state.finished
    assert cli.datamodule.target is cli.model.target  # handed over by the model, not read again


def test_source_can_be_overridden_by_a_second_config(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "init_args": {
                        "source": {
                            "class_path": "mint.data.NpzSource",
                            "init_args": {
                                "train": str(ROOT / "mint" / "sample" / "cifar10_sample_train.npz"),
                                "test": str(ROOT / "mint" / "sample" / "cifar10_sample_test.npz"),
                            },
                        }
                    }
                }
            }
        )
    )
    cli = main(
        [
            "fit",
            "--config",
            str(CONFIGS / "target_cifar10.yaml"),
            "--config",
            str(overlay),
            *quiet(tmp_path),
            "--trainer.fast_dev_run=true",
            "--data.num_workers=0",
        ]
    )
    assert type(cli.datamodule.source).__name__ == "NpzSource"


def test_console_script_is_installed():
    import shutil

    exe = shutil.which("mint") or str(Path(sys.executable).with_name("mint"))
    if not Path(exe).is_file():
        pytest.skip("the `mint` console script is not installed in this environment (pip install -e .)")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
    assert "fit" in out.stdout and "test" in out.stdout
    # a successful run exits 0 and prints nothing but its own output (main's return value is dropped)
    out = subprocess.run([exe, "fit", "--print_config"], capture_output=True, text=True)
    assert out.returncode == 0 and "MintCLI object" not in out.stderr


def test_a_users_mistake_ends_in_one_message_without_a_traceback(tmp_path):
    bad = tmp_path / "not_a_target.ckpt"
    torch.save({"state_dict": {}}, bad)
    config = ["--config", str(CONFIGS / "mint_layer7.yaml"), f"--data.init_args.target_ckpt={bad}"]
    args = [sys.executable, "-m", "mint.cli", "fit", *config]
    out = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1].startswith(f"mint: {bad} is not a mint target checkpoint")
    debug = os.environ | {"MINT_DEBUG": "1"}  # shows the traceback
    assert "Traceback" in subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=debug).stderr


NOISE = ("Tip:", "module(s) in eval mode", "The dirpath has changed", "`weights_only` was not set",
         "callbacks returned in `LightningModule.configure_callbacks`", "treespec, LeafSpec")  # fmt: skip


def test_a_detector_fit_and_test_print_none_of_lightnings_noise(tmp_path, tiny_target):
    args = detector_args(tmp_path, tiny_target, "--data.val_size=20", "--data.test_size=40",
                         "--data.calibration_size=0", "--trainer.max_epochs=1")  # fmt: skip
    command = [sys.executable, "-m", "mint.cli"]
    fit = subprocess.run([*command, "fit", *args], capture_output=True, text=True, cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-2000:]
    (best,) = tmp_path.glob("mint_layer7/version_0/checkpoints/best.ckpt")
    test = subprocess.run([*command, "test", *args, f"--ckpt_path={best}"], capture_output=True, text=True)
    assert test.returncode == 0, test.stderr[-2000:]
    for out in (fit, test):
        said = out.stdout + out.stderr
        assert not [n for n in NOISE if n in said], said[-3000:]
    assert "test/auroc" in test.stdout  # the run's own output is still there
    debug = os.environ | {"MINT_DEBUG": "1"}  # nothing is dropped: the noise was there to drop
    loud = subprocess.run([*command, "fit", *args], capture_output=True, text=True, cwd=tmp_path, env=debug)
    assert sum(n in loud.stdout + loud.stderr for n in NOISE) >= 2, (loud.stdout + loud.stderr)[-3000:]


@pytest.mark.parametrize("command", ["quickstart", "sweep", "study", "audit", "layers", "references"])
def test_every_command_help_shows_its_defaults_and_an_example(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0
    assert f"\n    mint {command} " in text  # an example command, as the module documents it
    if command in ("quickstart", "sweep", "study"):
        assert "(default: " in text
    if command == "study":  # every factor's values are said
        assert all(f"`{factor}`" in text for factor in ("classes", "members", "defense", "detector_size"))
