"""Standard MIDI files to notes and back, with mido: the one MIDI-file reader and writer.

`read_midi_file` gives a file's parts (tracks of a type 1 file, channels of a type 0 file) with
their timed channel messages, its markers and its tempo map: what the preview renders and
the live player plays. `read_midi` gives its notes. Reading follows the tempo map, running
status (mido resolves it), note-on with velocity 0 as note-off, and matches repeated
same-pitch notes first-in first-out. Writing produces a type 1 file: a conductor track with tempo and cut
markers, then one named track per instrument with its GM program.
"""
from __future__ import annotations

import io
import math
from bisect import bisect_right
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import mido
import numpy as np

from emsync.core.errors import EmsyncError
from emsync.core.fileio import atomic_write_bytes, read_regular
from emsync.core.limits import MAX_MIDI_EVENTS, MAX_MIDI_FILE_BYTES, MAX_MIDI_NOTES, MAX_SCORE_SECONDS
from emsync.core.music import DRUMS, GM_PROGRAM, INSTRUMENTS, Note, instrument_for_program
from emsync.core.tempo import TempoMap

TICKS_PER_BEAT = 480
DRUM_CHANNEL = 9

# (track name, channel, program) -> instrument index
InstrumentRule = Callable[[str, int, int], int]


def default_instrument(track_name: str, channel: int, program: int) -> int:
    return DRUMS if channel == DRUM_CHANNEL else instrument_for_program(program)


class MidiTempo:
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

    def to_tick(self, seconds: float) -> int:
        """The tick at `seconds` (rounded), the inverse of `to_seconds`."""
        i = max(0, bisect_right(self.seconds, seconds) - 1)
        return self.ticks[i] + round((seconds - self.seconds[i]) * 1e6 * self.tpb / self.tempos[i])


def open_midi(path) -> mido.MidiFile:
    """Parse a Standard MIDI File (a path, or a binary file object); anything mido cannot read
    is an EmsyncError naming the file. A path is read only when it is a regular file; a file
    of more than MAX_MIDI_FILE_BYTES, MAX_MIDI_EVENTS events or MAX_MIDI_NOTES notes is refused
    before mido parses it (parsing alone would take seconds to minutes)."""
    if hasattr(path, "read"):
        path, data = Path(getattr(path, "name", "MIDI data")), path.read(MAX_MIDI_FILE_BYTES + 1)
        if len(data) > MAX_MIDI_FILE_BYTES:
            raise EmsyncError(f"{path}: more than the {MAX_MIDI_FILE_BYTES} bytes allowed for MIDI files")
    else:
        path = Path(path)
        data = read_regular(path, MAX_MIDI_FILE_BYTES, "MIDI file")
    events, notes = count_events(data)
    if events > MAX_MIDI_EVENTS:
        raise EmsyncError(f"{path}: {events} MIDI events, more than the {MAX_MIDI_EVENTS} a file may have")
    if notes > MAX_MIDI_NOTES:
        raise EmsyncError(f"{path}: {notes} notes, more than the {MAX_MIDI_NOTES} a file may have")
    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
    except FileNotFoundError:
        raise EmsyncError(f"{path}: file not found") from None
    except Exception as exc:  # mido raises OSError, EOFError, ValueError, KeyError...
        detail = " ".join(str(exc).split())[:200]
        raise EmsyncError(f"{path}: not a readable MIDI file ({type(exc).__name__}: {detail})") from None
    if midi.ticks_per_beat <= 0:
        raise EmsyncError(f"{path}: SMPTE time division is not supported")
    return midi


def count_events(data: bytes) -> tuple[int, int]:
    """(events, notes struck) in the track chunks of a Standard MIDI File's bytes, counted
    without building messages: some ten times faster than parsing, so a file beyond the bounds
    is refused in a second. A malformed file is counted as far as it goes (mido then says why)."""
    events = notes = 0
    at = 8 + int.from_bytes(data[4:8], "big") if data[:4] == b"MThd" else len(data)
    while at + 8 <= len(data):
        end = min(len(data), at + 8 + int.from_bytes(data[at + 4:at + 8], "big"))
        if data[at:at + 4] == b"MTrk":
            i, status = at + 8, 0
            while i < end:
                while i < end and data[i] & 0x80:  # delta time: a variable-length number
                    i += 1
                i += 1
                if i >= end:
                    break
                if data[i] & 0x80:  # a status byte; otherwise running status
                    status = data[i]
                    i += 1
                if status in (0xFF, 0xF0, 0xF7):  # meta (its type byte first) or sysex: a length, then data
                    i += status == 0xFF
                    length = 0
                    while i < end and data[i] & 0x80:
                        length = (length << 7) | (data[i] & 0x7F)
                        i += 1
                    length = (length << 7) | (data[min(i, end - 1)] & 0x7F)
                    i += 1 + length
                else:
                    notes += status >> 4 == 0x9 and i + 1 < end and data[i + 1] > 0
                    i += 1 if status >> 4 in (0xC, 0xD) else 2
                events += 1
        at = end
    return events, notes


