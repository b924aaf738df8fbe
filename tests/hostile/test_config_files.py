"""Hostile config files and settings (round 2): binary, lists, FIFOs, link loops, YAML bombs, NaN."""

from __future__ import annotations

import errno
import os

import pytest
import torch
import yaml

from mint.cli import _people_message
from tests.conftest import CONFIGS, detector_args, fit_args, quiet

FAST = ["--trainer.fast_dev_run=1", "--data.num_workers=0"]
NESTED_BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['x'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)  # 9 lines that stand for 9^9 = 387 million strings
MERGE_BOMB = "a: &a {k0: x, k1: x}\n" + "".join(
    f"{n}: &{n} {{p: *{p}, q: *{p}, r: *{p}, s: *{p}}}\n"
    for p, n in zip("abcdefghijklm", "bcdefghijklmn", strict=True)
)  # mappings this time: 4^13 = 67 million nodes


def _config(tmp_path, name: str):
    """A config file of kind `name` in `tmp_path` (the ones that hung or gave tracebacks before)."""
    path = tmp_path / f"{name}.yaml"
    if name == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif name == "list":
        path.write_text("- trainer\n- model\n")
    elif name == "fifo":
        os.mkfifo(path)
    elif name == "link-loop":
        os.symlink(tmp_path / "other.yaml", path)
        os.symlink(path, tmp_path / "other.yaml")
    elif name == "nested-bomb":
        path.write_text(NESTED_BOMB)
    elif name == "mapping-bomb":
        path.write_text(MERGE_BOMB)
    elif name == "huge":
        path.write_text("a: " + "x" * (2 << 20) + "\n")
    return path


CONFIG_CASES = {
    "binary": ["not text", "binary"],
    "list": ["holds a list, not a mapping"],
    "fifo": ["not a regular file", "FIFO"],
    "link-loop": ["loop of symbolic links"],
    "nested-bomb": [r"expands to [\d,]+ values through its aliases", "bomb"],
    "mapping-bomb": [r"expands to [\d,]+ values through its aliases"],
    "huge": [r"has [\d,]+ bytes", "1 MiB"],
}


@pytest.mark.parametrize("name", CONFIG_CASES)
def test_a_config_file_that_is_no_config_is_refused_at_once(tmp_path, refused, name):
    config = _config(tmp_path, name)
    for argv in (["fit", "--config", config], ["fit", f"--config={config}"], ["validate", "-c", config]):
        refused([*argv, *FAST], str(config.name), *CONFIG_CASES[name])
    assert not list(tmp_path.rglob("version_*"))


def test_a_config_passed_to_a_class_option_is_checked_too(tmp_path, refused):
    refused(fit_args(tmp_path, *FAST, f"--data={_config(tmp_path, 'list')}"), "--data", "not a mapping")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "Infinity"])
@pytest.mark.parametrize(
    "option", ["--model.init_args.label_smoothing", "--data.init_args.member_fraction", "--model.dp_epsilon"]
)
def test_nan_and_inf_settings_are_named_as_such(tmp_path, refused, option, value):
    key = option.split(".")[-1]
    refused(fit_args(tmp_path, *FAST, f"{option}={value}"), rf"{key}={value}: expected a finite number")


def test_a_privacy_budget_no_noise_reaches_is_refused(tmp_path, refused):
    small = ["--model.width=0.25", "--data.batch_size=50", "--trainer.max_epochs=1", "--data.num_workers=0"]
    refused(
        fit_args(tmp_path, *small, "--model.init_args.dp_epsilon=1e-300"),
        r"dp_epsilon = 1e-300",
        "no amount of noise",
        "larger epsilon",
    )
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize(
    "values, words",
    [(["none", "dp=nan"], ["defense dp must be a finite number, got nan"]),
     (["dropout=inf"], ["defense dropout must be a finite number"])],
)  # fmt: skip
def test_study_values_that_are_not_numbers_leave_no_run_folders(
    tmp_path, refused, values, words, monkeypatch
):
    args = ["study", "--factor", "defense", "--values", *values, "--detector-config", "x.yaml"]
    refused([*args, "--target-config", "y.yaml", "--output", tmp_path / "runs"], *words)
    assert not list(tmp_path.rglob("version_*")) and not (tmp_path / "runs").exists()


