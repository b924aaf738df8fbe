"""The audit's report folder: built aside, then put in place in one step, so no report is ever mixed.

Each audit builds its files in a temporary folder of its own beside `--output`
(`.<name>.partial-<pid>-<host>-<random>`), so two audits never write into each other's files. The folder
becomes `--output` by one rename, which never replaces a folder holding files: an audit that finds
its `--output` taken by another one meanwhile keeps its report under a new name and says so.
`--overwrite` replaces only a folder that holds a mint report (its `summary.json`), moves it aside and
deletes it only once the new one is in place. Temporary folders of audits that were killed (on this
machine: a process id means nothing on another one sharing the folder) are removed by the next audit
into the same place.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
from pathlib import Path

from mint.errors import MintError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _tag() -> str:
    return f"{os.getpid()}-{socket.gethostname().replace('-', '_')}-{secrets.token_hex(4)}"


def remove_orphans(output: Path) -> list[Path]:
    """Delete the temporary folders of audits into `output` killed on this machine; return them."""
    removed, host = [], socket.gethostname().replace("-", "_")
    for kind in ("partial", "old"):
        for tmp in output.parent.glob(f".{output.name}.{kind}-*"):
            pid, _, rest = tmp.name.rsplit(f".{kind}-", 1)[1].partition("-")
            same_host = rest.rpartition("-")[0] == host
            if tmp.is_dir() and same_host and pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
    return removed


def start(output: Path, overwrite: bool) -> Path:
    """Check `output` can be written and create this audit's temporary folder beside it."""
    if output.exists() and not overwrite:
        raise MintError(
            f"the output {str(output)!r} already exists; choose another --output or pass --overwrite"
        )
    if output.exists() and not output.is_dir():
        raise MintError(f"the output {str(output)!r} is a file, not a report folder; choose another --output")
    if output.exists() and any(output.iterdir()) and not (output / "summary.json").is_file():
        raise MintError(
            f"the output {str(output)!r} holds files but no mint report (summary.json); --overwrite "
            "replaces only an earlier report. Choose another --output"
        )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        remove_orphans(output)
        tmp = output.parent / f".{output.name}.partial-{_tag()}"
        tmp.mkdir()
    except OSError as err:
        raise MintError(f"cannot write the report next to {str(output)!r}: {err.strerror or err}") from err
    return tmp


def finish(tmp: Path, output: Path, overwrite: bool) -> Path:
    """Put the finished folder `tmp` in place as `output`; return where the report is."""
    old = None
    if overwrite and output.exists():
        old = output.parent / f".{output.name}.old-{_tag()}"
        output.rename(old)
    try:
        if output.exists() and any(output.iterdir()):
            raise FileExistsError(output)
        os.rename(tmp, output)  # replaces at most an empty folder: nothing is lost
    except OSError:  # another audit finished into the same --output meanwhile
        kept = output.parent / f"{output.name}-{os.getpid()}-{secrets.token_hex(2)}"
        os.rename(tmp, kept)
        if old is not None and not output.exists():
            old.rename(output)  # the old report stays where it was
        raise MintError(
            f"{str(output)!r} was written by another process while this audit ran; this audit's "
            f"report is kept in {str(kept)!r}"
        ) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return output


def abandon(tmp: Path) -> None:
    """Remove the temporary folder of an audit that failed."""
    shutil.rmtree(tmp, ignore_errors=True)
