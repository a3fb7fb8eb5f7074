"""Hear the score: a MIDI file to a 48 kHz / 24-bit WAV preview, with per-track stems.

Synthesis is offline with a General MIDI SoundFont. Every instrument track is rendered on
its own synthesizer (its GM program, channel 10 as drums) into a stem; the mix is the sum
of the stems, so stems imported into an editor at the same start add up to the preview.

Loudness (documented target, EBU R128 / streaming practice):

- the mix is measured with an ITU-R BS.1770-4 meter (pyloudnorm: K-weighting, 400 ms
  blocks, absolute and relative gating) and given the static gain that brings it to
  -16 LUFS integrated;
- true peak (4x oversampled, BS.1770-4 Annex 2) is then held below -1 dBTP: where the
  gained mix would exceed it, a look-ahead peak limiter (10 ms ramps, stereo linked) turns
  those peaks down, at most 6 dB; a mix that would need more is turned down as a whole
  instead and ends up quieter than the target (the report says so);
- the stems get exactly the same gain curve as the mix, so they still sum to it;
- nothing clips: the 24-bit output never reaches full scale.

Synthesizers: `tinysoundfont` (TinySoundFont, float output, the default) or, when it is not
installed, `midirenderer` (RustySynth, 16-bit output). The default SoundFont is the
`TimGM6mb.sf2` (GPL-2) that the pretty_midi wheel carries; it is found in the installed
package at run time and never copied into this project.
"""
from __future__ import annotations

import io
import math
import mmap
import multiprocessing
import os
import re
import sys
import tempfile
import wave
from collections import defaultdict, deque
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from emsync.core.errors import EmsyncError
from emsync.core.fileio import umask

SAMPLE_RATE = 48_000
SAMPLE_WIDTH = 3  # bytes: 24-bit PCM
CHANNELS = 2
TARGET_LUFS = -16.0
TRUE_PEAK_MAX_DBTP = -1.0  # the documented promise: true peak stays below this
LIMITER_CEILING_DBTP = -1.5  # where the limiter aims, leaving margin for the promise
MAX_LIMITING_DB = 6.0
LIMITER_RAMP_SECONDS = 0.010
FADE_OUT_SECONDS = 0.005  # at the very end, so a note cut by the file's end does not click
MAX_SECONDS = 3 * 3600.0  # 24-bit stereo at 48 kHz stays far inside WAV's 4 GiB
DEFAULT_SOUNDFONT = "TimGM6mb.sf2"
DRUM_CHANNEL = 9
ENGINES = ("tinysoundfont", "midirenderer")
_FULL_SCALE = float(1 << 23)


# --------------------------------------------------------------------------- the MIDI file

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
class MidiScore:
    path: Path
    ticks_per_beat: int
    length: float  # seconds: the last event of any track, end-of-track included
    end_tick: int
    tempos: list  # (tick, microseconds per beat)
    markers: list  # (seconds, text)
    tracks: list  # Track, every track that carries channel messages


def read_score(path: str | os.PathLike) -> MidiScore:
    """The tracks, markers and length of a Standard MIDI File; EmsyncError naming the file."""
    from emsync.core.midi_io import TempoMap, open_midi

    path = Path(path)
    midi = open_midi(path)
    if midi.type == 2:
        raise EmsyncError(f"{path}: type 2 (sequential patterns) MIDI files are not supported")
    tempo = TempoMap(midi)
    markers, tempos, parts, names = [], [], [], {}
    end_tick = 0
    for track_index, track in enumerate(midi.tracks):
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.is_meta:
                if msg.type == "track_name" and track_index not in names:
                    names[track_index] = _text(msg.name).strip()
                elif msg.type == "marker":
                    markers.append((tempo.to_seconds(tick), _text(msg.text)))
                elif msg.type == "set_tempo":
                    tempos.append((tick, msg.tempo))
            elif hasattr(msg, "channel"):
                key = msg.channel if midi.type == 0 else track_index
                parts.append((key, track_index, tick, msg))
        end_tick = max(end_tick, tick)
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
        part.notes = _pair_notes(part.events, tempo.to_seconds(end_tick))
    markers.sort(key=lambda m: m[0])
    length = tempo.to_seconds(end_tick)
    if length > MAX_SECONDS:
        raise EmsyncError(f"{path}: {length:.0f} s long, more than the {MAX_SECONDS:.0f} s a preview can have")
    return MidiScore(path, midi.ticks_per_beat, length, end_tick, sorted(tempos), markers, ordered)


