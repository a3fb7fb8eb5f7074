"""Reading Standard MIDI Files (edge cases built with mido and by hand) and writing them
(checked with mido and with symusic, an independent C++ parser)."""
from __future__ import annotations

import random
import struct
from pathlib import Path

import mido
import pytest

from emsync.core import codec

from emsync.core import midi_io
from emsync.core.errors import EmsyncError
from emsync.core.music import DRUM_NOTE_SECONDS, DRUMS, GM_PROGRAM, INSTRUMENTS, Note

PIANO, GUITAR, BASS, STRINGS = (INSTRUMENTS.index(n) for n in ("piano", "guitar", "bass", "strings"))
TPB = 480  # ticks per beat of the files built here; 120 bpm (the MIDI default) -> 960 ticks/s


def save(tmp_path: Path, name: str, tracks, type_: int = 1, tpb: int = TPB) -> Path:
    """tracks: lists of mido messages whose .time is a delta in ticks."""
    midi = mido.MidiFile(type=type_, ticks_per_beat=tpb)
    for messages in tracks:
        midi.tracks.append(mido.MidiTrack(messages))
    path = tmp_path / name
    midi.save(path)
    return path


def on(note, time=0, velocity=100, channel=0):
    return mido.Message("note_on", note=note, velocity=velocity, time=time, channel=channel)


def off(note, time=0, channel=0, as_note_on=False):
    if as_note_on:
        return mido.Message("note_on", note=note, velocity=0, time=time, channel=channel)
    return mido.Message("note_off", note=note, velocity=64, time=time, channel=channel)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- reading

def test_overlapping_same_pitch_notes_pair_first_in_first_out(tmp_path):
    path = save(tmp_path, "overlap.mid", [[on(60), on(60, 240, velocity=80), off(60, 240), off(60, 240)]])
    notes = midi_io.read_midi(path)
    assert notes == [Note(0.0, 0.5, 60, 100, PIANO), Note(0.25, 0.75, 60, 80, PIANO)]
    # the codec cannot express the overlap: the earlier note ends where the later starts
    assert sorted(codec.clean_notes(notes)) == [(0, 25, 60, 100, PIANO), (25, 75, 60, 80, PIANO)]
    decoded = codec.decode(codec.encode(notes)[0])
    back = midi_io.read_midi(midi_io.write_midi(tmp_path / "back.mid", decoded))
    assert [(n.start, n.end, n.velocity) for n in back] == [(0.0, 0.25, 102), (0.25, 0.75, 82)]


def test_zero_length_note_becomes_one_step(tmp_path):
    path = save(tmp_path, "zero.mid", [[on(64, 480), off(64, 0), on(65, 0), off(65, 0, as_note_on=True)]])
    notes = midi_io.read_midi(path)
    assert notes == [Note(0.5, 0.5, 64, 100, PIANO), Note(0.5, 0.5, 65, 100, PIANO)]
    assert sorted(codec.clean_notes(notes)) == [(50, 51, 64, 100, PIANO), (50, 51, 65, 100, PIANO)]
    decoded = codec.decode(codec.encode(notes)[0])
    assert [(n.start, n.end) for n in decoded] == [(0.5, 0.51), (0.5, 0.51)]
    back = midi_io.read_midi(midi_io.write_midi(tmp_path / "back.mid", decoded))
    assert [(n.pitch, n.start) for n in back] == [(64, 0.5), (65, 0.5)]
    assert all(abs(n.end - 0.51) <= 1 / 1920 + 1e-9 for n in back)


