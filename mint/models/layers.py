"""`mint layers`: the layers of a target a detector can read, with their shapes, found by a dry forward pass.

    mint layers --ckpt lightning_logs/target_cifar10/latest/checkpoints/best.ckpt
    mint layers --arch resnet18 --weights resnet18_cifar10.safetensors --num-classes 10 --image-size 32
    mint layers --timm --arch vit_tiny_patch16_224 --num-classes 10   # untrained: the same layers
    mint layers --program resnet18.pt2 --image-size 32      # or a TorchScript file: resnet18.pt
    mint layers --hf my_vit/      # a Hugging Face save_pretrained folder (--all: every submodule)

Each row: the layer's name (as a detector config names it, `--data.init_args.layers=[NAME]`), the
shape of its output for one image, the values per image, and the size of its activation cache for
10,000 images (float16). Marked: the penultimate layer and the logits, which the shipped detectors
read best (the paper's best layer is the penultimate one), and maps too large to cache whole. Then the
gradient features a detector can read like layers (`grad:<module>`, `gradnorm:all`; not for exported
or TorchScript programs, which have no differentiable path here).
"""

from __future__ import annotations

import math
import sys

import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from mint.commands import command_parser
from mint.errors import MintError
from mint.models.build import readable_layers
from mint.models.exported import ExportedTarget
from mint.models.factory import FactoryTarget
from mint.models.gradients import ALL, GRAD, GRADNORM
from mint.models.hf_target import HuggingFaceTarget
from mint.models.paper_cnn import IMAGE_SIZE
from mint.models.preprocessing import check_classes, check_image_size
from mint.models.scripted import ScriptTarget
from mint.models.target import Target, build_network
from mint.models.timm_target import TimmTarget
from mint.models.torchvision_target import TorchvisionTarget
from mint.records import load_target_checkpoint

LARGE = 1 << 16  # values per image above which a map is better pooled than cached whole


@torch.no_grad()
def layer_table(net: nn.Module, image_size: int, every: bool = False) -> list[dict]:
    """One row per readable layer of `net` (top-level ones unless `every`), from one dry forward pass."""
    exported = hasattr(net, "read")  # an exported or TorchScript program: read from its saved graph
    names = net.layer_names() if exported else readable_layers(net)
    shown = names if every else [n for n in names if "." not in n or n == names[-1]]
    images = torch.zeros(2, 3, image_size, image_size)  # 2: a parameter node (batch 1) is not a layer
    if exported:  # read from the saved graph, never retraced
        out = net.read(images, shown)
    else:
        out = create_feature_extractor(net.eval(), return_nodes={n: n for n in shown})(images)
    for name in shown:  # a node inside a requested module is traced away with it: read it alone
        if name not in out:
            out |= create_feature_extractor(net, return_nodes={name: name})(images)
    # Only per-image activations are layers: not masks, flags, sizes or parameters read by the graph.
    shown = [n for n in shown if isinstance(out[n], torch.Tensor) and out[n].dim() and len(out[n]) == 2]
    last = penultimate(net, shown, out) if not exported else len(shown) - 2
    rows = []
    for i, name in enumerate(shown):
        shape = tuple(out[name].shape[1:])
        values = math.prod(shape)
        note = "logits" if name == shown[-1] else "penultimate" if i == last else ""
        if values > LARGE:
            note = "large: pool it, or read a later layer"
        rows.append(
            {
                "layer": name,
                "shape": shape,
                "values": values,
                "cache_mb_10k": values * 2e4 / 2**20,
                "note": note,
            }
        )
    return rows


def penultimate(net: nn.Module, shown: list[str], out: dict) -> int:
    """Index of the penultimate layer in `shown` (the logits last).

    The layer before the logits, or the first of the parameter-free layers just before them that
    only copy one another (ResNet's `avgpool` and `flatten`: the one to read is `avgpool`, as the
    shipped config does).
    """
    modules = dict(net.named_modules())

    def free(name: str) -> bool:  # a layer without parameters (pooling, reshape)
        return name not in modules or next(modules[name].parameters(), None) is None  # a function node: none

    i = len(shown) - 2
    while i > 0 and free(shown[i]) and free(shown[i - 1]) and _same_size(out, shown[i], shown[i - 1]):
        i -= 1
    return i


def _same_size(out: dict, a: str, b: str) -> bool:
    return out[a].numel() == out[b].numel()