def _text(text: str) -> str:
    """mido decodes meta text as Latin-1; emsync (and DAWs) write UTF-8."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _pair_notes(events, end: float) -> list:
    pending: dict[tuple[int, int], deque] = defaultdict(deque)
    notes = []
    for _, seconds, msg in events:
        if msg.type == "note_on" and msg.velocity > 0:
            pending[msg.channel, msg.note].append((seconds, msg.velocity))
        elif msg.type in ("note_on", "note_off") and pending.get((msg.channel, msg.note)):
            start, velocity = pending[msg.channel, msg.note].popleft()
            notes.append((start, seconds, msg.note, velocity))
    for (_, pitch), queue in pending.items():
        notes.extend((start, max(start, end), pitch, velocity) for start, velocity in queue)
    notes.sort()
    return notes


# --------------------------------------------------------------------------- the SoundFont

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


# --------------------------------------------------------------------------- synthesis

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


def synthesize(score: MidiScore, sf_path: Path, sf_data: bytes, engine: str | None = None,
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


def _synthesize_forked(render_one, score: MidiScore, frames: int, sf_path: Path, sf_data: bytes,
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


def _render_tinysoundfont(score: MidiScore, track: Track, out: np.ndarray, sf_path: Path, sf_data: bytes) -> None:
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


def _render_midirenderer(score: MidiScore, track: Track, out: np.ndarray, sf_path: Path, sf_data: bytes) -> None:
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


# --------------------------------------------------------------------------- loudness

def integrated_loudness(audio: np.ndarray) -> float:
    """ITU-R BS.1770-4 integrated loudness in LUFS (-inf for silence), via pyloudnorm."""
    import pyloudnorm

    audio = np.asarray(audio, dtype=np.float32)
    minimum = int(0.4 * SAMPLE_RATE) + 1  # one gating block; zeros fall under the absolute gate
    if len(audio) < minimum:
        audio = np.concatenate([audio, np.zeros((minimum - len(audio), audio.shape[1]), np.float32)])
    with np.errstate(divide="ignore"):
        return float(pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(audio))


_TP_BLOCK = 1024  # frames: the unit in which quiet stretches are skipped
_TP_TAPS = 49  # 4x interpolator: 12 taps per phase (BS.1770-4 Annex 2 uses 48), odd for a whole delay
_tp_filter_cache: list = []


def _tp_filter() -> np.ndarray:
    if not _tp_filter_cache:
        from scipy.signal import firwin

        # cut-off at the original Nyquist; under-reads a full-scale sine by at most 0.15 dB up to 18 kHz
        _tp_filter_cache.append((4 * firwin(_TP_TAPS, 0.25, window=("kaiser", 4.0))).astype(np.float32))
    return _tp_filter_cache[0]


def _peak_runs(audio: np.ndarray, floor: float):
    """(first frame, per-frame 4x-oversampled peak over channels) for each run of 1024-frame
    blocks whose sample peak reaches `floor`; the rest is skipped (callers pass a floor at
    least 6 dB under anything they look for: an inter-sample peak never rises that far
    above the samples around it in band-limited audio)."""
    from scipy.signal import upfirdn

    frames = len(audio)
    if frames == 0:
        return
    sample_peak = np.maximum(np.abs(audio[:, 0]), np.abs(audio[:, 1]))
    blocks = -(-frames // _TP_BLOCK)
    padded = np.zeros(blocks * _TP_BLOCK, dtype=np.float32)
    padded[:frames] = sample_peak
    hot = padded.reshape(blocks, _TP_BLOCK).max(axis=1) >= floor
    if not hot.any():
        return
    edges = np.flatnonzero(np.diff(np.concatenate([[0], hot.astype(np.int8), [0]])))
    taps = _tp_filter()
    delay = (_TP_TAPS - 1) // 2  # in oversampled samples: 24 = 6 frames
    context = 16  # frames of signal on either side, more than the filter's reach
    for first_block, end_block in zip(edges[::2], edges[1::2]):
        start, stop = first_block * _TP_BLOCK, min(frames, end_block * _TP_BLOCK)
        lo, hi = max(0, start - context), min(frames, stop + context)
        envelope = None
        for channel in range(audio.shape[1]):
            up = upfirdn(taps, np.ascontiguousarray(audio[lo:hi, channel], dtype=np.float32), 4)
            up = np.abs(up[delay + 4 * (start - lo): delay + 4 * (stop - lo)])
            per_frame = np.maximum(np.maximum(up[0::4], up[1::4]), np.maximum(up[2::4], up[3::4]))
            envelope = per_frame if envelope is None else np.maximum(envelope, per_frame)
        yield start, np.maximum(envelope, sample_peak[start:stop])


def true_peak(audio: np.ndarray) -> float:
    """True peak in dBTP (BS.1770-4 Annex 2: 4x oversampled, absolute, max over channels); -inf for silence."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    sample_peak = float(np.abs(audio).max(initial=0.0))
    if sample_peak <= 0:
        return -math.inf
    peak = max([sample_peak] + [float(env.max()) for _, env in _peak_runs(audio, sample_peak / 2)])
    return 20 * math.log10(peak)


