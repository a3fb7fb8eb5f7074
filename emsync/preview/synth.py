"""SoundFont synthesis: each instrument part of a score on its own synthesizer, into a stem.

Synthesizers: `tinysoundfont` (TinySoundFont, float output, the default) or, when it is not
installed, `midirenderer` (RustySynth, 16-bit output). The default SoundFont is the
`TimGM6mb.sf2` (GPL-2) that the pretty_midi wheel carries; it is found in the installed
package at run time and never copied into this project. Parts are independent, so they
render in forked processes (one per core) straight into shared memory.
"""
from __future__ import annotations

import io
import math
import mmap
import multiprocessing
import os
import sys
import wave
from collections import defaultdict, deque
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path

import mido
import numpy as np

from emsync.core.errors import EmsyncError
from emsync.core.limits import MAX_HELD_NOTE_SECONDS, NOTE_RELEASE_SECONDS
from emsync.core.midi_io import DRUM_CHANNEL, MidiFileData, Track

SAMPLE_RATE = 48_000
CHANNELS = 2
FADE_OUT_SECONDS = 0.08  # at the very end, so notes still sounding at the file's end fade instead of clicking
DEFAULT_SOUNDFONT = "TimGM6mb.sf2"
ENGINES = ("tinysoundfont", "midirenderer")


def default_soundfont() -> Path:
    """TimGM6mb.sf2 inside the installed pretty_midi package (found without importing it)."""
    spec = find_spec("pretty_midi")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        candidate = Path(folder) / DEFAULT_SOUNDFONT
        if candidate.is_file():
            return candidate
    raise EmsyncError(f"no SoundFont: the default {DEFAULT_SOUNDFONT} comes with the pretty_midi package "
                      "(pip install pretty_midi); or pass a General MIDI SoundFont with --soundfont FILE")


def load_soundfont(soundfont: str | os.PathLike | None = None) -> tuple[Path, bytes]:
    """(path, bytes) of a SoundFont 2 file (.sf2 or .sf3), checked to be one."""
    path = default_soundfont() if soundfont is None else Path(soundfont)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EmsyncError(f"{path}: SoundFont not found") from None
    except IsADirectoryError:
        raise EmsyncError(f"{path}: is a folder, not a SoundFont file") from None
    except OSError as exc:
        raise EmsyncError(f"{path}: cannot read the SoundFont ({exc.strerror or exc})") from None
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise EmsyncError(f"{path}: not a SoundFont (expected a RIFF 'sfbk' file such as a .sf2)")
    return path, data


def available_engine(engine: str | None = None) -> str:
    """The synthesizer to use: `engine` if given, else tinysoundfont, else midirenderer."""
    if engine is not None and engine not in ENGINES:
        raise EmsyncError(f"engine: {engine!r} is not one of {', '.join(ENGINES)}")
    for name in ([engine] if engine else ENGINES):
        if find_spec(name) is not None:
            return name
    wanted = engine or "a synthesizer"
    raise EmsyncError(f"audio rendering needs {wanted}: pip install --no-deps tinysoundfont "
                      "(its pyaudio dependency is only for live playback), or pip install midirenderer")


def audible_score(score: MidiFileData) -> MidiFileData:
    """The score as the preview plays it, so that its length and memory follow what sounds,
    not what a file claims (one note written 10,000 s long would otherwise be 4 GiB a track):
    a note held longer than MAX_HELD_NOTE_SECONDS is released then, tracks without notes are
    left out (they make no sound), and the score ends NOTE_RELEASE_SECONDS after its last
    release, or at its last marker (a cut the preview lines up with) if later but at most
    MAX_HELD_NOTE_SECONDS after the sound (a far marker must not make hours of silence), or at
    the file's end if that comes first. A file emsync wrote ends at its last release: its
    length stays."""
    tracks, last_release = [], None
    for track in score.tracks:
        if track.notes:
            events, release = _release_held_notes(track, score)
            tracks.append(replace(track, events=events))
            last_release = max(release, last_release or 0.0)
    sounding = last_release + NOTE_RELEASE_SECONDS if last_release is not None else 0.0
    markers = [min(seconds, sounding + MAX_HELD_NOTE_SECONDS) for seconds, _ in score.markers]
    length = min(score.length, max([sounding, *markers]))
    end_tick = min(score.end_tick, score.tempo.to_tick(length))
    tracks = [replace(t, events=[e for e in t.events if e[0] <= end_tick]) for t in tracks]
    return replace(score, tracks=tracks, length=length, end_tick=end_tick)


