"""Files in and out: reads of regular files only, of a bounded size, and atomic writes (a crash
mid-write never leaves a half-written file behind, and the temporary names say who made them)."""
from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from emsync.core.errors import EmsyncError

TEMP_PREFIX = ".emsync-"  # atomic_output's temporary files: .emsync-NAME.XXXXXXXX.tmp beside NAME
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"(?P<name>.+)\.[a-z0-9_]{8}\.tmp")
_FILE_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def irregular_kind(mode: int) -> str:
    """What a file of this st_mode is when it is not a regular file ("a FIFO"...); "" when it is."""
    if stat.S_ISREG(mode):
        return ""
    return next((name for test, name in _FILE_KINDS if test(mode)), "not a file")


def _check_regular(path: Path, info: os.stat_result, limit: int | None, what: str) -> None:
    """EmsyncError naming `path` unless `info` is a regular file of at most `limit` bytes (None: any size)."""
    kind = irregular_kind(info.st_mode)
    if kind:
        raise EmsyncError(f"{path}: not a regular file ({kind}); {what}s are read from regular files only")
    if limit is not None and info.st_size > limit:
        raise EmsyncError(f"{path}: {info.st_size} bytes, more than the {limit} allowed for {what}s")


def check_regular(path: str | os.PathLike, limit: int | None, what: str) -> None:
    """EmsyncError naming `path` unless it is a regular file of at most `limit` bytes (None: any
    size): for files another library opens by name (a video, an AAF). Stat only: a FIFO is
    never opened."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise EmsyncError(f"{path}: file not found") from None
    except OSError as exc:
        raise EmsyncError(f"{path}: cannot read ({exc.strerror or exc})") from None
    _check_regular(path, info, limit, what)


def read_regular(path: str | os.PathLike, limit: int, what: str) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes (`what` names the kind in
    the messages otherwise). Opened without blocking, so a FIFO is refused, not waited on."""
    path = Path(path)
    check_regular(path, limit, what)  # a device is not even opened (opening one can act); fstat below closes the race
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise EmsyncError(f"{path}: file not found") from None
    except OSError as exc:
        raise EmsyncError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        _check_regular(path, os.fstat(fd), limit, what)  # before reading: a folder cannot even be opened as a file
        with open(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise EmsyncError(f"{path}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew since fstat
        raise EmsyncError(f"{path}: more than the {limit} bytes allowed for {what}s")
    return data


def own_temp_files(folder: Path, names: re.Pattern) -> list[Path]:
    """Regular files in `folder` that atomic_output left (killed mid-write) on the way to a
    file whose name `names` matches: only what emsync itself named, nothing else hidden there."""
    found = []
    for entry in folder.iterdir():
        match = _TEMP_NAME.fullmatch(entry.name)
        if match and names.fullmatch(match["name"]) and entry.is_file() and not entry.is_symlink():
            found.append(entry)
    return found


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file beside `path` to write (by name: torch.save, onnx, a WAV writer...);
    when the block ends without an exception it is fsynced and renamed over `path`, otherwise
    removed. The folder must exist; problems are EmsyncErrors naming `path`."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise EmsyncError(f"{path}: output folder {directory} does not exist")
    try:
        fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise EmsyncError(f"{path}: cannot write here ({exc.strerror})") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        raise EmsyncError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through `atomic_output`."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def umask() -> int:
    """The process umask (reading it means setting it, so set it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
