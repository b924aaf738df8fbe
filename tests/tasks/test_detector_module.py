"""Training and testing a detector: it finds members of a memorizing target, not of a control."""

import json
import shutil

import pytest
import torch

from mint.cli import main
from mint.data import build_membership
from mint.data.sources import source_from_config
from mint.models import Target
from mint.records import DetectorRecord
from mint.tasks import DetectorModule
from tests.conftest import detector_args

SMALL = ["--data.val_size=20", "--data.test_size=40", "--trainer.max_epochs=1"]


def fit(tmp_path, target, *extra):
    """Fit a detector config on `target`; return the CLI and the best checkpoint."""
    cli = main(["fit", *detector_args(tmp_path, target, *extra)])
    return cli, cli.trainer.checkpoint_callback.best_model_path


def fit_and_test(tmp_path, ckpt, *extra) -> dict:
    _, best = fit(tmp_path, ckpt, *extra)
    main(["test", *detector_args(tmp_path, ckpt, *extra), f"--ckpt_path={best}"])
    results = sorted(tmp_path.glob("mint_layer7/version_*/test_results.json"))[-1]
    return json.loads(results.read_text())


SIZES = [
    "--data.train_size=250",
    "--data.val_size=50",
    "--data.test_size=100",
    "--data.calibration_size=0",
    "--data.batch_size=50",
]


def test_detector_finds_members_of_a_memorizing_target(tmp_path, memorizing_target):
    res = fit_and_test(
        tmp_path, memorizing_target, *SIZES, "--trainer.max_epochs=15", "--data.layers=[layer8]"
    )
    assert res["target_on_test_set"]["target_member_acc"] > 0.95  # it memorized
    assert res["mint"]["n_members"] == 100 and res["mint"]["n_nonmembers"] == 100
    assert res["mint"]["auroc"] > 0.75, res["mint"]
    assert set(res["baselines"]) == {"loss", "confidence", "entropy", "modified_entropy"}
    lo, hi = res["controls"]["class_only"]["auroc_ci95"]  # the label alone tells nothing
    assert lo <= 0.5 <= hi and abs(res["controls"]["class_only"]["auroc"] - 0.5) < 0.05
    assert (tmp_path / "mint_layer7" / "latest" / "checkpoints" / "best.ckpt").is_file()
    run = tmp_path / "mint_layer7" / "version_1"
    assert {"roc_test.png", "per_class_auroc.csv", "test_results.json"} <= {p.name for p in run.iterdir()}


def relabelled_checkpoint(src, dst, seed=123):
    """The same target, but its recorded 'members' are a random half of the train split: both sides
    then hold true members in equal shares, so no detector can tell them apart."""
    ckpt = torch.load(src, weights_only=True)
    manifest = ckpt["TargetDataModule"]["manifest"]
    fake = build_membership(source_from_config(manifest["source"]), 0.5, seed, True).manifest
    ckpt["TargetDataModule"]["manifest"] = manifest | {k: fake[k] for k in fake if k not in ("mean", "std")}
    torch.save(ckpt, dst)
    return dst


def test_control_with_members_and_nonmembers_from_one_pool_is_near_chance(tmp_path, memorizing_target):
    ckpt = relabelled_checkpoint(memorizing_target, tmp_path / "control.ckpt")
    sizes = [
        "--data.train_size=600",
        "--data.val_size=100",
        "--data.test_size=250",
        "--data.calibration_size=0",
        "--data.batch_size=50",
    ]
    res = fit_and_test(tmp_path, ckpt, *sizes, "--trainer.max_epochs=10", "--data.layers=[layer8]")
    assert abs(res["mint"]["auroc"] - 0.5) < 0.1, res["mint"]


