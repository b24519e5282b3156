"""The one exception type for a user's mistake.

The CLI prints a :class:`DancenetError` as a single line and exits with code 2; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import os


class DancenetError(Exception):
    """Bad input from the user: a missing file, a corrupt video, an impossible option."""


def input_error(path: str | os.PathLike | None, problem: str) -> DancenetError:
    """Build an error whose message names the file first: ``PATH: problem``."""
    if path is None:
        return DancenetError(problem)
    return DancenetError(f"{os.fspath(path)}: {problem}")
