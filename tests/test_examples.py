"""The shipped examples run end to end (shortened: one epoch each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_audit_your_model_example_runs_offline_end_to_end(tmp_path):
    """Train outside mint, list layers, fit + test a detector, audit the suspect set, print the report."""
    env = os.environ | {
        "EPOCHS": "1",
        "DETECTOR_EPOCHS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # this venv's mint
    }
    out = tmp_path / "out"
    run = subprocess.run(
        ["bash", str(ROOT / "examples" / "audit_your_model.sh"), str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"report: {out}/audit/report.html" in run.stdout
    assert "detector AUROC" in run.stdout and "loss attack AUROC" in run.stdout
    assert "avgpool" in run.stdout  # `mint layers` listed the network's layers
    summary = json.loads((out / "audit" / "summary.json").read_text())
    assert summary["n_audited"] == 100 and summary["target"]["kind"] == "TorchvisionTarget"
    assert (out / "resnet18.safetensors").is_file() and (out / "target.yaml").is_file()
