"""The `mint` command: LightningCLI over every mint model and data module.

python -m mint.cli fit --config configs/target_cifar10.yaml
python -m mint.cli fit --config configs/mint_layer7.yaml
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from pathlib import Path
from typing import NoReturn

import yaml
from jsonargparse import get_loader, set_loader
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

import mint  # noqa: F401  (imports every module and data module so short class paths resolve)
from mint.errors import MintError, config_error_text
from mint.files import read_checkpoint, read_yaml
from mint.quiet import quiet_lightning
from mint.records.removed import older_config_loader, removed_hint, without_removed
from mint.tasks.preflight import check_ckpt_path, preflight, read_as_trained

# `mint <name> ...`: commands that run several LightningCLI stages (each module has `main(argv)`).
SUBCOMMANDS = {
    "quickstart": "mint.experiments.quickstart",
    "sweep": "mint.experiments.sweep",
    "study": "mint.experiments.study",
    "audit": "mint.audit.command",
    "layers": "mint.models.layers",
    "references": "mint.experiments.references",
}


HELP = """usage: mint COMMAND [options]     (or: python -m mint COMMAND ...)

mint audits whether given images were used to train an image classifier (the target): a detector
trained on the frozen target's activations tells its members from non-members.

Start here:
  quickstart   the whole pipeline on the bundled CIFAR-10 sample, offline, in half a minute
  audit        was this set of images used to train this model? (a trained detector, a folder or .npz)

Train and test (LightningCLI stages; each takes --config FILE and --help):
  fit          train a target (configs/target_*.yaml) or a detector (configs/mint_*.yaml)
  test         test a detector: every attack on the same held-out images (--ckpt_path FILE)
  validate     validate a checkpoint
  predict      run a checkpoint's predict step

More:
  layers       the layers of a target a detector can read (a checkpoint, weights, a program)
  sweep        one detector per layer, one table (AUROC versus depth)
  study        one factor varied (classes, members, target epochs, defenses, detector size, ...)
  references   train the reference models of a target, for LiRA and RMIA beside MINT

Examples:
  mint quickstart
  mint fit --config configs/target_cifar10.yaml
  mint fit --config configs/mint_layer7.yaml
  mint test --config configs/mint_layer7.yaml \\
      --ckpt_path lightning_logs/mint_layer7/latest/checkpoints/best.ckpt
  mint audit --ckpt DETECTOR.ckpt --images my_photos/ --output audit_my_photos

`mint COMMAND --help` lists a command's options with their defaults; README.md walks through each."""