def gradient_rows(net: nn.Module) -> list[dict]:
    """The gradient features of `net` (`grad:<module>` per top-level module with weights, `gradnorm:all`)."""
    rows = []
    for name, module in net.named_children():
        values = sum(p.numel() for p in module.parameters())
        if values:
            rows.append({"layer": f"{GRAD}{name}", "shape": (values,), "values": values,
                         "cache_mb_10k": values * 4e4 / 2**20, "note": "gradient (float32)"})  # fmt: skip
    tensors = len(list(net.parameters()))
    note = f"log gradient norms (also {GRADNORM}<module>)"
    rows.append({"layer": f"{GRADNORM}{ALL}", "shape": (tensors,), "values": tensors,
                 "cache_mb_10k": tensors * 4e4 / 2**20, "note": note})  # fmt: skip
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows of `layer_table` as the aligned text `mint layers` prints."""
    width = max(len(r["layer"]) for r in rows)
    lines = [f"{'layer'.ljust(width)}  {'shape per image':<18} {'values':>9} {'cache, 10k images':>18}  note"]
    for r in rows:
        shape = " x ".join(map(str, r["shape"]))
        size = f"{r['cache_mb_10k']:>15,.1f} MB"
        lines.append(f"{r['layer'].ljust(width)}  {shape:<18} {r['values']:>9,} {size}  {r['note']}".rstrip())
    return "\n".join(lines)


def checkpoint_network(path: str) -> tuple[nn.Module, int]:
    """The network of a mint target or detector checkpoint, with its weights, and the image side it reads.

    A detector of a target trained elsewhere carries that target's config and weights: it is
    rebuilt as an audit rebuilds it (a program file must be the recorded one); one built by a
    factory runs code, so it is named with --factory instead.
    """
    record = load_target_checkpoint(path)
    if "kind" not in record.extra:
        net = build_network(record.hparams)
        net.load_state_dict(
            {k.removeprefix("net."): v for k, v in record.state_dict.items() if k.startswith("net.")}
        )
        return net, record.hparams.get("image_size", IMAGE_SIZE)
    args = record.extra.get("config", {}).get("init_args", {})
    if record.extra["kind"] == "FactoryTarget":
        raise MintError(
            f"{path} is a detector of a target built by your code {args.get('factory')!r}; mint runs "
            f"code a file names only when you name it: mint layers --factory {args.get('factory')} "
            "(with --weights and --image-size as you trained it)"
        )
    target = Target.from_record(record, [])
    return target.net, target.crop_size


def main(argv: list[str] | None = None) -> list[dict]:
    """Command-line entry point of `mint layers`."""
    parser = command_parser("mint layers", __doc__)
    parser.add_argument("--ckpt", help="a mint target or detector checkpoint")
    parser.add_argument(
        "--program", help="a torch.export program (.pt2) or a TorchScript file (.pt, .ts); with --image-size"
    )
    parser.add_argument(
        "--arch", help="a torchvision architecture (with --num-classes; --weights, or its untrained layers)"
    )
    parser.add_argument("--timm", action="store_true", help="--arch names a timm architecture")
    parser.add_argument(
        "--hf", metavar="FOLDER", help="a Hugging Face image classifier's save_pretrained folder"
    )
    parser.add_argument(
        "--factory", help="your own package.module:function returning the nn.Module (runs it)"
    )
    parser.add_argument("--weights", help=".safetensors, or .pt / .pth holding a state_dict")
    parser.add_argument("--num-classes", type=int, help="classes of the classifier")
    parser.add_argument("--image-size", type=int, default=224, help="side of the images it reads")
    parser.add_argument("--strip-prefix", default="", help="removed from every key of the weights (module.)")
    parser.add_argument("--small-input-stem", action="store_true", help="ResNet stem for 32 x 32 images")
    parser.add_argument("--all", action="store_true", help="every graph node, not only top-level layers")
    args = parser.parse_args(argv)
    if sum(map(bool, (args.ckpt, args.arch, args.program, args.factory, args.hf))) != 1:
        raise MintError(
            "give one of --ckpt (a mint checkpoint), --program (a .pt2 file), --factory "
            "package.module:function, --hf FOLDER, or --arch with --num-classes (and --weights)"
        )
    check_image_size("--image-size", args.image_size)  # (before anything is built at that size)
    check_classes("--num-classes", args.num_classes)
    if args.factory:
        target = FactoryTarget(args.factory, None, args.weights or "", args.num_classes, args.strip_prefix,
                               args.image_size)  # fmt: skip
        net, size = target.network()[0], args.image_size
    elif args.program:
        kind = ExportedTarget if args.program.endswith(".pt2") else ScriptTarget
        net, size = kind(args.program, args.image_size).network()[0], args.image_size
    elif args.ckpt:
        net, size = checkpoint_network(args.ckpt)
    elif args.hf:  # at its preprocessor's image size
        target = HuggingFaceTarget(args.hf)
        net, size = target.network()[0], target.image_size
    else:
        if not args.num_classes:
            raise MintError("--arch needs --num-classes N (and --weights FILE for a trained network)")
        common = (args.arch, args.weights or "", args.num_classes, args.strip_prefix, args.image_size)
        if args.timm:
            target = TimmTarget(*common)
        else:
            target = TorchvisionTarget(*common, small_input_stem=args.small_input_stem)
        if not args.weights:  # shapes do not depend on the weights
            print(f"mint layers: no --weights: the layers of an untrained {args.arch}", file=sys.stderr)
        net, size = target.network(weights=bool(args.weights))[0], target.image_size  # (pretrained: its own)
    rows = layer_table(net, size, args.all)
    rows += [] if hasattr(net, "read") else gradient_rows(net)  # a program has no differentiable path
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
