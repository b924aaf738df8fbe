"""Audits that must not conclude from what they were given: calibration records, NaN scores, a detector
at chance, known data a person mistyped, and a file that may not grow (EFBIG)."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from mint.audit.statistics import auroc_interval, mann_whitney_greater, member_fraction_estimate
from mint.data import SampleSource
from mint.errors import MintError
from tests.conftest import CONFIGS
from tests.hostile.conftest import leftovers

IMAGES = SampleSource().load("test").images  # never in the tiny detector's pool (its target's train split)
NEED = "retrain the detector with --data.calibration_size"


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """40 unlabelled images to audit."""
    path = tmp_path_factory.mktemp("audited") / "set.npz"
    np.savez(path, images=IMAGES[:40])
    return path


def _tampered(tiny_detector, path, calibration=None, state=None):
    """A copy of the tiny detector with its calibration record (or weights) changed by the functions."""
    ckpt = torch.load(tiny_detector, weights_only=True)
    if calibration is not None:
        ckpt["mint_calibration"] = calibration({k: v.clone() for k, v in ckpt["mint_calibration"].items()})
    if state is not None:
        ckpt["state_dict"] = state(dict(ckpt["state_dict"]))
    torch.save(ckpt, path)
    return path


def _audit(ckpt, images, out, *extra):
    return ["audit", "--ckpt", ckpt, "--images", images, "--output", out, "--no-progress-bar", *extra]


def _set(cal, key, index, value):
    cal[key][index] = value
    return cal


CALIBRATION = {
    "NaN score": (lambda c: _set(c, "true_label", 3, float("nan")), ["true_label", "NaN or infinite", NEED]),
    "inf score": (lambda c: _set(c, "predicted_label", 0, float("inf")), ["predicted_label", "NaN or inf"]),
    "wrong length": (lambda c: c | {"members": c["members"][:50]}, ["differ in length", "'members': 50"]),
    "empty": (lambda c: {k: v[:0] for k, v in c.items()}, ["0 known members and 0 known non-members"]),
    "all members": (
        lambda c: c | {"members": torch.ones_like(c["members"])},
        ["80 known members and 0 known non-members", "at least 10 of each"],
    ),
    "too few": (lambda c: {k: torch.cat([v[:3], v[-3:]]) for k, v in c.items()}, ["3 known members", "10"]),
    "members 2": (lambda c: c | {"members": c["members"] * 2}, [r"members must be 0 or 1.*\[0, 2\]"]),
    "not a dict": (lambda c: [1.0, 2.0], ["is a list, not a dict of score tensors"]),
    "a tensor": (lambda c: torch.zeros(3), ["is a Tensor, not a dict"]),
    "missing key": (lambda c: {"members": c["members"]}, ["lacks true_label, predicted_label"]),
    "2-D scores": (lambda c: c | {"true_label": c["true_label"][:, None]}, [r"shape \(80, 1\), not a 1-D"]),
    "integer scores": (lambda c: c | {"true_label": c["members"].clone()}, ["torch.int64 values, not float"]),
}


@pytest.mark.parametrize("change, words", CALIBRATION.values(), ids=CALIBRATION.keys())
def test_an_unusable_calibration_record_is_refused(tmp_path, refused, tiny_detector, audited, change, words):
    ckpt = _tampered(tiny_detector, tmp_path / "d.ckpt", change)
    refused(_audit(ckpt, audited, tmp_path / "out"), "mint_calibration", *words)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_nan_scores_of_the_audited_images_give_no_verdict(tmp_path, refused, tiny_detector, audited, capsys):
    """NaN detector weights: before, "Strong evidence (p = 7.2e-15)" on images it had never seen."""

    def nan_weights(state):
        key = next(k for k in state if k.startswith("detector.") and state[k].is_floating_point())
        return state | {key: torch.full_like(state[key], float("nan"))}

    ckpt = _tampered(tiny_detector, tmp_path / "d.ckpt", state=nan_weights)
    err = refused(_audit(ckpt, audited, tmp_path / "out"), "detector's scores of 40 audited images",
                  "NaN or infinite", "std must be > 0", "NaN pixels")  # fmt: skip
    assert "evidence" not in err.lower() + capsys.readouterr().out.lower()
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_an_audited_class_folder_named_superscript_two(tmp_path, refused, tiny_detector):
    _images(tmp_path / "set" / "1", 3)
    os.rename(_images(tmp_path / "sup", 3), tmp_path / "set" / "²")  # '²'.isdigit(), int('²') fails
    refused(_audit(tiny_detector, tmp_path / "set", tmp_path / "out"), "class folder '²' is not a class")
    assert not (tmp_path / "out").exists()


def test_the_statistics_refuse_nan_scores():
    good, bad = torch.randn(20), torch.tensor([0.1, float("nan"), 0.3])
    for call in (
        lambda: mann_whitney_greater(bad, good),
        lambda: mann_whitney_greater(good, bad),
        lambda: member_fraction_estimate(bad, good, good, n_boot=5),
        lambda: member_fraction_estimate(good, good, bad, n_boot=5),
        lambda: auroc_interval(good, bad),
    ):
        with pytest.raises(MintError, match="NaN or infinite"):
            call()


def test_delong_interval_matches_the_pairwise_definition():
    x, y = torch.randint(0, 5, (30,)).double(), torch.randint(0, 5, (25,)).double()  # many ties
    psi = (x[:, None] > y[None]).double() + 0.5 * (x[:, None] == y[None]).double()
    se = float((psi.mean(1).var() / 30 + psi.mean(0).var() / 25).sqrt())
    out = auroc_interval(x, y)
    assert out["auroc"] == pytest.approx(float(psi.mean())) and out["se"] == pytest.approx(se)
    assert out["ci_low"] == pytest.approx(max(out["auroc"] - 1.959964 * se, 0), abs=1e-6)


def _calibration_shifted(shift: float, predicted_class=None):
    """Known members and non-members scored far below any audited image, members `shift` above."""

    def change(cal):
        members = cal["members"] == 1
        base = torch.empty(len(members), dtype=torch.float64)
        base[members] = base[~members] = -100 + torch.arange(int(members.sum())).double() / 100
        base[members] += shift
        out = cal | {"true_label": base, "predicted_label": base.clone()}
        return out | ({"predicted_class": predicted_class(cal)} if predicted_class else {})

    return change


def test_a_detector_at_chance_concludes_nothing(tmp_path, refused, tiny_detector, audited):
    """Calibration AUROC 0.56 [0.43, 0.69]: before, "Strong evidence (p = 7.2e-15)", share 100%."""
    from mint.cli import main

    def random_class(cal):
        return torch.randint(0, 10, cal["labels"].shape, generator=torch.Generator().manual_seed(0))

    ckpt = _tampered(tiny_detector, tmp_path / "d.ckpt", _calibration_shifted(0.025, random_class))
    summary = main([str(a) for a in _audit(ckpt, audited, tmp_path / "out")])
    cal = summary["calibration"]
    assert 0.5 < cal["detector_auroc_members_vs_nonmembers"] < 0.6 and cal["detector_auroc_ci"][0] <= 0.5
    assert summary["p_value"] < 1e-3  # the set scores far above the non-members, and still:
    assert summary["verdict"].startswith("Cannot conclude: the detector does not separate known members")
    assert "evidence" not in summary["verdict"].lower()
    assert summary["member_fraction"]["fraction"] is None and summary["member_fraction"]["not_reported"]
    assert cal["target_accuracy"]["at_chance"]  # random predicted classes: a target at chance, named
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["calibration"]["detector_auroc_ci"] == cal["detector_auroc_ci"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Cannot conclude" in page and "n/a: the detector does not separate" in page
    assert "AUROC 0.561 [0.434, 0.687], 95% DeLong interval" in page and "at chance accuracy" in page
    assert "100%" not in page


def test_a_detector_that_separates_still_concludes(tmp_path, tiny_detector, audited):
    """The guard's control: the same record with members well above non-members (AUROC 0.97)."""
    from mint.cli import main

    ckpt = _tampered(tiny_detector, tmp_path / "d.ckpt", _calibration_shifted(0.305))
    summary = main([str(a) for a in _audit(ckpt, audited, tmp_path / "out")])
    assert (
        summary["calibration"]["detector_auroc_ci"][0] > 0.9 and summary["calibration"]["detector_separates"]
    )
    assert summary["verdict"].startswith("Strong evidence") and summary["member_fraction"]["fraction"] == 1.0
    # The tiny target classifies 15% / 12.5% of the calibration images right (chance: 10%): named.
    accuracy = summary["calibration"]["target_accuracy"]
    assert accuracy["chance"] == 0.1 and accuracy["at_chance"] is True
    report = (tmp_path / "out" / "report.html").read_text()
    assert "at chance accuracy" in report


