"""The `reward` half of the `clevereward` commands; each module's `main(argv)` is one command.

`CommandParser` is the parser every command uses: a usage error is one line,
`clevereward <command>: error: <what is wrong>`, with exit status 2 (`--help` shows the options).
`config_parser` is its counterpart for the dataclass configs that also read a YAML `--config`.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import NoReturn

__all__ = ["DEBUG_ENV", "debug_enabled", "OneLineErrors", "CommandParser", "config_parser", "print_error"]

# Set to 1 to see tracebacks instead of one-line errors, and the video decoder's own messages.
DEBUG_ENV = "CLEVEREWARD_DEBUG"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


class OneLineErrors:
    """Mixin for an `argparse.ArgumentParser`: `error` prints one line (no usage block) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class CommandParser(OneLineErrors, argparse.ArgumentParser):
    """An `argparse.ArgumentParser` with one-line errors that shows every option's default in --help."""

    def __init__(self, prog: str, doc: str | None, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(prog=prog, description=(doc or "").strip().split("\n", 1)[0], **kwargs)


def config_parser(*dataclass_types: type):
    """`trl.TrlParser` of `dataclass_types` (a YAML `--config`, then command-line overrides) with
    one-line usage errors; a `--config configs/...` that is no file here is the packaged recipe of
    that name (`reward.recipes.resolve_config`), so recipes resolve the same from a wheel."""
    return _config_parser_class()(dataclass_types)


@functools.cache
def _config_parser_class() -> type:
    # Built on first use: importing trl takes seconds, and `clevereward --help` needs none of it.
    from trl import TrlParser

    from reward.recipes import resolve_config_argv

    class ConfigParser(OneLineErrors, TrlParser):
        def parse_args_and_config(self, args=None, *rest, **kwargs):
            args = resolve_config_argv(list(sys.argv[1:] if args is None else args))
            return super().parse_args_and_config(args, *rest, **kwargs)

    return ConfigParser


def print_error(command: str, message: str) -> None:
    """The one-line error of a command on stderr."""
    print(f"clevereward {command}: error: {message}", file=sys.stderr)
