"""What Lightning prints that a mint user need not read: silenced by its exact message, each for a reason.

Only these messages are dropped; every other warning and log line passes. `MINT_DEBUG=1` keeps
them all (as it keeps tracebacks).
"""

from __future__ import annotations

import logging
import os
import warnings

# Warnings (a regex of the message's start), each with why it is noise for a mint command.
WARNINGS = (
    # mint's own commands (quickstart, sweep, study, references) run LightningCLI stages with their
    # own argument lists while sys.argv holds the command's.
    r"LightningCLI's args parameter is intended to run from within Python",
    # The detector's frozen target is in eval mode by design (its dropout and batch norm must not move).
    r"Found \d+ module\(s\) in eval mode at the start of training",
    # Every `test` writes into a version folder of its own, not the fit's.
    r"The dirpath has changed from",
    # A run with fewer batches an epoch than the logging interval logs `train/loss` once an epoch
    # (`MintModule.on_train_start` lowers the interval), so the advice is done.
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    # Lightning's own use of a torch API that torch deprecated; nothing a mint user can change.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)
# Log lines (their start) of Lightning's loggers: advertisements of other packages; a note that
# Lightning's own checkpoints hold its callbacks' state (mint reads every checkpoint with
# weights_only=True regardless); and that mint's modules bring their own checkpoint callback (by design).
LOG_LINES = ("💡 Tip:", "`weights_only` was not set", "The following callbacks returned in `LightningModule")
LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.pytorch.trainer.connectors.checkpoint_connector",
)


class _DropLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(LOG_LINES)


def quiet_lightning() -> None:
    """Drop `WARNINGS` and `LOG_LINES` for the rest of this process (once; idempotent)."""
    if os.environ.get("MINT_DEBUG"):
        return
    for message in WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLines) for f in logger.filters):
            logger.addFilter(_DropLines())
