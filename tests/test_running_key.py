"""Stay in key: the key heard from the notes played, and the sampler keeping to it."""
import numpy as np

from emsync.core import codec
from emsync.core.conditions import EmotionCurve
from emsync.core.features import MAJOR_SCALE, MINOR_SCALE
from emsync.core.music import DRUMS
from emsync.core.running_key import OUT_OF_KEY_WEIGHT, InKey, RunningKey
from emsync.core.tempo import fit_to_picture

from conftest import run_cli

G_MAJOR_TUNE = [67, 71, 74, 79, 72, 76, 74, 66, 67, 69, 71, 67]  # G B D G C E D F# G A B G
PIANO, BASS = 1, 3


def heard(tune, start=0.0):
    ear = RunningKey()
    for i, pitch in enumerate(tune):
        ear.observe(pitch, start + 0.5 * i)
    return InKey(ear), start + 0.5 * len(tune)


def test_notes_outside_the_key_heard_lose_half_their_probability_and_nothing_else_moves():
    key, clock = heard(G_MAJOR_TUNE)
    offsets = key.offsets(clock)
    assert key.ear.current_scale() == (7, True)
    lowered = np.flatnonzero(offsets)
    assert np.allclose(offsets[lowered], np.log(OUT_OF_KEY_WEIGHT))
    for instrument in (PIANO, BASS):
        assert offsets[codec.on_token(instrument, 65)] < 0  # F natural: outside G major
        assert offsets[codec.on_token(instrument, 66)] == 0  # F sharp: in it
        assert offsets[codec.on_token(instrument, 61)] < 0  # C sharp
    assert not offsets[codec.on_token(DRUMS, 37)]  # drums have no key
    assert set(lowered) <= set(range(codec.ON0, codec.OFF0))  # only note-ons: timing, velocity, releases alone
    outside = sum(p % 12 in (1, 3, 5, 8, 10) for p in range(codec.N_PITCH))  # C#, D#, F, G#, A#
    assert len(lowered) == len(codec.PITCHED) * outside


def test_a_minor_key_keeps_its_raised_seventh():
    key, clock = heard([69, 72, 76, 69, 74, 77, 76, 68, 69, 71, 72, 69])  # A minor with G sharp
    tonic, major = key.ear.current_scale()
    assert (tonic, major) == (9, False)
    offsets = key.offsets(clock)
    assert offsets[codec.on_token(PIANO, 68)] == 0 and offsets[codec.on_token(PIANO, 67)] == 0  # G sharp and G
    assert offsets[codec.on_token(PIANO, 70)] < 0  # B flat


def test_no_key_before_enough_notes_and_an_old_key_fades():
    assert InKey(RunningKey()).offsets(0.0) is None
    key, clock = heard(G_MAJOR_TUNE)
    assert key.offsets(clock + 60.0) is None  # a minute of silence: what was heard has faded ...
    assert key.ear.tonic is None  # ... tonic and all: the next music finds its own
    for i, pitch in enumerate([62, 66, 69, 74, 67, 71, 69, 61, 62]):  # D major after the rest
        key.ear.observe(pitch, clock + 60.0 + 0.5 * i)
    assert key.ear.current_scale() == (2, True)


def outside_the_key_heard(notes) -> float:
    """Share of pitched notes outside the scale of the key heard from the notes before them."""
    key, outside, judged = RunningKey(), 0, 0
    for note in sorted(notes, key=lambda n: n.start):
        if note.instrument == DRUMS:
            continue
        if key.heard(note.start):
            tonic, major = key.current_scale()
            judged += 1
            outside += (note.pitch - tonic) % 12 not in (MAJOR_SCALE if major else MINOR_SCALE)
        key.observe(note.pitch, note.start)
    return outside / max(judged, 1)


def test_the_products_sampler_plays_fewer_notes_outside_the_key(generator):
    # Measured against the key heard when each note was chosen (what the sampler acts on): the
    # share over one key for the whole piece also counts a piece that moved to another key.
    shares = {True: [], False: []}
    for seed, (valence, arousal) in enumerate([(-0.6, -0.4), (-0.6, 0.5), (0.6, -0.4), (0.6, 0.5), (0.0, 0.0)]):
        curve = EmotionCurve.constant(valence, arousal)
        tempo = fit_to_picture(12.0, [], curve)
        for stay in (True, False):
            notes = generator.generate(12.0, [], curve, seed=seed, tempo=tempo, stay_in_key=stay).notes
            shares[stay].append(outside_the_key_heard(notes))
    assert np.mean(shares[True]) < 0.6 * np.mean(shares[False]), shares


def test_chromatic_on_the_command_line_turns_it_off(tmp_path):
    written = {}
    for name, options in (("in_key", []), ("chromatic", ["--chromatic"])):
        out = tmp_path / name / "cue.mid"  # one name in two folders: the title track names the file
        out.parent.mkdir()
        result = run_cli("generate", "--duration", 8, "--valence", -0.5, "--arousal", 0.3, "--seed", 4, *options,
                         "-o", out)
        assert result.returncode == 0, result.stderr
        written[name] = out.read_bytes()
    assert written["in_key"] != written["chromatic"]
