"""The recipes under `configs/`, found from a source checkout and from an installed package alike.

The YAML recipes ship inside the wheel as the package `clevereward_configs` (the repository's
`configs/` folder). A recipe is named by its path in the repository, `configs/reward/synthetic.yaml`;
`resolve_config` returns a file that exists for that name: the path itself when it is there
(a user's own file, or a checkout's), else the packaged copy.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

__all__ = ["CONFIG_PACKAGE", "CONFIG_PREFIX", "recipe", "resolve_config", "resolve_config_argv"]

CONFIG_PACKAGE = "clevereward_configs"
CONFIG_PREFIX = "configs/"  # how the docs and commands name a shipped recipe


def recipe(name: str) -> Path:
    """The packaged recipe `name` (e.g. "reward/synthetic.yaml"); FileNotFoundError lists the shipped ones."""
    root = Path(os.fspath(files(CONFIG_PACKAGE)))
    path = root / name
    if not path.is_file():
        shipped = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.yaml"))
        raise FileNotFoundError(f"no recipe {CONFIG_PREFIX}{name}: the shipped recipes are {shipped}")
    return path


def resolve_config(path: str | os.PathLike) -> Path:
    """`path` when it is a file; else, for a name under `configs/`, the packaged recipe of that name.

    Raises FileNotFoundError naming the path when neither exists.
    """
    given = Path(path)
    if given.is_file():
        return given
    text = given.as_posix()
    if text.startswith(CONFIG_PREFIX):
        return recipe(text.removeprefix(CONFIG_PREFIX))
    raise FileNotFoundError(f"config file {path} does not exist")


def resolve_config_argv(argv: list[str]) -> list[str]:
    """`argv` with the value of `--config` (either `--config X` or `--config=X`) resolved by `resolve_config`."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--config" and i + 1 < len(out):
            out[i + 1] = str(resolve_config(out[i + 1]))
        elif arg.startswith("--config="):
            out[i] = f"--config={resolve_config(arg.removeprefix('--config='))}"
    return out
