"""`mint audit` on the bundled CIFAR-10 sample with a small memorizing target."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mint.cli import main
from mint.errors import MintError
from mint.records import DetectorRecord
from tests.conftest import detector_args, detector_data

SIZES = {"val_size": 50, "calibration_size": 60, "test_size": 80}


@pytest.fixture(scope="module")
def detector(tmp_path_factory, memorizing_target):
    """A detector (logits layer) with 60 + 60 calibration images held out."""
    tmp = tmp_path_factory.mktemp("audit_detector")
    sizes = [f"--data.{k}={v}" for k, v in SIZES.items()]
    extra = ["--data.layers=[layer8]", *sizes, "--data.batch_size=50", "--trainer.max_epochs=15"]
    cli = main(["fit", *detector_args(tmp, memorizing_target, *extra)])
    return cli.trainer.checkpoint_callback.best_model_path


@pytest.fixture(scope="module")
def held_out(memorizing_target):
    """Images of the detector's test set (never seen by the detector): members and non-members."""
    plan = detector_data(memorizing_target, ["layer8"], cache_dir=None, **SIZES).sets
    rows = plan.portions["test"]
    idx, member = plan.pool[rows], plan.members[rows].astype(bool)
    images, labels = plan.data.train.images[idx], plan.labels[rows]
    return {"member": (images[member], labels[member]), "non": (images[~member], labels[~member])}


def audit(ckpt, images, out, *extra):
    return main(["audit", "--ckpt", str(ckpt), "--images", str(images), "--output", str(out),
                 "--no-progress-bar", *extra])  # fmt: skip


def npz(path, images, labels=None):
    arrays = {"images": images} | ({"labels": labels} if labels is not None else {})
    np.savez(path, **arrays)
    return path


def test_members_give_a_small_p_value_and_unseen_images_do_not(tmp_path, detector, held_out):
    members = audit(detector, npz(tmp_path / "m.npz", *held_out["member"]), tmp_path / "m")
    unseen = audit(detector, npz(tmp_path / "n.npz", *held_out["non"]), tmp_path / "n")
    assert members["p_value"] < 1e-3 and members["verdict"].startswith("Strong evidence")
    assert unseen["p_value"] > 0.05 and unseen["verdict"].startswith("No evidence")
    assert members["member_fraction"]["fraction"] > 0.6 and unseen["member_fraction"]["fraction"] < 0.4
    rows = (tmp_path / "m" / "scores.csv").read_text().splitlines()
    assert len(rows) == 1 + len(held_out["member"][0])
    report = (tmp_path / "m" / "report.html").read_text()
    assert "Strong evidence" in report and "data:image/png;base64," in report
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert len(summary["detector"]["sha256"]) == 64 and summary["target"]["arch"] == "paper_cnn"
    assert summary["target"]["sha256"] == torch.load(detector, weights_only=True)["mint_target"]["sha256"]


def test_mixed_set_gives_a_fraction_near_the_true_one(tmp_path, detector, held_out):
    (mi, ml), (ni, nl) = held_out["member"], held_out["non"]
    mixed = npz(tmp_path / "mix.npz", np.concatenate([mi[:40], ni[:40]]), np.concatenate([ml[:40], nl[:40]]))
    res = audit(detector, mixed, tmp_path / "mix")["member_fraction"]
    assert abs(res["fraction"] - 0.5) < 0.25 and res["ci_low"] < 0.5 < res["ci_high"], res


def write_folder(root, images, labels):
    for i, (im, lab) in enumerate(zip(images, labels, strict=True)):
        (root / str(lab)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(root / str(lab) / f"{i}.png")


def test_folder_with_odd_files_is_converted_skipped_and_reported(tmp_path, detector, held_out):
    images, labels = held_out["member"]
    root = tmp_path / "photos"
    write_folder(root, images[:30], labels[:30])
    Image.fromarray(images[30]).convert("L").save(root / str(labels[30]) / "gray.png")
    Image.fromarray(images[31]).convert("RGBA").save(root / str(labels[31]) / "rgba.png")
    Image.fromarray(images[32]).resize((48, 48)).save(root / str(labels[32]) / "big.jpg")
    (root / str(labels[0]) / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / str(labels[0]) / "notes.txt").write_text("not an image")
    (root / "stray.png").write_bytes((root / str(labels[1]) / "1.png").read_bytes())
    res = audit(detector, root, tmp_path / "out")
    assert res["n_audited"] == 33 and res["labels"] == "given"
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in res["skipped"]}
    assert set(reasons) == {"broken.png", "notes.txt", "stray.png"}
    assert "cannot be decoded" in reasons["broken.png"] and "class subfolder" in reasons["stray.png"]
    assert res["conversions"] == {"L converted to RGB": 1, "RGBA converted to RGB": 1, "resized to 32x32": 1}
    report = (tmp_path / "out" / "report.html").read_text()
    assert "broken.png" in report and "RGBA converted to RGB" in report


