"""Guards for the paths a command reads and writes: nothing lost, nothing outside.

Three rules every command follows (issue 11):

- :func:`check_output`: an output is never equal to, inside, or a folder holding any of the
  command's inputs (``prepare SRC --out SRC --overwrite`` must not replace the source).
- :func:`check_replaceable`: an existing output folder is replaced only when dancenet made it
  (its format marker is there and it holds no file dancenet did not write); a folder with other
  files is never replaced, whatever the flags.
- :func:`member` and :func:`check_name`: a path read from inside a file (a manifest's data file)
  stays inside that file's folder, and a ``--name``-like option is a plain name, not a path.

Every refusal is a :class:`~dancenet.errors.DancenetError` naming the path or flag, so the CLI
prints it as one line with exit code 2.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterable

from .errors import DancenetError, input_error

PathLike = str | os.PathLike


def _real(path: PathLike) -> Path:
    """The absolute path with every symlink resolved (the parts that exist)."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_output(output: PathLike, inputs: Iterable[PathLike | None], flag: str = "-o") -> Path:
    """Refuse an ``output`` that is an input, lies inside an input folder, or holds an input.

    inputs: every file or folder the command reads (None entries are skipped). Symlinks are
    resolved on both sides, so a link to the source is the source. Returns ``Path(output)``.
    """
    target = _real(output)
    for source in inputs:
        if source is None:
            continue
        real_source = _real(source)
        if target == real_source:
            also = "" if os.fspath(source) == os.fspath(output) else f" ({os.fspath(source)})"
            raise input_error(output, f"{flag} is also an input{also}; choose another output")
        if _within(target, real_source) and real_source.is_dir():
            raise input_error(output, f"{flag} lies inside the input folder {os.fspath(source)}; "
                                      "choose an output outside it")
        if _within(real_source, target):
            raise input_error(output, f"{flag} holds the input {os.fspath(source)}; "
                                      "choose another output")
    return Path(output)


def check_replaceable(path: PathLike, made_by_dancenet: Callable[[Path], bool],
                      allowed: Callable[[str], bool], what: str, overwrite: bool = True,
                      flag: str = "-o") -> Path:
    """Fail unless ``path`` is absent, an empty folder, or a folder dancenet made that may go.

    made_by_dancenet(folder): whether the folder carries dancenet's format marker for ``what``.
    allowed(name): whether an entry name is one dancenet writes in such a folder; any other
    entry (a user's file, a subfolder) means the folder is not dancenet's to replace.
    overwrite: False refuses even dancenet's own folder (commands that ask for ``--overwrite``).
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return path
    if path.is_symlink() or not path.is_dir():
        raise input_error(path, f"exists and is not a folder; {flag} needs a new or empty folder for {what}")
    entries = sorted(entry.name for entry in path.iterdir())
    if not entries:
        return path
    foreign = [name for name in entries if not allowed(name)]
    if foreign or not made_by_dancenet(path):
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "") if foreign else ""
        reason = f"holds files dancenet did not write ({shown})" if foreign else \
            f"is a non-empty folder that is not {what} made by dancenet"
        raise input_error(path, f"{reason}; nothing was changed: choose another {flag}")
    if not overwrite:
        raise input_error(path, f"already holds {what}; pass --overwrite to replace it")
    return path


def member(folder: PathLike, name: object, what: str, source: PathLike | None = None) -> Path:
    """``folder / name`` for a data file named inside a file of ``folder``, kept inside it.

    An absolute name, a ``..`` part, or a symlink resolving outside ``folder`` is a user error
    naming ``source`` (the file that held the name; default ``folder``).
    """
    source = folder if source is None else source
    if not isinstance(name, str) or not name or "\x00" in name:
        raise input_error(source, f"{what} must be a file name, found {name!r}")
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or relative.drive:
        raise input_error(source, f"{what} {name!r} points outside {os.fspath(folder)}; "
                                  "data files are named relative to their own folder")
    path = Path(folder) / relative
    if not _within(_real(path), _real(folder)):
        raise input_error(source, f"{what} {name!r} is a link leading outside {os.fspath(folder)}")
    return path


def run_files(run: PathLike | None, names: Iterable[str] = ("vae", "motion")) -> list[Path]:
    """The files a command reads from a run folder: each ``NAME.*`` for the stage ``names`` (the
    ``--motion`` name among them), plus ``latents.npz`` and ``prime.npz``. Pass them as inputs to
    :func:`check_output`: an output may sit in the run folder but never replace one of these, nor
    be a folder holding them. ``run`` None (the bundled model) gives []."""
    if run is None or not Path(run).is_dir():
        return []
    stems = set(names) | {"latents", "prime"}
    return sorted(entry for entry in Path(run).iterdir() if entry.name.split(".", 1)[0] in stems)


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def check_name(value: str, flag: str) -> str:
    """A ``--name``-like option (a model's name inside a run): letters, digits, ``_ . -``, not
    starting with ``.`` or ``-``, at most 100 characters, so it can never name a path (no ``/``,
    no ``..``)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise DancenetError(f"{flag} {_NAME_PROBLEM.format(value=value)}")
    return value


_NAME_PROBLEM = ("{value!r}: must be a plain name (letters, digits, _ . -; not starting with '.' or '-'; "
                 "at most 100 characters), not a path")


def name_type(flag: str) -> Callable[[str], str]:
    """An argparse ``type=`` that applies :func:`check_name` (a usage error on a path)."""
    import argparse

    def parse(text: str) -> str:
        if not _NAME.fullmatch(text):
            raise argparse.ArgumentTypeError(_NAME_PROBLEM.format(value=text))
        return text

    parse.__name__ = "name"
    return parse
