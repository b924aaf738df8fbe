"""Hostile image folders: `mint audit` skips and lists what it cannot read; a target's folder names it."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
from PIL import Image

from mint.data import SampleSource
from tests.conftest import fit_args
from tests.hostile.conftest import leftovers

IMAGES = SampleSource().load("test").images[:12]
HOSTILE_NAMES = [
    "with space.png",
    "ünïcødé-画像.png",
    "<img src=x onerror=alert(1)>.png",
    '=HYPERLINK("evil.example","x").png',
    "+cmd.png",
    "@SUM(1).png",
    "-2+3.png",
]


def _audit(ckpt, images, out):
    return ["audit", "--ckpt", ckpt, "--images", images, "--output", out, "--no-progress-bar"]


def _folder(root, names, image=IMAGES[0]):
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(IMAGES[i % len(IMAGES)] if image is None else image).save(root / name)
    return root


def test_odd_files_are_skipped_and_listed_and_odd_modes_converted(tmp_path, tiny_detector, capsys):
    from mint.audit.command import main

    root = _folder(tmp_path / "set", [f"ok{i}.png" for i in range(6)])
    (root / "notes.txt").write_text("not an image")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    (root / "truncated.jpg").write_bytes(open(root / "ok0.png", "rb").read()[:200])
    os.symlink(root / "gone.png", root / "dangling.png")
    os.mkfifo(root / "pipe.png")  # reading it would wait forever
    Image.new("RGB", (1, 1), (200, 10, 10)).save(root / "tiny.png")
    Image.fromarray(IMAGES[1]).convert("L").save(root / "gray.png")
    Image.fromarray(IMAGES[2]).convert("RGBA").save(root / "rgba.png")
    Image.fromarray(IMAGES[3]).convert("CMYK").save(root / "cmyk.jpg")
    Image.fromarray(np.asarray(Image.fromarray(IMAGES[4]).convert("L")).astype(np.uint16) * 257).save(
        root / "deep16.png"
    )
    summary = main(["--ckpt", str(tiny_detector), "--images", str(root), "--output", str(tmp_path / "r"),
                    "--no-progress-bar"])  # fmt: skip
    skipped = dict(summary["skipped"])
    assert summary["n_audited"] == 6 + 5 and len(skipped) == 5, skipped
    assert "not an image file" in skipped[str(root / "notes.txt")]
    assert "cannot be decoded" in skipped[str(root / "corrupt.png")]
    assert "cannot be decoded" in skipped[str(root / "truncated.jpg")]
    assert "dangling" in skipped[str(root / "dangling.png")]
    assert "FIFO" in skipped[str(root / "pipe.png")]
    conversions = summary["conversions"]
    assert conversions["I;16 (scaled to 8 bits) converted to RGB"] == 1, conversions
    assert {"L converted to RGB", "RGBA converted to RGB", "CMYK converted to RGB"} <= set(conversions)
    assert "5 files skipped" in capsys.readouterr().err


def test_a_16_bit_image_keeps_its_gray_levels(tmp_path):
    from mint.data.images import decode_image

    gray = np.asarray(Image.fromarray(IMAGES[0]).convert("L"))
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    decoded = decode_image(tmp_path / "deep.png", 32)
    assert np.array_equal(decoded[..., 0], gray)  # not all white, as a plain RGB conversion gives
    dark = (gray.astype(np.uint16) * 200 // 255).astype(np.uint16)  # a dark 16-bit scan: values <= 200
    Image.fromarray(dark).save(tmp_path / "dark.png")
    assert decode_image(tmp_path / "dark.png", 32).max() == 1  # 200 / 257 rounds to 1: dark, not white


def test_a_decompression_bomb_is_skipped_not_fatal(tmp_path, tiny_detector):
    from mint.audit.command import main

    root = _folder(tmp_path / "set", [f"ok{i}.png" for i in range(4)])
    Image.new("1", (14000, 14000)).save(root / "bomb.png")  # 196 million pixels in a few KB
    assert (root / "bomb.png").stat().st_size < 100_000
    summary = main(["--ckpt", str(tiny_detector), "--images", str(root), "--output", str(tmp_path / "r"),
                    "--no-progress-bar"])  # fmt: skip
    assert (
        summary["n_audited"] == 4
        and "too large to decode safely" in dict(summary["skipped"])[str(root / "bomb.png")]
    )


def test_hostile_file_names_are_text_in_the_csv_and_the_report(tmp_path, tiny_detector, monkeypatch):
    from mint.audit.command import main

    monkeypatch.chdir(_folder(tmp_path / "set", HOSTILE_NAMES, image=None))  # `--images .`: bare names
    main(["--ckpt", str(tiny_detector), "--images", ".", "--output", str(tmp_path / "r"),
          "--no-progress-bar"])  # fmt: skip
    with (tmp_path / "r" / "scores.csv").open(newline="") as f:
        cells = [row[0] for row in csv.reader(f)][1:]
    assert len(cells) == len(HOSTILE_NAMES)
    for cell in cells:  # a spreadsheet never sees a formula: = + - @ cells start with a quote mark
        assert cell[0] not in "=+-@", cell
        assert cell.lstrip("'").endswith(".png")
    assert any(c.startswith("'=HYPERLINK") for c in cells) and any(c.startswith("'-2+3") for c in cells)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda root: root.mkdir(), ["no images to audit"]),
        (
            lambda root: (root.mkdir(), (root / "a.txt").write_text("x")),
            ["no images to audit", "not an image"],
        ),
        (lambda root: _folder(root / "cat", ["a.png"]), ["class folder 'cat' is not a class index"]),
        (lambda root: None, ["does not exist"]),
    ],
    ids=["empty", "only-text", "class-names", "missing"],
)
def test_unusable_folders_are_refused(tmp_path, refused, tiny_detector, make, words):
    make(tmp_path / "set")
    refused(_audit(tiny_detector, tmp_path / "set", tmp_path / "r"), *words)
    assert not (tmp_path / "r").exists() and not leftovers(tmp_path)


def test_a_target_on_a_folder_with_a_damaged_image_names_the_file(tmp_path, refused):
    for cls in ("cat", "dog"):
        _folder(tmp_path / "train" / cls, [f"{i}.png" for i in range(6)])
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    args = [a for a in fit_args(tmp_path, "--trainer.max_epochs=1") if not a.startswith("--data.source")]
    source = ["--data.source=mint.data.ImageFolderSource", f"--data.source.train={tmp_path / 'train'}"]
    refused([*args, *source], "broken.png", "cannot be decoded")


def test_a_file_name_that_is_not_utf8_is_audited(tmp_path, tiny_detector):
    from mint.audit.command import main

    root = _folder(tmp_path / "set", ["a.png", "b.png"])
    os.rename(root / "b.png", os.path.join(os.fsencode(root), b"\xff\xfe.png"))
    summary = main(["--ckpt", str(tiny_detector), "--images", str(root), "--output", str(tmp_path / "r"),
                    "--no-progress-bar"])  # fmt: skip
    assert summary["n_audited"] == 2
    assert (
        "\\udcff" in (tmp_path / "r" / "scores.csv").read_text()
        or "\\xff" in (tmp_path / "r" / "scores.csv").read_text()
    )
    assert (tmp_path / "r" / "report.html").is_file()


def test_a_fifo_in_a_training_folder_is_named_not_waited_on(tmp_path, refused):
    for cls in ("cat", "dog"):
        _folder(tmp_path / "train" / cls, [f"{i}.png" for i in range(6)])
    os.mkfifo(tmp_path / "train" / "dog" / "pipe.png")
    args = [a for a in fit_args(tmp_path, "--trainer.max_epochs=1") if not a.startswith("--data.source")]
    source = ["--data.source=mint.data.ImageFolderSource", f"--data.source.train={tmp_path / 'train'}"]
    refused([*args, *source], "pipe.png", "FIFO")
