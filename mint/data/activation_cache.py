"""Disk cache of a frozen target's activations: extracted once, memory-mapped by every epoch and run.

A cache folder is named by the hash of everything its contents depend on (the classifier
checkpoint's sha256, the layers, the images' indices and fingerprint), so a change of any of them
gives a new folder. It is built in a temporary folder and renamed into place only when complete,
with the sha256 of every array in its `meta.json`: a crashed, torn or edited cache is detected on
opening and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from mint.target import LOGITS, FrozenTarget, file_sha256

CACHE_VERSION = 1
FP16_MAX = 65504.0


class ActivationCache:
    """One cache folder under `root` for one `key` (a JSON-able dict of what the activations depend on).

    Args:
        root: folder holding cache folders.
        key: everything the activations depend on.
        verify: check each array's sha256 on opening (slower for large layers, but catches corruption).
    """

    def __init__(self, root: str | Path, key: dict, verify: bool = True) -> None:
        self.key = {"cache_version": CACHE_VERSION, **key}
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:24]
        self.root, self.dir, self.verify = Path(root), Path(root) / digest, verify

    def problem(self) -> str | None:
        """Why this cache cannot be used (None when it can)."""
        meta_path = self.dir / "meta.json"
        if not meta_path.is_file():
            return "missing" if not self.dir.exists() else "incomplete (no meta.json)"
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            return "corrupted meta.json"
        if meta.get("key") != self.key:
            return "stale (built for other inputs)"
        for name, info in meta["arrays"].items():
            path = self.dir / info["file"]
            if not path.is_file() or path.stat().st_size != info["bytes"]:
                return f"array {name} is missing or truncated"
            if self.verify and file_sha256(path) != info["sha256"]:
                return f"array {name} is corrupted (sha256 mismatch)"
        return None

    def open(self) -> dict[str, np.ndarray]:
        """Memory-map every array: {layer: (N, ...) float16, "logits": (N, classes) float32}."""
        meta = json.loads((self.dir / "meta.json").read_text())
        return {name: np.load(self.dir / info["file"], mmap_mode="r") for name, info in meta["arrays"].items()}

    def ensure(self, target: FrozenTarget, images: np.ndarray, rows: np.ndarray, batch_size: int = 512,
               device: torch.device | str = "cpu") -> dict[str, np.ndarray]:
        """Open the cache, building (or rebuilding) it first when it is missing, stale or corrupted."""
        problem = self.problem()
        if problem is not None:
            if problem != "missing":
                warnings.warn(f"activation cache {self.dir} is {problem}: rebuilding it", stacklevel=2)
            self.build(target, images, rows, batch_size, device)
        return self.open()

    def build(self, target: FrozenTarget, images: np.ndarray, rows: np.ndarray, batch_size: int = 512,
              device: torch.device | str = "cpu") -> None:
        """Extract activations of `images[rows]` in one pass per batch and store them atomically."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{self.dir.name}.{uuid.uuid4().hex[:8]}.tmp"
            tmp.mkdir()
        except OSError as err:
            raise PermissionError(
                f"cannot write the activation cache under {str(self.root)!r} ({err}); "
                f"set `cache_dir` to a writable folder, or `cache_dir: null` to extract on the fly"
            ) from err
        try:
            arrays = self._extract(target.to(device), images, rows, batch_size, tmp)
            meta = {"key": self.key, "count": len(rows), "arrays": arrays}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            self._publish(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            target.to("cpu")

    def _extract(self, target, images, rows, batch_size, folder: Path) -> dict:
        device = next(target.buffers()).device
        names = [*target.layers, LOGITS]
        shapes = target.shapes | {LOGITS: (target.num_classes,)}
        files, out = {}, {}
        for name in names:
            dtype = np.float32 if name == LOGITS else np.float16  # logits stay exact for loss scores
            files[name] = f"{name.replace('.', '__')}.npy"
            out[name] = np.lib.format.open_memmap(folder / files[name], "w+", dtype, (len(rows), *shapes[name]))
        for start in tqdm(range(0, len(rows), batch_size), desc="extracting activations", leave=False):
            batch = images[rows[start : start + batch_size]]  # (B, H, W, 3) uint8
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(device).permute(0, 3, 1, 2).float().div_(255)
            acts = target(x)
            for name in names:
                value = acts[name].float().clamp_(-FP16_MAX, FP16_MAX) if name != LOGITS else acts[name].float()
                out[name][start : start + len(batch)] = value.cpu().numpy()
        arrays = {}
        for name in names:
            out[name].flush()
            del out[name]
            path = folder / files[name]
            arrays[name] = {"file": files[name], "bytes": path.stat().st_size, "sha256": file_sha256(path)}
        return arrays

    def _publish(self, tmp: Path) -> None:
        """Move a finished build into place; if another process was faster, keep its (equal) cache."""
        if self.dir.exists():
            if self.problem() is None:
                return
            trash = self.root / f".{self.dir.name}.{uuid.uuid4().hex[:8]}.old"
            os.replace(self.dir, trash)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, self.dir)
        except OSError:  # another rank or node renamed its build first
            if self.problem() is not None:
                raise


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

    def __init__(self, arrays: dict[str, np.ndarray], rows: np.ndarray, members: np.ndarray,
                 labels: np.ndarray) -> None:
        self.arrays, self.rows, self.members, self.labels = arrays, np.asarray(rows), members, labels

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, idx: list[int]) -> dict:
        rows = np.sort(self.rows[np.asarray(idx)])  # sorted reads are sequential on the memory map
        acts = {name: torch.from_numpy(np.ascontiguousarray(a[rows])).float() for name, a in self.arrays.items()}
        return {
            "acts": acts,
            "member": torch.from_numpy(self.members[rows]).float(),
            "label": torch.from_numpy(self.labels[rows]).long(),
            "id": torch.from_numpy(rows).long(),
        }

    def __getitem__(self, i: int) -> dict:
        batch = self.__getitems__([i])
        return {"acts": {k: v[0] for k, v in batch["acts"].items()}, **{k: batch[k][0] for k in ("member", "label", "id")}}
