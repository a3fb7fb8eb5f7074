"""`emsync data build`: boundary rule, bass split, estimate spreading and the whole build
on a small synthetic corpus laid out like ../shared/data/midi."""
import csv
import json

import mido
import numpy as np
import pytest

from emsync.core import codec

from emsync.training import corpus
from emsync.core.errors import EmsyncError
from emsync.core.music import DRUMS, INSTRUMENTS, Note

PIANO, BASS, STRINGS, GUITAR = (INSTRUMENTS.index(n) for n in ("piano", "bass", "strings", "guitar"))
TPB, BPM = 480, 120.0  # 960 ticks per second


def piano(start, length, *pitches, instrument=PIANO):
    return [Note(start, start + length, p, 80, instrument) for p in pitches]


# ---------------------------------------------------------------- find_boundaries


def test_held_three_note_chord_is_a_boundary():
    assert corpus.find_boundaries(piano(2.0, 0.6, 48, 52, 55)) == [2.0]
    assert corpus.find_boundaries(piano(2.0, 1.5, 48, 52, 55, 60)) == [2.0]


def test_onsets_within_30ms_form_one_chord():
    notes = [Note(2.0, 3.0, 48, 80, PIANO), Note(2.02, 3.0, 52, 80, PIANO), Note(2.03, 3.0, 55, 80, PIANO)]
    assert corpus.find_boundaries(notes) == [2.0]
    spread = [Note(2.0, 3.0, 48, 80, PIANO), Note(2.05, 3.0, 52, 80, PIANO), Note(2.1, 3.0, 55, 80, PIANO)]
    assert corpus.find_boundaries(spread) == []


def test_short_or_thin_chords_are_not_boundaries():
    staccato = [n for t in np.arange(0.0, 8.0, 0.5) for n in piano(float(t), 0.15, 48, 52, 55)]
    assert corpus.find_boundaries(staccato) == []
    assert corpus.find_boundaries(piano(1.0, 0.59, 48, 52, 55)) == []  # just under 0.6 s
    assert corpus.find_boundaries(piano(1.0, 2.0, 48, 55)) == []  # two notes, no chord change
    # median length decides: two short notes outvote one long one
    mixed = piano(1.0, 2.0, 48) + piano(1.0, 0.2, 52, 55)
    assert corpus.find_boundaries(mixed) == []


def test_drums_do_not_make_boundaries():
    drums = [Note(1.0, 2.0, p, 100, DRUMS) for p in (36, 38, 42, 49)]
    assert corpus.find_boundaries(drums) == []
    assert corpus.find_boundaries(drums + piano(1.0, 0.8, 60, 64, 67)) == [1.0]


def test_two_note_chord_on_a_chord_change_is_a_boundary():
    dyad = piano(3.0, 0.45, 45, 52)
    assert corpus.find_boundaries(dyad, [3.0]) == [3.0]
    assert corpus.find_boundaries(dyad, [1.0, 3.05]) == [3.0]  # within +-60 ms
    assert corpus.find_boundaries(dyad, [2.95]) == [3.0]
    assert corpus.find_boundaries(dyad, [3.08]) == []  # too far from the change
    assert corpus.find_boundaries(dyad, [2.92]) == []
    assert corpus.find_boundaries(dyad, []) == []
    assert corpus.find_boundaries(piano(3.0, 0.35, 45, 52), [3.0]) == []  # not held long enough
    assert corpus.find_boundaries(piano(3.0, 1.0, 45), [3.0]) == []  # a single note is no chord


def test_boundaries_keep_their_distance_and_the_stronger_wins():
    weak = piano(1.0, 0.7, 48, 52, 55)  # 3 x 0.7 = 2.1
    strong = piano(2.0, 1.2, 48, 52, 55, 60)  # 4 x 1.2 = 4.8
    assert corpus.find_boundaries(weak + strong) == [2.0]
    # order of the notes does not matter, only the strength
    assert corpus.find_boundaries(strong[::-1] + weak[::-1]) == [2.0]
    weak_late = piano(3.2, 0.7, 48, 52, 55)
    assert corpus.find_boundaries(strong + weak_late) == [2.0]
    # exactly the minimum gap apart: both kept
    gap = corpus.MIN_BOUNDARY_GAP
    assert corpus.find_boundaries(strong + piano(2.0 + gap, 0.7, 48, 52, 55)) == [2.0, 2.0 + gap]


