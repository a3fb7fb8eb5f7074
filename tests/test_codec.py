"""The performance-event codec: vocabulary, clean_notes contract, and the full round trip
MIDI -> notes -> tokens -> notes -> MIDI -> notes on synthetic and real corpus files."""
from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from emsync.core import codec

from emsync.core import midi_io
from emsync.core.music import DRUM_NOTE_SECONDS, DRUMS, INSTRUMENTS, Note

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "midi"

STEP = codec.STEP_SECONDS
# write_midi writes at 120 bpm and 480 ticks per beat: 960 ticks per second. Rounding to
# the nearest tick moves an event by at most half a tick; reading back is exact.
TICK = 60.0 / 120.0 / midi_io.TICKS_PER_BEAT
TICK_TOL = TICK / 2 + 1e-9
HALF_STEP = STEP / 2 + 1e-9  # clean_notes rounds to the nearest step
BIN_WIDTH = 128 // codec.VELOCITY_BINS

PIANO, GUITAR, BASS, STRINGS = (INSTRUMENTS.index(n) for n in ("piano", "guitar", "bass", "strings"))


# --------------------------------------------------------------------------- helpers

def roundtrip(notes, tmp_path, name="roundtrip.mid"):
    """notes -> tokens -> notes -> MIDI file -> notes."""
    tokens, seconds = codec.encode(notes)
    assert tokens.dtype == np.int64 and len(tokens) == len(seconds)
    assert np.all((tokens >= 0) & (tokens < codec.VOCAB_SIZE))
    assert np.all(np.diff(seconds) >= 0), "the clock never runs backwards"
    decoded = codec.decode(tokens)
    path = midi_io.write_midi(tmp_path / name, decoded)
    return decoded, midi_io.read_midi(path)


def by_key(items):
    """(instrument, pitch) -> [(start_s, end_s, velocity)] sorted by start."""
    groups = defaultdict(list)
    for item in items:
        if isinstance(item, Note):
            groups[item.instrument, item.pitch].append((item.start, item.end, item.velocity))
        else:  # clean_notes tuple (start_step, end_step, pitch, velocity, instrument)
            start, end, pitch, velocity, instrument = item
            groups[instrument, pitch].append((start * STEP, end * STEP, velocity))
    return {key: sorted(value) for key, value in groups.items()}


def assert_matches_clean(raw_notes, back_notes):
    """The round-tripped notes equal clean_notes(raw) up to tick rounding, and every raw
    onset/offset survives within half a codec step (+ tick rounding)."""
    expected = by_key(codec.clean_notes(raw_notes))
    got = by_key(back_notes)
    assert set(got) == set(expected), "same (instrument, pitch) pairs"
    for key, want in expected.items():
        have = got[key]
        assert len(have) == len(want), f"{key}: {len(have)} notes back, {len(want)} expected"
        for (s, e, v), (ws, we, wv) in zip(have, want):
            assert abs(s - ws) <= TICK_TOL, f"{key}: onset {s} vs {ws}"
            assert codec.velocity_bin(v) == codec.velocity_bin(wv), f"{key}: velocity {v} vs {wv}"
            assert abs(v - wv) < BIN_WIDTH
            assert v == codec.bin_velocity(codec.velocity_bin(wv))
            if key[0] == DRUMS:  # one-shot: decoded drums get a fixed length
                assert abs((e - s) - DRUM_NOTE_SECONDS) <= 2 * TICK_TOL
            else:
                assert abs(e - we) <= TICK_TOL, f"{key}: offset {e} vs {we}"
                assert e > s

    # Against the raw notes: every onset is kept within half a step (+ tick rounding).
    raw = by_key(n for n in raw_notes if 0 <= n.pitch < 128)
    for key, items in raw.items():
        onsets = [s for s, _, _ in got[key]]
        for start, end, _ in items:
            i = bisect_left(onsets, start - HALF_STEP - TICK_TOL)
            assert i < len(onsets) and abs(onsets[i] - start) <= HALF_STEP + TICK_TOL, \
                f"{key}: raw onset {start} lost"
    # ...and every pitched offset is the raw offset (longest of same-step duplicates) within
    # half a step, unless clean_notes shortened it to the next onset or lengthened a
    # zero-length note to one step.
    for key, items in got.items():
        if key[0] == DRUMS:
            continue
        for index, (start, end, _) in enumerate(items):
            step = round(start / STEP)
            raw_ends = [e for s, e, _ in raw[key] if max(0, round(s / STEP)) == step]
            assert raw_ends, f"{key}: note at {start} has no source"
            next_onset = items[index + 1][0] if index + 1 < len(items) else None
            ok = (abs(end - max(raw_ends)) <= HALF_STEP + TICK_TOL
                  or (next_onset is not None and abs(end - next_onset) <= 2 * TICK_TOL)
                  or abs((end - start) - STEP) <= 2 * TICK_TOL)
            assert ok, f"{key}: offset {end} vs raw {max(raw_ends)} (next onset {next_onset})"