def hand_built_running_status() -> bytes:
    """A type 0 SMF, 96 ticks per beat, written byte by byte with running status."""
    events = bytes([
        0x00, 0xC0, 0x21,        # program change ch 1 -> 33 (bass)
        0x00, 0x90, 0x3C, 0x64,  # note on 60 vel 100
        0x00, 0x40, 0x50,        # running status: note on 64 vel 80
        0x60, 0x3C, 0x00,        # +96: running status: note on 60 vel 0 = note off
        0x00, 0x40, 0x00,        # note off 64
        0x30, 0x43, 0x7F,        # +48: running status: note on 67 vel 127
        0x30, 0x80, 0x43, 0x00,  # +48: explicit note off 67
        0x00, 0x99, 0x24, 0x64,  # drums (channel 10): note on 36 vel 100
        0x00, 0x26, 0x64,        # running status: note on 38
        0x18, 0x89, 0x24, 0x00,  # +24: note off 36
        0x00, 0x26, 0x00,        # running status (0x89): note off 38
        0x00, 0xFF, 0x2F, 0x00,  # end of track
    ])
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 96)
    return header + b"MTrk" + struct.pack(">I", len(events)) + events


def test_running_status_hand_built(tmp_path):
    path = tmp_path / "running.mid"
    path.write_bytes(hand_built_running_status())
    expected = [Note(0.0, 0.5, 60, 100, BASS), Note(0.0, 0.5, 64, 80, BASS), Note(0.75, 1.0, 67, 127, BASS),
                Note(1.0, 1.125, 36, 100, DRUMS), Note(1.0, 1.125, 38, 100, DRUMS)]
    assert midi_io.read_midi(path) == expected
    # the bytes are a valid file for an independent parser too
    from symusic import Score
    score = Score(str(path))
    assert sorted((n.pitch, n.time, n.end) for t in score.tracks for n in t.notes) == \
        [(36, 192, 216), (38, 192, 216), (60, 0, 96), (64, 0, 96), (67, 144, 192)]


def test_tempo_changes_follow_tempo_map(tmp_path):
    conductor = [mido.MetaMessage("set_tempo", tempo=500000, time=0),   # 120 bpm
                 mido.MetaMessage("set_tempo", tempo=250000, time=960),  # 240 bpm from 1.0 s
                 mido.MetaMessage("set_tempo", tempo=1000000, time=960)]  # 60 bpm from 1.5 s
    notes = []
    for i in range(7):  # one quarter note on every beat, an eighth long
        notes += [on(60 + i, 0 if i == 0 else 240), off(60 + i, 240)]
    spanning = [on(80, 720), off(80, 480)]  # ticks 720..1200 straddle the first change
    path = save(tmp_path, "tempo.mid", [conductor, notes, spanning])
    got = {n.pitch: (n.start, n.end) for n in midi_io.read_midi(path)}
    beat_seconds = [0.0, 0.5, 1.0, 1.25, 1.5, 2.5, 3.5]
    eighth = [0.25, 0.25, 0.125, 0.125, 0.5, 0.5, 0.5]
    for i, (start, length) in enumerate(zip(beat_seconds, eighth)):
        assert got[60 + i] == (pytest.approx(start), pytest.approx(start + length)), f"beat {i}"
    assert got[80] == (pytest.approx(0.75), pytest.approx(1.125))
    # same answer from mido's own playback clock
    assert mido.MidiFile(path).length == pytest.approx(4.0)  # last note-off: tick 3120


def test_tempo_change_inside_type0_track(tmp_path):
    track = [on(60), off(60, 480), mido.MetaMessage("set_tempo", tempo=1000000, time=0), on(62), off(62, 480)]
    notes = midi_io.read_midi(save(tmp_path, "t0.mid", [track], type_=0))
    assert notes == [Note(0.0, 0.5, 60, 100, PIANO), Note(0.5, 1.5, 62, 100, PIANO)]