def _release_held_notes(track: Track, score: MidiFileData) -> tuple[list, float]:
    """(the track's events with every note released at most MAX_HELD_NOTE_SECONDS after it
    starts, the time of its last release). A note-off is moved earlier, or added for a note
    the file never releases; same-pitch notes pair first in, first out, as midi_io reads them."""
    onsets: dict[tuple[int, int], deque] = defaultdict(deque)
    events, last = [], 0.0
    for tick, seconds, msg in track.events:
        key = (getattr(msg, "channel", 0), getattr(msg, "note", 0))
        if msg.type == "note_on" and msg.velocity > 0:
            onsets[key].append(seconds)
        elif msg.type in ("note_on", "note_off") and onsets.get(key):
            start = onsets[key].popleft()
            if seconds - start > MAX_HELD_NOTE_SECONDS:
                seconds = start + MAX_HELD_NOTE_SECONDS
                tick = score.tempo.to_tick(seconds)
            last = max(last, seconds)
        events.append((tick, seconds, msg))
    for (channel, note), starts in onsets.items():
        for start in starts:
            release = min(score.length, start + MAX_HELD_NOTE_SECONDS)
            events.append((score.tempo.to_tick(release), release, mido.Message("note_off", channel=channel, note=note)))
            last = max(last, release)
    events.sort(key=lambda event: event[1])  # stable: a moved note-off keeps its place among equals
    return events, last


def synthesize(score: MidiFileData, sf_path: Path, sf_data: bytes, engine: str | None = None,
               workers: int | None = None) -> list[np.ndarray]:
    """One float32 (frames, 2) array per track, all of the score's length.

    Tracks are independent synthesizers, so with `workers` > 1 (default: one per usable CPU
    core, at most one per track) they render in forked processes straight into shared memory.
    """
    engine = available_engine(engine)
    frames = max(1, round(score.length * SAMPLE_RATE))
    render_one = _render_tinysoundfont if engine == "tinysoundfont" else _render_midirenderer
    if engine == "tinysoundfont":
        _check_tinysoundfont_loads(sf_path, sf_data)
    tracks = score.tracks
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = max(1, min(workers, len(tracks)))
    if workers > 1 and sys.platform.startswith("linux"):  # fork: cheap, and safe for this work on Linux
        stems = _synthesize_forked(render_one, score, frames, sf_path, sf_data, workers)
    else:
        stems = [np.zeros((frames, CHANNELS), dtype=np.float32) for _ in tracks]
        for track, out in zip(tracks, stems):
            render_one(score, track, out, sf_path, sf_data)
    fade = min(frames, round(FADE_OUT_SECONDS * SAMPLE_RATE))
    if fade:
        ramp = (0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, fade, dtype=np.float32)))[:, None]
        for stem in stems:
            stem[-fade:] *= ramp
    return stems


_FORK_JOB: tuple | None = None  # what forked workers render: set just before the pool starts


def _forked_track(index: int) -> None:
    render_one, score, stems, sf_path, sf_data = _FORK_JOB
    render_one(score, score.tracks[index], stems[index], sf_path, sf_data)


def _synthesize_forked(render_one, score: MidiFileData, frames: int, sf_path: Path, sf_data: bytes,
                       workers: int) -> list[np.ndarray]:
    global _FORK_JOB
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # anonymous shared mappings: what a forked worker writes, this process sees
    stems = [np.frombuffer(mmap.mmap(-1, frames * CHANNELS * 4), dtype=np.float32).reshape(frames, CHANNELS)
             for _ in score.tracks]
    busiest_first = sorted(range(len(score.tracks)), key=lambda i: -len(score.tracks[i].events))
    _FORK_JOB = (render_one, score, stems, sf_path, sf_data)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for _ in pool.map(_forked_track, busiest_first):
                pass
    except BrokenProcessPool:
        raise EmsyncError(f"{sf_path}: the synthesizer crashed while rendering {score.path}") from None
    finally:
        _FORK_JOB = None
    return stems


def _check_tinysoundfont_loads(sf_path: Path, sf_data: bytes) -> None:
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
    try:
        font = synth.sfload(sf_data)
    except Exception as exc:
        raise EmsyncError(f"{sf_path}: not a usable SoundFont ({' '.join(str(exc).split())})") from None
    count = getattr(synth.soundfonts.get(font), "get_preset_count", lambda: 1)()
    synth.sfunload(font)
    if count < 1:
        raise EmsyncError(f"{sf_path}: the SoundFont has no instruments (presets)")


