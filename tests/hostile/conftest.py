"""The hostile-input suite: every case runs the real entry point and checks how a person is told.

The `refused` fixture (tests/conftest.py) runs `mint ...` as the `mint` command does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import detector_args


@pytest.fixture(scope="session")
def tiny_detector(tmp_path_factory, tiny_target) -> Path:
    """A detector on the logits of `tiny_target`, with calibration scores, so `mint audit` runs."""
    from mint.cli import main

    tmp = tmp_path_factory.mktemp("hostile_detector")
    sizes = ["--data.val_size=40", "--data.calibration_size=40", "--data.test_size=60"]
    extra = ["--data.layers=[layer8]", *sizes, "--data.batch_size=50", "--trainer.max_epochs=2"]
    cli = main(["fit", *detector_args(tmp, tiny_target, *extra)])
    return Path(cli.trainer.checkpoint_callback.best_model_path)


def leftovers(folder: Path) -> list[str]:
    """Partial or temporary files and folders under `folder` (what a failed run must not leave)."""
    return [str(p) for p in folder.rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]