def test_a_file_too_large_leaves_the_old_report(tmp_path, refused, tiny_detector, audited, monkeypatch):
    """EFBIG (`ulimit -f`) while the report is written: one line, the earlier report intact."""
    from mint.audit import command
    from mint.cli import main

    out = tmp_path / "out"
    argv = [str(a) for a in _audit(tiny_detector, audited, out, "--overwrite")]
    main(argv)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def too_large(path, *args):
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), str(path))

    monkeypatch.setattr(command, "write_html", too_large)
    refused(argv, "ulimit -f", "report.html", "File too large")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not leftovers(tmp_path) and not list(tmp_path.glob(".out.*"))


def _known_fit(tiny_target, tmp_path, members):
    nonmembers = tmp_path / "non.npz"
    np.savez(nonmembers, images=IMAGES[100:200])
    return [
        "fit",
        "--config",
        CONFIGS / "mint_layer7.yaml",
        f"--data.init_args.target_ckpt={tiny_target}",
        f"--data.init_args.members={members}",
        f"--data.init_args.nonmembers={nonmembers}",
        "--data.cache_dir=null",
        "--trainer.fast_dev_run=true",
        "--trainer.accelerator=cpu",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}",
    ]


def _images(folder, n=12):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(IMAGES[300 + i]).save(folder / f"{i}.png")
    return folder


