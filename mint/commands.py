"""The parser of every `mint <command>`: the module docstring as its help, each option's default shown.

`mint quickstart`, `sweep`, `study`, `audit`, `layers` and `references` each document themselves in
their module docstring (what the command does, example commands, the values a factor takes); their
`--help` prints that text as written, after the options.
"""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help text as written (examples keep their lines), each option followed by its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        shown = default not in (None, False, "", [], argparse.SUPPRESS) and action.option_strings
        if shown and "%(default)" not in text and "default" not in text:
            value = " ".join(map(str, default)) if isinstance(default, list | tuple) else "%(default)s"
            text += f" (default: {value})"
        return text


def command_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """A parser for `prog` ("mint study"): `doc`'s first line above the options, the rest below them."""
    title, _, body = doc.strip().partition("\n\n")
    return argparse.ArgumentParser(
        prog=prog, description=title, epilog=body or None, formatter_class=HelpFormatter
    )
