"""Files written and read safely: atomic writes, sha256 of files, checkpoints read once without pickle.

A crash never leaves a half-written file that a later run would trust, and a checkpoint is read
from disk exactly once: its sha256 and its contents come from the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary path beside `path`, then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)  # atomic on POSIX and Windows within one file system
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(path: str | Path, data: dict) -> Path:
    """Write `data` as indented JSON, atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def file_sha256(path: str | Path) -> str:
    """Sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_checkpoint(path: str | Path) -> tuple[Any, str]:
    """A PyTorch checkpoint's contents (loaded with `weights_only=True`) and the sha256 of its bytes.

    The file is opened once; hashing and loading use the same bytes, so the hash always describes
    what was loaded. Raises `ValueError` for a file that is not a checkpoint torch loads safely.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        contents = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint (loaded with weights_only=True): {err}"
        ) from err
    return contents, hashlib.sha256(data).hexdigest()