@dataclass
class Track:
    """One instrument part: a track of a type 1 file (a channel of a type 0 file)."""

    number: int  # 1-based, in file order
    name: str
    channels: tuple[int, ...]
    program: int  # first GM program change (0 when none)
    drums: bool  # plays on channel 10
    events: list = field(default_factory=list)  # (tick, seconds, mido channel message), in order
    notes: list = field(default_factory=list)  # (start s, end s, pitch, velocity), sorted

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.drums:
            return "Drums (channel 10)"
        return f"Channel {self.channels[0] + 1}" if len(self.channels) == 1 else f"Track {self.number}"


@dataclass
class MidiFileData:
    path: Path
    ticks_per_beat: int
    length: float  # seconds: the last event of any track, end-of-track included
    end_tick: int
    tempos: list  # (tick, microseconds per beat)
    markers: list  # (seconds, text)
    tracks: list  # Track, every track that carries channel messages
    tempo: MidiTempo
    meters: list = field(default_factory=list)  # (tick, numerator, denominator) of each time signature

    def beats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(seconds, is downbeat, note value) of every beat of the file's written grid up to its
        end: the beat is the time signature's unit (4 for a quarter, 8 for an eighth; 4/4 when
        the file has none), bars restart at each time signature."""
        meters = list({tick: (tick, n, d) for tick, n, d in self.meters}.values())  # the last at each tick
        if not meters or meters[0][0] > 0:
            meters.insert(0, (0, 4, 4))
        times, downbeats, units = [], [], []
        for k, (tick, numerator, denominator) in enumerate(meters):
            until = meters[k + 1][0] if k + 1 < len(meters) else self.end_tick
            step = self.ticks_per_beat * 4 / denominator
            for index in range(max(1, math.ceil((until - tick) / step))):
                at = tick + index * step
                if at > self.end_tick:
                    break
                times.append(self.tempo.to_seconds(round(at)))
                downbeats.append(index % numerator == 0)
                units.append(denominator)
        return np.array(times), np.array(downbeats, dtype=bool), np.array(units, dtype=np.int64)


def read_midi_file(path) -> MidiFileData:
    """The tracks, markers, tempo map and length of a Standard MIDI File; EmsyncError naming
    the file (a path, or a binary file object). A type 1 file's tracks are its parts; a type 0
    file's channels are."""
    midi = open_midi(path)
    path = Path(getattr(path, "name", "MIDI data")) if hasattr(path, "read") else Path(path)
    if midi.type == 2:
        raise EmsyncError(f"{path}: type 2 (sequential patterns) MIDI files are not supported")
    tempo = MidiTempo(midi)
    markers, tempos, meters, parts, names = [], [], [], [], {}
    end_tick = 0
    for track_index, track in enumerate(midi.tracks):
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.is_meta:
                if msg.type == "track_name" and track_index not in names:
                    names[track_index] = _decoded_text(msg.name).strip()
                elif msg.type == "marker":
                    markers.append((tempo.to_seconds(tick), _decoded_text(msg.text)))
                elif msg.type == "set_tempo":
                    tempos.append((tick, msg.tempo))
                elif msg.type == "time_signature":
                    meters.append((tick, msg.numerator, msg.denominator))
            elif hasattr(msg, "channel"):
                key = msg.channel if midi.type == 0 else track_index
                parts.append((key, track_index, tick, msg))
        end_tick = max(end_tick, tick)
    if tempo.to_seconds(end_tick) > MAX_SCORE_SECONDS:
        raise EmsyncError(f"{path}: {tempo.to_seconds(end_tick):.0f} s long, more than the {MAX_SCORE_SECONDS:.0f} s "
                          f"({MAX_SCORE_SECONDS / 3600:g} hours) a score may last")
    tracks: dict[int, Track] = {}
    for key, track_index, tick, msg in parts:
        part = tracks.get(key)
        if part is None:  # a type 0 file's name is the song's, not a part's
            part = tracks[key] = Track(0, names.get(track_index, "") if midi.type != 0 else "", (), 0, False)
        part.events.append((tick, tempo.to_seconds(tick), msg))
    ordered = [tracks[k] for k in sorted(tracks)]
    for number, part in enumerate(ordered, start=1):
        part.number = number
        part.channels = tuple(sorted({m.channel for _, _, m in part.events}))
        part.drums = part.channels == (DRUM_CHANNEL,)
        part.program = next((m.program for _, _, m in part.events if m.type == "program_change"), 0)
        part.notes = [n[:4] for n in _pair_notes(part.events, tempo.to_seconds(end_tick))]
    markers.sort(key=lambda m: m[0])
    return MidiFileData(path, midi.ticks_per_beat, tempo.to_seconds(end_tick), end_tick, sorted(tempos), markers,
                        ordered, tempo, sorted(meters))


