"""Loading a model by hub id or folder, with an error a person can act on when neither works."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["explain_missing_model"]


@contextmanager
def explain_missing_model(name: str, what: str) -> Iterator[None]:
    """Turn the `OSError` of a failed `from_pretrained(name)` into one that says what to do.

    A `name` that is no local path and cannot be downloaded (offline, a typo, a gated repository)
    raises `FileNotFoundError` naming `what`, the name and the fix; a local folder that fails to
    load keeps its own error, which says what is wrong inside it.
    """
    try:
        yield
    except OSError as error:
        if Path(name).exists():
            raise
        raise FileNotFoundError(
            f"{what} {name!r} is not a local folder and could not be downloaded from the Hugging Face "
            f"hub (offline, or no such repository): download it where the hub is reachable "
            f"(`hf download {name}`) or pass a local folder"
        ) from error
