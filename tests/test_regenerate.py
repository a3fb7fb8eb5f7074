"""Regenerating a time range: prefix continuation, the seam, notes outside left alone, and the
takes sampled in parallel threads."""
import io
import threading
import time

import mido
import pytest

from emsync.core import codec
from emsync.core.conditions import EmotionCurve
from emsync.core.errors import EmsyncError
from emsync.core.midi_io import TICKS_PER_BEAT, midi_bytes
from emsync.core.generator import Cancelled
from emsync.core.onnx_models import usable_cpus
from emsync.core.regenerate import (density_mismatch, harmony_agreement, prefix_tokens,
                                    regenerate, split_notes, take_threads, _borda)
from emsync.core.music import Note

DURATION = 10.0
CUTS = [3.0, 6.0]
CURVE = EmotionCurve([0.0, 6.0], [0.5, -0.4], [0.2, 0.5])


@pytest.fixture(scope="module")
def base(generator):
    return generator.generate(DURATION, CUTS, CURVE, seed=11).notes


@pytest.fixture(scope="module")
def middle(generator, base):
    return regenerate(generator, base, DURATION, 3.5, 6.5, CUTS, CURVE, seed=4, candidates=2)


def track_events(data: bytes, drop_onsets=None) -> list[list[tuple[int, bytes]]]:
    """Per track: (absolute tick, raw message bytes) of every event. With `drop_onsets`
    (lo, hi), the note-ons in [lo, hi) ticks and their note-offs are left out: those notes
    belong to the range, wherever their release falls."""
    tracks = []
    for track in mido.MidiFile(file=io.BytesIO(data)).tracks:
        tick, events, onsets = 0, [], {}
        for msg in track:
            tick += msg.time
            if msg.type == "end_of_track":  # sits after the last note, wherever that now is
                continue
            if msg.type in ("note_on", "note_off"):
                key = (msg.channel, msg.note)
                if msg.type == "note_on" and msg.velocity:
                    onsets.setdefault(key, []).append(tick)
                    if drop_onsets and drop_onsets[0] <= tick < drop_onsets[1]:
                        continue
                else:
                    onset = onsets.get(key, [None]).pop(0) if onsets.get(key) else None
                    if drop_onsets and onset is not None and drop_onsets[0] <= onset < drop_onsets[1]:
                        continue
            events.append((tick, bytes(msg.bin())))
        tracks.append(events)
    return tracks


def track_chunks(data: bytes) -> list[bytes]:
    """The raw bytes of each MTrk chunk."""
    chunks, index = [], 14
    while index < len(data):
        size = int.from_bytes(data[index + 4:index + 8], "big")
        chunks.append(data[index + 8:index + 8 + size])
        index += 8 + size
    return chunks


def assert_midi_identical_outside(old: bytes, new: bytes, start: float, end: float, bpm: float = 120.0):
    ticks = bpm / 60 * TICKS_PER_BEAT
    start_tick, end_tick = round(start * ticks), round(end * ticks)
    old_tracks = track_events(old, (start_tick, end_tick))
    new_tracks = track_events(new, (start_tick, end_tick))
    assert len(old_tracks) == len(new_tracks)
    for number, (a, b) in enumerate(zip(old_tracks, new_tracks)):
        assert [e for e in a if e[0] < start_tick] == [e for e in b if e[0] < start_tick], f"track {number} before"
        assert [e for e in a if e[0] > end_tick] == [e for e in b if e[0] > end_tick], f"track {number} after"
        assert [e for e in a if e[0] == end_tick and e[1][0] & 0xF0 == 0x90] == \
            [e for e in b if e[0] == end_tick and e[1][0] & 0xF0 == 0x90], f"track {number} onsets on the end"
    # Literally byte for byte: each track chunk is the same up to its first event in the range.
    compared = 0
    for number, (a, b, events) in enumerate(zip(track_chunks(old), track_chunks(new), track_events(old))):
        first = next((i for i, e in enumerate(events) if e[0] >= start_tick), len(events))
        head = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
        track = [m for m in mido.MidiFile(file=io.BytesIO(old)).tracks[number] if m.type != "end_of_track"]
        head.tracks.append(mido.MidiTrack(track[:first]))
        buffer = io.BytesIO()
        head.save(file=buffer)
        prefix = track_chunks(buffer.getvalue())[0][:-4]  # without the end-of-track mido adds
        assert a.startswith(prefix) and b.startswith(prefix), f"track {number}: bytes before the range differ"
        compared += len(prefix)
    assert compared > 100, "too little music before the range to compare"