def _decoded_text(text: str) -> str:
    """mido decodes meta text as Latin-1; emsync (and DAWs) write UTF-8."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _pair_notes(events, end: float) -> list[tuple[float, float, int, int, int, int]]:
    """(start, end, pitch, velocity, channel, program at the note-on) of a part's note events,
    sorted; same-pitch notes pair first in, first out; a note never released ends at `end`."""
    pending: dict[tuple[int, int], deque] = defaultdict(deque)
    programs: dict[int, int] = defaultdict(int)
    notes = []
    for _, seconds, msg in events:
        if msg.type == "program_change":
            programs[msg.channel] = msg.program
        elif msg.type == "note_on" and msg.velocity > 0:
            pending[msg.channel, msg.note].append((seconds, msg.velocity, programs[msg.channel]))
        elif msg.type in ("note_on", "note_off") and pending.get((msg.channel, msg.note)):
            start, velocity, program = pending[msg.channel, msg.note].popleft()
            notes.append((start, seconds, msg.note, velocity, msg.channel, program))
    for (channel, pitch), queue in pending.items():
        notes.extend((start, max(start, end), pitch, velocity, channel, program) for start, velocity, program in queue)
    notes.sort()
    return notes


def read_midi(path: str | Path, instrument_of: InstrumentRule = default_instrument) -> list[Note]:
    """All notes of a MIDI file in seconds, sorted (see `notes_of`); EmsyncError naming the file."""
    return notes_of(read_midi_file(path), instrument_of)


def notes_of(data: MidiFileData, instrument_of: InstrumentRule = default_instrument) -> list[Note]:
    """The notes of a read MIDI file, sorted, each given an instrument by `instrument_of` (track
    name, channel, the channel's program at the note-on)."""
    notes = [Note(start, end, pitch, velocity, instrument_of(track.name, channel, program))
             for track in data.tracks
             for start, end, pitch, velocity, channel, program in _pair_notes(track.events, data.length)]
    notes.sort()
    return notes


def midi_bytes(notes: Iterable[Note], markers: Sequence[tuple[float, str]] = (), tempo: TempoMap | float = 120.0,
               title: str = "emsync") -> bytes:
    """A type 1 Standard MIDI File written on `tempo` (a TempoMap, or one bpm in 4/4): a
    conductor track (tempo changes, time signature, markers), one track per instrument. A
    DAW's bars and beats are then the music's."""
    tempo = tempo if isinstance(tempo, TempoMap) else TempoMap.constant(tempo)

    def tick_of(seconds: float) -> int:
        return max(0, round(tempo.quarters_at(seconds) * TICKS_PER_BEAT))

    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    meter = tempo.meter
    conductor = [(0, 0, mido.MetaMessage("track_name", name=_encoded_text(title)))]
    conductor += [(tick_of(start), 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
                  for start, bpm in tempo.changes()]
    conductor += [(0, 0, mido.MetaMessage("time_signature", numerator=meter.beats, denominator=meter.unit,
                                          clocks_per_click=24 * 4 // meter.unit * (3 if _compound(meter) else 1)))]
    conductor += [(tick_of(t), 1, mido.MetaMessage("marker", text=_encoded_text(text))) for t, text in markers]
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


def _encoded_text(text: str) -> str:
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
               tempo: TempoMap | float = 120.0) -> Path:
    """Write a type 1 SMF (see `midi_bytes`) atomically."""
    return atomic_write_bytes(path, midi_bytes(notes, markers, tempo, title=Path(path).stem))


def _compound(meter) -> bool:
    """6/8, 9/8, 12/8: the felt beat is a dotted note of three units (the metronome clicks on it)."""
    return meter.unit >= 8 and meter.beats % 3 == 0 and meter.beats > 3

