"""Progress bars for long work; silent with ``--quiet`` or when stderr is not a terminal in CI."""

from __future__ import annotations

from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", quiet: bool = False, **kwargs) -> tqdm:
    """A tqdm bar (with ETA) on stderr; disabled when ``quiet``."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=quiet, dynamic_ncols=True,
                leave=False, **kwargs)
