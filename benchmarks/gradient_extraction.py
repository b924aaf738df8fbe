"""Extracting gradient features against a plain forward pass, on the same images, in one run.

Times `Target` over N images (batches of 512, CPU by default) reading layer 7 alone, then layer 7
with each gradient request, both through the batched path (one forward and one backward pass,
`mint.models.batched_gradients`) and through the per-image path (`torch.func`, one vector-Jacobian
product per image), and prints each time and its ratio to the plain pass (the goal: within 3x).
The network is the paper's CNN at width 1 (random weights: the cost does not depend on them).

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
    # warm-up on a full batch (the first pass of a batch size sets up its convolutions), which also
    # runs the batched path's check against the per-image one
    target(images[:batch], labels[:batch])
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
    print("| read | batched: seconds | x plain forward | per image: seconds | x plain forward |")
    print(f"| --- | --- | --- | --- | --- |\n| layer7 | {base:.1f} | 1.00 | | |")
    for request in REQUESTS:
        target = Target(hparams, ["layer7", *request])
        batched = seconds(target, images, labels, args.batch_size)
        target.gradients.owners = None  # the per-image path from now on
        per_image = seconds(target, images, labels, args.batch_size)
        row = f"{batched:.1f} | {batched / base:.2f} | {per_image:.1f} | {per_image / base:.2f}"
        print(f"| layer7 + {', '.join(request)} | {row} |")


if __name__ == "__main__":
    main()
