"""Shared fixtures: the real data samples in ../shared/data and tiny classifiers trained on them."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def shared_file(name: str) -> str:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"real data sample {path} is absent (it lives in ../shared/data beside a mint checkout)")
    return str(path)


def npz_args(name: str) -> list[str]:
    """CLI arguments that point a classifier config at a real mini sample."""
    return [
        "--data.source=mint.data.NpzSource",
        f"--data.source.train={shared_file(f'{name}_mini_train.npz')}",
        f"--data.source.test={shared_file(f'{name}_mini_test.npz')}",
    ]


def fit_args(
    save_dir: Path, *extra: str, config: str = "classifier_cifar10.yaml", data: str = "cifar10"
) -> list:
    """`fit` arguments of a classifier config on a mini sample, logging into `save_dir`."""
    args = ["fit", "--config", str(ROOT / "configs" / config), *npz_args(data)]
    return [*args, f"--trainer.logger.init_args.save_dir={save_dir}", *extra]


def train_classifier(tmp: Path, config: str, data: str, *extra: str) -> Path:
    """Fit a classifier config on a mini sample into `tmp`; return its last checkpoint."""
    from mint.cli import main

    args = fit_args(tmp, "--trainer.enable_progress_bar=false", config=config, data=data)
    args += ["--data.num_workers=0", "--trainer.enable_model_summary=false", *extra]
    cli = main(args)
    return Path(cli.trainer.checkpoint_callback.last_model_path)


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory) -> Path:
    """A small PaperCNN on the CIFAR-10 sample (2 quick epochs): enough for plumbing tests."""
    tmp = tmp_path_factory.mktemp("tiny_classifier")
    return train_classifier(
        tmp,
        "classifier_cifar10.yaml",
        "cifar10",
        "--trainer.max_epochs=2",
        "--model.width=0.25",
        "--data.batch_size=64",
    )


@pytest.fixture(scope="session")
def memorizing_classifier(tmp_path_factory) -> Path:
    """A PaperCNN trained to ~100% accuracy on 400 member images of the CIFAR-10 sample."""
    tmp = tmp_path_factory.mktemp("memorizing_classifier")
    return train_classifier(
        tmp,
        "classifier_cifar10.yaml",
        "cifar10",
        "--trainer.max_epochs=40",
        "--model.width=0.5",
        "--model.block_dropout=0",
        "--data.member_fraction=0.2",
        "--data.batch_size=50",
        "--trainer.check_val_every_n_epoch=20",
    )


@pytest.fixture(scope="session")
def tiny_gtsrb_classifier(tmp_path_factory) -> Path:
    """A small PaperCNN on the GTSRB sample (whose images carry track groups)."""
    tmp = tmp_path_factory.mktemp("tiny_gtsrb")
    return train_classifier(
        tmp,
        "classifier_gtsrb.yaml",
        "gtsrb",
        "--trainer.max_epochs=1",
        "--model.width=0.25",
        "--data.batch_size=64",
        "--trainer.limit_val_batches=1",
    )
