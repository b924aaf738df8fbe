"""`mint study`: one factor varied, everything else fixed, one table."""

import csv
import json

import pytest

from mint.attacks.registry import curve_style
from mint.cli import main
from mint.data import FakeSource
from mint.errors import MintError
from tests.conftest import ROOT, SOURCES, colour_pixels, shown_pixels


def _study(
    tmp_path, factor: str, values: list[str], data: str, batch: int, calibration: int, *extra
) -> list[dict]:
    """A target-side study on test data: 1-2 epoch targets, 1-epoch detectors on 30 + 30 test images."""
    name = "cifar100" if data == "cifar100" else ""
    target_args = " ".join([
        *SOURCES[data], f"--trainer.max_epochs={2 if name else 1}", "--model.width=0.25",
        f"--data.batch_size={batch}", "--data.num_workers=0", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ])  # fmt: skip
    detector_args = (
        f"--data.val_size=10 --data.test_size=30 --data.calibration_size={calibration} --data.batch_size=16 "
        f"--data.cache_dir={tmp_path / 'cache'} "
        "--trainer.max_epochs=1 --trainer.enable_progress_bar=false --trainer.enable_model_summary=false"
    )
    return main([
        "study", "--factor", factor, "--values", *values,
        "--target-config", str(ROOT / "configs" / f"target_{data}.yaml"),
        "--detector-config", str(ROOT / "configs" / f"mint_{name + '_' if name else ''}layer7.yaml"),
        "--target-args", target_args, "--detector-args", detector_args, "--output", str(tmp_path), *extra,
    ])  # fmt: skip


def test_class_count_study_end_to_end(tmp_path):
    rows = _study(tmp_path, "classes", ["10", "20"], "cifar100", 32, 10)
    assert [r["classes"] for r in rows] == [10, 20]
    labels = FakeSource(num_classes=100).load("train").labels
    for r in rows:  # half of the kept classes' images are members
        assert r["target_members"] == pytest.approx((labels < r["classes"]).sum() / 2, rel=0.1)
    run = tmp_path / "study_classes" / "run_0"
    assert {"study.csv", "study.md", "study.png", "target", "detector"} <= {p.name for p in run.iterdir()}
    for r in rows:  # each row is its run's measurement
        res = json.loads(
            (run / "detector" / f"classes={r['classes']}-test" / "test_results.json").read_text()
        )
        assert r["mint_auroc"] == res["mint"]["auroc"] and r["n_test"] == "30+30"
        assert (
            r["loss_auroc"] == res["baselines"]["loss"]["auroc"]
            and r["gap"] == res["target_on_test_set"]["target_gap"]
        )
    with (run / "study.csv").open() as f:
        assert [r["classes"] for r in csv.DictReader(f)] == ["10", "20"]
    for pixels in shown_pixels(run / "study.png", tmp_path):  # MINT, the loss attack, the gap: all drawn
        for colour in (curve_style("mint")["color"], curve_style("loss")["color"], "tab:green"):
            assert colour_pixels(pixels, colour) >= 30, colour


def test_study_rejects_bad_values_before_any_training(tmp_path):
    base = [
        "study",
        "--detector-config",
        str(ROOT / "configs" / "mint_layer7.yaml"),
        "--output",
        str(tmp_path),
    ]
    with pytest.raises(MintError, match="member fractions"):
        main([*base, "--factor", "members", "--values", "0.5", "2", "--target-config", "x.yaml"])
    with pytest.raises(MintError, match="none, embedding, per_class"):
        main([*base, "--factor", "conditioning", "--values", "per_clas", "--target-ckpt", "x.ckpt"])
    members = [*base, "--factor", "members", "--values", "0.5", "--target-config", "x.yaml"]
    with pytest.raises(MintError, match="--references .* goes with --factor defense"):
        main([*members, "--references", "2"])
    with pytest.raises(MintError, match="0 or more, not -1"):  # (before naming the factor it needs)
        main([*members, "--references=-1"])
    with pytest.raises(MintError, match="give --target-config"):
        main([*base, "--factor", "classes", "--values", "10"])
    assert not (tmp_path / "study_members").exists()


def test_defense_study_puts_utility_beside_what_attacks_find_and_prove(tmp_path):
    rows = _study(tmp_path, "defense", ["none", "dp=4"], "cifar10", 50, 0, "--references", "1")
    none, dp = rows
    assert none["claimed_epsilon"] is None and 3.9 <= dp["claimed_epsilon"] <= 4.0
    for r in rows:
        assert 0 < r["target_test_acc"] < 1
        for attack in ("mint", "loss", "attack_model", "rmia_offline"):
            assert 0 <= r[f"{attack}_epsilon_lb"] <= r["largest_provable"]
    run = tmp_path / "study_defense" / "run_0"
    res = json.loads((run / "detector" / "defense=dp=4-references" / "test_results.json").read_text())
    assert dp["mint_epsilon_lb"] == res["privacy"]["epsilon_lower_bound"]["mint"]
    assert dp["mint_auroc"] == res["mint"]["auroc"]
    assert dp["rmia_offline_auroc"] == res["reference_attacks"]["rmia_offline"]["auroc"]
    assert dp["attack_model_auroc"] == res["learned_attacks"]["attack_model"]["auroc"]
    assert dp["white_box_gain_auroc"] == res["white_box_gain"]["auroc"]
    assert res["references"]["mode"] == "offline" and res["budget"]["reference_models"] == 1
    md = (run / "study.md").read_text()
    # 15 + 15 bounded images cannot test a claim of 4: the table says how many would.
    assert "dp=4: 15 + 15 test images" in md and "members and as many non-members" in md
    assert (run / "study.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("dp=0", "positive"),
        ("dp=many", "needs a float"),
        ("smoothing=0.1", "unknown defense"),
        ("augment=flip", "crop or crop_flip"),
        ("dropout=1", r"\[0, 1\)"),
    ],
)
def test_defense_study_refuses_bad_settings_before_training(tmp_path, value, words):
    with pytest.raises(MintError, match=words):
        main([
            "study", "--factor", "defense", "--values", "none", value, "--output", str(tmp_path),
            "--detector-config", str(ROOT / "configs" / "mint_layer7.yaml"), "--target-config", "x.yaml",
        ])  # fmt: skip
    assert not (tmp_path / "study_defense").exists()
