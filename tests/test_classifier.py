import json

import pytest
import torch
import yaml

from mint.data import NpzSource
from mint.data.classifier_datamodule import ClassifierDataModule
from tests.conftest import shared_file


def test_classifier_run_records_split_checkpoints_and_gap(tiny_classifier):
    run = tiny_classifier.parents[1]
    split = json.loads((run / "split.json").read_text())
    ckpt = torch.load(tiny_classifier, weights_only=True)  # safe loading works: no pickled objects
    assert ckpt["ClassifierDataModule"]["manifest"] == split
    assert split["num_members"] == split["num_nonmembers"] == 1000 and split["seed"] == 0
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "config.yaml").is_file()
    assert (run.parent / "latest").resolve() == run.resolve()
    # normalization from the members, stored with the weights
    assert torch.allclose(ckpt["state_dict"]["mean"], torch.tensor(split["mean"], dtype=torch.float32))
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["init_args"]["member_fraction"] == 0.5
    assert ckpt["hyper_parameters"]["num_classes"] == 10  # linked from the data, not typed
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"val/acc", "val/member_acc", "val/gap", "train/acc"} <= tags


def test_resume_with_a_different_split_is_refused():
    src = NpzSource(shared_file("cifar10_mini_train.npz"), shared_file("cifar10_mini_test.npz"))
    a, b = ClassifierDataModule(src, split_seed=0), ClassifierDataModule(src, split_seed=1)
    a.setup(), b.setup()
    with pytest.raises(ValueError, match="different split.*seed"):
        b.load_state_dict(a.state_dict())
    a.load_state_dict(a.state_dict())  # the same split is accepted


def test_augmentation_changes_training_images_only():
    src = NpzSource(shared_file("cifar10_mini_train.npz"), shared_file("cifar10_mini_test.npz"))
    dm = ClassifierDataModule(src, augment="crop_flip", batch_size=16)
    dm.setup()
    ds = dm.train_dataloader().dataset
    torch.manual_seed(0)
    views = torch.stack([ds[0][0] for _ in range(8)])
    assert any(not torch.equal(views[0], v) for v in views[1:])
    val = dm.val_dataloader()[0].dataset
    assert torch.equal(val[0][0], val[0][0])
