"""What mint's LightningDataModules share: loader settings, and loaders built one way."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from mint.errors import check_count


class MintDataModule(L.LightningDataModule):
    """Base of `TargetDataModule` and `DetectorDataModule`.

    Args:
        batch_size: items per batch (per device under DDP).
        num_workers: data loader worker processes.
        persistent_workers: keep the loader's worker processes between epochs (with `num_workers` > 0).
            A resumed fit matches an uninterrupted one exactly only without them: workers keep
            random generators of their own, which a checkpoint cannot hold.
        pin_memory: pin host memory for faster GPU copies; default: when CUDA is available.
    """

    def __init__(self, batch_size: int, num_workers: int, persistent_workers: bool, pin_memory: bool | None):
        super().__init__()
        self.batch_size = check_count("batch_size", batch_size)
        self.num_workers = check_count("num_workers", num_workers, minimum=0)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0

    def loader(self, dataset: Dataset, shuffle: bool, collate_fn=None, workers: bool = True) -> DataLoader:
        """A loader over `dataset`; training loaders (`shuffle`) drop a last incomplete batch.

        Args:
            dataset: the items.
            shuffle: reshuffle every epoch (training).
            collate_fn: how items become a batch (default: PyTorch's).
            workers: use the worker processes; False reads in this process (one-off passes).
        """
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle,  # a last batch of one item would break BatchNorm
            num_workers=self.num_workers if workers else 0,
            pin_memory=self.pin_memory and workers,
            persistent_workers=self.persistent_workers and workers,
            collate_fn=collate_fn,
        )