def test_type0_and_type1_read_the_same(tmp_path):
    programs = [mido.Message("program_change", channel=0, program=0),
                mido.Message("program_change", channel=1, program=33),
                mido.Message("program_change", channel=2, program=25),
                mido.Message("program_change", channel=3, program=48)]
    type0 = programs + [on(60, 0, channel=0), on(40, 0, channel=1), on(36, 0, channel=9),
                        off(36, 120, channel=9), off(60, 360, channel=0), on(64, 0, channel=2),
                        on(72, 0, channel=3), off(40, 480, channel=1, as_note_on=True),
                        off(64, 0, channel=2), off(72, 0, channel=3)]
    type1 = [[mido.MetaMessage("set_tempo", tempo=500000)],
             [programs[0], on(60), off(60, 480)],
             [programs[1], on(40, channel=1), off(40, 960, channel=1, as_note_on=True)],
             [on(36, channel=9), off(36, 120, channel=9)],
             [programs[2], on(64, 480, channel=2), off(64, 480, channel=2)],
             [programs[3], on(72, 480, channel=3), off(72, 480, channel=3)]]
    a = midi_io.read_midi(save(tmp_path, "type0.mid", [type0], type_=0))
    b = midi_io.read_midi(save(tmp_path, "type1.mid", type1, type_=1))
    assert mido.MidiFile(tmp_path / "type0.mid").type == 0
    assert a == b == [Note(0.0, 0.125, 36, 100, DRUMS), Note(0.0, 0.5, 60, 100, PIANO),
                      Note(0.0, 1.0, 40, 100, BASS), Note(0.5, 1.0, 64, 100, GUITAR),
                      Note(0.5, 1.0, 72, 100, STRINGS)]


def test_channel_10_is_drums_whatever_the_program(tmp_path):
    track = [mido.Message("program_change", channel=9, program=33), on(38, channel=9), off(38, 48, channel=9),
             mido.Message("program_change", channel=0, program=33), on(38, channel=0), off(38, 48, channel=0),
             mido.Message("program_change", channel=0, program=48), on(39, channel=0), off(39, 48, channel=0)]
    notes = midi_io.read_midi(save(tmp_path, "drums.mid", [track], type_=0))
    assert [(n.pitch, n.instrument) for n in notes] == [(38, DRUMS), (38, BASS), (39, STRINGS)]
    tokens, _ = codec.encode(notes)
    decoded = codec.decode(tokens)
    drum = [n for n in decoded if n.instrument == DRUMS]
    assert len(drum) == 1 and drum[0].end - drum[0].start == pytest.approx(DRUM_NOTE_SECONDS)


def test_file_without_notes_reads_empty(tmp_path):
    meta_only = [[mido.MetaMessage("track_name", name="empty"), mido.MetaMessage("set_tempo", tempo=400000),
                  mido.Message("program_change", program=5), mido.Message("control_change", control=7, value=90)]]
    assert midi_io.read_midi(save(tmp_path, "meta.mid", meta_only)) == []
    assert midi_io.read_midi(save(tmp_path, "notracks.mid", [])) == []
    # a stray note-off releases nothing
    assert midi_io.read_midi(save(tmp_path, "stray.mid", [[off(60, 10)]])) == []


def test_note_on_velocity_zero_is_note_off(tmp_path):
    track = [on(60, velocity=90), off(60, 480, as_note_on=True), on(60, 0, velocity=70), off(60, 240, as_note_on=True)]
    notes = midi_io.read_midi(save(tmp_path, "vel0.mid", [track]))
    assert notes == [Note(0.0, 0.5, 60, 90, PIANO), Note(0.5, 0.75, 60, 70, PIANO)]


def test_unreleased_note_ends_with_its_track(tmp_path):
    track = [on(60), on(62, 240), off(62, 240), mido.MetaMessage("end_of_track", time=480)]
    notes = midi_io.read_midi(save(tmp_path, "hanging.mid", [track]))
    assert notes == [Note(0.0, 1.0, 60, 100, PIANO), Note(0.25, 0.5, 62, 100, PIANO)]


def good_bytes() -> bytes:
    return hand_built_running_status()


