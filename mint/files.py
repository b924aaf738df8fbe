"""Files written and read safely: atomic writes, sha256 of files, checkpoints read once without pickle.

A crash never leaves a half-written file that a later run would trust, and a checkpoint is read
from disk exactly once: its sha256 and its contents come from the same bytes.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from mint.errors import MintError


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
    what was loaded. Raises `MintError` for anything that is not a checkpoint torch loads safely; a
    file holding code (pickled objects) is refused, never run.
    """
    path = Path(path)
    if path.is_dir():
        raise MintError(
            f"{str(path)!r} is a folder; give the checkpoint file (e.g. .../checkpoints/best.ckpt)"
        )
    if path.exists() and not path.is_file():  # reading a FIFO waits forever, /dev/zero never ends
        raise MintError(f"{str(path)!r} is not a regular file (a FIFO, socket or device), not a checkpoint")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise MintError(f"cannot read the checkpoint {str(path)!r}: {err.strerror or err}") from err
    if not data:
        raise MintError(
            f"{str(path)!r} is empty (0 bytes), not a checkpoint: the run that wrote it was cut off?"
        )
    try:
        contents = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:
        # torch's own message advises `weights_only=False`, i.e. running the file's code: never.
        code = "global" in str(err).lower()  # the file names a function or class to call
        raise MintError(
            f"{str(path)!r} is not a valid checkpoint"
            + (": it contains code (pickled objects)" if code else ", or it contains code")
            + "; mint loads checkpoints with weights_only=True and never runs what a file contains"
        ) from err
    return contents, hashlib.sha256(data).hexdigest()


@contextmanager
def exclusive_lock(path: str | Path, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
    """Hold an exclusive advisory lock on the file `path` (created if absent) for the `with` block.

    The lock is `fcntl.flock` (POSIX), which the kernel releases when its holder exits, however it
    dies: a killed holder never leaves a stale lock behind, so the lock file itself is never deleted
    (deleting it would let two processes lock two different files of the same name). Where there is
    no `fcntl` (Windows), or on a file system that refuses locks, nothing is locked and the block runs
    at once.

    Args:
        path: the lock file; its folder must exist.
        on_wait: called once, before blocking, when another process holds the lock.

    Yields:
        True when the lock is held, False where locks are not supported (the caller is not alone).
    """
    try:
        import fcntl
    except ImportError:  # Windows: callers must tolerate concurrent writers (atomic renames)
        yield False
        return
    # Read-write where possible: NFS emulates flock with fcntl locks, which need a writable file.
    # Read-only otherwise: a lock file created by another user of a shared folder still locks locally.
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        handle = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError as err:  # a file system without locks (some NFS mounts): run unlocked
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EBADF):
                raise
            yield False
            return
        yield True
    finally:
        os.close(handle)  # releases the lock
