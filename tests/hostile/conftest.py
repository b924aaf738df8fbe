"""The hostile-input suite: every case runs the real entry point and checks how a person is told.

`refused(argv, *words)` runs `mint ...` in this process (as the `mint` command does, through
`mint.cli.run`) and asserts: a non-zero exit, no traceback (an exception escaping `run` fails the
test), and a message on stderr naming the problem (`words`, case-insensitive regular expressions).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# Imported before any test captures stderr: Lightning's log handler keeps the stream it first sees.
from mint.cli import run
from tests.conftest import detector_args


@pytest.fixture
def refused(capsys):
    def check(argv: list[str], *words: str) -> str:
        with pytest.raises(SystemExit) as stop:
            run([str(a) for a in argv])
        code = stop.value.code
        err = capsys.readouterr().err + (code if isinstance(code, str) else "")
        assert code not in (0, None), err
        assert "Traceback" not in err, err
        message = [line for line in err.splitlines() if line.startswith("mint")]
        assert message, f"no `mint: ...` line in: {err}"
        for word in words:
            assert re.search(word, err, re.I | re.S), f"{word!r} not in: {err}"
        return err

    return check


@pytest.fixture(scope="session")
def tiny_detector(tmp_path_factory, tiny_target) -> Path:
    """A detector on the logits of `tiny_target`, with calibration scores, so `mint audit` runs."""
    from mint.cli import main

    tmp = tmp_path_factory.mktemp("hostile_detector")
    sizes = ["--data.val_size=40", "--data.calibration_size=40", "--data.test_size=60"]
    extra = ["--model.layers=[layer8]", *sizes, "--data.batch_size=50", "--trainer.max_epochs=2"]
    cli = main(["fit", *detector_args(tmp, tiny_target, *extra)])
    return Path(cli.trainer.checkpoint_callback.best_model_path)


def leftovers(folder: Path) -> list[str]:
    """Partial or temporary files and folders under `folder` (what a failed run must not leave)."""
    return [str(p) for p in folder.rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]
