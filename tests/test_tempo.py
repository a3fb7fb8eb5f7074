"""Tempo maps fitted to picture, and MIDI written on them."""
from __future__ import annotations

import math

import mido
import numpy as np
import pytest

from emsync.core.conditions import EmotionCurve, grid_bins, grid_points
from emsync.core.errors import EmsyncError
from emsync.core.midi_io import read_midi, read_midi_file, write_midi
from emsync.core.music import Note
from emsync.core.tempo import BPM_RANGE, MAX_CHANGE, ON_BEAT, Meter, TempoMap, fit_to_picture, preferred_bpm


def _off_beat(tempo: TempoMap, time: float) -> float:
    """Seconds from `time` to the nearest beat of the map."""
    beats = tempo.beat_times(time + 5.0)
    return float(np.min(np.abs(beats - time)))


@pytest.mark.parametrize("text, meter", [("4/4", Meter(4, 4)), ("3/4", Meter(3, 4)), (" 6 / 8 ", Meter(6, 8))])
def test_meters_parse(text, meter):
    assert Meter.parse(text) == meter and str(meter) == text.replace(" ", "")


@pytest.mark.parametrize("text", ["4", "4/5", "0/4", "x/y", "17/4"])
def test_bad_meters_name_the_field(text):
    with pytest.raises(EmsyncError, match="meter"):
        Meter.parse(text)


def test_a_constant_map_and_its_grid():
    tempo = TempoMap.constant(90.0, Meter(3, 4))
    assert tempo.quarters_at(2.0) == pytest.approx(3.0) and tempo.seconds_at(3.0) == pytest.approx(2.0)
    assert np.allclose(np.diff(tempo.grid(4.0)), 60 / 90 / 4)
    assert np.allclose(np.diff(tempo.bar_times(10.0)), 3 * 60 / 90)
    times, slots = tempo.grid_points(4.0)
    assert slots[:13].tolist() == [*range(12), 0], "12 sixteenths to a 3/4 bar"
    with pytest.raises(EmsyncError, match="bpm"):
        TempoMap.constant(5.0)


def test_grid_bins_say_how_far_the_next_sixteenth_is():
    times, slots = grid_points(np.arange(0.0, 4.01, 0.5), np.arange(9) % 4 == 0)
    bins = grid_bins(np.array([0.0, 0.06, 0.49, 2.0, 9.0]), times, slots)
    assert bins.tolist() == [[0, 0], [6, 1], [1, 4], [0, 0], [41, 24]]


def test_arousal_sets_the_tempo_range():
    assert preferred_bpm(-1) < preferred_bpm(0) < preferred_bpm(1)
    calm = fit_to_picture(60.0, [], EmotionCurve.constant(0.0, -0.8))
    excited = fit_to_picture(60.0, [], EmotionCurve.constant(0.0, 0.8))
    assert calm.bpms == (round(preferred_bpm(-0.8)),) and excited.bpms == (round(preferred_bpm(0.8)),)


def test_cuts_a_whole_number_of_bars_apart_keep_one_tempo_and_land_on_bar_lines():
    tempo = fit_to_picture(40.0, [8.0, 16.0, 24.0, 32.0], EmotionCurve.constant(0.0, 0.0))
    assert len(tempo.bpms) == 1
    for cut in (8.0, 16.0, 24.0, 32.0):
        beat = tempo.beats_at(cut)
        assert abs(beat - round(beat)) < 1e-6 and round(beat) % 4 == 0, (cut, beat)


@pytest.mark.parametrize("seed", range(12))
def test_fitted_maps_on_unseen_cut_lists(seed):
    """Random cut lists, emotions and meters: tempos plausible, changes bounded, cuts on beats."""
    rng = np.random.default_rng(seed)
    duration = float(rng.uniform(20, 240))
    cuts = np.sort(rng.uniform(0.5, duration - 0.5, int(rng.integers(1, 40))))
    curve = EmotionCurve(np.concatenate([[0.0], cuts]), rng.uniform(-1, 1, len(cuts) + 1),
                         rng.uniform(-1, 1, len(cuts) + 1))
    meter = [Meter(4, 4), Meter(3, 4), Meter(6, 8), Meter(5, 4)][seed % 4]
    tempo = fit_to_picture(duration, cuts, curve, meter)
    assert tempo.meter == meter and tempo.starts[0] == 0.0
    assert all(BPM_RANGE[0] - 1e-9 <= b <= BPM_RANGE[1] + 1e-9 for b in tempo.bpms)
    ratios = [abs(math.log2(b / a)) for a, b in zip(tempo.bpms, tempo.bpms[1:])]
    assert all(r <= math.log2(MAX_CHANGE) + 1e-9 for r in ratios)
    assert set(tempo.starts[1:]) <= set(cuts.tolist()), "tempo changes only at cuts"
    spaced = [c for i, c in enumerate(cuts) if i == 0 or c - cuts[i - 1] >= 2.0]
    on = np.mean([_off_beat(tempo, c) <= ON_BEAT for c in spaced])
    assert on >= 0.7, f"{on:.2f} of well-spaced cuts on a beat"


