import json

import numpy as np
import pytest
import torch

from mint.cli import main
from mint.data import MINTDataModule, NpzSource, build_membership
from mint.data.activation_cache import ActivationCache
from mint.detector import MINTModule
from tests.conftest import ROOT, shared_file


def mint_args(tmp_path, ckpt, *extra):
    return [
        "--config",
        str(ROOT / "configs" / "mint_layer7.yaml"),
        f"--model.init_args.target_ckpt={ckpt}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--data.cache_dir={tmp_path / 'cache'}",
        *extra,
    ]


def fit_and_test(tmp_path, ckpt, *extra) -> dict:
    cli = main(["fit", *mint_args(tmp_path, ckpt, *extra)])
    best = cli.trainer.checkpoint_callback.best_model_path
    main(["test", *mint_args(tmp_path, ckpt, *extra), f"--ckpt_path={best}"])
    results = sorted(tmp_path.glob("mint_layer7/version_*/test_results.json"))[-1]
    return json.loads(results.read_text())


SIZES = [
    "--data.train_size=250",
    "--data.val_size=50",
    "--data.test_size=100",
    "--data.calibration_size=0",
    "--data.batch_size=50",
]


def test_detector_finds_members_of_a_memorizing_classifier(tmp_path, memorizing_classifier):
    res = fit_and_test(
        tmp_path, memorizing_classifier, *SIZES, "--trainer.max_epochs=15", "--model.layers=[layer8]"
    )
    assert res["classifier_on_test_set"]["target_member_acc"] > 0.95  # it memorized
    assert res["mint"]["n_members"] == 100 and res["mint"]["n_nonmembers"] == 100
    assert res["mint"]["auroc"] > 0.75, res["mint"]
    assert (tmp_path / "mint_layer7" / "latest" / "checkpoints" / "best.ckpt").is_file()
    assert (tmp_path / "mint_layer7" / "version_1" / "roc_test.png").is_file()


def relabelled_checkpoint(src, dst, seed=123):
    """The same classifier, but its recorded 'members' are a random half of the train split: both
    sides then hold true members in equal shares, so no detector can tell them apart."""
    ckpt = torch.load(src, weights_only=True)
    manifest = ckpt["ClassifierDataModule"]["manifest"]
    source = NpzSource(**manifest["source"]["init_args"])
    fake = build_membership(source, 0.5, seed, True).manifest
    ckpt["ClassifierDataModule"]["manifest"] = manifest | {
        k: fake[k] for k in fake if k not in ("mean", "std")
    }
    torch.save(ckpt, dst)
    return dst


def test_control_with_members_and_nonmembers_from_one_pool_is_near_chance(tmp_path, memorizing_classifier):
    ckpt = relabelled_checkpoint(memorizing_classifier, tmp_path / "control.ckpt")
    sizes = [
        "--data.train_size=600",
        "--data.val_size=100",
        "--data.test_size=250",
        "--data.calibration_size=0",
        "--data.batch_size=50",
    ]
    res = fit_and_test(tmp_path, ckpt, *sizes, "--trainer.max_epochs=10", "--model.layers=[layer8]")
    assert abs(res["mint"]["auroc"] - 0.5) < 0.1, res["mint"]


def test_cache_is_reused_extended_and_corruption_is_detected(tmp_path, tiny_classifier):
    def setup(layers):
        dm = MINTDataModule(
            str(tiny_classifier), layers, val_size=20, test_size=40, cache_dir=str(tmp_path / "c")
        )
        dm.setup("fit")
        return dm

    dm = setup(["layer3", "layer7"])
    cache = dm.cache()
    assert cache.problem("layer3") is None and cache.problem("logits") is None
    arrays = cache.open(["layer3", "logits"])
    assert arrays["layer3"].dtype == np.float16 and arrays["logits"].dtype == np.float32
    assert arrays["layer3"].shape[0] == len(dm.plan["pool"])
    mtime = (cache.dir / "layer3.npy").stat().st_mtime_ns
    setup(["layer3", "layer5"])  # one more layer: added to the same folder, layer3 reused
    assert (cache.dir / "layer3.npy").stat().st_mtime_ns == mtime and cache.problem("layer5") is None
    with open(cache.dir / "layer3.npy", "r+b") as f:  # flip bytes in the middle
        f.seek(2000)
        f.write(b"\xff" * 16)
    assert "corrupted" in cache.problem("layer3")
    with pytest.warns(UserWarning, match="layer3 is corrupted.*rebuilding"):
        setup(["layer3"])
    assert cache.problem("layer3") is None
    (cache.dir / "layer5.npy").write_bytes(b"torn")
    assert "truncated" in cache.problem("layer5")
    stale = ActivationCache(tmp_path / "c", {"other": 1})
    stale.dir.mkdir()
    (stale.dir / "layer3.json").write_text(json.dumps({"key": {"old": 1}, "name": "layer3"}))
    assert stale.problem("layer3").startswith("stale")


