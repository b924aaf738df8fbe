"""Every test image's every score, on disk: `test_scores.npz` beside a versioned `test_results.json`.

So that a run's results can be re-plotted, re-thresholded or merged with other tools (ML Privacy
Meter, LeakPro, a spreadsheet) without rerunning mint. The npz holds plain arrays only (no
pickled objects: `numpy.load(..., allow_pickle=False)` reads it); `test_results.json` follows the
JSON schema `test_results.schema.json` shipped in this package (`schema_path()`), whose version is
`SCHEMA_VERSION` in both files. The format is described in docs/test_results_format.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from torch import Tensor

from mint.errors import MintError
from mint.files import check_input_file, write_atomic

SCHEMA_VERSION = 1
SCORES_FILE = "test_scores.npz"
RESULTS_FILE = "test_results.json"
# The arrays of a scores file, in the order they are written, and what each holds (one row per image).
KEYS = {
    "ids": "int64: the image's row in the detector's candidate pool (the data module's numbering)",
    "image_index": "int64: the image's index in its data set (e.g. CIFAR-10's train split)",
    "labels": "int64: the image's class",
    "members": "int8: 1 if the image is a member (was in the target's training set), else 0",
    "target_correct": "int8: 1 if the target classifies the image correctly",
    "scores": "float64 (images, scorers): every scorer's membership score, higher = more likely a member",
    "scorers": "unicode (scorers,): the scorer of each column of `scores`",
    "schema_version": "int64 scalar: SCHEMA_VERSION",
}


def schema_path() -> Path:
    """The JSON schema of `test_results.json` (draft 2020-12), shipped inside the package."""
    return Path(__file__).with_name("test_results.schema.json")


def write_scores_npz(
    path: str | Path,
    *,
    ids: Tensor,
    image_index: np.ndarray,
    labels: Tensor,
    members: Tensor,
    correct: Tensor,
    scores: Tensor,
    names: tuple[str, ...],
) -> Path:
    """Write one test set's per-image scores, atomically (see `KEYS`); column j of `scores` is `names[j]`."""
    n = len(ids)
    if scores.shape != (n, len(names)):
        raise ValueError(f"scores have shape {tuple(scores.shape)}, expected ({n}, {len(names)})")
    arrays = {
        "ids": ids.cpu().numpy().astype(np.int64),
        "image_index": np.asarray(image_index, dtype=np.int64),
        "labels": labels.cpu().numpy().astype(np.int64),
        "members": members.cpu().numpy().astype(np.int8),
        "target_correct": correct.cpu().numpy().astype(np.int8),
        "scores": scores.cpu().double().numpy(),
        "scorers": np.array(names, dtype=np.str_),
        "schema_version": np.int64(SCHEMA_VERSION),
    }

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a bare path
            np.savez(f, **arrays)

    return write_atomic(path, write)


def read_scores_npz(path: str | Path) -> dict[str, np.ndarray]:
    """A scores file's arrays (see `KEYS`), checked: the version this mint writes, every key, one row each.

    Raises:
        MintError: the file is not a mint scores file of this version, or its arrays disagree.
    """
    path = check_input_file(path, "scores file", f"give the {SCORES_FILE} that `mint test` wrote")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError) as err:  # not an npz, or an array of pickled objects
        raise MintError(f"{str(path)!r} is not a mint scores file (an npz of plain arrays): {err}") from None
    missing = [k for k in KEYS if k not in data]
    if missing:
        raise MintError(f"{str(path)!r} lacks {', '.join(missing)}: not a {SCORES_FILE} written by mint")
    version = int(data["schema_version"])
    if version != SCHEMA_VERSION:
        raise MintError(
            f"{str(path)!r} is scores-file version {version}; this mint reads version {SCHEMA_VERSION}: "
            "read it with the mint release that wrote it (`mint_version` in test_results.json beside it)"
        )
    n = len(data["ids"])
    rows = {k: len(data[k]) for k in ("image_index", "labels", "members", "target_correct", "scores")}
    if any(r != n for r in rows.values()) or data["scores"].shape[1:] != data["scorers"].shape:
        raise MintError(f"{str(path)!r} is damaged: its arrays have different lengths ({rows}, ids {n})")
    return data


def validate_results(results: dict) -> None:
    """Raise `jsonschema.ValidationError` unless `results` follows `test_results.schema.json`.

    Needs the `jsonschema` package (in mint's test extras); mint itself never needs it to run.
    """
    import jsonschema

    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator(schema).validate(results)