def test_a_written_six_eight_grid_has_twelve_sixteenths_to_the_bar(tmp_path):
    tempo = TempoMap.constant(90.0, Meter(6, 8))  # quarter = 90: an eighth lasts 1/3 s
    path = write_midi(tmp_path / "six-eight.mid", [Note(0.0, 8.0, 60, 80, 1)], tempo=tempo)
    beats, downbeats, units = read_midi_file(path).beats()
    assert np.allclose(np.diff(beats), 1 / 3) and units.tolist() == [8] * len(beats)
    assert downbeats[:7].tolist() == [True, False, False, False, False, False, True]
    times, slots = grid_points(beats, downbeats, 16 // units)
    assert np.allclose(np.diff(times), 1 / 6) and slots[:13].tolist() == [*range(12), 0]
    assert np.allclose(times, tempo.grid(float(beats[-1]))), "the corpus's grid is the one the generator writes on"


def test_midi_is_written_on_the_map(tmp_path):
    tempo = fit_to_picture(30.0, [7.0, 15.5], EmotionCurve.constant(0.0, 0.3), Meter(3, 4))
    grid = tempo.grid(30.0)
    notes = [Note(float(t), float(t) + 0.2, 60 + i % 12, 80, 1) for i, t in enumerate(grid[::3][:60])]
    path = write_midi(tmp_path / "cue.mid", notes, [(7.0, "cut 1"), (15.5, "cut 2")], tempo)
    midi = mido.MidiFile(path)
    conductor = midi.tracks[0]
    written = [mido.tempo2bpm(m.tempo) for m in conductor if m.type == "set_tempo"]
    assert written == pytest.approx(list(tempo.bpms), rel=1e-5)
    signature = next(m for m in conductor if m.type == "time_signature")
    assert (signature.numerator, signature.denominator) == (3, 4)
    back = read_midi(path)
    assert np.allclose([n.start for n in back], [n.start for n in notes], atol=2e-3)
    ticks = [t for t, _, m in read_midi_file(path).tracks[0].events if m.type == "note_on" and m.velocity]
    assert all(t % (midi.ticks_per_beat // 4) == 0 for t in ticks), "grid notes sit on written 16ths"
    markers = read_midi_file(path).markers
    assert [round(m[0], 3) for m in markers] == [7.0, 15.5]


def test_a_constant_map_writes_what_a_bpm_always_wrote(tmp_path):
    notes = [Note(0.5, 1.0, 60, 90, 1), Note(1.25, 2.0, 64, 70, 3)]
    (tmp_path / "a").mkdir()
    a = write_midi(tmp_path / "cue.mid", notes, [(1.0, "cut")], 120.0).read_bytes()
    b = write_midi(tmp_path / "a" / "cue.mid", notes, [(1.0, "cut")], TempoMap.constant(120.0)).read_bytes()
    assert a == b


def test_tempo_maps_round_trip_and_bad_ones_are_named():
    tempo = fit_to_picture(30.0, [7.0, 15.5], None, Meter(6, 8))
    assert TempoMap.from_dict(tempo.to_dict()) == tempo
    with pytest.raises(EmsyncError, match="tempo"):
        TempoMap.from_dict({"starts": [0.0], "bpms": [1e9]})


def test_snapping_puts_every_note_on_the_grid_and_keeps_it_playable():
    tempo = TempoMap((0.0, 4.0), (120.0, 90.0))
    rng = np.random.default_rng(3)
    notes = sorted(Note(float(s), float(s + d), int(p), 80, int(i)) for s, d, p, i in
                   zip(rng.uniform(0, 9.95, 300), rng.uniform(0.005, 0.8, 300), rng.integers(40, 80, 300),
                       rng.integers(0, 5, 300)))
    cut = 6.07  # a hit off the grid is a point of its own (one within a quarter of a 16th of it is not)
    snapped = tempo.snap(notes, 10.0, [cut, 4.0])
    points = np.union1d(tempo.grid(10.0), [cut, 10.0])
    for note in snapped:
        assert np.min(np.abs(points - note.start)) < 1e-9 and np.min(np.abs(points - note.end)) < 1e-9
        assert note.start < 10.0 and note.end - note.start >= 60 / 120 / 4 / 4 - 1e-9, note
    keys = [(n.instrument, n.pitch, n.start) for n in snapped]
    assert len(keys) == len(set(keys)) and snapped == sorted(snapped)
    assert len(snapped) > 0.8 * len(notes)


def test_a_session_from_before_tempo_maps_keeps_its_music_where_it_was(tmp_path):
    import json

    from emsync.service.session import Session

    old = Session(tmp_path)
    old.set_scenes(8.0, [], [], None)
    old.add_version("generate", [Note(0.5, 1.0, 60, 90, 1)], 0, {"seed": 1})
    data = json.loads((tmp_path / "session.json").read_text())
    data["settings"] = {k: v for k, v in data["settings"].items() if k not in ("meter", "on_grid")} | {"bpm": 96.0}
    (tmp_path / "session.json").write_text(json.dumps(data))
    reopened = Session(tmp_path)
    assert reopened.settings["bpm"] == 96.0, "a tempo the user chose stays"
    assert reopened.current().tempo() == TempoMap.constant(96.0), "its music was written at that tempo"
    data["settings"]["bpm"] = 120.0  # the old default: new music gets a fitted map
    (tmp_path / "session.json").write_text(json.dumps(data))
    assert Session(tmp_path).settings["bpm"] == 0.0
