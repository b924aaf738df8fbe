"""The `mint` command: LightningCLI over every mint model and data module.

python -m mint.cli fit --config configs/classifier_cifar10.yaml
python -m mint.cli fit --config configs/mint_layer7.yaml
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import torch
from lightning.pytorch.cli import ArgsType, LightningCLI

import mint  # noqa: F401  (imports every module and data module so short class paths resolve)
from mint.preflight import preflight

# `mint <name> ...`: commands that run several LightningCLI stages (each module has `main(argv)`).
SUBCOMMANDS = {
    "quickstart": "mint.quickstart",
    "sweep": "mint.sweep",
    "study": "mint.study",
    "audit": "mint.audit",
}


class MintCLI(LightningCLI):
    """LightningCLI with the values one stage derives from another linked, never typed twice."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.image_size", "model.init_args.image_size", apply_on="instantiate")
        # The classifier checkpoint and layers are named once, on the MINT model, and passed to its data.
        parser.link_arguments("model.init_args.target_ckpt", "data.init_args.target_ckpt", apply_on="parse")
        parser.link_arguments("model.init_args.layers", "data.init_args.layers", apply_on="parse")

    def parse_arguments(self, parser, args) -> None:
        """Parse, and keep the config as asked (`self.requested`).

        LightningCLI then silently replaces the model's arguments by the hyperparameters of a
        `--ckpt_path` file; a resumed fit must refuse a configuration that differs instead.
        """
        super().parse_arguments(parser, args)
        self.requested = self.config.clone()

    def before_instantiate_classes(self) -> None:
        """`test --ckpt_path MINT.ckpt` reads the classifier from that checkpoint, which carries it."""
        config = self.config.get(self.config.get("subcommand") or "", self.config)
        ckpt_path = config.get("ckpt_path")
        target = config.get("model.init_args.target_ckpt")
        if ckpt_path and target and Path(ckpt_path).is_file() and not Path(target).is_file():
            if "mint_target" in torch.load(ckpt_path, map_location="cpu", weights_only=True):
                config["model.init_args.target_ckpt"] = config["data.init_args.target_ckpt"] = ckpt_path
        subcommand = self.config.get("subcommand")
        preflight(config, subcommand, self.requested.get(subcommand or "", self.requested))


def main(args: ArgsType = None):
    """Run the CLI (`args` for tests; by default the command line), or one of `SUBCOMMANDS`."""
    argv = sys.argv[1:] if args is None else args
    if isinstance(argv, list) and argv[:1] and argv[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[argv[0]])  # imported only when asked for
        return module.main(argv[1:])
    if isinstance(argv, list) and argv in (["-h"], ["--help"]):  # LightningCLI lists only its own
        extra = ", ".join(SUBCOMMANDS)
        print(f"mint: also {extra} (e.g. `mint audit --help`); LightningCLI subcommands below.\n")
    # Every run writes into a new version_N folder, so allowing the config file to be overwritten never
    # clobbers an earlier run; it avoids a race between DDP ranks checking for the file.
    return MintCLI(
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
    )


def run() -> None:
    """Console-script entry point: `main` without its return value, which would become the exit status."""
    main()


if __name__ == "__main__":
    main()
