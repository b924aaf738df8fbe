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
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml

from mint.errors import MintError

# A config or run record is a few KB; a larger "YAML" file is not one (or is built to exhaust memory).
MAX_YAML_BYTES = 1 << 20
# Nodes once aliases (`&a` / `*a`) are expanded: a config has hundreds; nine lines of nested aliases
# ("billion laughs") stand for 10^9, which the readers after PyYAML expand until memory runs out.
MAX_YAML_NODES = 100_000


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


def check_input_file(path: str | Path, what: str, hint: str = "") -> Path:
    """`path`, if it is a regular file that can be opened; else one message saying what is there instead.

    Distinguishes a missing file from a dangling link, a link loop, a folder, a FIFO or device
    (reading one waits forever, or never ends) and a file this user may not read.

    Args:
        path: the file to read.
        what: what the file should be, for the message ("target checkpoint", "config file").
        hint: appended to the message: what to do (how to make such a file, which flag).
    """
    path = Path(path)
    problem = None
    try:
        info = path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            problem = "is a loop of symbolic links (a link that leads back to itself)"
        elif path.is_symlink():
            problem = f"is a link to {os.readlink(path)!r}, which does not exist"
        elif err.errno == errno.ENOENT:
            problem = f"not found (absolute: {path.absolute()})"
        else:
            problem = f"cannot be read ({err.strerror})"
    else:
        if stat.S_ISDIR(info.st_mode):
            problem = "is a folder, not a file"
        elif not stat.S_ISREG(info.st_mode):
            problem = "is not a regular file (a FIFO, socket or device): mint reads only files"
        elif not os.access(path, os.R_OK):
            problem = "cannot be read by this user (permission denied)"
    if problem:
        raise MintError(f"{what} {str(path)!r} {problem}" + (f"; {hint}" if hint else ""))
    return path


def _expanded_nodes(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes `node` stands for once every alias is expanded (shared nodes counted each time)."""
    if id(node) not in memo:
        memo[id(node)] = 0  # a recursive alias counts once
        children = node.value if isinstance(node, yaml.SequenceNode) else []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        memo[id(node)] = 1 + sum(_expanded_nodes(child, memo) for child in children)
    return memo[id(node)]


def read_yaml(path: str | Path, what: str = "config file", mapping: bool = True) -> Any:
    """A YAML file's plain data, read safely: a regular file of at most 1 MiB, text, no alias bomb.

    Args:
        path: the file.
        what: what it should be, for messages.
        mapping: refuse anything but a mapping at the top (`key: value` lines), as configs are.
    """
    path = check_input_file(path, what)
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise MintError(f"{what} {str(path)!r} has {size:,} bytes; a YAML config is a few KB (at most 1 MiB)")
    try:
        text = path.read_bytes().decode("utf-8")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", b"", 0, 1, "NUL byte")
        loader = yaml.SafeLoader(text)  # plain data only: no Python object is ever built
        try:
            node = loader.get_single_node()
            nodes = _expanded_nodes(node, {}) if node is not None else 0
            if nodes > MAX_YAML_NODES:
                raise MintError(
                    f"{what} {str(path)!r} expands to {nodes:,} values through its aliases (*name); "
                    f"a config has hundreds (refused above {MAX_YAML_NODES:,}: a YAML bomb?)"
                )
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except UnicodeDecodeError as err:
        raise MintError(f"{what} {str(path)!r} is not text (not UTF-8 YAML): a binary file?") from err
    except yaml.YAMLError as err:
        raise MintError(f"{what} {str(path)!r} is not valid YAML: {' '.join(str(err).split())}") from err
    if mapping and not isinstance(data, dict):
        raise MintError(
            f"{what} {str(path)!r} holds a {type(data).__name__}, not a mapping of `option: value` lines"
        )
    return data


def read_checkpoint(path: str | Path) -> tuple[Any, str]:
    """A PyTorch checkpoint's contents (loaded with `weights_only=True`) and the sha256 of its bytes.

    The file is opened once; hashing and loading use the same bytes, so the hash always describes
    what was loaded. Raises `MintError` for anything that is not a checkpoint torch loads safely; a
    file holding code (pickled objects) is refused, never run.
    """
    # A FIFO would be read forever, /dev/zero never ends, a link loop is "not found" to Path.exists.
    path = check_input_file(path, "checkpoint", "give the checkpoint file (e.g. .../checkpoints/best.ckpt)")
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