def _render_tinysoundfont(score: MidiFileData, track: Track, out: np.ndarray, sf_path: Path, sf_data: bytes) -> None:
    """Render one track into `out` (float32, (frames, 2), C-contiguous)."""
    import tinysoundfont

    synth = tinysoundfont.Synth(gain=0.0, samplerate=SAMPLE_RATE)
    try:
        font = synth.sfload(sf_data, max_voices=256)
    except Exception as exc:
        raise EmsyncError(f"{sf_path}: not a usable SoundFont ({' '.join(str(exc).split())})") from None
    for channel in range(16):  # GM power-on state: program 0, drum kit on channel 10
        try:
            synth.program_select(channel, font, 0, 0, is_drums=channel == DRUM_CHANNEL)
        except RuntimeError:
            pass
    player = _Player(synth)
    frames = len(out)
    view = memoryview(out).cast("B")
    stride = CHANNELS * 4
    done = 0
    for _, seconds, msg in track.events:
        at = min(frames, round(seconds * SAMPLE_RATE))
        if at > done:
            synth.generate_simple(at - done, buffer=view[done * stride:at * stride])
            done = at
        player.send(msg)
    if done < frames:
        synth.generate_simple(frames - done, buffer=view[done * stride:])
    synth.sfunload(font)


class _Player:
    """Channel messages to a TinySoundFont synth, adding the sustain pedal (CC 64) it lacks:
    while the pedal is down, note-offs wait for it to come up."""

    def __init__(self, synth):
        self.synth = synth
        self.pedal = [False] * 16
        self.held: list[set] = [set() for _ in range(16)]

    def send(self, msg) -> None:
        synth, kind, channel = self.synth, msg.type, msg.channel
        if kind == "note_on" and msg.velocity > 0:
            if msg.note in self.held[channel]:  # struck again under the pedal: the old note ends
                self.held[channel].discard(msg.note)
                synth.noteoff(channel, msg.note)
            synth.noteon(channel, msg.note, msg.velocity)
        elif kind in ("note_on", "note_off"):
            if self.pedal[channel]:
                self.held[channel].add(msg.note)
            else:
                synth.noteoff(channel, msg.note)
        elif kind == "program_change":
            try:
                synth.program_change(channel, msg.program, is_drums=channel == DRUM_CHANNEL)
            except RuntimeError:  # no such preset in this SoundFont: keep the current one
                pass
        elif kind == "control_change":
            if msg.control in (64, 121):  # sustain pedal; reset all controllers lifts it
                down = msg.control == 64 and msg.value >= 64
                if self.pedal[channel] and not down:
                    for note in self.held[channel]:
                        synth.noteoff(channel, note)
                    self.held[channel].clear()
                self.pedal[channel] = down
            elif msg.control in (120, 123):  # all sound / all notes off
                self.held[channel].clear()
            synth.control_change(channel, msg.control, msg.value)
        elif kind == "pitchwheel":
            synth.pitchbend(channel, msg.pitch + 8192)


def _render_midirenderer(score: MidiFileData, track: Track, out: np.ndarray, sf_path: Path, sf_data: bytes) -> None:
    """RustySynth renders whole files: give it the tempo map and this one track."""
    import midirenderer
    import mido

    midi = mido.MidiFile(type=1, ticks_per_beat=score.ticks_per_beat)
    conductor = [(tick, mido.MetaMessage("set_tempo", tempo=t)) for tick, t in score.tempos]
    conductor.append((score.end_tick, mido.MetaMessage("end_of_track")))
    part = [(tick, msg) for tick, _, msg in track.events]
    part.append((score.end_tick, mido.MetaMessage("end_of_track")))
    for events in (conductor, part):
        now, messages = 0, mido.MidiTrack()
        for tick, msg in events:
            messages.append(msg.copy(time=tick - now))
            now = tick
        midi.tracks.append(messages)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    try:
        rendered = midirenderer.render_wave_from(sf_data, buffer.getvalue())
    except Exception as exc:
        raise EmsyncError(f"{sf_path}: the synthesizer failed with this SoundFont ({' '.join(str(exc).split())})") from None
    with wave.open(io.BytesIO(rendered)) as reader:
        rate, width, channels = reader.getframerate(), reader.getsampwidth(), reader.getnchannels()
        raw = reader.readframes(reader.getnframes())
    if width != 2:
        raise EmsyncError(f"midirenderer returned {8 * width}-bit audio; expected 16-bit")
    audio = np.frombuffer(raw, dtype="<i2").reshape(-1, channels).astype(np.float32) / 32768.0
    if channels == 1:
        audio = np.repeat(audio, 2, axis=1)
    if rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        g = math.gcd(rate, SAMPLE_RATE)
        audio = resample_poly(audio, SAMPLE_RATE // g, rate // g, axis=0).astype(np.float32)
    frames = len(out)
    out[:min(frames, len(audio))] = audio[:frames]
