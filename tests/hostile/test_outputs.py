"""Reports are never mixed, lost or left half-written: concurrent audits, --overwrite, killed audits."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from mint.audit import output
from mint.data import SampleSource
from mint.errors import MintError
from tests.conftest import ROOT
from tests.hostile.conftest import leftovers

IMAGES = SampleSource().load("test").images


def _set(path, n, start):
    np.savez(path, images=IMAGES[start : start + n])
    return path


def _consistent(report):
    """A report folder whose files all describe the same audit."""
    summary = json.loads((report / "summary.json").read_text())
    with (report / "scores.csv").open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert len(rows) == summary["n_audited"]
    assert (report / "report.html").is_file() and (report / "histogram.png").is_file()
    return summary


def test_two_audits_into_one_output_never_mix_or_lose_a_report(tmp_path, tiny_detector):
    sets = {"a": _set(tmp_path / "a.npz", 30, 0), "b": _set(tmp_path / "b.npz", 45, 100)}
    out = tmp_path / "report"
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mint.audit",
                "--ckpt",
                str(tiny_detector),
                "--images",
                str(path),
                "--output",
                str(out),
                "--no-progress-bar",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, path in sets.items()
    }
    results = {name: (p.wait(timeout=300), p.stderr.read()) for name, p in procs.items()}
    winners = [name for name, (code, _) in results.items() if code == 0]
    assert len(winners) == 1, results  # one audit owns --output, the other is told
    (loser,) = set(sets) - set(winners)
    code, err = results[loser]
    assert code == 2 and "Traceback" not in err and ("already exists" in err or "another process" in err), err
    summary = _consistent(out)
    assert summary["input"] == str(sets[winners[0]].resolve())
    if "another process" in err:  # it finished too: its report is kept under another name
        (kept,) = [p for p in tmp_path.glob("report-*") if p.is_dir()]
        assert _consistent(kept)["input"] == str(sets[loser].resolve())
    assert not leftovers(tmp_path)


def test_overwrite_keeps_the_old_report_until_the_new_one_is_complete(tmp_path, tiny_detector, refused):
    out = tmp_path / "report"
    audit = [
        "audit",
        "--ckpt",
        tiny_detector,
        "--output",
        out,
        "--no-progress-bar",
        "--overwrite",
        "--images",
    ]
    from mint.cli import main

    main([str(a) for a in audit] + [str(_set(tmp_path / "a.npz", 30, 0))])
    before = (out / "scores.csv").read_text()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"not a png")  # every file fails: the audit stops
    refused([*audit, tmp_path / "broken"], "could be decoded")
    assert (out / "scores.csv").read_text() == before and not leftovers(tmp_path)
    main([str(a) for a in audit] + [str(_set(tmp_path / "b.npz", 45, 100))])
    assert _consistent(out)["n_audited"] == 45 and not list(tmp_path.glob(".report.old-*"))


def test_temporary_folders_of_killed_audits_are_removed(tmp_path):
    out = tmp_path / "report"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname().replace("-", "_")
    orphan = tmp_path / f".report.partial-{dead.pid}-{host}-abcd1234"
    (orphan / "x").mkdir(parents=True)
    old = tmp_path / f".report.old-{dead.pid}-{host}-abcd1234"  # a killed --overwrite's old report
    old.mkdir()
    alive = tmp_path / f".report.partial-{os.getpid()}-{host}-abcd1234"  # a running audit's: kept
    elsewhere = tmp_path / f".report.partial-{dead.pid}-otherhost-abcd1234"  # its pid means nothing here
    alive.mkdir()
    elsewhere.mkdir()
    tmp = output.start(out, overwrite=False)
    assert not orphan.exists() and not old.exists() and alive.exists() and elsewhere.exists() and tmp.is_dir()
    output.abandon(tmp)
    assert not tmp.exists()


def test_an_output_taken_meanwhile_is_not_replaced(tmp_path):
    out = tmp_path / "report"
    tmp = output.start(out, overwrite=False)
    (tmp / "summary.json").write_text("mine")
    out.mkdir()
    (out / "summary.json").write_text("theirs")  # another audit finished first
    with pytest.raises(MintError, match="written by another process.*kept in"):
        output.finish(tmp, out, overwrite=False)
    assert (out / "summary.json").read_text() == "theirs"
    (kept,) = tmp_path.glob("report-*")
    assert (kept / "summary.json").read_text() == "mine"
    with pytest.raises(MintError, match="is a file"):
        (tmp_path / "file").write_text("x")
        output.start(tmp_path / "file", overwrite=True)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.png").write_bytes(b"x")  # --overwrite never deletes a folder that is not a report
    with pytest.raises(MintError, match="no mint report"):
        output.start(photos, overwrite=True)
    assert (photos / "cat.png").exists()
