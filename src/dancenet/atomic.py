"""Write files and directories so that a failure never leaves a half-written output.

Everything is written under a temporary name beside the target, flushed, then renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def _default_mode(directory: bool) -> int:
    """What ``open``/``mkdir`` would have given under the current umask (mkstemp gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    ``suffix`` defaults to the target's own suffix, so writers that pick a format by extension
    (PyAV, Pillow) still see the right one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix if suffix is None else suffix
    fd, temporary = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".partial{suffix}",
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
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
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
