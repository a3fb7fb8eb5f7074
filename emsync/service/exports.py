"""Where an export may write. A client names the path, so the path is checked first:

- never inside the session folder (session.json, scenes.json, versions/: a MIDI file there
  would destroy acknowledged music or stop the session from opening), except its exports/
  folder, where the service writes REAPER's files;
- never over anything but a regular file (a FIFO, a device, a folder, a symbolic link);
- never over a regular file that emsync did not write, unless the request says overwrite.

What emsync wrote is kept in a ledger (exports.json in the session folder, in memory for a
session without one): each file's device, inode, size and modification time as written, so
a file changed or replaced since is the user's again. Exporting to the same path again, the
usual round trip of a plugin, needs no overwrite.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from emsync.core.errors import EmsyncError
from emsync.core.fileio import atomic_write_bytes, irregular_kind, read_regular
from emsync.core.limits import MAX_SESSION_FILE_BYTES

log = logging.getLogger("emsync.session")

LEDGER_FILE = "exports.json"
EXPORTS_FOLDER = "exports"
LEDGER_ENTRIES = 1000  # the most recent files written are remembered; older ones need overwrite


def _identity(info: os.stat_result) -> list[int]:
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns]


class ExportTargets:
    """The export rules of one session folder (None: a session in memory)."""

    def __init__(self, session_dir: Path | None):
        self.dir = session_dir
        self.written: dict[str, list[int]] = {}
        if session_dir is not None and (session_dir / LEDGER_FILE).exists():
            self._load()

    def _load(self) -> None:
        path = self.dir / LEDGER_FILE
        try:
            data = json.loads(read_regular(path, MAX_SESSION_FILE_BYTES, "export ledger"))
            self.written = {str(k): [int(n) for n in v] for k, v in data["written"].items()}
        except (EmsyncError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("%s: unreadable (%s); files exported before need overwrite to be replaced", path, exc)

    def check(self, path: str | os.PathLike, overwrite: bool) -> Path:
        """`path` if an export may write there, else EmsyncError naming it and the rule."""
        if not str(path):
            raise EmsyncError("path: empty")
        path = Path(path)
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symbolic link loop (before Python 3.13)
            raise EmsyncError(f"{path}: cannot write ({getattr(exc, 'strerror', None) or exc})") from None
        if self.dir is not None:
            home = self.dir.resolve()
            if resolved.is_relative_to(home) and not resolved.is_relative_to(home / EXPORTS_FOLDER):
                raise EmsyncError(f"{path}: inside the session folder {home}, whose files only the session "
                                  "writes; export somewhere else")
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return path
        except OSError as exc:
            raise EmsyncError(f"{path}: cannot write ({exc.strerror or exc})") from None
        kind = irregular_kind(info.st_mode)
        if kind:
            raise EmsyncError(f"{path}: not a regular file ({kind}); exports replace regular files only")
        if not overwrite and self.written.get(str(resolved)) != _identity(info):
            raise EmsyncError(f"{path}: exists and emsync did not write it; add overwrite true to the request "
                              "to replace it")
        return path

    def record(self, path: Path) -> None:
        """Remember `path` as written by emsync, as it is now."""
        key = str(path.resolve())
        self.written.pop(key, None)
        self.written[key] = _identity(os.stat(path))
        while len(self.written) > LEDGER_ENTRIES:
            del self.written[next(iter(self.written))]
        if self.dir is not None:
            atomic_write_bytes(self.dir / LEDGER_FILE, json.dumps({"written": self.written}).encode("utf-8"))
