"""Live MIDI: play a score to a MIDI port on its own thread, following the host's transport.

A `Performance` is the channel messages of a Standard MIDI File with their times in seconds. A
session's notes become one through `midi_io.midi_bytes`, so live playback uses exactly the
channels and programs of the exported file (drums on channel 10, one channel and GM program
per instrument track) and its tempo. `Player` sends a score's messages to an output port on
one thread against `time.monotonic()`: every event is due at an absolute time (no
accumulated sleep error), the thread sleeps on a condition until then and is woken at once
by play/stop/locate. Notes held when the transport stops or jumps are released (a note-off
each, then All Notes Off on every channel of the score).

It can follow a host on a MIDI input port: MIDI clock (24 per quarter note; the tempo is a
least-squares fit over the last two beats of clock), Start/Continue/Stop and Song Position
Pointer (sixteenth notes). Beats from the host map to seconds through the score's tempo map
(for a session, the tempo map its music was written on); the player re-anchors on every clock and runs at the
host's tempo in between, so a host at another tempo than the score plays the score faster or
slower.

Ports are in `emsync.live.ports`.
"""
from __future__ import annotations

import bisect
import io
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

import mido

from emsync.core.errors import EmsyncError
from emsync.core.midi_io import MidiTempo, midi_bytes, read_midi_file
from emsync.core.music import Note
from emsync.core.tempo import TempoMap
from emsync.live.ports import open_input

ALL_NOTES_OFF = 123
CHASED = ("program_change", "control_change", "pitchwheel")  # state re-sent when playing from inside a score
CLOCKS_PER_BEAT = 24
TEMPO_WINDOW = 48  # clock intervals the host's tempo is fitted over (two beats)
CLOCK_PAUSE = 0.25  # s without clock (slower than 10 bpm): the host paused it, the tempo starts afresh

@dataclass
class Performance:
    """Channel messages of a MIDI file in time order, their times in seconds, and its tempo map."""

    times: list[float]
    messages: list[mido.Message]
    tempo: MidiTempo
    channels: list[int]

    @property
    def duration(self) -> float:
        return self.times[-1] if self.times else 0.0

    @classmethod
    def from_file(cls, path, track: str | None = None, source: str | None = None) -> "Performance":
        """The score of a MIDI file (`path` a name or a file object), or of its part named `track`."""
        score = read_midi_file(path)
        parts = [t for t in score.tracks if t.events]
        if track is not None:  # by name, or by label ("Channel 2") where a part has no name
            chosen = [t for t in parts if track.strip().lower() in (t.name.strip().lower(), t.label.lower())]
            if not chosen:
                known = ", ".join(repr(t.label) for t in parts) or "none"
                raise EmsyncError(f"track: {source or path} has no track named {track!r} (tracks: {known})")
            parts = chosen
        events = [(seconds, _is_release(msg), order, index, msg.copy(time=0))
                  for order, part in enumerate(parts) for index, (_, seconds, msg) in enumerate(part.events)]
        # Releases before onsets at the same instant: a repeated note is re-struck, not cut short.
        events.sort(key=lambda e: (e[0], not e[1], e[2], e[3]))
        return cls([e[0] for e in events], [e[4] for e in events], score.tempo,
                   sorted({e[4].channel for e in events}))

    @classmethod
    def from_notes(cls, notes: Sequence[Note], tempo: TempoMap | float, track: str | None = None) -> "Performance":
        """A session's notes on their tempo map, laid out exactly as `/emsync/export/midi` writes them."""
        return cls.from_file(io.BytesIO(midi_bytes(notes, tempo=tempo)), track, source="the session")

    def seconds_at_beat(self, beats: float) -> float:
        return self.tempo.to_seconds(beats * self.tempo.tpb)

    def bpm_at(self, seconds: float) -> float:
        index = max(0, bisect.bisect_right(self.tempo.seconds, seconds) - 1)
        return 60e6 / self.tempo.tempos[index]