def corpus_file(folder: str, index: int) -> Path:
    files = sorted((DATA / folder).glob("*.mid"))
    assert files, f"no .mid files in {DATA / folder}"
    return files[index * (len(files) - 1) // 2]  # first, middle, last


# --------------------------------------------------------------------------- round trip, real files

@pytest.mark.shared_data
@pytest.mark.parametrize("number", ["001", "455", "909"])
def test_roundtrip_pop909(number, tmp_path):
    path = DATA / "pop909" / number / f"{number}.mid"
    raw = midi_io.read_midi(path)
    assert len(raw) > 100
    decoded, back = roundtrip(raw, tmp_path)
    assert len(decoded) == len(back) == len(codec.clean_notes(raw))
    assert_matches_clean(raw, back)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_roundtrip_vgmidi(index, tmp_path):
    path = corpus_file("vgmidi/labelled/midi", index)
    raw = midi_io.read_midi(path)
    assert raw, f"{path} has notes"
    decoded, back = roundtrip(raw, tmp_path)
    assert len(decoded) == len(back) == len(codec.clean_notes(raw))
    assert_matches_clean(raw, back)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_roundtrip_groove_drums(index, tmp_path):
    path = corpus_file("groove/drummer1/session1", index)
    raw = midi_io.read_midi(path)
    assert raw and all(n.instrument == DRUMS for n in raw), "Groove is drums on channel 10"
    tokens, _ = codec.encode(raw)
    assert not any(codec.is_off(t) for t in tokens), "drums are one-shot: no NOTE_OFF"
    decoded, back = roundtrip(raw, tmp_path)
    assert all(abs(n.end - n.start - DRUM_NOTE_SECONDS) < 1e-9 for n in decoded)
    assert_matches_clean(raw, back)


def test_roundtrip_random_all_instruments(tmp_path):
    """Dense random notes on every instrument in a narrow pitch range: many overlapping
    same-pitch notes, duplicate onsets and zero-length notes."""
    rng = np.random.default_rng(1234)
    notes = []
    for _ in range(600):
        start = float(rng.uniform(0, 30))
        length = float(rng.choice([0.0, 0.003, 0.05, 0.4, 2.5]))
        notes.append(Note(start, start + length, int(rng.integers(58, 66)), int(rng.integers(1, 128)),
                          int(rng.integers(0, len(INSTRUMENTS)))))
    notes += [Note(5.0, 5.7, 60, 90, PIANO), Note(5.001, 5.2, 60, 30, PIANO)]  # same step
    notes += [Note(40.0, 40.0, 61, 64, BASS)]  # zero length, after a long silence
    decoded, back = roundtrip(notes, tmp_path)
    assert {n.instrument for n in back} == set(range(len(INSTRUMENTS)))
    assert_matches_clean(notes, back)


# --------------------------------------------------------------------------- clean_notes contract

def test_clean_notes_truncates_overlapping_same_pitch():
    notes = [Note(0.0, 1.0, 60, 100, PIANO), Note(0.5, 1.5, 60, 80, PIANO),
             Note(0.2, 2.0, 60, 70, GUITAR)]  # other instrument: untouched
    assert sorted(codec.clean_notes(notes)) == [(0, 50, 60, 100, PIANO), (20, 200, 60, 70, GUITAR),
                                                (50, 150, 60, 80, PIANO)]


def test_clean_notes_duplicate_onset_keeps_longer():
    notes = [Note(1.0, 1.2, 60, 100, PIANO), Note(1.002, 1.9, 60, 50, PIANO)]
    assert codec.clean_notes(notes) == [(100, 190, 60, 50, PIANO)]


def test_clean_notes_zero_length_and_range():
    notes = [Note(1.0, 1.0, 60, 100, PIANO), Note(-0.5, 0.2, 62, 100, PIANO),
             Note(0, 1, 128, 100, PIANO), Note(0, 1, -1, 100, PIANO), Note(0, 1, 60, 100, 99)]
    assert sorted(codec.clean_notes(notes)) == [(0, 20, 62, 100, PIANO), (100, 101, 60, 100, PIANO)]


# --------------------------------------------------------------------------- vocabulary

def test_vocabulary_layout_and_token_names():
    assert codec.VOCAB_SIZE == 2 + codec.MAX_SHIFT_STEPS + codec.VELOCITY_BINS + \
        len(INSTRUMENTS) * 128 + (len(INSTRUMENTS) - 1) * 128
    names = [codec.token_name(t) for t in range(codec.VOCAB_SIZE)]
    assert len(set(names)) == codec.VOCAB_SIZE, "every token has its own name"
    assert names[codec.PAD] == "PAD" and names[codec.BOS] == "BOS"
    assert names[codec.shift_token(1)] == "SHIFT_10ms"
    assert names[codec.shift_token(codec.MAX_SHIFT_STEPS)] == "SHIFT_1000ms"
    assert names[codec.on_token(DRUMS, 36)] == "ON_drums_36"
    assert names[codec.off_token(STRINGS, 127)] == "OFF_strings_127"
    for token in range(codec.VOCAB_SIZE):
        kinds = [token in (codec.PAD, codec.BOS), codec.is_shift(token),
                 codec.VEL0 <= token < codec.ON0, codec.is_on(token), codec.is_off(token)]
        assert sum(kinds) == 1, f"token {token} belongs to exactly one kind"
    for bad in (-1, codec.VOCAB_SIZE):
        with pytest.raises(ValueError):
            codec.token_name(bad)


def test_note_tokens_invert():
    for instrument in range(len(INSTRUMENTS)):
        for pitch in (0, 60, 127):
            assert codec.on_target(codec.on_token(instrument, pitch)) == (instrument, pitch)
            if instrument != DRUMS:
                assert codec.off_target(codec.off_token(instrument, pitch)) == (instrument, pitch)
    with pytest.raises(ValueError):
        codec.off_token(DRUMS, 36)  # drums have no note-off
    for steps in range(1, codec.MAX_SHIFT_STEPS + 1):
        assert codec.shift_steps(codec.shift_token(steps)) == steps


def test_long_silence_uses_several_shifts():
    notes = [Note(0.0, 0.1, 60, 100, PIANO), Note(3.47, 3.6, 62, 100, PIANO)]
    tokens, seconds = codec.encode(notes)
    shifts = [codec.shift_steps(t) for t in tokens if codec.is_shift(t)]
    # 0.1 s to the first note-off, then 3.37 s of silence, then 0.13 s to the last note-off
    assert shifts == [10, 100, 100, 100, 37, 13]
    assert seconds[-1] == pytest.approx(3.6)
    assert codec.decode(tokens) == [Note(0.0, 0.1, 60, 100 // 4 * 4 + 2, PIANO),
                                    Note(3.47, 3.6, 62, 100 // 4 * 4 + 2, PIANO)]
    # a leading silence too
    tokens, _ = codec.encode([Note(2.5, 2.6, 60, 64, BASS)])
    assert [codec.shift_steps(t) for t in tokens if codec.is_shift(t)][:3] == [100, 100, 50]
    assert codec.decode(tokens)[0].start == pytest.approx(2.5)


def test_velocity_bins_round_trip():
    assert [codec.velocity_bin(v) for v in (0, 3, 4, 127, 200, -5)] == [0, 0, 1, 31, 31, 0]
    assert sorted({codec.velocity_bin(v) for v in range(128)}) == list(range(codec.VELOCITY_BINS))
    for b in range(codec.VELOCITY_BINS):
        assert codec.velocity_bin(codec.bin_velocity(b)) == b
        assert 1 <= codec.bin_velocity(b) <= 127
    notes = [Note(i * 0.05, i * 0.05 + 0.02, 60, v, PIANO) for i, v in enumerate(range(128))]
    tokens, _ = codec.encode(notes)
    vel_tokens = [t for t in tokens if codec.VEL0 <= t < codec.ON0]
    assert len(vel_tokens) == codec.VELOCITY_BINS, "a VELOCITY token only when the bin changes"
    decoded = codec.decode(tokens)
    assert len(decoded) == 128
    for source, note in zip(notes, decoded):
        assert codec.velocity_bin(note.velocity) == codec.velocity_bin(source.velocity)
        assert abs(note.velocity - source.velocity) < BIN_WIDTH


def test_encode_start_seconds_drops_earlier_notes_and_starts_clock():
    notes = [Note(0.5, 0.8, 60, 100, PIANO), Note(1.0, 2.5, 62, 100, PIANO),  # before the start
             Note(2.0, 2.2, 64, 100, PIANO), Note(3.0, 3.1, 38, 100, DRUMS)]
    tokens, seconds = codec.encode(notes, start_seconds=1.5)
    assert seconds[0] == pytest.approx(2.0) and seconds.min() >= 1.5
    assert codec.shift_steps(int(tokens[0])) == 50, "the clock starts at 1.5 s"
    decoded = codec.decode(tokens, start_seconds=1.5)
    assert [(n.start, n.pitch) for n in decoded] == [(pytest.approx(2.0), 64), (pytest.approx(3.0), 38)]
    assert decoded[0].end == pytest.approx(2.2)
    assert decoded[1].end == pytest.approx(3.0 + DRUM_NOTE_SECONDS)
    # decoding from zero shifts everything by the start
    assert codec.decode(tokens)[0].start == pytest.approx(0.5)


def test_encode_empty_and_off_before_on():
    tokens, seconds = codec.encode([])
    assert len(tokens) == 0 and len(seconds) == 0
    assert codec.decode([]) == []
    notes = [Note(0.0, 0.5, 60, 100, PIANO), Note(0.5, 1.0, 60, 100, PIANO)]  # back to back
    tokens, _ = codec.encode(notes)
    at_half = [int(t) for t in tokens[list(tokens).index(codec.shift_token(50)) + 1:][:2]]
    assert at_half == [codec.off_token(PIANO, 60), codec.on_token(PIANO, 60)]
    assert codec.decode(tokens) == [Note(0.0, 0.5, 60, 102, PIANO), Note(0.5, 1.0, 60, 102, PIANO)]


def test_decode_unreleased_notes_end_at_end_seconds():
    tokens = [codec.velocity_token(100), codec.on_token(STRINGS, 50), codec.shift_token(20)]
    assert codec.decode(tokens) == [Note(0.0, 0.2, 50, 102, STRINGS)]
    assert codec.decode(tokens, end_seconds=4.0) == [Note(0.0, 4.0, 50, 102, STRINGS)]
    # an ON for a sounding note ends the earlier one; a stray OFF is ignored
    tokens = [codec.on_token(GUITAR, 40), codec.shift_token(10), codec.on_token(GUITAR, 40),
              codec.off_token(BASS, 30), codec.shift_token(5), codec.off_token(GUITAR, 40)]
    notes = codec.decode(tokens)
    assert [(n.start, n.end) for n in notes] == [(0.0, 0.1), (0.1, pytest.approx(0.15))]
