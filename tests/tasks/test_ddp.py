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


def flat(tree, prefix=""):
    """{path: number} of every number in a nested JSON report."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in flat(sub, f"{prefix}{key}.").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in flat(sub, f"{prefix}{i}.").items()}
    return {prefix[:-1]: tree} if isinstance(tree, int | float) else {}


def test_ddp_metrics_equal_single_process(tmp_path, tiny_target):
    clf = [
        "--config",
        str(ROOT / "configs" / "target_cifar10.yaml"),
        *SOURCES["cifar10"],
        "--data.batch_size=64",
        f"--ckpt_path={tiny_target}",
    ]
    single, multi = run_cli(clf, tmp_path / "clf", 1), run_cli(clf, tmp_path / "clf", 2)
    assert single == pytest.approx(multi, abs=1e-9)

    from mint.cli import main

    mint_args = [
        "--config",
        str(ROOT / "configs" / "mint_layer7.yaml"),
        f"--data.init_args.target_ckpt={tiny_target}",
        "--data.val_size=30",
        "--data.test_size=46",  # 92 test images on 3 processes: the sampler pads one in twice
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
    multi = run_cli([*mint_args, f"--ckpt_path={ckpt}"], tmp_path / "mint", 3)
    assert multi["mint"]["n_members"] == multi["mint"]["n_nonmembers"] == 46  # the padded copy not counted
    reports = ("mint", "baselines", "target_on_test_set", "controls")
    one, three = flat({k: single[k] for k in reports}), flat({k: multi[k] for k in reports})
    assert one.keys() == three.keys() and len(one) > 100
    for key in one:  # every number, intervals and per-class AUROCs included (NaN equals NaN)
        assert one[key] == pytest.approx(three[key], abs=1e-9, nan_ok=True), key