def test_a_detector_checkpoint_stands_alone(tmp_path, tiny_target):
    copy = tmp_path / "target.ckpt"
    shutil.copy(tiny_target, copy)
    small = [*SMALL, "--data.calibration_size=10", "--data.batch_size=20"]
    cli, detector_ckpt = fit(tmp_path, copy, *small)
    copy.unlink()  # the target's own file is gone: the detector checkpoint must suffice
    main(["test", *detector_args(tmp_path, copy, *small), f"--ckpt_path={detector_ckpt}"])
    results = json.loads(sorted(tmp_path.glob("mint_layer7/version_*/test_results.json"))[-1].read_text())
    assert results["target_sha256"] == cli.model.target_meta["sha256"]
    assert results["mint"]["n_members"] == 40
    # the calibration scores that `mint audit` needs travel in the checkpoint, made with its weights
    ckpt = torch.load(detector_ckpt, weights_only=True)
    cal = ckpt["mint_calibration"]
    assert cal["members"].tolist().count(1) == 10 and cal["members"].tolist().count(0) == 10
    target = Target.load(detector_ckpt, DetectorRecord.read(ckpt).layers)  # the detector's own record
    module = DetectorModule.load_from_checkpoint(detector_ckpt, weights_only=True, target=target)
    again = module.calibration_scores(cli.datamodule.eval_loader("calibration"))
    assert torch.allclose(again["true_label"], cal["true_label"])
    # the data module records its own sets (what the detector learned from), in its own state
    assert set(ckpt["DetectorDataModule"]) == {"manifest", "sets", "seen_digests", "layers", "pooling"}
    assert DetectorRecord.read(ckpt).layers == ["layer7"] and "target_ckpt" not in ckpt["hyper_parameters"]
    assert DetectorRecord.read(ckpt).data["sets"]["calibration"] == {"members": 10, "nonmembers": 10}


def test_test_reads_the_target_from_the_detector_checkpoint(tmp_path, tiny_target, memorizing_target):
    """`test --ckpt_path` uses the target the detector was trained on, even if `target_ckpt` now
    names another file (e.g. a retrained target behind a `latest` link), and its layers and pooling,
    whatever the config says (LightningCLI restores only the module's arguments)."""
    small = [*SMALL, "--data.calibration_size=0"]
    trained = ["--data.layers=[layer3]", "--data.pool=avg", "--data.pool_size=2"]
    cli, detector_ckpt = fit(tmp_path, tiny_target, *small, *trained)
    test = main(["test", *detector_args(tmp_path, memorizing_target, *small), f"--ckpt_path={detector_ckpt}"])
    assert test.model.target_meta["sha256"] == cli.model.target_meta["sha256"]
    assert test.datamodule.target is test.model.target  # one target, read once by the data module
    target = test.model.target
    assert target.layers == ["layer3"] and target.pooling == {"pool": "avg", "pool_size": 2}
    assert target.shapes["layer3"] == (16, 2, 2)


def test_a_test_set_that_overlaps_the_detectors_own_sets_is_refused(tmp_path, tiny_target):
    """Reproduction of issue 14 #1: `test --data.seed=1` used to score images the detector trained on."""
    sizes = ["--data.train_size=300", "--data.val_size=100", "--data.calibration_size=100"]
    sizes += ["--data.test_size=250", "--trainer.max_epochs=1"]
    args = detector_args(tmp_path, tiny_target, *sizes)
    _, ckpt = fit(tmp_path, tiny_target, *sizes)
    recorded = DetectorRecord.read(torch.load(ckpt, weights_only=True)).sets
    assert {k: len(v) for k, v in recorded.items()} == {
        "train": 600,
        "val": 200,
        "calibration": 200,
        "test": 500,
    }
    main(["test", *args, f"--ckpt_path={ckpt}"])  # the same settings: fine
    for change in ("--data.seed=1", "--data.test_size=400"):
        with pytest.raises(ValueError, match=r"test images \(.*%\) were in the detector's own sets"):
            main(["test", *args, change, f"--ckpt_path={ckpt}"])
    with pytest.raises(ValueError, match=r"val images .* were in the detector's own sets \(train"):
        main(["validate", *args, "--data.seed=1", f"--ckpt_path={ckpt}"])


def test_output_features_alone_reproduce_the_loss_attack(tmp_path, memorizing_target):
    # No layer: the detector reads the float64 output features of the label, class-conditioned.
    res = fit_and_test(tmp_path, memorizing_target, *SIZES, "--trainer.max_epochs=15", "--data.layers=[]",
                       "--model.output_features=true")  # fmt: skip
    assert res["layers"] == [] and res["output_features"] is True
    assert res["mint"]["auroc"] >= res["baselines"]["loss"]["auroc"] - 0.01, (res["mint"], res["baselines"])