def test_boundaries_of_a_dense_song_respect_the_gap():
    rng = np.random.default_rng(0)
    notes = []
    for t in np.cumsum(rng.uniform(0.3, 1.2, 60)):
        notes += piano(float(t), float(rng.uniform(0.3, 1.5)), *rng.choice(np.arange(40, 80), rng.integers(1, 5),
                                                                           replace=False).tolist())
    changes = np.cumsum(rng.uniform(0.5, 2.0, 30)).tolist()
    found = corpus.find_boundaries(notes, changes)
    assert found == sorted(found)
    assert len(found) >= 3
    assert np.all(np.diff(found) >= corpus.MIN_BOUNDARY_GAP - 1e-9)
    onsets = {n.start for n in notes}
    assert set(found) <= onsets


# ---------------------------------------------------------------- split_bass


def test_split_bass_moves_only_the_lowest_low_piano_note_of_each_onset():
    notes = (piano(0.0, 1.0, 36, 43, 60)  # 36 -> bass, 43 stays piano
             + piano(1.0, 1.0, 50, 60)  # nothing under the ceiling
             + piano(2.0, 1.0, corpus.BASS_CEILING, 55)  # the ceiling itself is not below it
             + piano(3.0, 1.0, 40, instrument=STRINGS)  # not piano
             + [Note(3.001, 4.0, 45, 80, PIANO), Note(3.002, 4.0, 41, 80, PIANO)]  # same onset (10 ms key)
             + [Note(4.0, 4.1, 35, 100, DRUMS)])
    out = corpus.split_bass(notes)
    assert len(out) == len(notes)
    assert out == sorted(out)
    moved = {(n.start, n.pitch) for n in out if n.instrument == BASS}
    assert moved == {(0.0, 36), (3.002, 41)}
    before = {(n.start, n.end, n.pitch, n.velocity) for n in notes}
    after = {(n.start, n.end, n.pitch, n.velocity) for n in out}
    assert before == after, "split_bass must only change instruments"
    assert sum(n.instrument == STRINGS for n in out) == 1
    assert sum(n.instrument == DRUMS for n in out) == 1
    assert corpus.split_bass([]) == []


# ---------------------------------------------------------------- estimated emotion