def test_notes_outside_the_range_stay_identical(base, middle):
    before, inside, after = split_notes(base, 3.5, 6.5)
    new_before, new_inside, new_after = split_notes(middle.notes, 3.5, 6.5)
    assert before and after and inside, "the base score should have music on all three sides"
    assert new_before == before and new_after == after
    assert all(a is b for a, b in zip(new_before, before)), "kept notes are the very same objects"
    assert new_inside == middle.new_notes and middle.new_notes, "the range got new music"
    assert all(3.5 <= n.start < 6.5 and n.end <= 6.5 + 1e-9 for n in middle.new_notes)
    assert (middle.start, middle.end) == (3.5, 6.5)


def test_exported_midi_is_byte_identical_outside_the_range(base, middle):
    assert_midi_identical_outside(midi_bytes(base), midi_bytes(middle.notes), 3.5, 6.5)


def test_each_take_is_judged_at_the_seam_and_the_choice_is_reproducible(generator, base, middle):
    stats = middle.stats
    assert len(stats["candidates"]) == 2
    for take in stats["candidates"]:
        assert take["seam_logprob"] < 0 and 0 <= take["harmony"] <= 1 and take["density"] >= 0
    chosen = min(stats["candidates"], key=lambda c: (c["votes"], -c["seam_logprob"]))
    assert middle.seed == chosen["seed"]
    again = regenerate(generator, base, DURATION, 3.5, 6.5, CUTS, CURVE, seed=4, candidates=2)
    assert again.notes == middle.notes and again.seed == middle.seed


def test_range_to_the_end_and_from_the_start(generator, base):
    tail = regenerate(generator, base, DURATION, 8.5, DURATION, CUTS, CURVE, seed=2, candidates=3)
    assert len(tail.candidates) == 1 and tail.candidates[0].seam_logprob is None, "no seam: one take"
    assert split_notes(tail.notes, 8.5, DURATION + 1)[0] == split_notes(base, 8.5, DURATION + 1)[0]
    head = regenerate(generator, base, DURATION, 0.0, 1.5, CUTS, CURVE, seed=3, candidates=1)
    assert split_notes(head.notes, 0.0, 1.5)[2] == split_notes(base, 0.0, 1.5)[2]
    assert all(n.start < 1.5 for n in head.new_notes)


def test_prefix_ends_on_the_range_start_with_ringing_notes_held():
    notes = [Note(0.0, 1.0, 60, 80, 1), Note(0.5, 3.0, 64, 70, 2), Note(1.5, 1.6, 36, 100, 0), Note(1.9, 2.0, 67, 90, 4)]
    tokens, clocks = prefix_tokens(notes, 2.0)
    assert clocks[-1] == pytest.approx(2.0) and max(clocks) == pytest.approx(2.0)
    sounding = set()
    for token in tokens:
        if codec.is_on(token) and codec.on_target(token)[0] != 0:
            sounding.add(codec.on_target(token))
        elif codec.is_off(token):
            sounding.discard(codec.off_target(token))
    assert sounding == {(2, 64)}, "the guitar note ringing over the start stays held"
    decoded = codec.decode(tokens, end_seconds=2.0)
    assert Note(0.0, 1.0, 60, 80, 1) in [Note(n.start, n.end, n.pitch, 80, n.instrument) for n in decoded]
    assert prefix_tokens([], 1.234)[1][-1] == pytest.approx(1.23)


def test_seam_criteria():
    a = [Note(0.0, 1.0, 60, 80, 1), Note(0.0, 1.0, 64, 80, 1)]
    b = [Note(0.0, 1.0, 61, 80, 1), Note(0.0, 1.0, 66, 80, 3)]
    assert harmony_agreement(a, a, 0, 1) == pytest.approx(1.0)
    assert harmony_agreement(a, b, 0, 1) == pytest.approx(0.0)
    assert harmony_agreement([], a, 0, 1) == 0.5
    assert density_mismatch(a, a, 0, 1) == 0 < density_mismatch(a, b, 0, 1)
    assert _borda([3.0, 1.0, 3.0], True) == [0.5, 2.0, 0.5]