def _limiter_gain(runs: list, frames: int, ceiling_db: float) -> tuple[np.ndarray | None, float]:
    """Per-frame gain that keeps the true peak under `ceiling_db` (None: none needed), from
    the oversampled envelope `runs` of `_peak_runs` (which must cover every frame within
    6 dB of the ceiling).

    Each over asks for ceiling/peak at its frame; a minimum over +-R frames then a moving
    average over R+1 frames turns that into 10 ms ramps that reach the asked value in time
    (every frame the average touches already holds it), so no over survives.
    """
    ceiling = 10 ** (ceiling_db / 20)
    need = None
    for start, envelope in runs:
        overs = np.flatnonzero(envelope > ceiling)
        if overs.size:
            if need is None:
                need = np.ones(frames, dtype=np.float32)
            need[start + overs] = ceiling / envelope[overs]
    if need is None:
        return None, 0.0
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ramp = max(1, round(LIMITER_RAMP_SECONDS * SAMPLE_RATE))
    gain = minimum_filter1d(need, size=2 * ramp + 1, mode="nearest")
    gain = uniform_filter1d(gain, size=ramp + 1, mode="nearest")
    gain = np.minimum(gain, need)  # float rounding of the average: never above what is asked
    return gain, -20 * math.log10(float(need.min()))


