"""Safe output files: the one atomic writer every lictrt command uses, and the output-is-an-input guard.

``write_atomic(path, data)`` writes ``data`` (bytes, str, or a callable that writes into a binary file object)
to a temporary file beside the destination, flushes it to disk and renames it over the destination, so a
reader sees the old file or the new one, never a torn one. The new file gets the mode a plain ``open()``
would give it (0666 less the umask), or keeps the mode of the file it replaces; when ``path`` is a symbolic
link the file it points to is written and the link stays. Errors are ``OSError`` naming the user's ``path``,
never the temporary file.

``sibling_dir(dst)`` + ``replace_dir(tmp, dst)`` build a directory beside its destination and swap it in: a
reader sees the old directory or the new one, never a mix of both.

``check_distinct(output, *inputs)`` refuses to write a file that is one of the inputs (same path, a symbolic
link or a hard link to it): the atomic rename would otherwise replace the input with the output.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import LictrtError

__all__ = ["OutputError", "check_distinct", "write_atomic", "sibling_dir", "replace_dir", "building_dir"]


class OutputError(LictrtError, ValueError):
    """An output path that must not be written (it is one of the inputs)."""


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # follows links; also catches hard links
    except OSError:  # one of them does not exist yet
        return os.path.realpath(a) == os.path.realpath(b)


def check_distinct(output: str | os.PathLike, *inputs: str | os.PathLike) -> None:
    """Raise :class:`OutputError` if ``output`` is the same file as any of ``inputs``."""
    out = Path(output)
    for src in inputs:
        if src is not None and _same(out, Path(src)):
            raise OutputError(f"output {output} is the input {src}: refusing to overwrite it (choose another -o)")


def _target(path: Path) -> Path:
    """The file a write to ``path`` must replace: ``path`` itself, or what its symbolic link(s) point to."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def write_atomic(
    path: str | os.PathLike,
    data: bytes | bytearray | memoryview | str | Callable[[BinaryIO], object],
    *,
    inputs: tuple = (),
) -> Path:
    """Atomically write ``data`` to ``path`` (see the module docstring) and return ``path``.

    ``inputs``: paths this output must not be (checked with :func:`check_distinct` before writing).
    """
    user = Path(path)
    check_distinct(user, *inputs)
    target = _target(user)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(user))
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(user)) from None
    tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
    try:
        # 0o666: the kernel applies the umask, as for any newly created file
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(user)) from None
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                if mode is not None:
                    os.fchmod(f.fileno(), mode)
                if callable(data):
                    data(f)
                else:
                    f.write(data.encode() if isinstance(data, str) else data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(user)) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return user


def sibling_dir(dst: str | os.PathLike) -> Path:
    """A new empty directory beside ``dst`` (same file system), to build ``dst``'s next version in."""
    target = _target(Path(dst))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{secrets.token_hex(4)}"
    try:
        tmp.mkdir(mode=0o777)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(dst)) from None
    return tmp


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Put directory ``src`` in place of ``dst`` (a symbolic link's target is replaced, the link stays).

    An existing ``dst`` is renamed aside, ``src`` renamed in, then the old one removed: ``dst`` never holds a
    mix of old and new files. If the second rename fails the old directory is put back.
    """
    import shutil

    target = _target(Path(dst))
    old = None
    try:
        if target.exists():
            old = target.parent / f".{target.name}.old-{secrets.token_hex(4)}"
            os.rename(target, old)
        try:
            os.rename(src, target)
        except BaseException:
            if old is not None:
                os.rename(old, target)
            raise
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(dst)) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return Path(dst)


@contextlib.contextmanager
def building_dir(dst: str | os.PathLike):
    """Build ``dst``'s next version in a directory beside it (yielded): swapped in whole when the block ends,
    removed when it raises, so ``dst`` is never a mix of old and new files."""
    tmp = sibling_dir(dst)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, dst)