@pytest.mark.parametrize("kwargs, field", [
    ({"start": -1, "end": 2}, "start"),
    ({"start": 4, "end": 4}, "end"),
    ({"start": 4, "end": 4.05}, "end"),
    ({"start": 4, "end": 11}, "end"),
    ({"start": 1, "end": 2, "candidates": 0}, "candidates"),
])
def test_bad_ranges_are_named(generator, base, kwargs, field):
    with pytest.raises(EmsyncError, match=field):
        regenerate(generator, base, DURATION, boundaries=CUTS, emotion=CURVE, **kwargs)


def test_progress_rises_and_cancel_stops_within_a_token(generator, base):
    cancel = threading.Event()
    seen = []

    def progress(fraction):
        seen.append(fraction)
        if len(seen) == 20:
            cancel.set()

    with pytest.raises(Cancelled):
        regenerate(generator, base, DURATION, 2.0, 9.0, CUTS, CURVE, candidates=2, progress=progress, cancel=cancel)
    assert 20 <= len(seen) <= 21
    assert seen == sorted(seen) and 0 <= seen[0] and seen[-1] < 0.5


@pytest.fixture(scope="module")
def takes_both_ways(generator, base):
    """Three takes of [4, 6.5) one after another, then on two threads (with its progress heard)."""
    heard = []
    sequential = regenerate(generator, base, DURATION, 4.0, 6.5, CUTS, CURVE, seed=7, candidates=3, workers=1)
    parallel = regenerate(generator, base, DURATION, 4.0, 6.5, CUTS, CURVE, seed=7, candidates=3, workers=2,
                          progress=heard.append)
    return sequential, parallel, heard


def test_parallel_takes_are_the_sequential_takes(takes_both_ways):
    sequential, parallel, _ = takes_both_ways

    def described(result):
        return [(c.seed, c.notes, c.seam_logprob, c.harmony, c.density, c.votes) for c in result.candidates]

    assert len(parallel.candidates) == 3
    assert parallel.notes == sequential.notes and parallel.seed == sequential.seed
    assert described(parallel) == described(sequential)
    assert all(c.seconds > 0 for c in parallel.candidates)


def test_parallel_progress_rises_within_0_and_1_and_ends_on_1(takes_both_ways):
    heard = takes_both_ways[2]
    assert len(heard) > 10
    assert all(0 <= f <= 1 for f in heard) and heard == sorted(heard)
    assert heard[-1] == 1.0


def test_cancel_on_one_thread_stops_every_take(generator, base):
    cancel = threading.Event()
    seen = []

    def progress(fraction):
        seen.append(fraction)
        cancel.set()

    began = time.perf_counter()
    with pytest.raises(Cancelled):
        regenerate(generator, base, DURATION, 2.0, 9.0, CUTS, CURVE, candidates=3, workers=2, progress=progress,
                   cancel=cancel)
    assert 1 <= len(seen) <= 2, "the other thread may have passed its check for the token, no more"
    assert time.perf_counter() - began < 5.0, "three 7 s takes were not sampled to the end"


def test_a_failing_take_stops_the_others_and_its_error_is_raised(generator, base):
    class Refused(Exception):
        pass

    seen = []

    def progress(fraction):
        seen.append(fraction)
        if len(seen) == 5:
            raise Refused("from the progress callback")

    with pytest.raises(Refused):
        regenerate(generator, base, DURATION, 2.0, 9.0, CUTS, CURVE, candidates=3, workers=2, progress=progress)
    assert len(seen) <= 6


def test_takes_run_on_one_thread_more_than_the_cpus_unless_told():
    assert take_threads(8) == min(8, usable_cpus() + 1)
    assert take_threads(1) == 1  # never more threads than takes
    assert take_threads(3, workers=1) == 1 and take_threads(3, workers=5) == 3