def _alongside(first, second):
    """(first(), second()), the first in a helper thread: two cores measure at once."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(first)
        other = second()
        return pending.result(), other


@dataclass
class Loudness:
    before_lufs: float  # the synthesizer's raw mix
    gain_db: float  # static gain applied to mix and stems
    limiting_db: float  # deepest peak-limiter gain reduction (0: the limiter did nothing)
    lufs: float  # the output mix, measured
    true_peak_dbtp: float  # the output mix, measured
    target_lufs: float | None
    reached: bool  # lufs within 0.5 LU of the target (True when there is no target)


@dataclass
class Gain:
    """What normalisation does to the mix, to be done identically to every stem."""

    static: float  # linear
    curve: np.ndarray | None = None  # per-frame limiter gain, or None

    def apply(self, audio: np.ndarray, start: int = 0) -> np.ndarray:
        """`audio` (frames from `start` on) times the gain, as a new float32 array."""
        if self.curve is None:
            return audio * np.float32(self.static)
        return audio * (self.curve[start:start + len(audio)] * np.float32(self.static))[:, None]


def normalise(stems: list[np.ndarray], target_lufs: float | None = TARGET_LUFS,
              frames: int | None = None) -> tuple[np.ndarray, Gain, Loudness]:
    """(mix with the gain applied, the gain for the stems, the loudness report).

    The mix is the sum of the stems. With `target_lufs` None its level is left as
    synthesized, except that a mix that would clip is turned down as a whole. `frames`: the
    length of the (silent) mix when there are no stems.
    """
    mix = np.zeros((len(stems[0]) if stems else frames or 1, CHANNELS), dtype=np.float32)
    for stem in stems:
        mix += stem
    sample_peak = float(np.abs(mix).max(initial=0.0))
    # The oversampled envelope, once, wherever it could reach the ceiling at any gain this
    # can choose (at most MAX_LIMITING_DB of limiting: the ceiling is never under the loudest
    # true peak minus 6 dB, and skipped blocks stay 6 dB under that), measured alongside the
    # loudness (scipy's filters release the GIL).
    floor = sample_peak * 10 ** (-(MAX_LIMITING_DB + 6.5) / 20)
    before, runs = _alongside(lambda: integrated_loudness(mix),
                              lambda: list(_peak_runs(mix, floor)) if target_lufs is not None else [])
    curve, limiting = None, 0.0
    if target_lufs is None or not math.isfinite(before):
        gain_db = min(0.0, -20 * math.log10(sample_peak) - 0.1) if sample_peak > 0 else 0.0
        gain = Gain(10 ** (gain_db / 20))
        mix = gain.apply(mix)
        return mix, gain, Loudness(before, gain_db, 0.0, before + gain_db, true_peak(mix), target_lufs, True)
    peak_in_db = 20 * math.log10(max([sample_peak] + [float(env.max()) for _, env in runs]))
    # Limiting peaks takes some loudness away: measure, make up the difference, limit again.
    gain_db = target_lufs - before
    for _ in range(4):
        # the limiter looks at the un-gained mix against a ceiling moved by the gain
        curve, limiting = _limiter_gain(runs, len(mix), LIMITER_CEILING_DBTP - gain_db)
        capped = limiting > MAX_LIMITING_DB
        if capped:  # too much to hide: the whole mix stays quieter instead
            gain_db -= limiting - MAX_LIMITING_DB
            curve, limiting = _limiter_gain(runs, len(mix), LIMITER_CEILING_DBTP - gain_db)
        gain = Gain(10 ** (gain_db / 20), curve)
        if curve is None:  # a plain gain: loudness and true peak move with it exactly
            out, after, peak_db = gain.apply(mix), before + gain_db, peak_in_db + gain_db
            break
        out = gain.apply(mix)
        after, peak_db = _alongside(lambda: integrated_loudness(out), lambda: true_peak(out))
        if capped or abs(after - target_lufs) <= 0.1:
            break
        gain_db += target_lufs - after
    mix = out
    if peak_db >= LIMITER_CEILING_DBTP + 0.2:  # the gain ramps made a new over
        trim = 10 ** ((LIMITER_CEILING_DBTP - peak_db) / 20)
        gain.static *= trim
        gain_db += 20 * math.log10(trim)
        after += 20 * math.log10(trim)
        mix *= np.float32(trim)
        peak_db = true_peak(mix)
    reached = target_lufs is None or (math.isfinite(after) and abs(after - target_lufs) <= 0.5)
    return mix, gain, Loudness(before, gain_db, limiting, after, peak_db, target_lufs, reached)


# --------------------------------------------------------------------------- WAV files

def wav_bytes(audio: np.ndarray) -> bytes:
    """A 48 kHz 24-bit PCM WAV of float audio in -1..1 (clamped at full scale)."""
    buffer = io.BytesIO()
    _write_wav(buffer, audio)
    return buffer.getvalue()


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """(float32 (frames, channels) in -1..1, sample rate) of a 16/24/32-bit PCM WAV."""
    with wave.open(str(path), "rb") as reader:
        width, channels, rate = reader.getsampwidth(), reader.getnchannels(), reader.getframerate()
        raw = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.uint8)
    if width == 3:
        padded = np.zeros((len(raw) // 3, 4), dtype=np.uint8)
        padded[:, 1:] = raw.reshape(-1, 3)
        values = padded.view("<i4").ravel().astype(np.float32) / float(1 << 31)
    else:
        values = raw.view(f"<i{width}").astype(np.float32) / float(1 << (8 * width - 1))
    return values.reshape(-1, channels), rate


def _write_wav(handle, audio: np.ndarray, gain: Gain | None = None, chunk: int = 1 << 18) -> None:
    with wave.open(handle, "wb") as writer:
        writer.setnchannels(CHANNELS)
        writer.setsampwidth(SAMPLE_WIDTH)
        writer.setframerate(SAMPLE_RATE)
        for start in range(0, len(audio), chunk):
            block = np.asarray(audio[start:start + chunk], dtype=np.float32)
            if gain is not None:
                block = gain.apply(block, start)
            block = np.rint(block * np.float32(_FULL_SCALE))
            ints = np.clip(block, -_FULL_SCALE, _FULL_SCALE - 1).astype("<i4")
            writer.writeframesraw(ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes())


def _stem_name(wav_path: Path, track: Track) -> str:
    label = re.sub(r"[^\w.-]+", "_", track.label, flags=re.ASCII).strip("._") or f"track{track.number}"
    return f"{wav_path.stem}-{track.number:02d}-{label[:40]}.wav"


class _Outputs:
    """Write files to temporary names beside their targets; rename them all only at the end."""

    def __init__(self):
        self.pending: list[tuple[str, Path]] = []
        self.created_dir: Path | None = None

    def write(self, path: Path, audio: np.ndarray, gain: Gain | None = None) -> None:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise EmsyncError(f"{path}: cannot write here ({exc.strerror or exc})") from None
        self.pending.append((tmp, path))
        try:
            with os.fdopen(fd, "wb") as handle:
                _write_wav(handle, audio, gain)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o666 & ~umask())
        except OSError as exc:
            raise EmsyncError(f"{path}: cannot write ({exc.strerror or exc})") from None

    def commit(self) -> None:
        for tmp, path in self.pending:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise EmsyncError(f"{path}: cannot write ({exc.strerror or exc})") from None
        self.pending = []

    def discard(self) -> None:
        for tmp, _ in self.pending:
            if os.path.exists(tmp):
                os.unlink(tmp)
        if self.created_dir is not None:
            try:
                self.created_dir.rmdir()
            except OSError:
                pass


def _check_target(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise EmsyncError(f"{path}: is a folder; give a .wav file name")
    if not folder.is_dir():
        raise EmsyncError(f"{path}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise EmsyncError(f"{path}: output folder {folder} is not writable")


# --------------------------------------------------------------------------- the entry point

@dataclass
class RenderReport:
    wav: Path
    stems: list  # Path per instrument track, in track order
    soundfont: Path
    engine: str
    seconds: float  # duration of the audio
    sample_rate: int
    bits: int
    loudness: Loudness

    def summary(self) -> str:
        """One line for the CLI."""
        loud = self.loudness
        text = f"wrote {self.wav}: {self.seconds:.1f} s, {self.sample_rate // 1000} kHz {self.bits}-bit, "
        if not math.isfinite(loud.lufs):
            text += "silent (the file has no notes that sound)"
        else:
            text += f"{loud.lufs:.1f} LUFS integrated, true peak {loud.true_peak_dbtp:.1f} dBTP"
        if loud.target_lufs is not None and not loud.reached and math.isfinite(loud.lufs):
            text += f" (target {loud.target_lufs:.0f} LUFS not reached without squashing peaks)"
        if loud.limiting_db > 0.05:
            text += f", peaks limited by up to {loud.limiting_db:.1f} dB"
        if self.stems:
            text += f"; {len(self.stems)} stems in {self.stems[0].parent}"
        return text


def render(midi_path: str | os.PathLike, wav_path: str | os.PathLike, soundfont: str | os.PathLike | None = None,
           stems_dir: str | os.PathLike | None = None, *, target_lufs: float | None = TARGET_LUFS,
           engine: str | None = None, workers: int | None = None) -> RenderReport:
    """Synthesize `midi_path` to a 48 kHz 24-bit stereo WAV at `wav_path`, loudness-normalised.

    `soundfont`: a General MIDI .sf2/.sf3 (default: TimGM6mb.sf2 from pretty_midi).
    `stems_dir`: also write one WAV per instrument track there (created if its parent exists),
    named `<wav stem>-NN-<track>.wav`, same length and start as the mix and summing to it.
    `target_lufs`: None leaves the synthesizer's level (turned down only if it would clip).
    Raises EmsyncError naming the file at fault; on any error no output file is left behind.
    """
    midi_path, wav_path = Path(midi_path), Path(wav_path)
    stems_path = Path(stems_dir) if stems_dir is not None else None
    _check_target(wav_path)
    if stems_path is not None:
        if stems_path.exists() and not stems_path.is_dir():
            raise EmsyncError(f"{stems_path}: exists and is not a folder (stems go into a folder)")
        if not stems_path.exists() and not (stems_path.parent if str(stems_path.parent) else Path(".")).is_dir():
            raise EmsyncError(f"{stems_path}: its parent folder {stems_path.parent} does not exist")
    score = read_score(midi_path)
    if score.length <= 0:
        raise EmsyncError(f"{midi_path}: the file has no events (length 0 s): nothing to render")
    stem_paths = [stems_path / _stem_name(wav_path, t) for t in score.tracks] if stems_path is not None else []
    if stems_path is not None and stems_path.is_dir():
        for path in stem_paths:
            _check_target(path)
    sf_path, sf_data = load_soundfont(soundfont)
    engine = available_engine(engine)
    stems = synthesize(score, sf_path, sf_data, engine, workers)
    mix, gain, loudness = normalise(stems, target_lufs, frames=max(1, round(score.length * SAMPLE_RATE)))

    outputs = _Outputs()
    try:
        if stems_path is not None:
            if not stems_path.exists():
                try:
                    stems_path.mkdir()
                except OSError as exc:
                    raise EmsyncError(f"{stems_path}: cannot create the stems folder ({exc.strerror or exc})") from None
                outputs.created_dir = stems_path
            for path, audio in zip(stem_paths, stems):
                outputs.write(path, audio, gain)
        outputs.write(wav_path, mix)
        outputs.commit()
    except BaseException:
        outputs.discard()
        raise
    return RenderReport(wav_path, stem_paths, sf_path, engine, len(mix) / SAMPLE_RATE, SAMPLE_RATE,
                        8 * SAMPLE_WIDTH, loudness)
