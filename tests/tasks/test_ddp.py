"""Multi-process correctness on CPU: two gloo processes must log what one process logs."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SOURCES


def run_cli(args, tmp_path, devices):
    base = [
        sys.executable,
        "-m",
        "mint.cli",
        "test",
        *args,
        "--trainer.accelerator=cpu",
        f"--trainer.devices={devices}",
        f"--trainer.strategy={'ddp' if devices > 1 else 'auto'}",
        f"--trainer.logger.init_args.save_dir={tmp_path / f'd{devices}'}",
        "--trainer.enable_progress_bar=false",
    ]
    out = subprocess.run(base, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (results,) = (tmp_path / f"d{devices}").glob("*/version_*/test_results.json")
    return json.loads(results.read_text())


@pytest.mark.parametrize("devices", [2])
def test_ddp_metrics_equal_single_process(tmp_path, tiny_target, devices):
    clf = [
        "--config",
        str(ROOT / "configs" / "classifier_cifar10.yaml"),
        *SOURCES["cifar10"],
        "--data.batch_size=64",
        f"--ckpt_path={tiny_target}",
    ]
    single, multi = run_cli(clf, tmp_path / "clf", 1), run_cli(clf, tmp_path / "clf", devices)
    assert single == pytest.approx(multi, abs=1e-9)

    from mint.cli import main

    mint_args = [
        "--config",
        str(ROOT / "configs" / "mint_layer7.yaml"),
        f"--model.init_args.target_ckpt={tiny_target}",
        "--data.val_size=30",
        "--data.test_size=45",
        "--data.calibration_size=10",
        "--data.batch_size=16",
        f"--data.cache_dir={tmp_path / 'c'}",
    ]
    fit = main(
        [
            "fit",
            *mint_args,
            "--trainer.max_epochs=1",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
        ]
    )
    ckpt = fit.trainer.checkpoint_callback.best_model_path
    single = run_cli([*mint_args, f"--ckpt_path={ckpt}"], tmp_path / "mint", 1)
    multi = run_cli([*mint_args, f"--ckpt_path={ckpt}"], tmp_path / "mint", devices)
    for key in ("auroc", "acc", "tpr@10%fpr", "n_members", "n_nonmembers"):
        assert single["mint"][key] == pytest.approx(multi["mint"][key], abs=1e-9), key
    assert single["baselines"]["loss"]["auroc"] == pytest.approx(multi["baselines"]["loss"]["auroc"])
    assert multi["mint"]["n_members"] == 45  # every test image once: DDP padding not counted
