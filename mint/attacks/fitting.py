"""One training loop for the small networks of the learned black-box attacks, with early stopping.

The attacks are fitted like the detector, on the same known images: on the detector's training set,
the epoch kept by the loss on its validation set (never the test set), from a seeded start.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from lightning.pytorch.utilities.seed import isolate_rng
from torch import Tensor, nn

Loss = Callable[..., Tensor]  # (net, *columns of a batch) -> mean loss of the batch


def seeded(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """A network initialized from `seed`, leaving the global random state as it was."""
    with isolate_rng():
        torch.manual_seed(seed)
        return build()


@torch.no_grad()
def mean_loss(net: nn.Module, loss: Loss, columns: tuple[Tensor, ...], batch_size: int = 4096) -> float:
    """The loss over a whole set, in eval mode, batch by batch (bounded memory)."""
    net.eval()
    total, n = 0.0, len(columns[0])
    for start in range(0, n, batch_size):
        part = tuple(c[start : start + batch_size] for c in columns)
        total += float(loss(net, *part)) * len(part[0])
    return total / max(n, 1)


def fit_network(
    net: nn.Module,
    loss: Loss,
    train: tuple[Tensor, ...],
    val: tuple[Tensor, ...],
    *,
    seed: int,
    epochs: int = 30,
    patience: int = 5,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
) -> int:
    """Adam on `train` (columns of equal length), keep the weights of the best `val` loss.

    Returns the number of epochs run. An empty validation set keeps the last epoch.
    """
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    order_gen = torch.Generator().manual_seed(seed)
    best, kept, bad = float("inf"), copy.deepcopy(net.state_dict()), 0
    n, epoch = len(train[0]), 0
    for epoch in range(1, epochs + 1):  # noqa: B007 (the count is returned)
        net.train()
        for rows in torch.randperm(n, generator=order_gen).split(batch_size):
            rows = rows.to(train[0].device)
            optimizer.zero_grad(set_to_none=True)
            loss(net, *(c[rows] for c in train)).backward()
            optimizer.step()
        if len(val[0]) == 0:
            kept = copy.deepcopy(net.state_dict())
            continue
        value = mean_loss(net, loss, val)
        if value < best - 1e-6:
            best, kept, bad = value, copy.deepcopy(net.state_dict()), 0
        else:
            bad += 1
            if bad >= patience:
                break
    net.load_state_dict(kept)
    net.eval()
    return epoch


def standardizer(x: Tensor, dims: tuple[int, ...] = (0,)) -> tuple[Tensor, Tensor]:
    """Mean and std of training inputs (float64), a constant column's std set to 1."""
    x = x.double()
    mean, std = x.mean(dims, keepdim=True), x.std(dims, correction=0, keepdim=True)
    return mean, torch.where(std > 0, std, torch.ones_like(std))
