"""README's blocks marked `<!-- offline test -->` run as written, offline, in a fresh folder.

Shortened only by the arguments in `SHORTER` (fewer epochs); everything else is the README's text, so a
command, path or flag that the README names and mint does not have fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

MARK = "<!-- offline test -->"
# What the test appends to keep each run short (the README's commands run their full length).
SHORTER = {
    "mint quickstart": " --target-epochs 3 --detector-epochs 2",
    "python -m mint.cli fit": " --trainer.max_epochs=1",
    "mint fit": " --trainer.max_epochs=3",
}
SHORTER_PYTHON = {"epochs=30": "epochs=1"}  # in Python blocks
ENV = {"EPOCHS": "1", "DETECTOR_EPOCHS": "1"}  # examples/audit_your_model.sh reads them


def marked_blocks(text: str) -> list[str]:
    """The shell commands of the blocks right below a `MARK` line; a Python block runs as `python -`."""
    lines, blocks = text.splitlines(), []
    for i, line in enumerate(lines):
        if line.strip() == MARK:
            fence = lines[i + 1]
            assert fence in ("```bash", "```python"), (
                f"README line {i + 2}: {MARK} must precede a bash or python block"
            )
            end = lines.index("```", i + 2)
            block = "\n".join(lines[i + 2 : end])
            if fence == "```python":
                for long, short in SHORTER_PYTHON.items():
                    block = block.replace(long, short)
                block = f"python - <<'PY'\n{block}\nPY"
            blocks.append(block)
    return blocks


def commands(block: str) -> list[str]:
    """One string per command: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [
        c.split("  #")[0].strip() for c in joined.splitlines() if c.strip() and not c.lstrip().startswith("#")
    ]


def shorter(command: str) -> str:
    return command + next((extra for start, extra in SHORTER.items() if command.startswith(start)), "")


def test_every_readme_block_marked_offline_runs_as_written(tmp_path):
    blocks = marked_blocks((ROOT / "README.md").read_text())
    script = "\n".join(
        block if block.startswith("python - <<") else "\n".join(shorter(c) for c in commands(block))
        for block in blocks
    )
    for claimed in ("mint quickstart", "bash examples/audit_your_model.sh", "mint audit", "NpzSource"):
        assert claimed in script, claimed  # the README's offline promises are all marked
    for folder in ("configs", "examples"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    env = os.environ | ENV | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{script}"], cwd=tmp_path, capture_output=True, text=True,
        env=env, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # the quickstart printed its table; the example and the steps after it wrote what the README says
    assert "mint quickstart: bundled CIFAR-10 sample" in run.stdout and "MINT layer7" in run.stdout
    assert "report: examples_out/audit/report.html" in run.stdout and "avgpool" in run.stdout
    summary = json.loads((tmp_path / "examples_out" / "audit" / "summary.json").read_text())
    assert summary["n_audited"] == 100 and summary["target"]["kind"] == "TorchvisionTarget"
    logs = tmp_path / "lightning_logs"
    assert (logs / "mint_your_model" / "latest" / "checkpoints" / "best.ckpt").is_file()
    steps = json.loads((tmp_path / "audit_suspect" / "summary.json").read_text())
    assert steps["n_audited"] == 100  # step 3 audited the suspect folder the example wrote
    assert (logs / "target_cifar10" / "latest" / "checkpoints" / "last.ckpt").exists()  # the npz block
    python = json.loads((tmp_path / "audit_suspect_python" / "summary.json").read_text())  # the Python block
    assert python["n_audited"] == 100 and python["target"]["kind"] == "ModuleTarget"
    assert "MINT AUROC" in run.stdout and (logs / "audit_model" / "version_1" / "test_results.json").is_file()
