"""Checkpoint records: one module writes and reads them, and they survive a `weights_only` load."""

import json
import re
from pathlib import Path

import pytest
import torch

import mint
from mint.data import DetectorDataModule
from mint.errors import MintError
from mint.records import DetectorRecord
from mint.records.checkpoint import (
    DATA_STATE_KEY,
    DP_KEY,
    LEGACY_DATA_KEYS,
    TARGET_KEY,
    data_module_state,
    detector_options,
    read_dp_state,
    write_dp_state,
)
from mint.records.report import TestReport
from mint.records.scores import SCHEMA_VERSION

PACKAGE = Path(mint.__file__).parent


def a_record() -> DetectorRecord:
    return DetectorRecord(
        target={"sha256": "ab" * 32, "path": "/t.ckpt", "hparams": {"arch": "paper_cnn"}, "manifest": {}},
        seconds=12.5,
        data={"seed": 0, "sets": {"test": {"members": 2, "nonmembers": 2}}},
        sets={"test": torch.tensor([3, 1, 4, 1])},
        seen_digests=torch.zeros(2, 32, dtype=torch.uint8),
        calibration={
            "true_label": torch.tensor([0.5, -0.5], dtype=torch.float64),
            "members": torch.tensor([1, 0]),
        },
    )


def test_a_detector_record_survives_a_weights_only_round_trip(tmp_path):
    record = a_record()
    checkpoint = {
        "state_dict": {},
        DATA_STATE_KEY: data_module_state(
            record.data,
            record.sets,
            record.seen_digests,
            ["layer2", "layer7"],
            {"pool": "avg", "pool_size": 2},
        ),
        "hyper_parameters": {"class_conditioning": "per_class"},
    }
    record.write(checkpoint)  # the module's part: the target, the cost, the calibration scores
    assert set(checkpoint) == {
        "state_dict",
        DATA_STATE_KEY,
        "hyper_parameters",
        *DetectorRecord.KEYS.values(),
    }
    torch.save(checkpoint, tmp_path / "d.ckpt")
    back = DetectorRecord.read(torch.load(tmp_path / "d.ckpt", weights_only=True))
    assert back.target == record.target and back.seconds == 12.5 and back.data == record.data
    assert torch.equal(back.sets["test"], torch.tensor([3, 1, 4, 1]))
    assert back.seen == {bytes(32)}
    assert torch.equal(back.calibration["true_label"], record.calibration["true_label"])
    assert back.layers == ["layer2", "layer7"] and back.pooling == {"pool": "avg", "pool_size": 2}


def test_a_checkpoint_of_the_earlier_layout_is_read_the_same():
    """Before the data module kept its sets in its own state, the module wrote them under mint_* keys."""
    record = a_record()
    legacy = {"mint_target": record.target, "mint_seconds": 12.5, "mint_data": record.data,
              "mint_sets": record.sets, "mint_seen_digests": record.seen_digests}  # fmt: skip
    back = DetectorRecord.read(legacy)
    assert back.data == record.data and back.sets is record.sets and back.seen == {bytes(32)}
    # ... and the module, which read the target then, kept its layers and pooling as hyperparameters
    legacy["hyper_parameters"] = {
        "target_ckpt": "t.ckpt",
        "layers": ["layer7"],
        "pool": "max",
        "pool_size": 4,
    }
    back = DetectorRecord.read(legacy)
    assert back.layers == ["layer7"] and back.pooling == {"pool": "max", "pool_size": 4}
    legacy["hyper_parameters"] = {"target_ckpt": "t.ckpt", "layers": ["layer7"]}  # before pooling existed
    assert DetectorRecord.read(legacy).pooling == {}
    assert DATA_STATE_KEY == DetectorDataModule.__qualname__  # where Lightning stores a data module's state


def test_fields_left_empty_are_not_written_and_other_checkpoints_have_no_record():
    checkpoint = {}
    DetectorRecord(target={"sha256": "x"}, seconds=1.0).write(checkpoint)
    assert set(checkpoint) == {TARGET_KEY, "mint_seconds"}
    record = DetectorRecord.read(checkpoint)
    assert record.sets is None and record.seen is None and record.calibration is None
    for other in ({"state_dict": {}, "hyper_parameters": {"arch": "paper_cnn"}}, [1, 2], None, "text"):
        assert DetectorRecord.read(other) is None


def test_a_dp_sgd_state_and_older_detectors_options():
    checkpoint = {}
    assert read_dp_state(checkpoint) is None
    write_dp_state(checkpoint, {"epsilon_spent": 3.0})
    assert checkpoint[DP_KEY] == {"epsilon_spent": 3.0} and read_dp_state(checkpoint) == {
        "epsilon_spent": 3.0
    }
    # A detector saved before output features and the calibrated base had neither.
    older = detector_options({"layers": ["layer7"], "dropout": 0.1}, ("dropout", "output_features"))
    assert older == {"output_features": False, "calibrated_base": False, "dropout": 0.1}
    assert detector_options({"calibrated_base": True}, ("calibrated_base",))["calibrated_base"] is True


def test_no_other_module_names_a_checkpoint_key():
    """The keys live in mint/records/checkpoint.py: a module that spells one bypasses the record."""
    keys = [
        *DetectorRecord.KEYS.values(),
        *LEGACY_DATA_KEYS.values(),
        DP_KEY,
    ]  # (DATA_STATE_KEY: a class name)
    pattern = re.compile("|".join(rf"[\"']{k}[\"']" for k in keys))
    code = [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "benchmarks").rglob("*.py")]  # scripts too
    found = [
        f"{path.relative_to(PACKAGE.parent)}: {match.group()}"
        for path in code
        if path.name != "checkpoint.py" or path.parent.name != "records"
        for match in pattern.finditer(path.read_text())
    ]
    # The budget in a test report gives the detector's seconds under the same name.
    assert [f for f in found if not f.endswith(': "mint_seconds"')] == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not a JSON test report"),
        (
            json.dumps({"schema_version": SCHEMA_VERSION + 1, "mint": {}}),
            f"not a detector's test report of version {SCHEMA_VERSION}",
        ),
        (json.dumps({"test/acc": 0.9}), "found None"),  # a target's test_results.json
    ],
)
def test_a_test_report_refuses_what_mint_did_not_write(tmp_path, content, message):
    (tmp_path / "test_results.json").write_text(content)
    with pytest.raises(MintError, match=re.escape(message)):
        TestReport.read(tmp_path)
    with pytest.raises(MintError, match="not found|no such|does not exist"):
        TestReport.read(tmp_path / "elsewhere.json")
