import pytest

from mint.attacks.registry import curve_style
from mint.cli import main
from mint.experiments.sweep import DETECTOR_COLOURS
from tests.conftest import ROOT, colour_pixels, shown_pixels


def sweep_args(tmp_path, ckpt, layers):
    return [
        "sweep", "--config", str(ROOT / "configs" / "mint_layer7.yaml"), "--layers", *layers, "--",
        f"--data.init_args.target_ckpt={ckpt}", f"--trainer.logger.init_args.save_dir={tmp_path}",
        f"--data.cache_dir={tmp_path / 'cache'}", "--data.val_size=20", "--data.test_size=40",
        "--data.calibration_size=10",
        "--data.batch_size=20", "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false",
    ]  # fmt: skip


def test_sweep_writes_one_table_from_one_extraction(tmp_path, tiny_target):
    rows = main(sweep_args(tmp_path, tiny_target, ["layer3", "layer7"]))
    run = tmp_path / "sweep_mint_layer7" / "run_0"
    assert {p.name for p in run.iterdir()} >= {"sweep.csv", "sweep.md", "sweep_auroc.png", "layer3", "layer7"}
    scorers = [r["scorer"] for r in rows]
    assert scorers[:5] == ["MINT layer3 (CNN)", "MINT layer3 (CNN) + output", "MINT layer7 (MLP)",
                           "MINT layer7 (MLP) + output", "MINT output features"]  # fmt: skip
    assert len(scorers) == 12 and all(s.startswith("baseline") for s in scorers[5:9])
    learned = ["class_calibrated_loss", "attack_model", "quantile_regression"]
    assert scorers[9:] == [f"learned: {n}" for n in sorted(learned)]  # (test_results.json sorts keys)
    assert [r["depth"] for r in rows[:5]] == [3, 3, 7, 7, ""]
    # The winner is picked by validation AUROC, never by test AUROC, the black-box attacks candidates too.
    (picked,) = [r for r in rows if r["picked"]]
    assert all(r["val_auroc"] == r["val_auroc"] for r in rows)  # every row has its validation AUROC
    assert picked["val_auroc"] == max(r["val_auroc"] for r in rows)
    loss = next(r for r in rows if r["scorer"] == "baseline: loss")
    assert 0 <= loss["val_auroc"] <= 1 and loss["val_auroc"] != loss["auroc"]  # validation's, not test's
    assert (
        f"Picked by validation AUROC ({picked['val_auroc']:.3f}): {picked['scorer']}"
        in (run / "sweep.md").read_text()
    )
    # The figure shows every attack as a line in its ROC colour, and each detector series in a colour
    # of its own (read from the PNG, and from Chromium's screenshot where it is installed).
    attacks = [r["scorer"].split(": ", 1)[1] for r in rows if r["scorer"].startswith(("baseline", "learned"))]
    colours = {name: curve_style(name)["color"] for name in attacks} | {
        f"MINT {kind}{' + output' if output else ''}": colour
        for (kind, output), colour in DETECTOR_COLOURS.items()
    }
    assert len(set(colours.values())) == len(colours), colours
    for pixels in shown_pixels(run / "sweep_auroc.png", tmp_path):
        shown = {name: colour_pixels(pixels, colour) for name, colour in colours.items()}
        assert min(shown.values()) >= 10, shown  # (an equal AUROC hides a line: its legend key shows)
    caches = list((tmp_path / "cache").iterdir())
    assert len(caches) == 1 and {p.name for p in caches[0].glob("*.npy")} == {
        "layer3.npy",
        "layer7.npy",
        "logits.npy",
    }


def test_sweep_with_a_typo_fails_before_any_work(tmp_path, tiny_target):
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['layer77'\].*valid names"):
        main(sweep_args(tmp_path, tiny_target, ["layer3", "layer77"]))
    assert not (tmp_path / "cache").exists() and not (tmp_path / "sweep_mint_layer7").exists()
