"""Training a target: split record, checkpoints, normalization, logged gap, augmentation."""

import json

import pytest
import torch
import yaml

from mint.data import SampleSource, TargetDataModule
from mint.data.images import to_tensor


def test_target_run_records_split_checkpoints_and_gap(tiny_target):
    run = tiny_target.parents[1]
    split = json.loads((run / "split.json").read_text())
    ckpt = torch.load(tiny_target, weights_only=True)  # safe loading works: no pickled objects
    assert ckpt["TargetDataModule"]["manifest"] == split
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
    src = SampleSource()
    a, b = TargetDataModule(src, split_seed=0), TargetDataModule(src, split_seed=1)
    a.setup(), b.setup()
    with pytest.raises(ValueError, match="different split.*seed"):
        b.load_state_dict(a.state_dict())
    a.load_state_dict(a.state_dict())  # the same split is accepted


def test_augmentation_changes_training_images_only():
    dm = TargetDataModule(SampleSource(), augment="crop_flip", batch_size=16)
    dm.setup()
    ds = dm.train_dataloader().dataset
    torch.manual_seed(0)
    views = torch.stack([ds[0][0] for _ in range(8)])
    assert any(not torch.equal(views[0], v) for v in views[1:])
    test_loader, member_loader = dm.val_dataloader()  # validation images are never augmented
    assert torch.equal(test_loader.dataset[0][0], to_tensor(dm.data.test.images[0]))
    first_member = member_loader.dataset.indices[0]
    assert torch.equal(member_loader.dataset[0][0], to_tensor(dm.data.train.images[first_member]))
