"""Extracting gradient features against a plain forward pass, on the same images, in one run.

Times `Target` over N images (batches of 512, CPU by default) reading layer 7 alone, then layer 7
with each gradient request, and prints each one's time and its ratio to the plain pass (the goal:
`grad:layer8` within 3x). The network is the paper's CNN at width 1 (random weights: the cost does
not depend on them).

    python benchmarks/gradient_extraction.py --images 10000
"""

from __future__ import annotations

import argparse
import time

import torch

from mint.models.target import Target

REQUESTS = (["grad:layer8"], ["gradnorm:layer8"], ["grad:layer7"], ["gradnorm:all"])


def seconds(target: Target, images: torch.Tensor, labels: torch.Tensor, batch: int) -> float:
    """Wall time of one pass over all images."""
    target(images[:8], labels[:8])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(images), batch):
        target(images[i : i + batch], labels[i : i + batch])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    torch.manual_seed(0)
    images = torch.rand(args.images, 3, 32, 32)
    labels = torch.randint(0, 10, (args.images,))
    hparams = {"arch": "paper_cnn", "num_classes": 10}
    base = seconds(Target(hparams, ["layer7"]), images, labels, args.batch_size)
    print(f"{args.images} images, {torch.get_num_threads()} threads; plain forward (layer7): {base:.1f} s")
    print("| read | seconds | x plain forward |\n| --- | --- | --- |")
    print(f"| layer7 | {base:.1f} | 1.00 |")
    for request in REQUESTS:
        took = seconds(Target(hparams, ["layer7", *request]), images, labels, args.batch_size)
        print(f"| layer7 + {', '.join(request)} | {took:.1f} | {took / base:.2f} |")


if __name__ == "__main__":
    main()
