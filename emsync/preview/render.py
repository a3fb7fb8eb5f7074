"""Hear the score: a MIDI file to a 48 kHz / 24-bit WAV preview, with per-track stems.

Every instrument part is rendered on its own synthesizer (`synth`, its GM program, channel
10 as drums) into a stem; the mix is the sum of the stems, so stems imported into an editor
at the same start add up to the preview. The mix is brought to -16 LUFS with its true peak
under -1 dBTP (`loudness`), the stems get the same gain, and nothing clips.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emsync.core.errors import EmsyncError
from emsync.core.fileio import atomic_output
from emsync.core.midi_io import Track, read_midi_file
from emsync.preview.loudness import TARGET_LUFS, Gain, Loudness, normalise
from emsync.preview.synth import SAMPLE_RATE, audible_score, available_engine, load_soundfont, synthesize
from emsync.preview.wav import SAMPLE_WIDTH, write_wav


def _stem_name(wav_path: Path, track: Track) -> str:
    label = re.sub(r"[^\w.-]+", "_", track.label, flags=re.ASCII).strip("._") or f"track{track.number}"
    return f"{wav_path.stem}-{track.number:02d}-{label[:40]}.wav"


def _check_target(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise EmsyncError(f"{path}: is a folder; give a .wav file name")
    if not folder.is_dir():
        raise EmsyncError(f"{path}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise EmsyncError(f"{path}: output folder {folder} is not writable")


def _write_all(stems_dir: Path | None, outputs: list[tuple[Path, np.ndarray, Gain | None]]) -> None:
    """Write every WAV or none: each goes to a temporary name and all are renamed at the end;
    on an error the temporary files (and a stems folder made here) are removed."""
    created = None
    if stems_dir is not None and not stems_dir.exists():
        try:
            stems_dir.mkdir()
        except OSError as exc:
            raise EmsyncError(f"{stems_dir}: cannot create the stems folder ({exc.strerror or exc})") from None
        created = stems_dir
    try:
        with contextlib.ExitStack() as stack:
            for path, audio, gain in outputs:
                write_wav(str(stack.enter_context(atomic_output(path))), audio, gain)
    except BaseException:
        if created is not None:
            with contextlib.suppress(OSError):
                created.rmdir()
        raise


@dataclass
class RenderReport:
    wav: Path
    stems: list  # Path per instrument track that plays notes, in track order
    silent_tracks: list  # labels of the tracks without notes: no stem is written for them
    file_seconds: float  # the MIDI file's length; the preview ends earlier when its sound does (audible_score)
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
        if self.seconds < self.file_seconds - 0.01:
            text += f" (the file runs to {self.file_seconds:.1f} s; the preview stops when its sound does)"
        if self.stems:
            text += f"; {len(self.stems)} stems in {self.stems[0].parent}"
        if self.silent_tracks:
            text += f"; no stem for {len(self.silent_tracks)} track(s) without notes: {', '.join(self.silent_tracks)}"
        return text


def render(midi_path: str | os.PathLike, wav_path: str | os.PathLike, soundfont: str | os.PathLike | None = None,
           stems_dir: str | os.PathLike | None = None, *, target_lufs: float | None = TARGET_LUFS,
           engine: str | None = None, workers: int | None = None) -> RenderReport:
    """Synthesize `midi_path` to a 48 kHz 24-bit stereo WAV at `wav_path`, loudness-normalised.

    `soundfont`: a General MIDI .sf2/.sf3 (default: TimGM6mb.sf2 from pretty_midi).
    `stems_dir`: also write one WAV per instrument track that plays notes there (created if its
    parent exists), named `<wav stem>-NN-<track>.wav`, same length and start as the mix and
    summing to it; a track without notes gets no (silent) stem, the report names it.
    The preview is the file's `audible_score`: it runs as long as the sound does.
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
    written = read_midi_file(midi_path)
    if written.length <= 0:
        raise EmsyncError(f"{midi_path}: the file has no events (length 0 s): nothing to render")
    score = audible_score(written)
    silent = [t.label for t in written.tracks if not t.notes] if stems_path is not None else []
    stem_paths = [stems_path / _stem_name(wav_path, t) for t in score.tracks] if stems_path is not None else []
    if stems_path is not None and stems_path.is_dir():
        for path in stem_paths:
            _check_target(path)
    sf_path, sf_data = load_soundfont(soundfont)
    engine = available_engine(engine)
    stems = synthesize(score, sf_path, sf_data, engine, workers)
    mix, gain, loudness = normalise(stems, target_lufs, frames=max(1, round(score.length * SAMPLE_RATE)))

    _write_all(stems_path if stem_paths else None,
               [(path, audio, gain) for path, audio in zip(stem_paths, stems)] + [(wav_path, mix, None)])
    return RenderReport(wav_path, stem_paths, silent, written.length, sf_path, engine, len(mix) / SAMPLE_RATE,
                        SAMPLE_RATE, 8 * SAMPLE_WIDTH, loudness)
