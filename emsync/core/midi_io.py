"""Standard MIDI files to notes and back, with mido.

Reading follows the tempo map (type 0 and type 1), running status (mido resolves it),
note-on with velocity 0 as note-off, and matches repeated same-pitch notes first-in
first-out. Writing produces a type 1 file: a conductor track with tempo and cut
markers, then one named track per instrument with its GM program.
"""
from __future__ import annotations

import io
from bisect import bisect_right
from collections import defaultdict, deque
from pathlib import Path
from typing import Callable, Iterable, Sequence

import mido

from emsync.core.errors import EmsyncError
from emsync.core.fileio import atomic_write_bytes
from emsync.core.music import DRUMS, GM_PROGRAM, INSTRUMENTS, Note, instrument_for_program

TICKS_PER_BEAT = 480
DRUM_CHANNEL = 9

# (track name, channel, program) -> instrument index
InstrumentRule = Callable[[str, int, int], int]


def default_instrument(track_name: str, channel: int, program: int) -> int:
    return DRUMS if channel == DRUM_CHANNEL else instrument_for_program(program)


class TempoMap:
    """Converts absolute ticks to seconds across tempo changes."""

    def __init__(self, midi: mido.MidiFile):
        changes: dict[int, int] = {}
        tracks = midi.tracks if midi.type != 2 else midi.tracks[:1]
        for track in tracks:
            tick = 0
            for msg in track:
                tick += msg.time
                if msg.type == "set_tempo":
                    changes[tick] = msg.tempo
        self.tpb = midi.ticks_per_beat
        self.ticks = [0]
        self.seconds = [0.0]
        self.tempos = [changes.pop(0, 500000)]
        for tick in sorted(changes):
            prev_tick, prev_sec, prev_tempo = self.ticks[-1], self.seconds[-1], self.tempos[-1]
            self.ticks.append(tick)
            self.seconds.append(prev_sec + (tick - prev_tick) * prev_tempo / 1e6 / self.tpb)
            self.tempos.append(changes[tick])

    def to_seconds(self, tick: int) -> float:
        i = bisect_right(self.ticks, tick) - 1
        return self.seconds[i] + (tick - self.ticks[i]) * self.tempos[i] / 1e6 / self.tpb


def open_midi(path: str | Path) -> mido.MidiFile:
    """Parse a Standard MIDI File; anything mido cannot read is an EmsyncError naming the file."""
    path = Path(path)
    try:
        midi = mido.MidiFile(path)
    except FileNotFoundError:
        raise EmsyncError(f"{path}: file not found") from None
    except Exception as exc:  # mido raises OSError, EOFError, ValueError, KeyError...
        detail = " ".join(str(exc).split())[:200]
        raise EmsyncError(f"{path}: not a readable MIDI file ({type(exc).__name__}: {detail})") from None
    if midi.ticks_per_beat <= 0:
        raise EmsyncError(f"{path}: SMPTE time division is not supported")
    return midi


def read_midi(path: str | Path, instrument_of: InstrumentRule = default_instrument) -> list[Note]:
    """All notes of a MIDI file in seconds, sorted; raises EmsyncError naming the file."""
    midi = open_midi(path)
    tempo = TempoMap(midi)
    notes: list[Note] = []
    for track in midi.tracks:
        notes.extend(_track_notes(track, tempo, instrument_of))
    notes.sort()
    return notes


def _track_notes(track: mido.MidiTrack, tempo: TempoMap, instrument_of: InstrumentRule) -> list[Note]:
    name = ""
    programs = defaultdict(int)
    pending: dict[tuple[int, int], deque] = defaultdict(deque)
    notes: list[Note] = []
    tick = 0
    for msg in track:
        tick += msg.time
        if msg.type == "track_name":
            name = msg.name
        elif msg.type == "program_change":
            programs[msg.channel] = msg.program
        elif msg.type == "note_on" and msg.velocity > 0:
            instrument = instrument_of(name, msg.channel, programs[msg.channel])
            pending[msg.channel, msg.note].append((tick, msg.velocity, instrument))
        elif msg.type in ("note_on", "note_off"):
            queue = pending.get((msg.channel, msg.note))
            if queue:
                start, velocity, instrument = queue.popleft()
                notes.append(_note(tempo, start, tick, msg.note, velocity, instrument))
    for (channel, pitch), queue in pending.items():  # never released: end with the track
        for start, velocity, instrument in queue:
            notes.append(_note(tempo, start, max(tick, start), pitch, velocity, instrument))
    return notes


def _note(tempo: TempoMap, start: int, end: int, pitch: int, velocity: int, instrument: int) -> Note:
    return Note(tempo.to_seconds(start), tempo.to_seconds(end), pitch, velocity, instrument)


def midi_bytes(notes: Iterable[Note], markers: Sequence[tuple[float, str]] = (), bpm: float = 120.0,
               title: str = "emsync") -> bytes:
    """A type 1 Standard MIDI File: conductor track (tempo, markers), one track per instrument."""
    ticks_per_second = bpm / 60.0 * TICKS_PER_BEAT

    def tick_of(seconds: float) -> int:
        return max(0, round(seconds * ticks_per_second))

    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = [(0, 0, mido.MetaMessage("track_name", name=_meta_text(title))),
                 (0, 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))),
                 (0, 0, mido.MetaMessage("time_signature", numerator=4, denominator=4))]
    conductor += [(tick_of(t), 1, mido.MetaMessage("marker", text=_meta_text(text))) for t, text in markers]
    midi.tracks.append(_delta_track(conductor))

    by_instrument = defaultdict(list)
    for note in notes:
        by_instrument[note.instrument].append(note)
    melodic_channels = iter(c for c in range(16) if c != DRUM_CHANNEL)
    for index, name in enumerate(INSTRUMENTS):
        channel = DRUM_CHANNEL if index == DRUMS else next(melodic_channels)
        events = [(0, 0, mido.MetaMessage("track_name", name=name.capitalize())),
                  (0, 0, mido.Message("program_change", channel=channel, program=GM_PROGRAM[name]))]
        for note in by_instrument[index]:
            start = tick_of(note.start)
            end = max(start + 1, tick_of(note.end))
            velocity = min(127, max(1, int(note.velocity)))
            events.append((start, 2, mido.Message("note_on", channel=channel, note=note.pitch, velocity=velocity)))
            events.append((end, 1, mido.Message("note_off", channel=channel, note=note.pitch, velocity=0)))
        midi.tracks.append(_delta_track(events))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def _meta_text(text: str) -> str:
    """MIDI meta text is bytes; write UTF-8 (what DAWs display) through mido's Latin-1 codec."""
    return text.encode("utf-8").decode("latin-1")


def _delta_track(events: list[tuple[int, int, mido.Message]]) -> mido.MidiTrack:
    """Absolute-tick events (tick, order, msg) to a track; note-offs sort before note-ons."""
    track = mido.MidiTrack()
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def write_midi(path: str | Path, notes: Iterable[Note], markers: Sequence[tuple[float, str]] = (),
               bpm: float = 120.0) -> Path:
    """Write a type 1 SMF atomically."""
    return atomic_write_bytes(path, midi_bytes(notes, markers, bpm, title=Path(path).stem))

