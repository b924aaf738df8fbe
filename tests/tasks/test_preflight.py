"""Bad input is refused before anything is built, with a message that says what to do."""

import pytest
import torch

from mint.cli import main
from mint.tasks.preflight import CPU_DDP, check_cache_dir, check_devices, cpu_cores, requested_devices
from tests.conftest import ROOT, detector_data, fit_args, read_only


@pytest.mark.parametrize(
    "hardware",
    [
        ["--config", str(ROOT / "configs" / "trainer" / "ddp.yaml")],
        ["--trainer.accelerator=gpu", "--trainer.devices=2"],
        ["--trainer.accelerator=cuda"],
    ],
    ids=["ddp.yaml", "gpu-devices-2", "cuda"],
)
def test_gpus_asked_for_on_a_machine_without_them(tmp_path, hardware):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="torch finds none on this machine") as err:
        main(fit_args(tmp_path, *hardware))
    assert CPU_DDP in str(err.value)  # how to run DDP on CPU instead
    assert not (tmp_path / "target_cifar10").exists()  # refused before any run started


def test_more_gpus_than_the_machine_has(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="asks for 8 GPUs but this machine has 1") as err:
        main(fit_args(tmp_path, "--trainer.accelerator=gpu", "--trainer.devices=8"))
    assert "--trainer.devices=1" in str(err.value) and "num_nodes" in str(err.value)


def test_more_cpu_processes_than_cores_is_a_warning():
    n = cpu_cores() + 1
    with pytest.warns(UserWarning, match=f"starts {n} CPU processes but this machine has {n - 1} CPU cores"):
        check_devices("cpu", n, "ddp")


def test_device_counts_are_read_like_lightning():
    assert requested_devices(2) == 2 and requested_devices("3") == 3
    assert requested_devices([0, 1]) == 2 and requested_devices("0,1") == 2
    assert requested_devices(-1) is None and requested_devices("auto") is None


def test_cache_dir_under_a_file_is_refused_before_the_run(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    args = [
        "fit",
        "--config",
        str(ROOT / "configs" / "mint_layer7.yaml"),
        f"--data.init_args.target_ckpt={tmp_path / 'never_read.ckpt'}",  # refused before it is loaded
        f"--data.cache_dir={blocker / 'cache'}",
    ]
    with pytest.raises(PermissionError, match="cannot write the activation cache") as err:
        main(args)
    assert "is a file, not a folder" in str(err.value) and "cache_dir: null" in str(err.value)


def test_cache_dir_that_cannot_be_written_fails_clearly_without_the_cli(tmp_path, tiny_target):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    dm = detector_data(tiny_target, val_size=20, test_size=40, cache_dir=str(blocker / "c"))
    with pytest.raises(PermissionError, match="cannot write the activation cache.*cache_dir: null"):
        dm.prepare_data()


def test_read_only_cache_dir_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder), pytest.raises(PermissionError, match="is not writable"):
        check_cache_dir(folder / "cache")
