"""Disk cache of a frozen target's activations: extracted once, read back by every epoch and run.

A cache folder is named by the hash of everything the activations depend on (the target
checkpoint's sha256 and the images: their indices and the data's fingerprint). Inside, every layer
(and the logits) is one `.npy` file with a `.json` record of its sha256; both are written to
temporary files and renamed into place, so a crashed, torn or edited array is detected on opening
and rebuilt, never used. Missing layers are added in one forward pass, so a layer sweep extracts
once and every later run of any of those layers reads the cache.

Processes building the same cache at once (two runs of a sweep, each node's first rank on a shared
file system) take turns: on POSIX, extraction holds `fcntl.flock` on the folder's `.lock` file, and
a process that waited checks the arrays again, so it reads what the first one built instead of
extracting it a second time. Temporary names carry the process id and a random suffix. A builder
that was killed leaves `.*.tmp` files that no name of the cache matches, so they are never read; the
next builder, holding the lock (hence alone), deletes them. The kernel releases a killed holder's
lock. Without `fcntl` (Windows), or on a file system that refuses locks, builders do not wait for
each other: each writes its own temporary files and renames them into place, so a reader still
never sees a half-written array (and orphans stay, unread).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from mint.data.images import to_tensor
from mint.data.npy_io import NpyRows, NpyWriter
from mint.errors import MintError, UnwritableError
from mint.files import exclusive_lock, file_sha256
from mint.models.gradients import is_gradient
from mint.models.target import LOGITS, Target

CACHE_VERSION = 1
FP16_MAX = 65504.0
SPACE_MARGIN = 256 << 20  # bytes left free on the disk after a cache is built
LOCK = ".lock"  # in each cache folder; kept (see `exclusive_lock`)


def dtype_of(name: str) -> type:
    """Activations as float16; logits and gradient features as float32 (their tails are the signal)."""
    return np.float32 if name == LOGITS or is_gradient(name) else np.float16


def _size(n: float) -> str:
    """Bytes in GiB, or MiB below 1 GiB."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def temp_tag() -> str:
    """A part of temporary file names unique to this process and call: `<pid>.<random hex>`."""
    return f"{os.getpid()}.{uuid.uuid4().hex[:8]}"


def unwritable(root: str | Path, reason: object) -> UnwritableError:
    """The error for a cache folder that cannot be written, saying what to do instead."""
    return UnwritableError(
        f"cannot write the activation cache under {str(root)!r} ({reason}); set `cache_dir` "
        f"(`--data.cache_dir`) to a writable folder, or `cache_dir: null` to extract on the fly"
    )