def test_a_detector_reads_gradient_features_from_the_cache_and_calibrates_with_predicted_labels(
    tmp_path, tiny_target
):
    import numpy as np

    extra = [
        "--data.calibration_size=20",
        "--data.batch_size=32",
        "--data.layers=[grad:layer8, gradnorm:all]",
    ]
    res = fit_and_test(tmp_path, tiny_target, *SMALL, *extra)
    assert res["layers"] == ["grad:layer8", "gradnorm:all"] and 0 <= res["mint"]["auroc"] <= 1
    (cache,) = (tmp_path / "cache").iterdir()
    assert np.load(cache / "grad--layer8.npy", mmap_mode="r").dtype == np.float32  # not float16: tails matter
    ckpt = torch.load(
        sorted(tmp_path.glob("mint_layer7/version_0/checkpoints/best.ckpt"))[0], weights_only=True
    )
    calibration = ckpt["mint_calibration"]
    assert calibration["true_label"].shape == calibration["predicted_label"].shape == (40,)
    # With the predicted class the gradients are read again from the same images: where the target
    # is right the two scores agree, where it is wrong they differ (another class's loss).
    same = torch.isclose(calibration["true_label"], calibration["predicted_label"], atol=1e-4)
    assert 0 < int(same.sum()) < 40


def test_detector_early_stopping_stops_when_validation_auroc_stalls(tmp_path, tiny_target):
    small = ["--data.val_size=20", "--data.test_size=40", "--data.calibration_size=0", "--data.batch_size=20"]
    stalled = ["--model.optimizer.init_args.lr=0", "--model.init_args.early_stopping=1"]  # nothing learns
    cli = main(["fit", *detector_args(tmp_path, tiny_target, "--trainer.max_epochs=8", *small, *stalled)])
    assert cli.trainer.current_epoch < 8 and cli.trainer.should_stop


def test_a_calibrated_base_detector_starts_as_the_class_calibrated_attack_and_audits_with_it(
    tmp_path, memorizing_target
):
    from mint.audit.detector import load_detector

    # lr 0: the head stays at 0, so the detector is its base, fitted on the same training set as the
    # learned class-calibrated attack: the two must score the test images alike.
    frozen = [*SIZES, "--data.calibration_size=20", "--data.train_size=230", "--trainer.max_epochs=1",
              "--model.optimizer.init_args.lr=0"]  # fmt: skip
    res = fit_and_test(tmp_path, memorizing_target, *frozen)
    assert res["mint"]["auroc"] == pytest.approx(res["learned_attacks"]["class_calibrated_loss"]["auroc"])
    assert res["mint"]["auroc"] > res["baselines"]["loss"]["auroc"] - 0.02, res
    (best,) = tmp_path.glob("mint_layer7/version_0/checkpoints/best.ckpt")
    base = load_detector(best, torch.device("cpu")).detector.base
    assert base is not None and base.fitted and base.params.dtype == torch.float64
    # Without the option the checkpoint cannot be read as one that has it, and says what to do.
    with pytest.raises(Exception, match="calibrated_base=false"):
        main(["test", *detector_args(tmp_path / "off", memorizing_target, *frozen,
                                     "--model.init_args.calibrated_base=true"),
              f"--ckpt_path={_without_base(best, tmp_path / 'old.ckpt')}"])  # fmt: skip


def _without_base(src, dst):
    """A copy of a detector checkpoint as one trained before the calibrated base existed."""
    ckpt = torch.load(src, weights_only=True)
    del ckpt["state_dict"]["detector.base.params"]
    ckpt["hyper_parameters"].pop("calibrated_base")
    torch.save(ckpt, dst)
    return dst


def test_train_loss_reaches_tensorboard_with_fewer_batches_than_the_logging_interval(tmp_path, tiny_target):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    small = [*SMALL, "--data.calibration_size=0", "--data.batch_size=50", "--trainer.max_epochs=2"]
    cli, _ = fit(tmp_path, tiny_target, *small)
    batches = cli.trainer.num_training_batches
    assert batches < 50  # Lightning's default interval: before, no train/loss in these 2 epochs
    (events,) = (tmp_path / "mint_layer7" / "version_0").glob("events.out.tfevents.*")
    logged = EventAccumulator(str(events)).Reload().Scalars("train/loss")
    assert len(logged) == 2 and [e.step for e in logged] == [batches - 1, 2 * batches - 1]
