"""Train a classifier the way most people do, with a plain PyTorch loop (no mint, no Lightning).

This stands for "a model trained elsewhere": a torchvision ResNet-18 trained on 1,000 images of the
CIFAR-10 sample bundled with mint, long enough to memorize them. It writes what an auditor is given:

    OUT/resnet18.safetensors     the weights (a state_dict: no pickle, no code)
    OUT/known/members/<class>/   images known to be in the training data (PNG, class subfolders)
    OUT/known/nonmembers/<class>/ images known not to be
    OUT/suspect/                 a set to audit: training images the auditor was not told about
    OUT/training.json            what was done: sizes, epochs, accuracies, preprocessing

    python examples/train_plain_pytorch.py --out examples_out
"""

from __future__ import annotations

import argparse
import json
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from safetensors.torch import save_file

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10's channel statistics


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 32, 32, 3) -> normalized float (N, 3, 32, 32), as the model reads them."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


@torch.no_grad()
def accuracy(net: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of images the network classifies correctly (eval mode)."""
    net.eval()
    predicted = torch.cat([net(to_input(images[i : i + 500])).argmax(1) for i in range(0, len(images), 500)])
    return float((predicted.numpy() == labels).mean())


def write_pngs(folder: Path, images: np.ndarray, labels: np.ndarray | None, start: int) -> None:
    """One PNG per image, in class subfolders when labels are given."""
    for i, image in enumerate(images):
        sub = folder / str(int(labels[i])) if labels is not None else folder
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(sub / f"{start + i:05d}.png")


def main() -> None:
    """Train, save the weights, write the known sets and the suspect set."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="examples_out", help="folder to write into")
    parser.add_argument("--members", type=int, default=1000, help="training images; the rest: non-members")
    parser.add_argument("--suspect", type=int, default=100, help="members kept back as the suspect set")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    data = np.load(files("mint") / "sample" / "cifar10_sample_train.npz")
    images, labels = data["images"], data["labels"].astype(np.int64)
    order = np.random.default_rng(args.seed).permutation(len(images))
    members, nonmembers = order[: args.members], order[args.members :]

    net = torchvision.models.resnet18(num_classes=10)  # the ImageNet stem: 32 px images become 1 x 1 maps
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = to_input(images[members]), torch.from_numpy(labels[members])
    start = time.time()
    for epoch in range(args.epochs):
        net.train()
        for batch in torch.randperm(len(members)).split(64):
            optimizer.zero_grad()
            F.cross_entropy(net(x[batch]), y[batch]).backward()
            optimizer.step()
        train_acc = accuracy(net, images[members], labels[members])
        print(f"epoch {epoch + 1}/{args.epochs}: member accuracy {train_acc:.3f}", flush=True)
    test_acc = accuracy(net, images[nonmembers], labels[nonmembers])
    seconds = time.time() - start
    print(f"trained in {seconds:.0f} s; accuracy: members {train_acc:.3f}, non-members {test_acc:.3f}")

    save_file(net.state_dict(), out / "resnet18.safetensors")
    known_members, suspect = members[args.suspect :], members[: args.suspect]
    write_pngs(out / "known" / "members", images[known_members], labels[known_members], 0)
    write_pngs(out / "known" / "nonmembers", images[nonmembers], labels[nonmembers], 0)
    write_pngs(out / "suspect", images[suspect], None, 0)  # unlabelled: the target's prediction is used
    record = {
        "architecture": "torchvision resnet18, num_classes=10",
        "members": len(members),
        "nonmembers": len(nonmembers),
        "suspect": len(suspect),
        "epochs": args.epochs,
        "seconds": round(time.time() - start),
        "accuracy_members": train_acc,
        "accuracy_nonmembers": test_acc,
        "preprocessing": {"image_size": 32, "mean": MEAN, "std": STD},
    }
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
