"""Shared fixtures: small targets trained on data every clone has.

Nothing here needs `../shared`: CIFAR-10 tests use the sample bundled in the package (real
images), and the CIFAR-100 / GTSRB configs run on generated data of the same shape
(`mint.data.FakeSource`: 100 classes; 43 classes in groups of frames, like GTSRB's tracks).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Imported before any test captures stderr: Lightning's log handler keeps the stream it first sees.
from mint.cli import run

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SHARED = ROOT.parent / "shared" / "data"

# The data each shipped config is tested on, as LightningCLI arguments for `data.source`.
SOURCES = {
    "cifar10": ["--data.source=mint.data.SampleSource"],
    "cifar100": ["--data.source=mint.data.FakeSource", "--data.source.num_classes=100"],
    "gtsrb": [
        "--data.source=mint.data.FakeSource",
        "--data.source.num_classes=43",
        "--data.source.group_size=3",
    ],
}


@pytest.fixture
def refused(capsys):
    """`refused(argv, *words)`: run `mint ...` as the `mint` command does (`mint.cli.run`), in this process.

    Asserts a non-zero exit, no traceback (an exception escaping `run` fails the test) and a message
    on stderr naming the problem (`words`: case-insensitive regular expressions); returns stderr.
    """

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


def shared_file(name: str) -> str:
    """A file of `../shared/data` (full CIFAR-10); the test skips, saying why, when it is absent."""
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (full data sets live in ../shared/data beside a mint checkout)")
    return str(path)


def quiet(save_dir: Path) -> list[str]:
    """Trainer arguments for tests: log into `save_dir`, CPU, no progress bars or summaries."""
    return [
        f"--trainer.logger.init_args.save_dir={save_dir}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.accelerator=cpu",
    ]


def fit_args(save_dir: Path, *extra: str, config: str = "target_cifar10.yaml", data: str = "cifar10") -> list:
    """`fit` arguments of a target config on test data, logging into `save_dir`."""
    return ["fit", "--config", str(CONFIGS / config), *SOURCES[data], *quiet(save_dir), *extra]


def detector_args(save_dir: Path, target: Path, *extra: str, config: str = "mint_layer7.yaml") -> list:
    """Arguments (without the subcommand) of a detector config on `target`, logging into `save_dir`."""
    return [
        "--config",
        str(CONFIGS / config),
        f"--data.init_args.target_ckpt={target}",
        f"--data.cache_dir={save_dir / 'cache'}",
        *quiet(save_dir),
        *extra,
    ]


def train_target(tmp: Path, config: str, data: str, *extra: str) -> Path:
    """Fit a target config on test data into `tmp`; return its last checkpoint."""
    from mint.cli import main
    from mint.tasks.callbacks import last_checkpoint

    cli = main(fit_args(tmp, "--data.num_workers=0", *extra, config=config, data=data))
    return Path(last_checkpoint(cli.trainer))


TINY = ("--model.width=0.25", "--data.batch_size=64")  # a quick target for plumbing tests


@pytest.fixture(scope="session")
def tiny_target(tmp_path_factory) -> Path:
    """A small PaperCNN on the bundled CIFAR-10 sample (2 quick epochs): enough for plumbing tests."""
    tmp = tmp_path_factory.mktemp("tiny_target")
    return train_target(tmp, "target_cifar10.yaml", "cifar10", *TINY, "--trainer.max_epochs=2")


@pytest.fixture(scope="session")
def memorizing_target(tmp_path_factory) -> Path:
    """A PaperCNN trained to ~100% accuracy on 400 member images of the bundled CIFAR-10 sample."""
    tmp = tmp_path_factory.mktemp("memorizing_target")
    memorizing = ["--model.width=0.5", "--model.block_dropout=0", "--data.member_fraction=0.2"]
    every_20 = ["--trainer.max_epochs=40", "--trainer.check_val_every_n_epoch=20", "--data.batch_size=50"]
    return train_target(tmp, "target_cifar10.yaml", "cifar10", *memorizing, *every_20)


@pytest.fixture(scope="session")
def tiny_grouped_target(tmp_path_factory) -> Path:
    """A small PaperCNN on GTSRB-like generated data: 43 classes, groups of up to 3 frames."""
    tmp = tmp_path_factory.mktemp("tiny_grouped")
    limits = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
    return train_target(tmp, "target_gtsrb.yaml", "gtsrb", *TINY, *limits)


def detector_data(target: Path, layers: tuple[str, ...] = ("layer7",), **sizes):
    """A `DetectorDataModule` on `target`, outside a Trainer (the target given by hand)."""
    from mint.data import DetectorDataModule

    return DetectorDataModule(str(target), layers=list(layers), **sizes)


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """Make `folder` unwritable, even for root, during the block (nothing can be created in it).

    Permission bits for a user; for root, which they do not stop, the immutable attribute
    (`chattr +i`: needs CAP_LINUX_IMMUTABLE and a file system that has it, like ext4). The test
    skips, saying why, where neither works.
    """
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield folder
        finally:
            folder.chmod(0o700)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("running as root without `chattr +i`: permission bits do not stop root from writing")
    try:
        yield folder
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


@pytest.fixture(scope="session")
def model_files(tmp_path_factory):
    """A ResNet-18 (random weights) as safetensors and TorchScript; 150 known members, 150 non-members."""
    import warnings
    from importlib.resources import files

    import numpy as np
    import torch
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("your_model")
    net = torchvision.models.resnet18(num_classes=10).eval()
    save_file(net.state_dict(), folder / "resnet18.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
        torch.jit.save(torch.jit.script(net), folder / "resnet18.pt")
    data = np.load(files("mint") / "sample" / "cifar10_sample_train.npz")
    np.savez(folder / "members.npz", images=data["images"][:150], labels=data["labels"][:150])
    np.savez(folder / "nonmembers.npz", images=data["images"][150:300])  # unlabelled: predicted
    np.savez(folder / "suspect.npz", images=data["images"][300:340], labels=data["labels"][300:340])
    return folder


def shown_pixels(png: Path, tmp_path: Path) -> list:
    """The pixels of a figure as a person sees it: the PNG's own, and Chromium's screenshot of a page
    showing it where headless Chromium (`chromium`) is on PATH. Each: an (N, 3) int array, RGB."""
    import numpy as np
    from PIL import Image

    with Image.open(png) as im:
        views = [np.asarray(im.convert("RGB"), dtype=np.int64).reshape(-1, 3)]
        width, height = im.size
    if shutil.which("chromium") is not None:
        page, shot = tmp_path / f"{png.stem}.html", tmp_path / f"{png.stem}_shot.png"
        page.write_text(
            f'<html><body style="margin:0;background:white"><img src="{png.as_uri()}"></body></html>'
        )
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
             f"--screenshot={shot}", f"--window-size={width},{height}", page.as_uri()],
            capture_output=True, timeout=60, check=True,
        )  # fmt: skip
        with Image.open(shot) as im:
            views.append(np.asarray(im.convert("RGB"), dtype=np.int64).reshape(-1, 3))
    return views


def colour_pixels(pixels, colour: str, tolerance: int = 10) -> int:
    """How many pixels are within `tolerance` (on every channel, 0-255) of a matplotlib colour."""
    import matplotlib
    import numpy as np

    return int(
        (np.abs(pixels - np.array(matplotlib.colors.to_rgb(colour)) * 255).max(axis=1) <= tolerance).sum()
    )
