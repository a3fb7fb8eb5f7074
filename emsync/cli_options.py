"""What the `emsync` command line shares across its commands: help that gives every option's
range and default (ranges read from emsync.core.limits and the session's settings, never
copied), output paths checked before any work starts, and progress on stderr for the
commands that take more than a moment."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from emsync.core.errors import EmsyncError
from emsync.service.session import SETTINGS


class Parser(argparse.ArgumentParser):
    """An argument parser (and so each of its subcommands') whose help ends every option with
    its default, "off by default" for a flag, or "required"."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpWithDefaults)
        super().__init__(*args, **kwargs)


class HelpWithDefaults(argparse.HelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default is argparse.SUPPRESS:
            return text
        if action.required:
            return f"{text} (required)".strip()
        if action.nargs == 0:  # a flag
            return f"{text} (off by default)".strip()
        if action.default is None:  # the help must say what happens without it
            return text
        return f"{text} (default: %(default)s)".strip()


def setting_range(name: str) -> str:
    """The range of a session setting as help shows it ("0.05..3"), from emsync.service.session."""
    kind, low, high, _ = SETTINGS[name]
    return f"{low}..{high}" if kind is int else number_range(low, high)


def number_range(low: float, high: float) -> str:
    """A numeric range as help shows it ("-1..1"), from the bounds in emsync.core.limits."""
    def shown(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"

    return f"{shown(low)}..{shown(high)}"


def bounded(kind: type, low: float, high: float) -> Callable[[str], float]:
    """An argparse `type` that takes a `kind` number in [low, high] (its `range` is the help's
    text for it), so that the range help gives is the range the command holds to."""
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not low <= value <= high:  # NaN fails this too
            raise argparse.ArgumentTypeError(f"{text} is outside {number_range(low, high)}")
        return value

    convert.range = number_range(low, high)
    return convert


# ---- output paths ------------------------------------------------------------------------
@dataclass(frozen=True)
class Output:
    """An output a command writes: the argument holding its path, the option that names it for
    messages, the suffixes it may have (none: a folder, made if missing), and for a file
    written beside another (--audio, --plot) the switches that ask for it (any of them) and its
    suffix."""

    dest: str
    option: str
    suffixes: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()  # a callable: known only once imported
    switch: str | tuple[str, ...] | None = None
    beside: str | None = None

    def path(self, args: argparse.Namespace) -> Path | None:
        value = getattr(args, self.dest, None)
        switches = (self.switch,) if isinstance(self.switch, str) else self.switch
        if value is None or (switches and not any(getattr(args, name, None) for name in switches)):
            return None
        return Path(value).with_suffix(self.beside) if self.beside else Path(value)


def check_outputs(args: argparse.Namespace, outputs: tuple[Output, ...]) -> None:
    """EmsyncError naming the option and path of the first output that cannot be written: a
    file's folder must exist and be writable (emsync makes no folders for files: a mistyped
    folder is an error, not a new folder), the file must not be a folder or other non-file,
    and its suffix must be one the command writes. A folder output must be a writable folder
    or go where one can be made; a file may go into a folder output the command makes (listed
    before it). Runs before any work, so nothing is written."""
    made: set[Path] = set()  # folder outputs the command will make
    for output in outputs:
        path = output.path(args)
        if path is None:
            continue
        where = f"{output.option} {path}"
        if not str(path) or path.name in ("", ".", ".."):
            raise EmsyncError(f"{where}: not a file name")
        if output.suffixes:
            _check_file(path, where, output.suffixes() if callable(output.suffixes) else output.suffixes,
                        path.parent.resolve() in made)
        else:
            _check_folder(path, where)
            made.add(path.resolve())


def _check_file(path: Path, where: str, suffixes: tuple[str, ...], folder_made: bool = False) -> None:
    if path.is_dir():
        raise EmsyncError(f"{where}: is a folder; give a file name")
    if path.suffix.lower() not in suffixes:
        raise EmsyncError(f"{where}: unknown suffix {path.suffix or '(none)'!r}; use {', '.join(suffixes)}")
    if path.exists() and not path.is_file():
        raise EmsyncError(f"{where}: exists and is not a regular file")
    folder = path.parent
    if folder_made:  # checked as a folder output already
        return
    if not folder.is_dir():
        raise EmsyncError(f"{where}: folder {folder} does not exist (emsync makes no folders for files: "
                          f"mkdir -p {folder})")
    _check_writable(folder, where)


def _check_folder(path: Path, where: str) -> None:
    if path.exists() and not path.is_dir():
        raise EmsyncError(f"{where}: exists and is not a folder")
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path("."))
    if not existing.is_dir():
        raise EmsyncError(f"{where}: {existing} is not a folder")
    _check_writable(existing, where)


def _check_writable(folder: Path, where: str) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise EmsyncError(f"{where}: folder {folder} is not writable")


# ---- progress ----------------------------------------------------------------------------
class Progress:
    """Where a long command is, on stderr (stdout stays for results that programs read). On a
    terminal one line, drawn when the stage begins and redrawn in place: the stage, its
    percentage when known, the seconds it has taken. Elsewhere (a log, a pipe) a plain line
    once a stage has taken PLAIN_AFTER seconds and then one every PLAIN_EVERY: a quick
    command, or a quick error, stays quiet."""

    REDRAW_EVERY = 0.25
    PLAIN_AFTER = 2.0
    PLAIN_EVERY = 10.0

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._text, self._fraction, self._began, self._drawn = "", None, 0.0, False

    @contextlib.contextmanager
    def stage(self, text: str) -> Iterator[Callable[[float], None]]:
        """Report `text` while the block runs; gives `fraction`, to report how far it got."""
        self._text, self._fraction, self._began = text, None, time.monotonic()
        stop = threading.Event()
        reporter = threading.Thread(target=self._report_until, args=(stop,), daemon=True)
        reporter.start()
        try:
            yield self.fraction
        finally:
            stop.set()
            reporter.join()
            if self._drawn and self.tty:
                print("\r\x1b[K", end="", file=self.stream, flush=True)  # results print on a clean line

    def fraction(self, done: float) -> None:
        """How far the current stage has got, 0..1 (a callback for long loops)."""
        self._fraction = done

    def _report_until(self, stop: threading.Event) -> None:
        if self.tty:
            self._draw()
        wait = self.REDRAW_EVERY if self.tty else self.PLAIN_AFTER
        while not stop.wait(wait):
            self._draw()
            if not self.tty:
                wait = self.PLAIN_EVERY

    def _draw(self) -> None:
        done = "" if self._fraction is None else f" {self._fraction:.0%}"
        elapsed = f"{time.monotonic() - self._began:.0f} s"
        if self.tty:
            print(f"\r\x1b[K{self._text}{done}  {elapsed}", end="", file=self.stream, flush=True)
        else:
            print(f"emsync: {self._text}{done}, {elapsed} so far", file=self.stream, flush=True)
        self._drawn = True


def stage(text: str) -> contextlib.AbstractContextManager[Callable[[float], None]]:
    """Progress on stderr while a slow step runs (see `Progress`); gives its fraction callback."""
    return Progress().stage(text)
