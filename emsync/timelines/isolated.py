"""Reading a timeline where a crash cannot take the reading process down.

The OSC service reads whatever timeline a client names. The nesting checks stop the known
way to crash OpenTimelineIO's native JSON reader (a stack overflow), but a native library
can have others. `probe_timeline` therefore reads the file first in a child process (a fork
of a server process that has OpenTimelineIO loaded, so it starts in milliseconds), limited
in time and address space: a child that dies, hangs or runs out of memory becomes one
EmsyncError naming the file; only a file the child read is read again by the caller.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Callable

from emsync.core.errors import EmsyncError
from emsync.core.fileio import check_regular
from emsync.core.limits import MAX_TIMELINE_BYTES, TIMELINE_READ_MEMORY, TIMELINE_READ_SECONDS
from emsync.timelines.formats import first_line

_CONTEXT = multiprocessing.get_context(  # Windows has no fork server: a fresh interpreter there
    "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")


# Multiprocessing runs the parent's main module again in each child (by path or by name); the
# fork server imports it once instead, with this module (its filter then holds in the children:
# runpy warns when it runs a module already imported, which is the point here).
warnings.filterwarnings("ignore", message=".* found in sys.modules after import of package", category=RuntimeWarning,
                        module="runpy")


def _preload() -> list[str]:
    """What the fork server imports once for all its children."""
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    return ["__main__", *([main.name] if main is not None else []), __name__, "emsync.timelines.timeline"]


def _child(connection, function: Callable, args: tuple, memory: int) -> None:
    """Run `function(*args)` in the child and send back None, or the problem: an EmsyncError's
    message as it is, or any other exception's first line."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    except (ImportError, ValueError, OSError):  # no such limit here: time still bounds the child
        pass
    try:
        function(*args)
        connection.send(None)
    except EmsyncError as exc:
        connection.send((True, str(exc)))
    except BaseException as exc:  # MemoryError, RecursionError, an adapter's own: all one line
        connection.send((False, first_line(exc)))


def run_in_child(function: Callable, args: tuple, what: str, seconds: float = TIMELINE_READ_SECONDS,
                 memory: int = TIMELINE_READ_MEMORY) -> None:
    """`function(*args)` in a child process, or an EmsyncError in one line: the one it raised,
    or one starting with `what` when it raised anything else, died (a signal), ran past
    `seconds` or could not start."""
    if _CONTEXT.get_start_method() == "forkserver":
        _CONTEXT.set_forkserver_preload(_preload())  # for the fork server's first start
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(target=_child, args=(sender, function, args, memory), daemon=True)
    try:
        process.start()
    except OSError as exc:
        raise EmsyncError(f"{what}: cannot start a reader process ({exc.strerror or exc})") from None
    finally:
        sender.close()
    try:
        if not receiver.poll(seconds):  # a child that dies makes the pipe readable (EOF) at once
            process.kill()
            raise EmsyncError(f"{what}: reading took longer than {seconds:g} s; refused")
        outcome = receiver.recv()
    except EOFError:  # the child died before it could say anything
        process.join()
        code = process.exitcode or 0
        cause = signal.Signals(-code).name if code < 0 else f"exit status {code}"
        raise EmsyncError(f"{what}: the reader crashed ({cause}) on this file; refused") from None
    finally:
        receiver.close()
        process.join(1)
    if outcome is not None:
        refused, message = outcome
        raise EmsyncError(message if refused else f"{what}: the reader failed ({message})")


def probe_timeline(path: str | Path, fps: float | None, transition: str) -> None:
    """EmsyncError naming `path` (or the field) unless `read_timeline(path, fps, transition)`
    succeeds in a child process (see the module docstring)."""
    from emsync.timelines.timeline import read_timeline

    if os.path.lexists(path) and not Path(path).is_dir():  # a FIFO, a device, an oversized file: no child started
        check_regular(path, MAX_TIMELINE_BYTES, "timeline")
    run_in_child(read_timeline, (str(path), fps, transition), str(path))