def test_estimated_valence_follows_the_mode_and_arousal_the_density():
    """Unlabelled music: minor harmony reads as lower valence than the same harmony in major,
    and the same progression played four times as densely as higher arousal."""
    from emsync.core.features import EmotionEstimator

    def piece(third: int, step: float) -> corpus.Piece:
        notes = []
        for k, t in enumerate(np.arange(0, 36, step)):
            root = 60 + (0, 5, 7, 0)[int(t // 2) % 4]
            notes += [Note(t, t + step, p, 80, 1) for p in (root, root + third, root + 7)]
        return corpus.Piece(f"p{third}{step}", "pop909", "x.mid", notes)

    estimator = EmotionEstimator([4.0, 0.5, 0.0, 0.0], [1.0, 1.0, 0.5, 0.0])
    curves = {name: corpus.emotion_curve_of(piece(third, step), estimator)
              for name, third, step in (("major", 4, 1.0), ("minor", 3, 1.0), ("busy", 4, 0.25))}
    assert len(curves["major"][0]) > 3, "a curve over sliding windows, not one value"
    assert np.mean(curves["major"][1]) > np.mean(curves["minor"][1])
    assert np.mean(curves["busy"][2]) > np.mean(curves["major"][2])


# ---------------------------------------------------------------- spread_estimates


def test_spread_estimates_centres_and_scales_only_the_estimated_curves():
    rng = np.random.default_rng(1)
    curves = {}
    for i in range(6):
        times = (np.arange(8) * 6.0 + 6.0).tolist()
        curves[f"est{i}"] = (times, (0.5 + 0.1 * rng.uniform(-1, 1, 8)).tolist(),
                             (-0.2 + 0.05 * rng.uniform(-1, 1, 8)).tolist())
    human = ([0.0, 5.0], [0.9, 0.8], [-0.9, -0.7])
    curves["human"] = human
    estimated = [f"est{i}" for i in range(6)]
    original = dict(curves)
    corpus.spread_estimates(curves, estimated)
    assert curves["human"] == human
    for axis in (1, 2):
        values = np.concatenate([curves[i][axis] for i in estimated])
        assert abs(values.mean()) < 1e-6
        assert values.std() == pytest.approx(corpus.ESTIMATE_STD, rel=1e-5)
        assert np.all(np.abs(values) <= 1.0)
    for i in estimated:
        assert curves[i][0] == original[i][0]  # times untouched
    # order within the corpus is kept (a monotone map)
    before = np.concatenate([original[j][1] for j in estimated])
    after = np.concatenate([curves[j][1] for j in estimated])
    assert np.array_equal(np.argsort(before, kind="stable"), np.argsort(after, kind="stable"))


def test_spread_estimates_handles_constant_and_empty_input():
    curves = {"a": ([0.0, 1.0], [0.3, 0.3], [0.25, 0.25]), "b": ([0.0], [0.3], [0.25])}
    corpus.spread_estimates(curves, ["a", "b"])  # zero spread: centred, no division by zero
    assert np.allclose(curves["a"][1] + curves["b"][1], 0.0)
    assert np.allclose(curves["a"][2] + curves["b"][2], 0.0)
    single = {"only": ([0.0], [0.7], [-0.3])}  # one window: exactly zero spread
    corpus.spread_estimates(single, ["only"])
    assert single["only"] == ([0.0], [0.0], [0.0])
    untouched = {"c": ([0.0], [0.5], [0.5])}
    corpus.spread_estimates(untouched, [])
    assert untouched == {"c": ([0.0], [0.5], [0.5])}


def test_spread_estimates_centres_a_constant_curve_with_float_noise():
    curves = {"a": ([0.0, 1.0, 2.0], [0.1, 0.1, 0.1], [0.1, 0.1, 0.1])}
    corpus.spread_estimates(curves, ["a"])
    assert np.allclose(curves["a"][1], 0.0) and np.allclose(curves["a"][2], 0.0)


def test_spread_estimates_clips_outliers_to_the_unit_range():
    curves = {"a": (list(range(20)), [0.0] * 19 + [10.0], [0.0] * 19 + [-10.0])}
    corpus.spread_estimates(curves, ["a"], target_std=0.9)
    assert max(curves["a"][1]) == 1.0 and min(curves["a"][2]) == -1.0


# ---------------------------------------------------------------- the whole build


def write_midi(path, tracks, midi_type=1):
    """tracks: [(name, channel, program, [(start_s, end_s, pitch, velocity), ...])] at 120 bpm."""
    path.parent.mkdir(parents=True, exist_ok=True)
    midi = mido.MidiFile(type=midi_type, ticks_per_beat=TPB)
    ticks = TPB * BPM / 60.0
    conductor = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(BPM), time=0)])
    if midi_type == 1:
        midi.tracks.append(conductor)
    for name, channel, program, notes in tracks:
        events = []
        for start, end, pitch, velocity in notes:
            events.append((round(start * ticks), 1, mido.Message("note_on", channel=channel, note=pitch,
                                                                 velocity=velocity)))
            events.append((round(end * ticks), 0, mido.Message("note_on", channel=channel, note=pitch, velocity=0)))
        track = mido.MidiTrack() if midi_type == 1 else conductor
        track.append(mido.MetaMessage("track_name", name=name, time=0))
        track.append(mido.Message("program_change", channel=channel, program=program, time=0))
        now = 0
        for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=0))
        if midi_type == 1:
            midi.tracks.append(track)
    if midi_type == 0:
        midi.tracks.append(conductor)
    midi.save(str(path))


