"""MIDI ports for live playback, from python-rtmidi: outputs through mido, inputs polled
(`MidiInput`): the platform's own MIDI system first (ALSA sequencer, CoreMIDI, Windows MM),
then JACK. Without any, `midi_backend()` raises an EmsyncError saying what is missing and
what to do."""
from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from typing import Callable, Sequence

import mido

from emsync.core.errors import EmsyncError

CLIENT_NAME = "emsync"  # the client name of virtual ports: they list as "emsync:NAME"
DEFAULT_VIRTUAL = "out"
INPUT_POLL = 0.001  # s between polls of an idle input (arrival times come from the MIDI system)
INPUT_QUEUE = 4096  # messages rtmidi holds between polls (40 s of clock at 240 bpm)
INPUT_OFFSET_CREEP = 0.01  # s per s that an input's time anchor may rise (see MidiInput._poll)

_backend: mido.Backend | None = None
_backend_lock = threading.Lock()


@contextlib.contextmanager
def _quiet_stderr():
    """ALSA and JACK print their own complaints on fd 2 when a probe fails; our error says it once."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def midi_backend() -> mido.Backend:
    """The first rtmidi API that answers (the platform's own, then JACK); cached once one works."""
    global _backend
    with _backend_lock:
        if _backend is not None:
            return _backend
        try:
            import rtmidi
        except ImportError:
            raise EmsyncError("live MIDI needs python-rtmidi: pip install python-rtmidi") from None
        names = mido.Backend("mido.backends.rtmidi").module.get_api_names()
        order = [n for n in names if n not in ("UNIX_JACK", "RTMIDI_DUMMY")] + [n for n in names if n == "UNIX_JACK"]
        problems = []
        for api in order:
            backend = mido.Backend(f"mido.backends.rtmidi/{api}")
            try:
                with _quiet_stderr():
                    backend.get_output_names()
            except rtmidi.RtMidiError as exc:
                problems.append(f"{api}: {' '.join(str(exc).split())}")
                continue
            _backend = backend
            return backend
        server = os.environ.get("JACK_DEFAULT_SERVER", "default")
        raise EmsyncError("no MIDI port system: the ALSA sequencer (/dev/snd/seq) is missing and no JACK server "
                          f"named {server!r} is running ({'; '.join(problems) or 'no rtmidi API compiled in'}); "
                          "load snd-seq or start JACK (e.g. `jackd -d dummy` on a machine without sound hardware)")


def port_names() -> tuple[str, list[str], list[str]]:
    """(api, output port names, input port names) as the MIDI system lists them now."""
    backend = midi_backend()
    return backend.api, backend.get_output_names(), backend.get_input_names()


def _find(names: Sequence[str], wanted: str, kind: str, field: str) -> str:
    """An existing port: the exact name, else the one port whose name contains `wanted`."""
    if wanted in names:
        return wanted
    matches = [n for n in names if wanted.lower() in n.lower()]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(repr(n) for n in (matches or names)) or "none"
    raise EmsyncError(f"{field}: {'several' if matches else 'no'} MIDI {kind} ports match {wanted!r} "
                      f"({'matching' if matches else 'there are'}: {listed})")


def _opened(opener: Callable, what: str):
    try:
        return opener()
    except (OSError, ValueError) as exc:  # rtmidi errors are OSErrors
        raise EmsyncError(f"{what}: cannot open ({' '.join(str(exc).split())})") from None


def open_output(name: str | None = None, virtual: bool = False, field: str = "port") -> tuple:
    """(port, its name as others list it): a named existing output port, or (no name, or
    virtual=True) a new virtual port "emsync:NAME" that DAWs can pick as a MIDI input."""
    backend = midi_backend()
    if name is None or virtual:
        label = f"{CLIENT_NAME}:{name or DEFAULT_VIRTUAL}"
        port = _opened(lambda: backend.open_output(name or DEFAULT_VIRTUAL, client_name=CLIENT_NAME),
                       f"{field}: virtual port {label} ({backend.api})")
        return port, label
    found = _find(backend.get_output_names(), name, "output", field)
    return _opened(lambda: backend.open_output(found), f"{field}: {found}"), found


class MidiInput:
    """An input port read by a thread of ours: `callback(message, arrival)` for every message.

    rtmidi can call Python from the MIDI system's own thread (JACK's process thread, ALSA's
    input thread), which must then take the GIL; closing the port while such a call waits for
    it deadlocks the process (closing waits for that thread, which waits for the closer).
    Polled, that thread never enters Python. `arrival` is in `clock()` seconds, rebuilt from
    the MIDI system's own time stamps (rtmidi's deltas) against the earliest polls that saw
    them, so tempo following does not see this process's scheduling jitter. Nothing is
    filtered inside rtmidi (its JACK input drops an ignored message's delta with it, so the
    time stamps would drift); active sensing is dropped here. A callback that raises does not
    stop the input: the first error is kept in `error`.
    `name` opens an existing port; `virtual` opens a port others connect to, `client:virtual`.
    Never close it from its own callback, nor while holding a lock that the callback takes.
    """

    def __init__(self, callback: Callable[[mido.Message, float], None], name: str | None = None,
                 virtual: str | None = None, client_name: str = CLIENT_NAME,
                 clock: Callable[[], float] = time.monotonic):
        import rtmidi

        self._callback, self._clock = callback, clock
        self._rt = rtmidi.MidiIn(rtapi=getattr(rtmidi, f"API_{midi_backend().api}"), name=client_name,
                                 queue_size_limit=INPUT_QUEUE)
        try:
            if virtual:
                self._rt.open_virtual_port(virtual)
                self.name = f"{client_name}:{virtual}"
            else:
                self._rt.open_port(self._rt.get_ports().index(name))
                self.name = name
        except (rtmidi.RtMidiError, ValueError) as exc:
            self._rt.delete()
            raise OSError(f"{name or virtual}: {exc}") from None
        self._rt.ignore_types(sysex=False, timing=False, active_sense=False)
        self.error: Exception | None = None
        self._close_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="emsync-midi-in", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        elapsed, offset = 0.0, math.inf
        while not self._stop.is_set():
            got = self._rt.get_message()
            if got is None:
                self._stop.wait(INPUT_POLL)
                continue
            data, delta = got
            elapsed += delta
            # The offset is the least poll delay seen, creeping up so that time lost to a
            # dropped message (a full queue) is not carried forever.
            offset = min(offset + INPUT_OFFSET_CREEP * delta, self._clock() - elapsed)
            try:
                msg = mido.Message.from_bytes(data)
            except ValueError:  # a malformed message on the wire is dropped, not fatal
                continue
            if msg.type == "active_sensing":
                continue
            try:
                self._callback(msg, elapsed + offset)
            except Exception as exc:  # noqa: BLE001 -- one bad message must not end following
                self.error = self.error or exc

    def close(self) -> None:
        """Stop polling, then close the port (once: rtmidi crashes on a second close)."""
        with self._close_lock:
            if self._stop.is_set():
                return
            self._stop.set()
            self._thread.join()  # no timeout: the port must outlive every poll
            self._rt.close_port()
            self._rt.delete()


def open_input(name: str, callback: Callable[[mido.Message, float], None], field: str = "input",
               clock: Callable[[], float] = time.monotonic) -> MidiInput:
    """A named existing input port, delivering every message (clock included) with its arrival time."""
    found = _find(midi_backend().get_input_names(), name, "input", field)
    return _opened(lambda: MidiInput(callback, name=found, clock=clock), f"{field}: {found}")


# ---- scores --------------------------------------------------------------------------------