def test_a_target_with_nan_weights_is_refused_before_any_score(tmp_path, refused, tiny_target):
    ckpt = torch.load(tiny_target, weights_only=True)
    name = next(k for k, v in ckpt["state_dict"].items() if k.startswith("net.") and v.is_floating_point())
    ckpt["state_dict"][name].view(-1)[0] = float("nan")  # a diverged training
    torch.save(ckpt, tmp_path / "nan.ckpt")
    refused(
        ["fit", *detector_args(tmp_path, tmp_path / "nan.ckpt", *FAST, "--data.init_args.layers=[layer8]")],
        "NaN or infinite",
        "preprocessing",
    )
    assert not list(tmp_path.rglob("*.npy")) and not list(tmp_path.rglob("checkpoints/*.ckpt"))


def test_a_file_too_large_for_the_process_is_one_line():
    message = _people_message(OSError(errno.EFBIG, "File too large", "/out/scores.csv"))
    assert message.startswith("a file grew beyond the size") and "/out/scores.csv" in message


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "link-loop", "dangling-link"])
def test_a_checkpoint_that_is_no_file_is_named_for_what_it_is(tmp_path, refused, tiny_target, kind):
    path, words = (
        tmp_path / "x.ckpt",
        {
            "/dev/zero": ["not a regular file", "device"],
            "fifo": ["not a regular file", "FIFO"],
            "link-loop": ["loop of symbolic links"],
            "dangling-link": ["is a link to", "which does not exist"],
        }[kind],
    )
    if kind == "/dev/zero":
        path = "/dev/zero"
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "link-loop":
        os.symlink(path, path)
    else:
        os.symlink(tmp_path / "gone.ckpt", path)
    refused(["test", *detector_args(tmp_path, tiny_target), f"--ckpt_path={path}"], *words)
    refused(["fit", *detector_args(tmp_path, path, *FAST)], "target checkpoint", *words)
    if kind in ("/dev/zero", "fifo"):
        refused(["audit", "--ckpt", path, "--images", tmp_path, "--output", tmp_path / "o"], *words)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "option", ["--model.init_args.class_standardize=false", "--data.init_args.verify_cache=true"]
)
def test_an_option_mint_removed_is_told_why(tmp_path, refused, option):
    args = ["fit", "--config", CONFIGS / "mint_layer7.yaml", *quiet(tmp_path), option]
    refused(args, "mint removed", option.split(".")[-1].split("=")[0], "delete it")


def test_a_run_config_of_an_earlier_mint_naming_removed_options_at_their_kept_value_still_reads(
    tmp_path, refused, capsys, tiny_target
):
    """A run's config.yaml names every option, defaults included: one written before an option was
    removed reads as before where it kept the behaviour mint kept (said once); otherwise refused."""
    from mint.cli import main

    older = tmp_path / "older.yaml"
    kept = {"model": {"init_args": {"class_standardize": False}}}
    kept["data"] = {"init_args": {"verify_cache": True}}
    older.write_text(yaml.safe_dump(kept))
    sizes = ["--data.val_size=20", "--data.test_size=40", "--data.calibration_size=0"]
    args = detector_args(tmp_path, tiny_target, "--config", str(older), *sizes, "--trainer.fast_dev_run=true")
    main(["fit", *args])
    err = capsys.readouterr().err
    assert "`class_standardize` is no longer an option" in err and "`verify_cache` is no longer" in err
    older.write_text(yaml.safe_dump({"model": {"init_args": {"class_standardize": True}}}))
    refused(["fit", *args], "class_standardize", "mint removed", "no gain")