def write_pop909_song(folder, song, seconds=24.0, root=48):
    """Held piano chords every 4 s (bass note under C3), a melody, a bridge line,
    chord changes every 2 s and beats every 0.5 s."""
    melody = [(t, t + 0.25, 72 + [0, 2, 4, 7][int(t * 4) % 4], 100) for t in np.arange(0.0, seconds, 0.25)]
    bridge = [(t + 0.5, t + 1.0, 67, 90) for t in np.arange(0.0, seconds, 2.0)]
    chords = []
    for t in np.arange(0.0, seconds, 4.0):
        chords += [(t, t + 1.5, root - 12, 70), (t, t + 1.5, root + 4, 70), (t, t + 1.5, root + 7, 70),
                   (t, t + 1.5, root + 12, 70)]
        chords += [(t + 2.0, t + 2.25, root + 4, 60), (t + 2.0, t + 2.25, root + 7, 60)]
    d = folder / "pop909" / song
    write_midi(d / f"{song}.mid", [("MELODY", 0, 0, melody), ("BRIDGE", 1, 0, bridge), ("PIANO", 2, 0, chords)])
    rows = []
    labels = ["C:maj", "C:maj", "A:min", "F:maj", "G:maj", "G:maj"]
    for i, t in enumerate(np.arange(0.0, seconds, 2.0)):
        rows.append(f"{t:.6f}\t{t + 2.0:.6f}\t{labels[i % len(labels)]}")
    (d / "chord_midi.txt").write_text("\n".join(rows) + "\n")
    (d / "beat_midi.txt").write_text("".join(f"{t} {float(i % 2)} {float(i % 4 == 0)}\n"
                                             for i, t in enumerate(np.arange(0.0, seconds, 0.5))))


def vgmidi_notes(major: bool, fast: bool, tonic: int, seconds=20.0):
    third = 4 if major else 3
    if fast:
        step, length, velocity = 0.125, 0.1, 112
    else:
        step, length, velocity = 1.0, 0.95, 40
    scale = [0, 2, 4, 5, 7, 9, 11] if major else [0, 2, 3, 5, 7, 8, 10]
    notes = []
    for k, t in enumerate(np.arange(0.0, seconds, step)):
        degree = [0, third, 7][k % 3] if not fast else scale[k % 7]
        notes.append((float(t), float(t + length), 60 + tonic + degree, velocity))
    for t in np.arange(0.0, seconds, 2.0):  # the triad underneath, every 2 s
        notes += [(float(t), float(t + 1.9), 48 + tonic + d, velocity - 10) for d in (0, third, 7)]
    return notes


VG_COUNT = 25


