"""Write files and directories so that a failure never leaves a half-written output.

Everything is written under a temporary name beside the target, flushed, then renamed into place.

A temporary's name carries the writer's process id (``.NAME.<pid>.XXXX.partial``): a writer killed
with ``kill -9`` cannot remove its own, so the next write of the same target removes every
temporary whose process is gone (:func:`remove_stale_partials`), and puts back a replaced folder
that a kill caught between its two renames.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def _default_mode(directory: bool) -> int:
    """What ``open``/``mkdir`` would have given under the current umask (mkstemp gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, not ours to judge
        return True
    return True


def remove_stale_partials(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries beside ``path`` left by writers that were killed; returns them.

    Only names this module makes for ``path`` (``.NAME.<pid>.*.partial*``) whose process no
    longer runs are touched; a live writer's temporary is left alone. A folder kept as
    ``.NAME.old`` while ``NAME`` is missing (a kill between the two renames of a replace) is put
    back in place; beside an existing ``NAME`` it is removed.
    """
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        return []
    removed = []
    pattern = re.compile(re.escape(f".{target.name}.") + r"(\d+)\.[^/]*\.partial.*|"
                         + re.escape(f".{target.stem}.") + r"(\d+)\.[^/]*\.partial.*")
    with os.scandir(parent) as entries:
        names = [entry.name for entry in entries if entry.name.startswith(".")]
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or _alive(int(match.group(1) or match.group(2))):
            continue
        leftover = parent / name
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    backup = parent / f".{target.name}.old"
    if backup.is_dir() and not backup.is_symlink():
        if target.exists() or target.is_symlink():
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(backup, target)
    return removed


_TEMPORARY = re.compile(r"\.(.+?)\.\d+\.[^/]*\.partial.*")


def remove_stale_partials_in(folder: str | os.PathLike) -> list[Path]:
    """:func:`remove_stale_partials` for every target in ``folder`` that has a temporary there
    (a run folder after a killed session); a live writer's temporaries are left alone."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    targets = {match.group(1) for name in os.listdir(folder) if (match := _TEMPORARY.fullmatch(name))}
    return [path for target in sorted(targets) for path in remove_stale_partials(folder / target)]


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    ``suffix`` defaults to the target's own suffix, so writers that pick a format by extension
    (PyAV, Pillow) still see the right one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix if suffix is None else suffix
    remove_stale_partials(target)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.stem}.{os.getpid()}.", suffix=f".partial{suffix}",
                                     dir=target.parent)
    os.close(fd)
    temporary = Path(temporary)
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        # after the writer: some (safetensors) replace the file and bring their own mode
        os.chmod(temporary, _default_mode(directory=False))
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``path``; on success it replaces ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target)
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".partial",
                                      dir=target.parent))
    os.chmod(temporary, _default_mode(directory=True))
    try:
        yield temporary
        if target.exists():
            if not overwrite:
                raise FileExistsError(target)
            backup = target.with_name(f".{target.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            os.replace(target, backup)
            os.replace(temporary, target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