class MintArgumentParser(LightningArgumentParser):
    """LightningCLI's parser; a bad option or value is one line naming it, not 50 lines of usage."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or os.environ.get("MINT_DEBUG"):
            super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        prog = prog.replace("__main__.py", "mint").replace("cli.py", "python -m mint.cli")
        also = f"; mint also has {', '.join(SUBCOMMANDS)}" if "subcommand" in message else ""
        text = removed_hint(config_error_text(message))
        print(f"mint: {text}{also}\n(options: {prog} --help)", file=sys.stderr)
        self.exit(2)


class MintCLI(LightningCLI):
    """LightningCLI with the values one stage derives from another linked, never typed twice."""

    def add_arguments_to_parser(self, parser) -> None:
        # The data decides the classes and image size of a target (`TargetModule`).
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.image_size", "model.init_args.image_size", apply_on="instantiate")
        # A detector's data module reads the target once and serves its activations; the detector
        # module gets that same target (and keeps it in its checkpoint).
        parser.link_arguments("data.target", "model.init_args.target", apply_on="instantiate")

    def parse_arguments(self, parser, args) -> None:
        """Parse, and keep the config as asked (`self.requested`).

        LightningCLI then silently replaces the model's arguments by the hyperparameters of a
        `--ckpt_path` file; a resumed fit must refuse a configuration that differs instead.
        """
        super().parse_arguments(parser, args)
        self.requested = self.config.clone()
        subcommand = self.config.get("subcommand")
        self.carried = check_ckpt_path(self.config.get(subcommand or "", self.config), subcommand)

    def _parse_ckpt_path(self) -> None:
        """Put a `--ckpt_path` file's module options in place of the model's, less those mint removed.

        LightningCLI's own does the same with every option the file records; one mint removed would
        end in a TypeError (`check_ckpt_path` refused one at a value other than the kept one).
        """
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        ckpt, _ = read_checkpoint(Path(ckpt_path))
        hparams = without_removed(dict(ckpt.get("hyper_parameters") or {}))
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "_class_path" in hparams:  # (as LightningCLI: init arguments it sorts out by the signature)
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)

    def before_instantiate_classes(self) -> None:
        """Check the run before anything is built; evaluate a detector as it was trained."""
        subcommand = self.config.get("subcommand")
        config = self.config.get(subcommand or "", self.config)
        if subcommand != "fit" and self.carried is not None:
            read_as_trained(config, self.carried, config.get("ckpt_path"))
        preflight(config, subcommand, self.requested.get(subcommand or "", self.requested))


def check_config_files(argv: list[str]) -> None:
    """Read every config file named on the command line safely, before jsonargparse opens it.

    jsonargparse reads a FIFO forever, expands a YAML alias bomb until memory runs out and answers a
    binary file with a UnicodeDecodeError traceback; `read_yaml` refuses each in one line. A value
    of `--config` (or of `--model`, `--data`, ...) that names no file is left to jsonargparse (it may
    be inline YAML).
    """
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if not eq:
            name, value = arg, argv[i + 1] if i + 1 < len(argv) else ""
        config = name in ("--config", "-c") or name.endswith(".config")
        yaml_file = value.lower().endswith((".yaml", ".yml")) and name.startswith("-")
        if (config or yaml_file) and value and os.path.lexists(value):
            read_yaml(value, f"the config file of {name}", mapping=True)


def main(args: ArgsType = None):
    """Run the CLI (`args` for tests; by default the command line), or one of `SUBCOMMANDS`."""
    argv = sys.argv[1:] if args is None else args
    if isinstance(argv, list) and argv[:1] and argv[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[argv[0]])  # imported only when asked for
        return module.main(argv[1:])
    if isinstance(argv, list):
        check_config_files([str(a) for a in argv])
    if isinstance(argv, list) and argv in (["-h"], ["--help"]):  # LightningCLI lists only its own
        print(HELP)
        return None
    # A run's config.yaml written by an earlier mint may name an option mint removed since.
    load = get_loader("yaml")
    set_loader("yaml", older_config_loader(load), exceptions=(yaml.YAMLError,))
    try:
        # Every run writes into a new version_N folder, so allowing the config file to be overwritten
        # never clobbers an earlier run; it avoids a race between DDP ranks checking for the file.
        return MintCLI(
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_class=MintArgumentParser,
            args=args,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"prog": "mint"},  # not `__main__.py` or `cli.py` in the usage lines
        )
    finally:
        set_loader("yaml", load, exceptions=(yaml.YAMLError,))


# Errors of the machine, not of mint: said in one line too (what happened, what to do).
MACHINE_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EFBIG: "a file grew beyond the size this process may write (ulimit -f) or the file system holds",
}


def _people_message(err: BaseException) -> str | None:
    """The one-line message for `err` or an error in its chain, if it is one a person can act on."""
    while err is not None:
        if isinstance(err, MintError):
            return str(err)
        if isinstance(err, OSError) and err.errno in MACHINE_ERRORS:
            where = f" writing {err.filename}" if err.filename else ""
            return (
                f"{MACHINE_ERRORS[err.errno]}{where} ({err.strerror}). Free space or choose another "
                "folder; an interrupted fit resumes from its last checkpoint with --ckpt_path last"
            )
        err = err.__cause__ or err.__context__
    return None


def run(args: list[str] | None = None) -> None:
    """Command-line entry point (`mint`, `python -m mint`, `python -m mint.cli`, `python -m mint.audit`).

    A user's mistake (`MintError`) or a full / read-only disk ends in one message on stderr and exit
    status 2, without a traceback; `MINT_DEBUG=1` shows the traceback. `main`'s return value is
    dropped: it would become the exit status. Lightning's messages that a mint user need not read
    are dropped first (`mint.quiet`).
    """
    quiet_lightning()
    try:
        main(args)
    except Exception as err:
        message = _people_message(err)  # jsonargparse and Lightning wrap errors: the chain is searched
        if message is None or os.environ.get("MINT_DEBUG"):
            raise
        print(f"mint: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run()
