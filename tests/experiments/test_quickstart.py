import json
from pathlib import Path

import pytest

from mint.cli import main
from mint.errors import MintError


def test_quickstart_end_to_end_and_never_overwrites(tmp_path, capsys):
    args = ["quickstart", "--output", str(tmp_path), "--target-epochs", "2", "--detector-epochs", "2"]
    summary = main([*args, "--no-progress-bar"])
    run = Path(summary["run_dir"])
    assert run == tmp_path / "run_0"
    for key in ("target_ckpt", "detector_ckpt", "test_results"):
        assert Path(summary[key]).is_file(), key
    assert (run / "summary.json").is_file()
    assert list(run.glob("mint_layer7/version_*/roc_test.png"))
    assert list(run.glob("target/version_*/events.out.tfevents.*"))
    results = json.loads(Path(summary["test_results"]).read_text())
    assert summary["mint"] == results["mint"]  # the summary is what the test measured
    assert results["mint"]["n_members"] == results["mint"]["n_nonmembers"] == 250
    printed = capsys.readouterr().out
    auroc = results["mint"]["auroc"]
    assert f"MINT layer7 + output AUROC (250 members / 250 non-members)  {auroc:.3f}" in printed
    assert f"{results['baselines']['loss']['auroc']:.3f}" in printed
    second = main([*args, "--no-progress-bar", "--detector-epochs", "1"])
    assert Path(second["run_dir"]) == tmp_path / "run_1" and Path(summary["detector_ckpt"]).is_file()


def test_unwritable_output_fails_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(MintError, match="cannot write to the output folder"):
        main(["quickstart", "--output", str(blocker / "runs")])
