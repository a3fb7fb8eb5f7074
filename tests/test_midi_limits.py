"""MIDI files of absurd sizes (emsync.core.limits): each bound is met by a file made to break
it, read by the real `emsync` command in a subprocess. Beyond a bound: one line naming the
file, at once, never a traceback. Within them, a preview takes memory for what sounds."""
from __future__ import annotations

import subprocess
import sys
import time
import wave

import mido
import pytest

from conftest import REPO, run_cli
from emsync.core.limits import (MAX_HELD_NOTE_SECONDS, MAX_MIDI_EVENTS, MAX_MIDI_FILE_BYTES, MAX_MIDI_NOTES,
                                MAX_SCORE_SECONDS, NOTE_RELEASE_SECONDS)


def _save(path, messages, ticks_per_beat=480):
    """A type 0 file of `messages` (delta times in ticks, at the default 120 bpm)."""
    midi = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    midi.tracks.append(mido.MidiTrack(messages))
    midi.save(path)
    return path


def _one_note(path, seconds):
    """One middle C held for `seconds`: a file of a few dozen bytes."""
    ticks = round(seconds * 2 * 480)  # 120 bpm: two beats a second
    return _save(path, [mido.Message("note_on", note=60, velocity=100, time=0),
                        mido.Message("note_off", note=60, velocity=0, time=ticks)])


def _refused(result, path, says):
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and says in lines[0], result.stderr


def test_a_file_longer_than_a_score_is_refused(tmp_path):
    midi = _one_note(tmp_path / "long.mid", MAX_SCORE_SECONDS + 100)
    assert midi.stat().st_size < 64
    _refused(run_cli("render", midi, "-o", tmp_path / "long.wav"), midi, "a score may last")
    assert not (tmp_path / "long.wav").exists()


def test_more_bytes_than_a_midi_file_may_have_is_refused_unread(tmp_path):
    midi = _save(tmp_path / "big.mid", [mido.MetaMessage("text", text="x" * (MAX_MIDI_FILE_BYTES + 1))])
    began = time.monotonic()
    _refused(run_cli("plot", midi, "-o", tmp_path / "big.png"), midi, f"{MAX_MIDI_FILE_BYTES} allowed")
    assert time.monotonic() - began < 5


def test_more_notes_than_a_file_may_have_are_refused(tmp_path):
    note = [mido.Message("note_on", note=60, velocity=100, time=0), mido.Message("note_off", note=60, time=1)]
    midi = _save(tmp_path / "notes.mid", note * (MAX_MIDI_NOTES + 1))
    assert midi.stat().st_size < MAX_MIDI_FILE_BYTES  # this bound, not the size, refuses it
    _refused(run_cli("plot", midi, "-o", tmp_path / "notes.png"), midi, f"more than the {MAX_MIDI_NOTES}")
    assert not (tmp_path / "notes.png").exists()


def test_more_events_than_a_file_may_have_are_refused(tmp_path):
    midi = _save(tmp_path / "events.mid", [mido.Message("control_change", control=1, value=5, time=1)]
                 * (MAX_MIDI_EVENTS + 1))
    assert midi.stat().st_size < MAX_MIDI_FILE_BYTES
    _refused(run_cli("render", midi, "-o", tmp_path / "events.wav"), midi, f"more than the {MAX_MIDI_EVENTS}")


def _short_note_far_marker(path):
    """A one-second note and a marker at 10,700 s: the marker must not make hours of silence."""
    return _save(path, [mido.MetaMessage("marker", text="cut 1", time=0),
                        mido.Message("note_on", note=60, velocity=100, time=0),
                        mido.Message("note_off", note=60, velocity=0, time=2 * 480),
                        mido.MetaMessage("marker", text="cut 2", time=round((10_700 - 1) * 2 * 480))])


@pytest.mark.parametrize("make, sounding", [(lambda p: _one_note(p, 10_700), MAX_HELD_NOTE_SECONDS),
                                            (_short_note_far_marker, 1.0 + NOTE_RELEASE_SECONDS + MAX_HELD_NOTE_SECONDS)],
                         ids=["held-note", "far-marker"])
def test_a_note_held_for_hours_renders_what_sounds_in_little_memory(tmp_path, make, sounding):
    """The issue's 37-byte file: one note of 10,700 s allocated 3.8 GiB a track. A preview
    releases it after MAX_HELD_NOTE_SECONDS and ends when its sound does; a marker far after
    the sound extends it by MAX_HELD_NOTE_SECONDS at most."""
    midi = make(tmp_path / "held.mid")
    wav = tmp_path / "held.wav"
    measure = ("import resource, subprocess, sys\n"
               "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
               "print(done.stdout + done.stderr)")
    result = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "emsync.cli", "render", str(midi),
                             "-o", str(wav)], capture_output=True, text=True, cwd=REPO, timeout=120)
    status, peak_kib = map(int, result.stdout.split("\n")[0].split())
    assert status == 0, result.stdout
    assert "the file runs to 10700.0 s" in result.stdout
    with wave.open(str(wav)) as reader:
        seconds = reader.getnframes() / reader.getframerate()
    assert seconds == pytest.approx(max(sounding, MAX_HELD_NOTE_SECONDS + NOTE_RELEASE_SECONDS), abs=0.01)
    assert peak_kib < 1024 * 1024, f"{peak_kib / 1024:.0f} MiB"  # was 3.8 GiB a track