def _slope(times: Sequence[float]) -> float:
    """Least-squares seconds per step of evenly spaced events (0 with fewer than two): a late
    first or last clock moves it by 6(n-1)/(n(n+1)) of what it moves the first-to-last
    estimate, about 1/8.5 at the two beats of clock the player fits."""
    n = len(times)
    if n < 2:
        return 0.0
    mean_x, mean_t = (n - 1) / 2, sum(times) / n
    return sum((i - mean_x) * (t - mean_t) for i, t in enumerate(times)) / (n * (n * n - 1) / 12)


def _is_release(msg: mido.Message) -> bool:
    return msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0)


# ---- the player ----------------------------------------------------------------------------
class Player:
    """Plays a Performance to an output port on its own thread; transport from calls or a MIDI input.

    The position is score seconds: `anchor_position + (now - anchor_wall) * rate` while
    playing (rate 1 on its own, host tempo / score tempo when following MIDI clock).
    """

    def __init__(self, port, score: Performance | None = None, clock: Callable[[], float] = time.monotonic):
        self.port = port
        self.score = score or Performance([], [], MidiTempo(mido.MidiFile()), [])
        self.clock = clock
        self._cond = threading.Condition()
        self._running = False
        self._armed = False  # following: Start/Continue seen, waiting for the first clock
        self._anchor_wall = 0.0
        self._anchor_position = 0.0
        self._rate = 1.0
        self._end = math.inf
        self._cursor = 0
        self._held: dict[tuple[int, int], int] = {}
        self._closed = False
        self.input = None
        self._clock_times: deque[float] = deque(maxlen=TEMPO_WINDOW + 1)
        self._beats = 0.0  # host position in beats while following
        self.host_bpm: float | None = None
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="emsync-live", daemon=True)
        self._thread.start()

    # ---- transport -------------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        return self._running

    @property
    def state(self) -> str:
        return "playing" if self._running else ("armed" if self._armed else "stopped")

    @property
    def position(self) -> float:
        with self._cond:
            return self._position_now(self.clock())

    def load(self, score: Performance) -> None:
        """Swap the score; a running transport carries on from the same position."""
        with self._cond:
            now = self.clock()
            position = self._position_now(now)
            self._release()
            self.score = score
            self._jump(position, chase=self._running)
            if self._running:
                self._start(now, position, self._rate)

    def play(self, start: float | None = None, end: float | None = None) -> None:
        with self._cond:
            now = self.clock()
            position = self._position_now(now) if start is None else max(0.0, float(start))
            self._end = math.inf if end is None or end <= 0 else float(end)
            self._release()
            self._jump(position, chase=True)
            self._start(now, position)

    def stop(self) -> None:
        with self._cond:
            self._halt(self._position_now(self.clock()))

    def locate(self, seconds: float) -> None:
        with self._cond:
            seconds = max(0.0, float(seconds))
            self._release()
            self._jump(seconds, chase=self._running)
            if self._running:
                self._start(self.clock(), seconds, self._rate)

    def wait_stopped(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._running and not self._armed, timeout)

    # ---- following a host ------------------------------------------------------------------
    def follow(self, input_name: str | None) -> str | None:
        """Follow clock/SPP/Start/Continue/Stop from an input port (None: stop following)."""
        if self.input is not None:
            self.input.close()
            self.input = None
        if input_name:
            self.input = open_input(input_name, self.on_midi, clock=self.clock)
            return self.input.name
        return None

    def on_midi(self, msg: mido.Message, now: float | None = None) -> None:
        """A message from the host that arrived at `now` (default: this instant)."""
        now = self.clock() if now is None else now
        with self._cond:
            if msg.type == "clock":
                self._clock(now)
            elif msg.type == "start":
                self._halt(0.0)
                self._beats, self._armed = 0.0, True
            elif msg.type == "continue":
                self._beats, self._armed = self._beats_at(self._position_now(now)), True
            elif msg.type == "stop":
                self._armed = False
                self._halt(self._position_now(now))
            elif msg.type == "songpos":
                self._beats = msg.pos / 4.0
                position = self.score.seconds_at_beat(self._beats)
                self._release()
                self._jump(position, chase=self._running)
                if self._running:
                    self._start(now, position, self._rate)

    def _clock(self, now: float) -> None:
        if self._clock_times and now - self._clock_times[-1] > CLOCK_PAUSE:
            self._clock_times.clear()
        self._clock_times.append(now)
        seconds_per_clock = _slope(self._clock_times)
        if seconds_per_clock > 0:
            self.host_bpm = 60.0 / (CLOCKS_PER_BEAT * seconds_per_clock)
        if self._armed:  # the first clock after Start/Continue is the position itself
            self._armed = False
            position = self.score.seconds_at_beat(self._beats)
            self._end = math.inf
            self._release()
            self._jump(position, chase=True)
        elif self._running:
            self._beats += 1.0 / CLOCKS_PER_BEAT
            position = self.score.seconds_at_beat(self._beats)
        else:
            return
        self._start(now, position, self.host_bpm / self.score.bpm_at(position) if self.host_bpm else 1.0)

    def _beats_at(self, seconds: float) -> float:
        """Inverse of seconds_at_beat on the piecewise-linear tempo map."""
        tempo = self.score.tempo
        index = max(0, bisect.bisect_right(tempo.seconds, seconds) - 1)
        ticks = tempo.ticks[index] + (seconds - tempo.seconds[index]) * 1e6 * tempo.tpb / tempo.tempos[index]
        return ticks / tempo.tpb

    # ---- internals (called with the condition held) ----------------------------------------
    def _position_now(self, now: float) -> float:
        if not self._running:
            return self._anchor_position
        return self._anchor_position + (now - self._anchor_wall) * self._rate

    def _start(self, now: float, position: float, rate: float = 1.0) -> None:
        self._anchor_wall, self._anchor_position, self._rate = now, position, rate
        self._running = True
        self._cond.notify_all()

    def _halt(self, position: float) -> None:
        self._running = False
        self._anchor_position = position
        self._release()
        self._jump(position)
        self._cond.notify_all()

    def _jump(self, position: float, chase: bool = False) -> None:
        """Move the cursor to `position`; to play from there, re-send program/controller state."""
        times, messages = self.score.times, self.score.messages
        self._cursor = bisect.bisect_left(times, position)
        self._anchor_position = position
        if not chase:
            return
        latest = {}
        for msg in messages[:self._cursor]:
            if msg.type in CHASED:
                latest[(msg.type, msg.channel, getattr(msg, "control", None))] = msg
        for msg in latest.values():
            self._send(msg)

    def _release(self) -> None:
        for channel, note in self._held:
            self._send(mido.Message("note_off", channel=channel, note=note, velocity=0))
        self._held.clear()
        for channel in self.score.channels:
            self._send(mido.Message("control_change", channel=channel, control=ALL_NOTES_OFF, value=0))

    def _send(self, msg: mido.Message) -> None:
        self.port.send(msg)
        self.sent += 1

    def _emit(self, msg: mido.Message) -> None:
        """Send one score message; a release whose onset was before the start is dropped."""
        if msg.type == "note_on" and msg.velocity > 0:
            key = (msg.channel, msg.note)
            self._held[key] = self._held.get(key, 0) + 1
        elif _is_release(msg):
            key = (msg.channel, msg.note)
            if not self._held.get(key):
                return
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]
        self._send(msg)

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._running:
                    self._cond.wait()
                    continue
                times = self.score.times
                if self._cursor >= len(times) or times[self._cursor] >= self._end:
                    self._halt(min(self._end, self.score.duration))
                    continue
                due = self._anchor_wall + (times[self._cursor] - self._anchor_position) / self._rate
                wait = due - self.clock()
                if wait > 0:
                    self._cond.wait(wait)  # play/stop/locate/clock notify: the due time is recomputed
                    continue
                self._emit(self.score.messages[self._cursor])
                self._cursor += 1

    def close(self) -> None:
        """Stop (releasing held notes), stop following, end the thread, close the port."""
        self.follow(None)
        with self._cond:
            self._halt(self._position_now(self.clock()))
            self._closed = True
            self._cond.notify_all()
        self._thread.join(5)
        self.port.close()