def test_unlabelled_images_use_the_predicted_class(tmp_path, detector, held_out):
    res = audit(detector, npz(tmp_path / "u.npz", held_out["member"][0]), tmp_path / "u")
    assert res["labels"] == "predicted" and res["p_value"] < 0.01
    gray = np.stack(
        [np.asarray(Image.fromarray(im).convert("L").resize((40, 40))) for im in held_out["non"][0]]
    )
    res = audit(detector, npz(tmp_path / "g.npz", gray), tmp_path / "g")  # (N, 40, 40) uint8
    assert res["n_audited"] == len(gray) and res["conversions"] == {
        "npz: converted grayscale images to RGB": len(gray),
        "resized to 32x32": len(gray),
    }


def test_bad_inputs_get_clear_errors(tmp_path, detector, memorizing_target, held_out):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MintError, match="no images to audit"):
        audit(detector, tmp_path / "empty", tmp_path / "o1")
    images = npz(tmp_path / "m.npz", *held_out["member"])
    with pytest.raises(MintError, match="is a target checkpoint, not a detector") as refused:
        audit(memorizing_target, images, tmp_path / "o2")
    for config in ("mint_layer7", "mint_cifar100_layer7", "mint_gtsrb_layer7", "mint_your_model"):
        assert config in str(refused.value)  # the hint names every shipped detector config
    with pytest.raises(MintError, match="not found.*train one.*mint_gtsrb_layer7.yaml"):
        audit(tmp_path / "missing.ckpt", images, tmp_path / "o4")
    ckpt = torch.load(detector, weights_only=True)
    del ckpt["mint_target"]
    torch.save(ckpt, tmp_path / "headless.ckpt")
    with pytest.raises(MintError, match="not a detector checkpoint carrying its target"):
        audit(tmp_path / "headless.ckpt", images, tmp_path / "o3")
    ckpt = torch.load(detector, weights_only=True)
    del ckpt["mint_calibration"]
    torch.save(ckpt, tmp_path / "uncalibrated.ckpt")
    with pytest.raises(MintError, match="no calibration scores.*calibration_size"):
        audit(tmp_path / "uncalibrated.ckpt", images, tmp_path / "o4")
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 5))
    audit(detector, images, tmp_path / "done")
    with pytest.raises(MintError, match="already exists.*--overwrite"):
        audit(detector, images, tmp_path / "done")
    audit(detector, images, tmp_path / "done", "--overwrite")
    with pytest.raises(MintError, match="not a class index"):
        write_folder(tmp_path / "named" / "x", held_out["member"][0][:2], ["cat", "dog"])
        audit(detector, tmp_path / "named" / "x", tmp_path / "o5")


def test_images_the_detector_learned_from_are_refused_as_evidence(tmp_path, detector, memorizing_target):
    """Its training (or calibration) images score like members because the detector saw them."""
    plan = detector_data(memorizing_target, ["layer8"], cache_dir=None, **SIZES).sets
    rows = plan.portions["train"][:30]
    images, labels = plan.data.train.images[plan.pool[rows]], plan.labels[rows]
    with pytest.raises(MintError, match="30 of the audited images .* the detector itself was trained"):
        audit(detector, npz(tmp_path / "seen.npz", images, labels), tmp_path / "seen")
    assert not (tmp_path / "seen").exists() and not list(tmp_path.glob(".seen*"))  # nothing half-written
    record = DetectorRecord.read(torch.load(detector, weights_only=True))
    digests, sets = record.seen_digests, record.sets
    assert digests.shape == (sum(len(sets[n]) for n in ("train", "val", "calibration")), 16)
