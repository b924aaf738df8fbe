"""Speed options set by config alone: bf16 mixed precision, channels-last, loader workers, torch.compile."""

import pytest
import torch
import yaml

from mint.cli import main
from tests.conftest import ROOT, SOURCES, detector_args

SPEED = {
    "trainer": {"precision": "bf16-mixed"},
    "model": {"init_args": {"channels_last": True}},
    "data": {"init_args": {"num_workers": 1, "persistent_workers": True, "pin_memory": False}},
}


def quiet(tmp_path):
    return [
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.accelerator=cpu",
        "--trainer.fast_dev_run=true",
    ]


def test_target_fits_with_speed_options_from_yaml(tmp_path):
    overlay = tmp_path / "speed.yaml"
    overlay.write_text(yaml.safe_dump(SPEED))
    config = str(ROOT / "configs" / "target_cifar10.yaml")
    cli = main(["fit", "--config", config, "--config", str(overlay), *SOURCES["cifar10"], *quiet(tmp_path)])
    assert cli.trainer.state.finished and cli.trainer.precision == "bf16-mixed"
    assert cli.model.net.layer1[0].weight.is_contiguous(memory_format=torch.channels_last)
    loader = cli.datamodule.train_dataloader()
    assert loader.num_workers == 1 and loader.persistent_workers and not loader.pin_memory


def test_detector_fits_with_bf16_and_channels_last(tmp_path, tiny_target):
    cli = main(
        [
            "fit",
            "--config",
            str(ROOT / "configs" / "mint_layer2.yaml"),  # a CNN path over a (C, 32, 32) map
            f"--data.init_args.target_ckpt={tiny_target}",
            "--trainer.precision=bf16-mixed",
            "--model.init_args.channels_last=true",
            f"--data.cache_dir={tmp_path / 'cache'}",
            "--data.val_size=20",
            "--data.test_size=40",
            "--data.batch_size=16",
            *quiet(tmp_path),
        ]
    )
    assert cli.trainer.state.finished
    conv = next(m for m in cli.model.detector.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
def test_target_fits_compiled_on_cpu(tmp_path):
    """torch.compile works on CPU too (with a C++ compiler), after a minute or more of compiling."""
    config = str(ROOT / "configs" / "target_cifar10.yaml")
    args = [
        "fit",
        "--config",
        config,
        *SOURCES["cifar10"],
        *quiet(tmp_path),
        "--model.init_args.compile=true",
    ]
    cli = main([*args, "--model.init_args.width=0.25", "--data.num_workers=0", "--data.batch_size=32"])
    assert cli.trainer.state.finished
    assert "net.layer1.0.weight" in cli.model.state_dict()  # compiled in place: checkpoint keys unchanged


def test_bf16_does_not_round_the_scores_that_are_evaluated(tmp_path, tiny_target, monkeypatch):
    """Under bf16-mixed the detector trains in bfloat16, but its test scores are computed in float32."""
    from mint.evaluation import ScoreCollector

    seen = []
    update = ScoreCollector.update

    def spy(self, scores, *rest):
        seen.append(scores.clone())
        return update(self, scores, *rest)

    monkeypatch.setattr(ScoreCollector, "update", spy)
    sizes = ["--data.val_size=20", "--data.test_size=150", "--data.calibration_size=0"]
    args = detector_args(tmp_path, tiny_target, "--trainer.precision=bf16-mixed", *sizes)
    fit = main(["fit", *args, "--trainer.max_epochs=1"])
    seen.clear()  # validation's columns (base, residual): only the test's are checked here
    main(["test", *args, f"--ckpt_path={fit.trainer.checkpoint_callback.best_model_path}"])
    mint = torch.cat(seen)[:, 0]
    assert mint.numel() == 300 and mint.unique().numel() == 300  # bfloat16 would leave ~8 bits
    assert not torch.equal(mint, mint.to(torch.bfloat16).double())
