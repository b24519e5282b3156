"""The one exception type for a user's mistake.

The CLI prints a :class:`DancenetError` as a single line and exits with code 2; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


class DancenetError(Exception):
    """Bad input from the user: a missing file, a corrupt video, an impossible option."""


def input_error(path: str | os.PathLike | None, problem: str) -> DancenetError:
    """Build an error whose message names the file first: ``PATH: problem``."""
    if path is None:
        return DancenetError(problem)
    return DancenetError(f"{os.fspath(path)}: {problem}")


def one_line(error: BaseException) -> str:
    """The CLI's message for a user's error: ``<file or flag>: <problem>`` on one line.

    An :class:`OSError` (an unwritable output, a full disk, a read-only folder) names its file;
    a :class:`MemoryError` says the request was too large for this machine.
    """
    if isinstance(error, MemoryError):
        text = "not enough memory for this request" + (f" ({error})" if str(error) else "") + \
            "; ask for less (shorter, smaller, fewer) or free memory"
    elif isinstance(error, OSError) and not isinstance(error, DancenetError):
        where = f"{error.filename}: " if error.filename else ""
        text = f"{where}{error.strerror or error}"
    else:
        text = str(error)
    return " ".join(text.splitlines()) or type(error).__name__


@contextlib.contextmanager
def user_errors(path: str | os.PathLike | None, problem: str, *kinds: type[BaseException]) -> Iterator[None]:
    """Turn the exceptions ``kinds`` raised inside the block into a :class:`DancenetError`
    ``PATH: problem (detail)``: for reading a user's file with a library whose errors mean "this
    file is bad". Anything else still propagates as a bug, with its traceback.

        with user_errors(path, "cannot be read as a video", av.error.FFmpegError):
            container = av.open(str(path))
    """
    try:
        yield
    except kinds as error:
        detail = " ".join(str(error).split())[:200]
        raise input_error(path, f"{problem} ({detail or type(error).__name__})") from None