def _csv(tmp, name, text):
    _images(tmp / "imgs")
    (tmp / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return tmp / name


def _class_folder(tmp):
    _images(tmp / "members" / "1", 6)
    os.rename(_images(tmp / "sup", 6), tmp / "members" / "²")  # '²'.isdigit(), but int('²') fails
    return tmp / "members"


KNOWN = {
    "csv label '²'": (lambda t: _csv(t, "m.csv", "imgs/0.png,1\nimgs/1.png,²\n"), ["line 2", "label '²'"]),
    "class folder '²'": (_class_folder, ["class folder .*²' is not a class index"]),
    "csv not UTF-8": (
        lambda t: _csv(t, "m.csv", b"imgs/0.png,1\nimgs/caf\xe9.png,2\n"),
        ["not UTF-8", "0xe9", "save the CSV as UTF-8"],
    ),
    "csv binary": (lambda t: _csv(t, "m.csv", b"\x00\x01\x02" * 50), ["NUL bytes", "not a CSV"]),
    "members a .png": (lambda t: _images(t / "imgs") / "0.png", ["not an .npz or a .csv", "image folder"]),
    "members a .txt": (lambda t: _csv(t, "m.txt", "hello\n"), ["m.txt.* not an .npz or a .csv"]),
    "csv empty": (lambda t: _csv(t, "m.csv", ""), ["lists no images", "path,label line"]),
    "csv header only": (lambda t: _csv(t, "m.csv", "path,label\n"), ["lists no images"]),
    "csv missing file": (
        lambda t: _csv(t, "m.csv", "imgs/0.png,1\nnope.png,2\n"),
        ["line 2", "nope.png.* not found"],
    ),
    "csv fifo": (lambda t: (os.mkfifo(t / "m.csv"), t / "m.csv")[1], ["not a regular file"]),
}


@pytest.mark.parametrize("make, words", KNOWN.values(), ids=KNOWN.keys())
def test_unusable_known_data_is_refused(tmp_path, refused, tiny_target, make, words):
    members = make(tmp_path)
    refused(_known_fit(tiny_target, tmp_path, members), "known set|m.csv|class folder", *words)
    assert not (tmp_path / "logs").exists()