class ActivationCache:
    """One cache folder under `root` for one `key` (a JSON-able dict of what the activations depend on).

    Args:
        root: folder holding cache folders.
        key: what every array depends on (not the layer: each layer has its own file).
    """

    def __init__(self, root: str | Path, key: dict) -> None:
        self.key = {"cache_version": CACHE_VERSION, **key}
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:24]
        self.root, self.dir = Path(root), Path(root) / digest

    def _paths(self, name: str) -> tuple[Path, Path]:
        stem = name.replace(".", "__").replace(":", "--")  # (no colon in a Windows file name)
        return self.dir / f"{stem}.npy", self.dir / f"{stem}.json"

    def problem(self, name: str) -> str | None:
        """Why the array `name` cannot be used (None when it can)."""
        array, record = self._paths(name)
        if not record.is_file():
            return "missing"
        try:
            meta = json.loads(record.read_text())
        except json.JSONDecodeError:
            return "corrupted (unreadable record)"
        if meta.get("key") != self.key or meta.get("name") != name:
            return "stale (built for other inputs)"
        if not array.is_file() or array.stat().st_size != meta["bytes"]:
            return "missing or truncated"
        if file_sha256(array) != meta["sha256"]:  # costs less than one epoch's read (cache_verify.py)
            return "corrupted (sha256 mismatch)"
        return None

    def open(self, names: list[str]) -> dict[str, np.ndarray]:
        """Memory-map arrays: {layer: (N, ...) float16, "logits" and gradients: (N, ...) float32}."""
        return {name: np.load(self._paths(name)[0], mmap_mode="r") for name in names}

    def ensure(
        self,
        target: Target,
        images: np.ndarray,
        rows: np.ndarray,
        batch_size: int = 512,
        device: torch.device | str = "cpu",
        labels: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Open the target's layers and logits, extracting first (in one pass) those missing or unusable.

        Args:
            target: the frozen target; its `layers` are the arrays needed.
            images: uint8 (N, H, W, 3) images.
            rows: which images, in cache order.
            batch_size: images per forward pass.
            device: where to run the target during extraction (it is moved back afterwards).
            labels: class of each cache row (gradient features are of its loss); None: predicted.
        """
        names = [*target.layers, LOGITS]
        todo = [name for name in names if self.problem(name) is not None]
        if labels is None and any(is_gradient(name) for name in todo):  # (the key does not name labels)
            raise MintError("gradient features are of each image's class: give the cached rows' labels")
        if not todo:  # the usual case takes no lock: a complete cache may sit in a read-only folder
            return self.open(names)
        self._make_dir()
        with exclusive_lock(self.dir / LOCK, on_wait=self._waiting) as locked:
            if locked:
                self._remove_orphans()
            # Checked again under the lock: a builder we waited for may have written them meanwhile.
            problems = {name: self.problem(name) for name in todo}
            for name, problem in problems.items():
                if problem not in (None, "missing"):
                    warnings.warn(
                        f"activation cache {self.dir} array {name} is {problem}: rebuilding it", stacklevel=2
                    )
            todo = [name for name in todo if problems[name] is not None]
            if todo:
                home = next(target.buffers()).device
                try:
                    self._extract(target.to(device), images, rows, batch_size, todo, labels)
                finally:
                    target.to(home)
        return self.open(names)

    def check_space(self, target: Target, num_images: int) -> None:
        """Refuse arrays that the disk cannot hold, naming the largest layer and how to shrink it."""
        need = {
            name: math.prod(shape) * np.dtype(dtype_of(name)).itemsize * num_images
            for name, shape in target.shapes.items()
            if not self._paths(name)[1].is_file()  # (no checksum here: `ensure` verifies the arrays)
        }
        if not need:
            return
        folder = next((p for p in (self.dir, *self.dir.parents) if p.exists()), Path("."))
        free = shutil.disk_usage(folder).free
        if sum(need.values()) + SPACE_MARGIN <= free:
            return
        big = max(need, key=need.get)
        shape = " x ".join(map(str, target.shapes[big]))
        way_out = (
            "Read its norms (gradnorm:...) or a smaller module's gradient"
            if is_gradient(big)
            else "Pool its maps (--data.init_args.pool avg --data.init_args.pool_size 4), read a later layer"
        )
        raise MintError(
            f"the activation cache needs {_size(sum(need.values()))} (and {_size(SPACE_MARGIN)} to spare) "
            f"for {num_images:,} images but {_size(free)} are free under {str(folder)!r}; layer {big} alone "
            f"is {shape} per image ({_size(need[big])}). {way_out}, or extract on the fly "
            "(--data.init_args.cache_dir null)"
        )

    def _waiting(self) -> None:
        """Say why this process stops (another builder may take minutes on a large layer)."""
        print(f"mint: waiting for another process building the activation cache {self.dir}", flush=True)

    def _remove_orphans(self) -> None:
        """Delete temporary files of killed builders (call holding the lock: no live builder has any)."""
        for path in self.dir.glob(".*.tmp"):
            path.unlink(missing_ok=True)

    def _make_dir(self) -> None:
        """Create the cache folder and make sure a file can be written in it, with an error that says how."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            probe = self.dir / f".write_test.{temp_tag()}.tmp"
            probe.touch()
            probe.unlink(missing_ok=True)  # a builder holding the lock may have swept it as an orphan
        except OSError as err:
            raise unwritable(self.root, err) from err

    def _extract(self, target: Target, images, rows, batch_size: int, names: list[str], labels=None) -> None:
        device = next(target.buffers()).device
        shapes = target.shapes | {LOGITS: (target.num_classes,)}
        tag = temp_tag()
        tmp = {name: self._paths(name)[0].with_name(f".{name}.{tag}.npy.tmp") for name in names}
        # Batches are appended to plain files (hashed on the way), never held whole in memory nor
        # memory-mapped: peak memory is one batch whatever the number of images.
        out: dict[str, NpyWriter] = {}
        try:
            for name in names:
                out[name] = NpyWriter(tmp[name], dtype_of(name), (len(rows), *shapes[name]))
            for start in tqdm(range(0, len(rows), batch_size), desc="extracting activations", leave=False):
                batch = images[rows[start : start + batch_size]]  # (B, H, W, 3) uint8
                given = (
                    None
                    if labels is None
                    else torch.from_numpy(labels[start : start + batch_size]).to(device)
                )
                acts = target(to_tensor(torch.from_numpy(batch).to(device)), given)
                for name in names:
                    value = acts[name].float()
                    if dtype_of(name) == np.float16:  # torch converts to float16 about twice as fast as numpy
                        value = value.clamp_(-FP16_MAX, FP16_MAX).half()
                    out[name].write(value.cpu().numpy())
            for name in names:
                self._publish(name, tmp[name], out.pop(name).close())
        finally:
            for writer in out.values():
                writer.abort()
            for path in tmp.values():
                path.unlink(missing_ok=True)

    def _publish(self, name: str, tmp: Path, sha256: str) -> None:
        """Rename a finished array into place, then its record: a reader checks one against the other."""
        array, record = self._paths(name)
        meta = {"key": self.key, "name": name, "bytes": tmp.stat().st_size, "sha256": sha256}
        os.replace(tmp, array)
        record_tmp = record.with_name(f".{record.name}.{temp_tag()}.tmp")
        record_tmp.write_text(json.dumps(meta, indent=1))
        os.replace(record_tmp, record)


def collate_batch(batch):
    """The dataset already returns whole batches (`__getitems__`): pass them through."""
    return batch


class ActivationDataset(Dataset):
    """Items of cached activations with membership (1 = member), class label and a unique id.

    Args:
        arrays: memory-mapped cache arrays {name: (N, ...)}.
        rows: which cache rows, in this order.
        members: membership of each row of the cache.
        labels: class label of each row of the cache.
    """

    def __init__(
        self, arrays: dict[str, np.ndarray], rows: np.ndarray, members: np.ndarray, labels: np.ndarray
    ) -> None:
        # Memory-mapped arrays are read through plain file reads: mapped pages would stay in this
        # process's memory, and an epoch over a large layer would grow it by the whole cache.
        self.arrays = {name: NpyRows.of(array) for name, array in arrays.items()}
        self.rows, self.members, self.labels = np.asarray(rows), members, labels

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, idx: list[int]) -> dict:
        rows = np.sort(self.rows[np.asarray(idx)])  # sorted rows: sequential reads, runs in one call
        acts = {
            name: torch.from_numpy(np.ascontiguousarray(a[rows])).float() for name, a in self.arrays.items()
        }
        return {
            "acts": acts,
            "member": torch.from_numpy(self.members[rows]).float(),
            "label": torch.from_numpy(self.labels[rows]).long(),
            "id": torch.from_numpy(rows).long(),
        }

    def __getitem__(self, i: int) -> dict:
        batch = self.__getitems__([i])
        return {
            "acts": {k: v[0] for k, v in batch["acts"].items()},
            **{k: batch[k][0] for k in ("member", "label", "id")},
        }
