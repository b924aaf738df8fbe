"""Per-image scores on disk: the npz round-trips, refuses what it did not write, and matches the report."""

import json

import jsonschema
import numpy as np
import pytest
import torch

from mint.cli import main
from mint.errors import MintError
from mint.evaluation.metrics import auroc_from_file
from mint.records.report import TestReport
from mint.records.scores import (
    KEYS,
    SCHEMA_VERSION,
    read_scores_npz,
    schema_path,
    validate_results,
    write_scores_npz,
)
from tests.conftest import detector_args

NAMES = ("mint", "loss")


def written(path, n=6):
    g = torch.Generator().manual_seed(0)
    return write_scores_npz(
        path,
        ids=torch.arange(n),
        image_index=np.arange(100, 100 + n),
        labels=torch.arange(n) % 3,
        members=torch.tensor([1, 0] * (n // 2)),
        correct=torch.ones(n, dtype=torch.bool),
        scores=torch.randn(n, len(NAMES), generator=g, dtype=torch.float64),
        names=NAMES,
    )


def test_round_trip_keeps_every_array_and_float64(tmp_path):
    data = read_scores_npz(written(tmp_path / "s.npz"))
    assert set(data) == set(KEYS)
    assert data["scores"].dtype == np.float64 and data["scores"].shape == (6, 2)
    assert [str(s) for s in data["scorers"]] == list(NAMES)
    assert data["image_index"].tolist() == list(range(100, 106)) and data["members"].tolist() == [1, 0] * 3
    assert int(data["schema_version"]) == SCHEMA_VERSION
    assert not list(tmp_path.glob(".*tmp")), "the atomic write left its temporary file"


def test_scores_of_the_wrong_shape_are_not_written(tmp_path):
    with pytest.raises(ValueError, match="expected \\(3, 2\\)"):
        write_scores_npz(tmp_path / "s.npz", ids=torch.arange(3), image_index=np.arange(3),
                         labels=torch.zeros(3), members=torch.zeros(3), correct=torch.zeros(3),
                         scores=torch.zeros(3, 5), names=NAMES)  # fmt: skip
    assert not (tmp_path / "s.npz").exists()


def resaved(src, dst, **change):
    with np.load(src) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays |= change
    for k in [k for k, v in change.items() if v is None]:
        del arrays[k]
    np.savez(dst, **arrays)
    return dst


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"schema_version": np.int64(2)}, "version 2; this mint reads version 1"),
        ({"scores": None}, "lacks scores"),
        ({"labels": np.zeros(4, dtype=np.int64)}, "damaged"),
        ({"scorers": np.array(["mint"])}, "damaged"),
        ({"labels": np.array([{"a": 1}] * 6, dtype=object)}, "not a mint scores file"),  # pickled objects
    ],
)
def test_a_file_it_did_not_write_is_refused_with_a_reason(tmp_path, change, words):
    path = resaved(written(tmp_path / "s.npz"), tmp_path / "other.npz", **change)
    with pytest.raises(MintError, match=words):
        read_scores_npz(path)


def test_a_folder_or_a_text_file_is_not_a_scores_file(tmp_path):
    with pytest.raises(MintError, match="is a folder"):
        read_scores_npz(tmp_path)
    (tmp_path / "s.npz").write_text("not a zip")
    with pytest.raises(MintError, match="not a mint scores file"):
        read_scores_npz(tmp_path / "s.npz")
    with pytest.raises(MintError, match="has no scorer 'lira'"):
        auroc_from_file(written(tmp_path / "t.npz"), "lira")


def test_the_schema_is_a_valid_draft_2020_12_schema_and_refuses_a_missing_report():
    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"] == {"const": SCHEMA_VERSION}
    with pytest.raises(jsonschema.ValidationError, match="'mint_version' is a required property"):
        validate_results({"schema_version": SCHEMA_VERSION})


def test_a_test_run_writes_scores_that_reproduce_its_report(tmp_path, tiny_target):
    small = ["--data.val_size=20", "--data.test_size=40", "--data.calibration_size=0"]
    small.append("--trainer.max_epochs=1")
    cli = main(["fit", *detector_args(tmp_path, tiny_target, *small)])
    best = cli.trainer.checkpoint_callback.best_model_path
    main(["test", *detector_args(tmp_path, tiny_target, *small), f"--ckpt_path={best}"])
    run = sorted(tmp_path.glob("mint_layer7/version_*/test_results.json"))[-1].parent
    results = json.loads((run / "test_results.json").read_text())
    validate_results(results)  # every key the schema names, none it does not
    with pytest.raises(jsonschema.ValidationError, match="'class_calibrated_loss' is a required property"):
        validate_results(results | {"learned_attacks": {}})
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        validate_results(results | {"mint": results["mint"] | {"auroc_typo": 0.5}})
    report = TestReport.read(run)  # what experiments read: the same numbers, typed
    assert report.mint.auroc == results["mint"]["auroc"] and report.mint.members == 40
    assert report.mint.tpr_at_1pct_fpr != report.mint.tpr_at_1pct_fpr  # 40 non-members resolve no 1%
    assert list(report.attacks) == [*results["baselines"], *results["learned_attacks"]]
    assert report.picked == results["picked"]["scorer"] and report.white_box_gain.against in report.attacks
    assert report.target_gap.gap == results["target_on_test_set"]["target_gap"]
    data = read_scores_npz(run / results["scores_file"])
    names = [str(s) for s in data["scorers"]]
    assert names[:2] == ["mint", "loss"] and {"attack_model", "quantile_regression"} <= set(names)
    tables = results["baselines"] | results["learned_attacks"] | {"mint": results["mint"]}
    for name in names:  # the AUROC a re-plot computes from the file is the report's, to the last bit
        assert auroc_from_file(run / "test_scores.npz", name) == tables[name]["auroc"], name
    assert data["members"].sum() == 40 and (data["members"] == 0).sum() == 40
    # image_index points into the images the target was split from: the labels agree
    source = cli.datamodule.sets.found
    assert np.array_equal(source.labels[data["image_index"]], data["labels"])
    correct = data["target_correct"][data["members"] == 1].mean()
    assert correct == pytest.approx(results["target_on_test_set"]["target_member_acc"])