def test_on_the_fly_matches_the_cache(tmp_path, tiny_classifier):
    cached = MINTDataModule(
        str(tiny_classifier), ["layer7"], val_size=20, test_size=40, cache_dir=str(tmp_path / "c")
    )
    fly = MINTDataModule(str(tiny_classifier), ["layer7"], val_size=20, test_size=40, cache_dir=None)
    cached.setup(), fly.setup()
    model = MINTModule(str(tiny_classifier), ["layer7"])
    a = next(iter(cached.test_dataloader()))
    b = next(iter(fly.test_dataloader()))
    order = torch.argsort(b["id"])
    acts = model.activations(b)["layer7"][order]
    assert torch.equal(a["id"], b["id"][order])
    assert torch.allclose(a["acts"]["layer7"], acts, rtol=1e-2, atol=1e-2)  # float16 cache


def test_missing_checkpoint_says_which_command_creates_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="configs/classifier_cifar10.yaml"):
        MINTModule(str(tmp_path / "none.ckpt"))


def test_a_checkpoint_that_is_not_a_classifier(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "some.Other"}}, path)
    with pytest.raises(ValueError, match=r"not a mint classifier checkpoint \(some.Other"):
        MINTModule(str(path))
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        MINTModule(str(tmp_path / "junk.ckpt"))


def test_class_count_mismatch(tiny_classifier):
    with pytest.raises(ValueError, match="num_classes=100 but the classifier"):
        MINTModule(str(tiny_classifier), num_classes=100)


def test_unknown_layer_fails_at_once_with_valid_names(tiny_classifier):
    with pytest.raises(ValueError, match=r"valid names: \['layer1'"):
        MINTModule(str(tiny_classifier), ["layer77"])


def test_other_data_source_is_refused(tiny_classifier):
    other = NpzSource(shared_file("cifar100_mini_train.npz"), shared_file("cifar100_mini_test.npz"))
    dm = MINTDataModule(str(tiny_classifier), source=other, cache_dir=None)
    with pytest.raises(ValueError, match="not the data the classifier was trained on"):
        dm.setup()


def test_too_few_images_for_the_requested_sizes(tiny_classifier):
    dm = MINTDataModule(str(tiny_classifier), val_size=500, test_size=600, cache_dir=None)
    with pytest.raises(ValueError, match="not enough images for the requested sets"):
        dm.setup()


def test_sets_are_balanced_and_disjoint(tiny_classifier):
    dm = MINTDataModule(str(tiny_classifier), val_size=50, calibration_size=30, test_size=100, cache_dir=None)
    plan = dm.plan
    images = {n: set(plan["pool"][rows]) for n, rows in plan["portions"].items()}
    names = list(images)
    assert names == ["train", "val", "calibration", "test"]
    for i, a in enumerate(names):
        assert all(not images[a] & images[b] for b in names[i + 1 :]), a
    for name, rows in plan["portions"].items():
        assert plan["members"][rows].mean() == 0.5, name
    assert len(plan["portions"]["calibration"]) == 60 and len(plan["portions"]["test"]) == 200
    members = set(plan["data"].split.members)
    assert all((idx in members) == bool(m) for idx, m in zip(plan["pool"], plan["members"], strict=True))


def test_a_mint_checkpoint_stands_alone(tmp_path, tiny_classifier):
    import shutil

    copy = tmp_path / "classifier.ckpt"
    shutil.copy(tiny_classifier, copy)
    small = [
        "--data.val_size=20",
        "--data.test_size=40",
        "--data.calibration_size=10",
        "--data.batch_size=20",
        "--trainer.max_epochs=1",
    ]
    cli = main(["fit", *mint_args(tmp_path, copy, *small)])
    mint_ckpt = cli.trainer.checkpoint_callback.best_model_path
    copy.unlink()  # the classifier's own file is gone: the MINT checkpoint must suffice
    main(["test", *mint_args(tmp_path, mint_ckpt, *small), f"--ckpt_path={mint_ckpt}"])
    results = json.loads(sorted(tmp_path.glob("mint_layer7/version_*/test_results.json"))[-1].read_text())
    assert results["target_sha256"] == cli.model.target_meta["sha256"]
    assert results["mint"]["n_members"] == 40
    # the calibration scores that `mint audit` needs travel in the checkpoint, made with its weights
    ckpt = torch.load(mint_ckpt, weights_only=True)
    cal = ckpt["mint_calibration"]
    assert cal["members"].tolist().count(1) == 10 and cal["members"].tolist().count(0) == 10
    module = MINTModule.load_from_checkpoint(mint_ckpt, weights_only=True, target_ckpt=mint_ckpt)
    module.trainer = cli.trainer
    again = module.calibration_scores(cli.datamodule.datasets["calibration"])
    assert torch.allclose(again["true_label"], cal["true_label"])
    assert ckpt["mint_data"]["sets"]["calibration"] == {"members": 10, "nonmembers": 10}


def test_test_set_does_not_depend_on_train_size(tiny_classifier):
    a = MINTDataModule(str(tiny_classifier), train_size=100, val_size=50, test_size=100, cache_dir=None).plan
    b = MINTDataModule(str(tiny_classifier), train_size=600, val_size=50, test_size=100, cache_dir=None).plan
    for name in ("test", "val"):
        assert np.array_equal(a["pool"][a["portions"][name]], b["pool"][b["portions"][name]]), name
    assert len(a["portions"]["train"]) == 200 and len(b["portions"]["train"]) == 1200