@pytest.mark.parametrize("name, content", [
    ("random.mid", bytes(range(256)) * 3),
    ("random_seeded.mid", random.Random(7).randbytes(500)),
    ("truncated_header.mid", good_bytes()[:10]),
    ("header_only.mid", good_bytes()[:14]),
    ("truncated_track.mid", good_bytes()[:30]),
    ("garbage_track.mid", good_bytes()[:14] + b"XXXX" + bytes(40)),
    ("empty.mid", b""),
    ("smpte.mid", b"MThd" + struct.pack(">IHHh", 6, 0, 1, -(25 << 8) | 40) + good_bytes()[14:]),
])
def test_corrupt_file_raises_emsync_error_naming_it(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(EmsyncError) as info:
        midi_io.read_midi(path)
    assert str(path) in str(info.value)


def test_missing_file_and_folder_raise_emsync_error(tmp_path):
    for path in (tmp_path / "nope.mid", tmp_path):
        with pytest.raises(EmsyncError) as info:
            midi_io.read_midi(path)
        assert str(path) in str(info.value)
    assert "not found" in str(pytest.raises(EmsyncError, midi_io.read_midi, tmp_path / "nope.mid").value)


# --------------------------------------------------------------------------- writing

def sample_notes() -> list[Note]:
    return [Note(0.0, 0.1, 36, 100, DRUMS), Note(0.5, 0.6, 38, 80, DRUMS), Note(1.0, 1.1, 42, 60, DRUMS),
            Note(0.0, 1.0, 60, 90, PIANO), Note(1.0, 2.0, 64, 70, PIANO),
            Note(0.25, 0.75, 52, 60, GUITAR),
            Note(0.0, 2.0, 36, 110, BASS), Note(2.0, 2.5, 36, 100, BASS),
            Note(1.5, 3.0, 72, 50, STRINGS), Note(1.5, 3.0, 76, 50, STRINGS)]


MARKERS = [(0.0, "start"), (1.5, "cut 1 chase | valence=-0.50 arousal=+0.80"), (2.7503, "cut 2")]


@pytest.mark.parametrize("bpm", [120.0, 90.0])
def test_write_midi_layout(tmp_path, bpm):
    notes = sample_notes()
    path = midi_io.write_midi(tmp_path / "score.mid", notes, MARKERS, tempo=bpm)
    assert path == tmp_path / "score.mid"
    midi = mido.MidiFile(path)
    assert midi.type == 1 and midi.ticks_per_beat == midi_io.TICKS_PER_BEAT
    assert len(midi.tracks) == 1 + len(INSTRUMENTS)

    conductor, tick = [], 0
    for msg in midi.tracks[0]:
        tick += msg.time
        conductor.append((tick, msg))
    assert not any(not m.is_meta for _, m in conductor), "the conductor track holds meta messages only"
    tempos = [(t, m.tempo) for t, m in conductor if m.type == "set_tempo"]
    assert tempos == [(0, mido.bpm2tempo(bpm))]
    ticks_per_second = bpm / 60 * midi_io.TICKS_PER_BEAT
    assert [(t, m.text) for t, m in conductor if m.type == "marker"] == \
        [(round(s * ticks_per_second), text) for s, text in MARKERS]
    assert [m.name for _, m in conductor if m.type == "track_name"] == ["score"]

    channels = set()
    for index, (name, track) in enumerate(zip(INSTRUMENTS, midi.tracks[1:])):
        assert track[0].type == "track_name" and track[0].name == name.capitalize()
        programs = [m for m in track if m.type == "program_change"]
        assert [m.program for m in programs] == [GM_PROGRAM[name]]
        track_channels = {m.channel for m in track if not m.is_meta}
        assert len(track_channels) == 1
        channel = track_channels.pop()
        assert (channel == midi_io.DRUM_CHANNEL) == (index == DRUMS)
        channels.add(channel)
        ons = [m for m in track if m.type == "note_on" and m.velocity > 0]
        assert len(ons) == sum(n.instrument == index for n in notes)
    assert len(channels) == len(INSTRUMENTS), "one channel per instrument"

    back = midi_io.read_midi(path)
    tol = 0.5 / ticks_per_second + 1e-9
    assert len(back) == len(notes)
    for got, want in zip(back, sorted(notes)):
        assert (got.pitch, got.velocity, got.instrument) == (want.pitch, want.velocity, want.instrument)
        assert abs(got.start - want.start) <= tol and abs(got.end - want.end) <= tol


def test_written_file_read_by_symusic(tmp_path):
    from symusic import Score

    notes = sample_notes()
    path = midi_io.write_midi(tmp_path / "sym.mid", notes, MARKERS)
    score = Score(str(path))
    assert score.ticks_per_quarter == midi_io.TICKS_PER_BEAT
    # symusic drops the note-less conductor track and keeps the five instrument tracks in order
    assert [t.name for t in score.tracks] == [name.capitalize() for name in INSTRUMENTS]
    for index, (name, track) in enumerate(zip(INSTRUMENTS, score.tracks)):
        assert track.is_drum == (index == DRUMS)
        if index != DRUMS:
            assert track.program == GM_PROGRAM[name]
        want = sorted((round(n.start * 960), round(n.end * 960), n.pitch, n.velocity)
                      for n in notes if n.instrument == index)
        got = sorted((n.time, n.end, n.pitch, n.velocity) for n in track.notes)
        assert got == want, name
    assert sum(len(t.notes) for t in score.tracks) == len(notes)
    assert [(m.time, m.text) for m in score.markers] == [(round(s * 960), text) for s, text in MARKERS]
    assert [round(t.qpm) for t in score.tempos] == [120]


def test_write_midi_roundtrips_decoded_drums(tmp_path):
    """Decoded drums are 100 ms long; a fast roll of one drum overlaps itself in the file
    and must still come back with every onset."""
    onsets = [0.0, 0.03, 0.06, 0.09, 0.5]
    notes = [Note(t, t + DRUM_NOTE_SECONDS, 42, 100, DRUMS) for t in onsets]
    back = midi_io.read_midi(midi_io.write_midi(tmp_path / "roll.mid", notes))
    assert [n.start for n in back] == pytest.approx(onsets, abs=1 / 1920)
    assert all(n.end - n.start == pytest.approx(DRUM_NOTE_SECONDS, abs=1 / 960) for n in back)


def test_write_into_missing_folder_raises(tmp_path):
    target = tmp_path / "no" / "such" / "folder" / "out.mid"
    with pytest.raises(EmsyncError) as info:
        midi_io.write_midi(target, sample_notes())
    assert str(target) in str(info.value)
    assert listing(tmp_path) == []


def test_write_replaces_existing_file_atomically(tmp_path):
    target = tmp_path / "out.mid"
    target.write_bytes(b"old")
    midi_io.write_midi(target, sample_notes())
    assert midi_io.read_midi(target) and listing(tmp_path) == ["out.mid"]


def test_failed_write_leaves_no_temp_files(tmp_path):
    # 1. the rename fails after the temp file was written: the target is a folder
    target = tmp_path / "taken.mid"
    target.mkdir()
    (tmp_path / "keep.mid").write_bytes(b"previous")
    before = listing(tmp_path)
    with pytest.raises((EmsyncError, OSError)) as info:
        midi_io.write_midi(target, sample_notes())
    assert str(target) in str(info.value)
    assert listing(tmp_path) == before and target.is_dir() and listing(target) == []
    # 2. the data cannot be encoded (pitch out of MIDI range): nothing is touched
    with pytest.raises(ValueError):
        midi_io.write_midi(tmp_path / "keep.mid", [Note(0.0, 1.0, 200, 100, PIANO)])
    assert listing(tmp_path) == before and (tmp_path / "keep.mid").read_bytes() == b"previous"


# --------------------------------------------------------------------------- failures reported by name

def test_write_onto_folder_is_emsync_error(tmp_path):
    target = tmp_path / "taken.mid"
    target.mkdir()
    with pytest.raises(EmsyncError):
        midi_io.write_midi(target, sample_notes())


def test_write_non_latin1_file_name(tmp_path):
    path = midi_io.write_midi(tmp_path / "映画.mid", sample_notes())
    assert len(midi_io.read_midi(path)) == len(sample_notes())


def test_write_non_latin1_marker(tmp_path):
    path = midi_io.write_midi(tmp_path / "out.mid", sample_notes(), [(1.0, "cut 1 追跡 | valence=+0.10")])
    assert [m.type for m in mido.MidiFile(path).tracks[0]].count("marker") == 1
