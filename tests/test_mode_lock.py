"""Valence picks the mode: the running key estimate and the parallel-mode move."""
import numpy as np

from emsync_core.conditions import EmotionCurve
from emsync_core.features import music_features
from emsync_core.mode_lock import ModeLock
from emsync_core.score import DRUMS

C_MAJOR_TUNE = [60, 64, 67, 72, 65, 69, 72, 67, 64, 62, 59, 60]  # C E G C F A C G E D B C
C_MINOR_TUNE = [60, 63, 67, 72, 65, 68, 72, 67, 63, 62, 59, 60]  # C Eb G C F Ab C G Eb D B C


def primed(tune, valence=0.0):
    """A lock that has heard `tune` (half a second a note) played as it was."""
    lock = ModeLock()
    for i, pitch in enumerate(tune):
        lock.observe(pitch, 0.5 * i)
    return lock, 0.5 * len(tune)


def test_negative_valence_turns_major_thirds_and_sixths_minor():
    lock, clock = primed(C_MAJOR_TUNE)
    played = [lock.place(p, -0.7, clock + 0.25 * i) for i, p in enumerate([64, 76, 69, 67, 62, 65, 60])]
    assert played == [63, 75, 68, 67, 62, 65, 60]  # E, E', A down; G D F C kept
    assert lock.tonic == 0


def test_positive_valence_turns_minor_thirds_and_sixths_major():
    lock, clock = primed(C_MINOR_TUNE)
    played = [lock.place(p, 0.7, clock + 0.25 * i) for i, p in enumerate([63, 68, 67, 60, 74])]
    assert played == [64, 69, 67, 60, 74]


def test_neutral_valence_and_music_already_in_the_mode_are_left_alone():
    lock, clock = primed(C_MAJOR_TUNE)
    assert [lock.place(p, 0.05, clock + i) for i, p in enumerate(C_MAJOR_TUNE)] == C_MAJOR_TUNE
    lock, clock = primed(C_MAJOR_TUNE)
    assert [lock.place(p, 0.8, clock + 0.25 * i) for i, p in enumerate(C_MAJOR_TUNE)] == C_MAJOR_TUNE


def test_tonic_holds_after_the_move_so_the_move_is_not_undone():
    # C major moved to C minor fits E-flat major about as well; the tonic must stay C, or the
    # next notes would be moved relative to E-flat.
    lock, clock = primed(C_MAJOR_TUNE)
    for i in range(4):
        for j, pitch in enumerate(C_MAJOR_TUNE):
            lock.place(pitch, -0.8, clock + 6.0 * i + 0.5 * j)
    assert lock.tonic == 0
    assert lock.place(64, -0.8, clock + 30.0) == 63


def test_too_little_evidence_moves_nothing():
    lock = ModeLock()
    assert lock.place(64, -0.8, 0.0) == 64  # one note says nothing about the key


def test_generation_with_the_lock_follows_valence_in_the_mode(generator):
    evidence = {}
    for valence in (-0.8, 0.8):
        curve = EmotionCurve.constant(valence, 0.0)
        evidence[valence] = np.mean([
            music_features(generator.generate(12.0, [6.0], curve, seed=seed, lock_mode=True).notes,
                           0.0, 12.0).major_minus_minor for seed in range(3)])
    assert evidence[-0.8] < 0 < evidence[0.8], evidence


def test_lock_hears_the_prefix(generator):
    curve = EmotionCurve.constant(-0.8, 0.0)
    first = generator.generate(6.0, [], EmotionCurve.constant(0.8, 0.0), seed=4)
    more = generator.generate(12.0, [], curve, seed=5, prefix=first.tokens, lock_mode=True)
    assert more.tokens[:len(first.tokens)] == first.tokens
    lock = ModeLock()
    for note in sorted(first.notes, key=lambda n: n.start):
        if note.instrument != DRUMS:
            lock.observe(note.pitch, note.start)
    tonic = lock.current_tonic()
    new = [n for n in more.notes if n.start >= 6.0 and n.instrument != DRUMS]
    assert new
    # under negative valence no new note sits on the prefix key's major third or sixth, at least
    # until the tonic could have moved (the first second after the prefix)
    early = [n for n in new if n.start < 7.0]
    assert all((n.pitch - tonic) % 12 not in (4, 9) for n in early), (tonic, [n.pitch for n in early])