def write_vgmidi(folder):
    root = folder / "vgmidi"
    rows, names, labels = [], [], {}
    for i in range(VG_COUNT):
        major, fast = i % 2 == 0, (i // 2) % 2 == 0
        name = f"Game_SNES_Series_Piece {i:02d}.mid"
        write_midi(root / "labelled" / "midi" / name,
                   [("Lead", 0, 0, vgmidi_notes(major, fast, tonic=i % 7))])
        valence, arousal = (1 if major else -1), (1 if fast else -1)
        labels[name] = (valence, arousal)
        names.append(name)
        for phrase in range(2 if i % 3 == 0 else 1):
            stem = name[:-4]
            rows.append({"id": str(1000 + len(rows)), "series": "Series", "console": "SNES", "game": "Game",
                         "piece": f"Piece {i:02d}", "midi": f"labelled/phrases/{stem}_{phrase}.mid",
                         "valence": valence, "arousal": arousal})
    with open(root / "vgmidi_labelled.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    # raw annotator curves for the first five pieces (two annotators each, unequal lengths)
    pieces, annotations = {}, {}
    for k in range(5):
        pieces[f"piece{k}"] = {"audio": f"audio/{k}.wav", "duration": 20, "measures": 10, "midi": names[k],
                               "name": f"Piece {k}"}
        v, a = labels[names[k]]
        annotations[f"piece{k}_1"] = {"valence": [0.5 * v] * 10, "arousal": [0.4 * a] * 10, "age": "21-25"}
        annotations[f"piece{k}_2"] = {"valence": [0.7 * v] * 12, "arousal": [0.6 * a] * 12, "age": "26-30"}
    pieces["piece9"] = {"audio": "x.wav", "duration": 20, "measures": 0, "midi": names[6], "name": "no measures"}
    annotations["piece9_1"] = {"valence": [1.0] * 4, "arousal": [1.0] * 4}
    ann = root / "labelled" / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    (ann / "vgmidi_raw_1.json").write_text(json.dumps({"pieces": pieces, "annotations": annotations}))
    return names, labels


GROOVE_ROWS = [
    # drummer, file, bpm, beat_type, time signature, split
    ("drummer1", "session1/1_rock_120_beat_4-4.mid", 120, "beat", "4-4", "train"),
    ("drummer1", "session1/2_funk_120_beat_4-4.mid", 120, "beat", "4-4", "test"),
    ("drummer1", "session1/3_rock_120_fill_4-4.mid", 120, "fill", "4-4", "train"),
    ("drummer1", "session1/4_jazz_120_beat_3-4.mid", 120, "beat", "3-4", "train"),
]


def groove_notes(seconds=16.0, shift=0.0):
    notes = []
    for t in np.arange(0.0, seconds, 0.25):
        notes.append((t + shift, t + shift + 0.05, 42, 80))
        if int(t * 4) % 8 == 0:
            notes.append((t + shift, t + shift + 0.05, 36, 110))
        if int(t * 4) % 8 == 4:
            notes.append((t + shift, t + shift + 0.05, 38, 105))
    return notes


def write_groove(folder, rows=GROOVE_ROWS):
    root = folder / "groove"
    fields = ["drummer", "session", "id", "style", "bpm", "beat_type", "time_signature", "midi_filename",
              "audio_filename", "duration", "split"]
    out = []
    for k, (drummer, name, bpm, beat_type, signature, split) in enumerate(rows):
        midi_filename = f"{drummer}/{name}"
        write_midi(root / midi_filename, [("MIDI", 9, 0, groove_notes(shift=0.01 * k))], midi_type=0)
        session = midi_filename.rsplit("/", 1)[0]
        out.append({"drummer": drummer, "session": session, "id": f"{session}/{k}", "style": "rock/groove",
                    "bpm": bpm, "beat_type": beat_type, "time_signature": signature,
                    "midi_filename": midi_filename, "audio_filename": midi_filename[:-4] + ".wav",
                    "duration": 16.0, "split": split})
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "info.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(out)


POP_SONGS = ["001", "002", "003", "013"]  # 013 hashes into the validation split


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    src = tmp_path_factory.mktemp("midi")
    for k, song in enumerate(POP_SONGS):
        write_pop909_song(src, song, root=45 + k)
    # a corrupt song and a song folder without its .mid (ignored silently)
    (src / "pop909" / "005").mkdir(parents=True)
    (src / "pop909" / "005" / "005.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (src / "pop909" / "006").mkdir(parents=True)
    names, labels = write_vgmidi(src)
    (src / "vgmidi" / "labelled" / "midi" / "Broken_NES_Broken_Theme.mid").write_bytes(b"not a midi file at all")
    write_groove(src)
    out = tmp_path_factory.mktemp("built")
    stats = corpus.build(src, out, workers=1)
    pieces = [json.loads(line) for line in (out / "pieces.jsonl").read_text().splitlines()]
    return {"src": src, "out": out, "stats": stats, "pieces": pieces, "names": names, "labels": labels}


def test_build_writes_one_line_per_piece(built):
    pieces = built["pieces"]
    ids = [p["id"] for p in pieces]
    expected = ({f"pop909/{s}" for s in POP_SONGS} | {f"vgmidi/{n[:-4]}" for n in built["names"]}
                | {"groove/drummer1/session1/1_rock_120_beat_4-4.mid", "groove/drummer1/session1/2_funk_120_beat_4-4.mid"})
    assert set(ids) == expected
    assert len(ids) == len(expected)
    for p in pieces:
        for key in ("source", "licence", "valence", "arousal", "duration", "split", "corpus", "notes",
                    "emotion_from", "boundaries"):
            assert key in p, key
        assert p["licence"] == corpus.LICENCES[p["corpus"]]
        assert p["split"] in ("train", "valid")
        assert -1.0 <= p["valence"] <= 1.0 and -1.0 <= p["arousal"] <= 1.0
        assert p["duration"] > 0 and p["notes"] > 0
    by_id = {p["id"]: p for p in pieces}
    assert by_id["pop909/013"]["split"] == "valid"
    assert by_id["pop909/001"]["split"] == "train"
    assert by_id["groove/drummer1/session1/1_rock_120_beat_4-4.mid"]["split"] == "train"
    assert by_id["groove/drummer1/session1/2_funk_120_beat_4-4.mid"]["split"] == "valid"  # "test" in info.csv
    assert by_id["pop909/001"]["source"].endswith("pop909/001/001.mid")
    assert by_id["pop909/001"]["duration"] == pytest.approx(24.0, abs=0.01)
    assert by_id["pop909/001"]["emotion_from"] == "estimated"
    assert by_id["pop909/001"]["boundaries"] >= 5  # a held 4-note chord every 4 s


def test_build_uses_human_labels_for_vgmidi(built):
    by_id = {p["id"]: p for p in built["pieces"]}
    for k, name in enumerate(built["names"]):
        p = by_id[f"vgmidi/{name[:-4]}"]
        v, a = built["labels"][name]
        assert p["emotion_from"] == "human"
        if k < 5:  # mean of the annotators' curves (truncated to the shorter one)
            assert p["valence"] == pytest.approx(0.6 * v, abs=1e-3)
            assert p["arousal"] == pytest.approx(0.5 * a, abs=1e-3)
        else:  # piece-level label, damped
            assert p["valence"] == pytest.approx(0.6 * v, abs=1e-3)
            assert p["arousal"] == pytest.approx(0.6 * a, abs=1e-3)


def test_build_stats(built):
    stats = built["stats"]
    on_disk = json.loads((built["out"] / "stats.json").read_text())
    assert on_disk == json.loads(json.dumps(stats))
    assert set(stats["splits"]) == {"train", "valid"}
    for split in ("train", "valid"):
        counts = {}
        for p in built["pieces"]:
            if p["split"] == split:
                counts[p["corpus"]] = counts.get(p["corpus"], 0) + 1
        by_corpus = stats["splits"][split]["by_corpus"]
        assert {k: v["pieces"] for k, v in by_corpus.items()} == counts
        for kind, entry in by_corpus.items():
            assert entry["hours"] >= 0 and entry["boundaries"] == sum(
                p["boundaries"] for p in built["pieces"] if p["split"] == split and p["corpus"] == kind)
    assert stats["splits"]["train"]["by_corpus"]["pop909"]["pieces"] == 3
    assert stats["splits"]["valid"]["by_corpus"]["pop909"]["pieces"] == 1
    assert stats["splits"]["valid"]["by_corpus"]["groove"]["pieces"] == 1
    assert "boundary_rule" in stats and "1.5 s" in stats["boundary_rule"]
    estimator = stats["emotion_estimator"]
    assert estimator["labelled_pieces"] == VG_COUNT
    assert estimator["arousal"]["cv_sign_accuracy"] >= 0.9
    assert estimator["valence"]["cv_sign_accuracy"] >= 0.8
    assert estimator["arousal"]["cv_pearson_with_raw_curve_mean"] is not None
    assert set(estimator["weights"]) == {"valence", "arousal"}
    assert len(estimator["weights"]["arousal"]) == 4
    assert estimator["weights"]["arousal"][0] > 0  # denser music -> more arousal
    dist = stats["emotion_distribution"]
    assert -1 <= dist["valence_mean"] <= 1 and dist["arousal_std"] > 0


def test_build_reports_corrupt_files_and_skips_them(built):
    problems = built["stats"]["problems"]
    assert len(problems) == 2
    assert any("005.mid" in p for p in problems)
    assert any("Broken_NES_Broken_Theme.mid" in p for p in problems)
    ids = {p["id"] for p in built["pieces"]}
    assert "pop909/005" not in ids and "pop909/006" not in ids
    assert not any("Broken" in i for i in ids)


def _split(out, name):
    with np.load(out / f"{name}.npz") as data:
        return {k: data[k] for k in data.files}


def _part(arrays, name, i):
    offsets = arrays[name + "_offsets"]
    return arrays[name][offsets[i]:offsets[i + 1]]


def test_build_split_arrays(built):
    out = built["out"]
    pieces = built["pieces"]
    for split in ("train", "valid"):
        arrays = _split(out, split)
        names = {"notes", "tokens", "boundaries", "beats", "downbeats", "beat_sixteenths", "curve"}
        assert set(arrays) == names | {n + "_offsets" for n in names} | {"corpus", "bpm"}
        chosen = [p for p in pieces if p["split"] == split]
        n = len(chosen)
        assert len(arrays["corpus"]) == n and len(arrays["bpm"]) == n
        assert sorted(arrays["corpus"].tolist()) == sorted(p["corpus"] for p in chosen)
        for name in names:
            offsets = arrays[name + "_offsets"]
            assert offsets.shape == (n + 1,) and offsets[0] == 0 and offsets[-1] == len(arrays[name])
            assert np.all(np.diff(offsets) >= 0)
        assert arrays["notes"].ndim == 2 and arrays["notes"].shape[1] == 5
        assert arrays["curve"].ndim == 2 and arrays["curve"].shape[1] == 3
        assert arrays["tokens"].dtype == np.int16
        assert arrays["tokens"].min() > codec.BOS and arrays["tokens"].max() < codec.VOCAB_SIZE
        assert built["stats"]["splits"][split]["tokens"] == len(arrays["tokens"])
        assert np.all(np.abs(arrays["curve"][:, 1:]) <= 1.0)
        for i, kind in enumerate(arrays["corpus"]):
            notes = _part(arrays, "notes", i)
            assert len(notes) > 0 and np.all(notes[:, 1] >= notes[:, 0])
            beats, downbeats = _part(arrays, "beats", i), _part(arrays, "downbeats", i)
            assert len(beats) == len(downbeats) == len(_part(arrays, "beat_sixteenths", i))
            assert np.all(np.diff(beats) > 0) and np.all(_part(arrays, "beat_sixteenths", i) == 4)
            if kind != "groove":  # POP909's annotated beats (a bar every 4 here), VGMIDI's written 4/4 grid
                assert len(beats) > 8 and downbeats[:8].tolist() == [1, 0, 0, 0, 1, 0, 0, 0]
            if kind == "groove":
                assert arrays["bpm"][i] == 120.0
                assert len(_part(arrays, "boundaries", i)) == 0
                assert np.all(notes[:, 4] == DRUMS)
            else:
                assert arrays["bpm"][i] == 0.0
            if kind == "pop909":
                assert len(_part(arrays, "beats", i)) == 48
                bounds = _part(arrays, "boundaries", i)
                assert len(bounds) >= 5 and np.all(np.diff(bounds) >= corpus.MIN_BOUNDARY_GAP - 1e-6)
                instruments = set(notes[:, 4].astype(int).tolist())
                assert {PIANO, BASS, STRINGS, GUITAR} <= instruments  # PIANO/MELODY/BRIDGE + split bass
                assert notes[notes[:, 4] == BASS, 2].max() < corpus.BASS_CEILING


def test_build_pieces_match_arrays(built):
    """Per-piece counts in pieces.jsonl agree with the arrays, in file order."""
    pieces = built["pieces"]
    for split in ("train", "valid"):
        arrays = _split(built["out"], split)
        chosen = [p for p in pieces if p["split"] == split]
        for i, p in enumerate(chosen):
            assert arrays["corpus"][i] == p["corpus"]
            assert len(_part(arrays, "notes", i)) == p["notes"]
            assert len(_part(arrays, "boundaries", i)) == p["boundaries"]
            curve = _part(arrays, "curve", i)
            assert float(np.mean(curve[:, 1])) == pytest.approx(p["valence"], abs=2e-3)


def test_build_without_the_source_folder_raises(tmp_path):
    with pytest.raises(EmsyncError, match="not found"):
        corpus.build(tmp_path / "missing", tmp_path / "out", workers=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmsyncError, match="no pop909"):
        corpus.build(tmp_path / "empty", tmp_path / "out", workers=1)


def test_groove_ids_are_unique_across_drummers(tmp_path):
    rows = [("drummer1", "eval_session/1_funk_120_beat_4-4.mid", 120, "beat", "4-4", "test"),
            ("drummer7", "eval_session/1_funk_120_beat_4-4.mid", 120, "beat", "4-4", "test")]
    write_groove(tmp_path, rows)
    pieces, problems = corpus.collect_pieces(tmp_path, workers=1)
    assert not problems and len(pieces) == 2
    assert len({p.id for p in pieces}) == 2


def test_pop909_bar_lines_come_from_the_column_that_marks_bars():
    four = [[f"{i * 0.5}", f"{float(i % 2 == 0)}", f"{float(i % 4 == 0)}"] for i in range(24)]
    assert corpus.pop909_downbeats(four) == [i % 4 == 0 for i in range(24)]
    # songs in 3/4: strong beats every 3 beats, the third column every 6 (every other bar)
    three = [[f"{i * 0.5}", f"{float(i % 3 == 0)}", f"{float(i % 6 == 0)}"] for i in range(24)]
    assert corpus.pop909_downbeats(three) == [i % 3 == 0 for i in range(24)]
