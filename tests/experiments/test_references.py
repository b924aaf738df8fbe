"""`mint references`: reference models with the target's recipe, found again, resumed, and refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mint.attacks.reference_loading import load_reference_set
from mint.attacks.registry import REFERENCE_ATTACKS
from mint.errors import MintError
from mint.experiments.references import main as references
from mint.records import DetectorRecord, load_target_checkpoint

QUIET = ["--", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def test_references_train_on_complementary_halves_and_are_reused(tiny_target, tmp_path, capsys):
    run = tiny_target.parent.parent
    args = ["--target-run", str(run), "--count", "2", "--save-dir", str(tmp_path), *QUIET]
    records = references(args)
    assert [r["index"] for r in records] == [0, 1]
    kept = [np.load(r["checkpoint"].replace("checkpoints/last.ckpt", "kept.npy")) for r in records]
    target = load_target_checkpoint(tiny_target).manifest
    pool = target["num_train"]
    # K = 2 and half the pool: every image is in exactly one of the two references
    assert len(np.intersect1d(*kept)) == 0 and len(np.union1d(*kept)) == pool
    for r, k in zip(records, kept, strict=True):
        saved = load_target_checkpoint(r["checkpoint"])
        assert saved.manifest["reference"]["index"] == r["index"]
        assert saved.manifest["members_sha256"] == target["members_sha256"]  # the target's pool and split
        assert torch.equal(torch.load(r["checkpoint"], weights_only=True)["ReferenceDataModule"]["kept"],
                           torch.from_numpy(k))  # fmt: skip
        assert abs(len(k) - target["num_members"]) <= 0.1 * target["num_members"]
    before = {r["checkpoint"]: (tmp_path / r["checkpoint"]).stat().st_mtime for r in records}
    capsys.readouterr()
    again = references(args)
    assert capsys.readouterr().out.count("found, reused") == 2
    assert all((tmp_path / r["checkpoint"]).stat().st_mtime == before[r["checkpoint"]] for r in again)
    # The set is the target's by content: the same data under another path is the same pool.
    (folder,) = (tmp_path / "references").iterdir()
    moved = target | {
        "source": {"class_path": "mint.data.NpzSource", "init_args": {"train": "/elsewhere.npz"}}
    }
    assert load_reference_set(folder, moved).checkpoints == [r["checkpoint"] for r in records]
    with pytest.raises(MintError, match="made for another target: its members_sha256"):
        load_reference_set(folder, target | {"members_sha256": "0" * 64})
    recipe = load_target_checkpoint(tiny_target).hparams
    assert len(load_reference_set(folder, target, recipe=recipe).checkpoints) == 2
    with pytest.raises(MintError, match=r"its width \(0.25 against the target's 1.0\)"):  # another recipe
        load_reference_set(folder, target, recipe=recipe | {"width": 1.0})
    # K is not part of the set: asking for 3 trains only the third, beside the first two.
    grown = references(["--target-run", str(run), "--count", "3", "--save-dir", str(tmp_path), *QUIET])
    out = capsys.readouterr().out
    assert out.count("found, reused") == 2 and "training reference 2 of 3" in out
    assert [r["checkpoint"] for r in grown[:2]] == [r["checkpoint"] for r in records]


def test_a_crashed_reference_resumes_and_bad_requests_are_refused(tiny_target, tmp_path, capsys, refused):
    run = tiny_target.parent.parent
    args = ["--target-run", str(run), "--count", "3", "--index", "1", "--save-dir", str(tmp_path), *QUIET]
    references(args)
    done = tmp_path.glob("references/*/ref_1/version_0/done.json")
    next(done).unlink()  # as if it had been killed after its last checkpoint
    capsys.readouterr()
    references(args)
    assert "training reference 1 of 3 (resuming)" in capsys.readouterr().out
    refused(["references", "--target-run", str(run), "--count", "3", "--index", "3"], "--index", "0 ... 2")
    refused(["references", "--target-run", str(tmp_path), "--count", "2"], "not a finished target run")
    refused(["references", "--target-run", str(run), "--count", "0"], "--count")


def test_detector_test_adds_every_reference_attack_on_the_same_images(tiny_target, tmp_path, refused):
    from mint.cli import main
    from tests.conftest import CONFIGS, quiet

    run = tiny_target.parent.parent
    references(["--target-run", str(run), "--count", "4", "--save-dir", str(tmp_path), *QUIET])
    (folder,) = (tmp_path / "references").iterdir()
    args = ["--config", str(CONFIGS / "mint_layer7.yaml"), f"--data.init_args.target_ckpt={tiny_target}",
            *quiet(tmp_path), f"--data.cache_dir={tmp_path / 'cache'}", "--data.val_size=50",
            "--data.test_size=200", "--data.calibration_size=0", "--data.batch_size=64"]  # fmt: skip
    fit = main(["fit", *args, "--trainer.max_epochs=1"])
    best = fit.trainer.checkpoint_callback.best_model_path
    test = main(["test", *args, f"--ckpt_path={best}", f"--model.init_args.references={folder}"])
    results = json.loads((Path(test.trainer.log_dir) / "test_results.json").read_text())
    attacks = results["reference_attacks"]
    assert set(attacks) == set(REFERENCE_ATTACKS)
    n = results["mint"]["n_members"], results["mint"]["n_nonmembers"]
    assert all((r["n_members"], r["n_nonmembers"]) == n for r in attacks.values())  # the same test images
    assert all(0 <= r["auroc"] <= 1 for r in attacks.values())
    assert results["budget"]["reference_models"] == 4 and results["budget"]["reference_training_seconds"] > 0
    assert results["budget"]["mint_seconds"] > 0 and 0 <= results["references"]["rmia_offline_a"] <= 1
    # A smaller budget reads the first references of the same set.
    test = main(["test", *args, f"--ckpt_path={best}", f"--model.init_args.references={folder}",
                 "--model.init_args.reference_count=2", "--model.init_args.rmia_offline_a=0.5"])  # fmt: skip
    two = json.loads((Path(test.trainer.log_dir) / "test_results.json").read_text())
    done = [json.loads((folder / f"ref_{i}" / "version_0" / "done.json").read_text()) for i in range(2)]
    assert two["budget"]["reference_models"] == 2 and two["references"]["rmia_offline_a"] == 0.5
    assert two["budget"]["reference_training_seconds"] == sum(d["seconds"] for d in done)
    assert two["reference_attacks"]["lira_online"]["auroc"] != attacks["lira_online"]["auroc"]
    # A sweep shows them beside every layer's detector and the baselines.
    from mint.experiments.sweep import run_sweep

    with_refs = [*args[2:], f"--model.init_args.references={folder}"]
    rows = run_sweep(args[1], ["layer6", "layer7"], with_refs, output_features="off")
    assert {"reference (4, online): lira_online", "reference (4, online): rmia_offline"} <= {
        r["scorer"] for r in rows
    }
    # Offline: references that never saw the detector's test images; only the offline attacks apply.
    offline = tmp_path / "offline"
    asked = ["--target-run", str(run), "--count", "2", "--audited", best, "--save-dir", str(offline)]
    refs = references([*asked, *QUIET])
    test_rows = DetectorRecord.read(torch.load(best, weights_only=True)).sets["test"].numpy()
    for r in refs:
        kept = np.load(r["checkpoint"].replace("checkpoints/last.ckpt", "kept.npy"))
        assert not np.isin(test_rows, kept).any() and r["reference"]["mode"] == "offline"
    (offline_set,) = (offline / "references").iterdir()
    test = main(["test", *args, f"--ckpt_path={best}", f"--model.init_args.references={offline_set}",
                 "--model.init_args.reference_queries=18"])  # fmt: skip
    results = json.loads((Path(test.trainer.log_dir) / "test_results.json").read_text())
    assert set(results["reference_attacks"]) == set(REFERENCE_ATTACKS) - {"lira_online", "rmia_online"}
    assert results["references"]["mode"] == "offline" and results["references"]["lira_queries"] == 18
    # A reference set of another target (another split) is refused, naming what differs.
    other = tmp_path / "other"
    main(
        [
            "fit",
            "--config",
            str(run / "config.yaml"),
            "--data.split_seed=1",
            *quiet(other),
            "--trainer.max_epochs=1",
        ]
    )
    (other_run,) = other.glob("*/version_0")
    references(["--target-run", str(other_run), "--count", "2", "--save-dir", str(other), *QUIET])
    (other_set,) = (other / "references").iterdir()
    refused(["test", *args, f"--ckpt_path={best}", f"--model.init_args.references={other_set}"],
            "made for another target", "members_sha256")  # fmt: skip
    (other_set / "ref_0" / "version_0" / "done.json").unlink()
    refused(["test", *args, f"--ckpt_path={best}", f"--model.init_args.references={other_set}"],
            "only 1 of references 0 ... 1", f"--count 2 --index 0 --seed 0 --save-dir {other}")  # fmt: skip
    refused(["test", *args, f"--ckpt_path={best}", f"--model.init_args.references={folder}",
             "--model.init_args.reference_count=5"], "5 references asked", "--count 5 --index 4")  # fmt: skip
    refused(["test", *args, f"--ckpt_path={best}", f"--model.init_args.references={folder}",
             "--model.init_args.rmia_offline_a=1.5"], r"rmia_offline_a must be in \[0, 1\]")  # fmt: skip


@pytest.mark.slow  # (21 s: keeps the default run under 10 minutes in CI)
def test_a_detector_reading_the_reference_scores_learns_what_they_know(memorizing_target, tmp_path, refused):
    from mint.cli import main
    from tests.conftest import CONFIGS, quiet

    run = memorizing_target.parent.parent
    references(["--target-run", str(run), "--count", "2", "--save-dir", str(tmp_path), *QUIET])
    (folder,) = (tmp_path / "references").iterdir()
    target = f"--data.init_args.target_ckpt={memorizing_target}"
    args = ["--config", str(CONFIGS / "mint_layer7.yaml"), target, *quiet(tmp_path),
            f"--data.cache_dir={tmp_path / 'cache'}", "--data.val_size=50",
            "--data.test_size=150", "--data.calibration_size=0", "--data.batch_size=50",
            f"--model.init_args.references={folder}"]  # fmt: skip
    # Nothing but the reference scores: no layer, no output features, no class.
    only = ["--data.init_args.layers=[]", "--model.init_args.output_features=false",
            "--model.init_args.class_conditioning=none",
            "--model.init_args.reference_features=true"]  # fmt: skip
    fit = main(["fit", *args, *only, "--trainer.max_epochs=15"])
    test = main(["test", *args, *only, f"--ckpt_path={fit.trainer.checkpoint_callback.best_model_path}"])
    results = json.loads((Path(test.trainer.log_dir) / "test_results.json").read_text())
    best = max(r["auroc"] for r in results["reference_attacks"].values())
    assert best > 0.7  # the references know something here
    assert results["mint"]["auroc"] >= best - 0.05  # and the detector learned it, image by image
    refused(["fit", *args[:-1], *only], "reference_features reads the scores of a reference set")
