"""Valence picks the mode: the running key estimate and the parallel-mode move."""
from emsync.core import codec
from emsync.core.conditions import EmotionCurve
from emsync.core.mode_lock import ModeLock
from emsync.core.music import Note

C_MAJOR_TUNE = [60, 64, 67, 72, 65, 69, 72, 67, 64, 62, 59, 60]  # C E G C F A C G E D B C
C_MINOR_TUNE = [60, 63, 67, 72, 65, 68, 72, 67, 63, 62, 59, 60]  # C Eb G C F Ab C G Eb D B C


def primed(tune):
    """A lock that has heard `tune` (half a second a note) played as it was."""
    lock = ModeLock()
    for i, pitch in enumerate(tune):
        lock.observe(pitch, 0.5 * i)
    return lock, 0.5 * len(tune)


def play(lock, pitches, valence, clock, gap=0.25):
    """What the lock makes of `pitches` chosen one after another, each played as moved."""
    played = []
    for i, pitch in enumerate(pitches):
        played.append(lock.moved(pitch, valence, clock + gap * i))
        lock.observe(played[-1], clock + gap * i)
    return played


def test_negative_valence_turns_major_thirds_and_sixths_minor():
    lock, clock = primed(C_MAJOR_TUNE)
    assert play(lock, [64, 76, 69, 67, 62, 65, 60], -0.7, clock) == [63, 75, 68, 67, 62, 65, 60]
    assert lock.tonic == 0


def test_positive_valence_turns_minor_thirds_and_sixths_major():
    lock, clock = primed(C_MINOR_TUNE)
    assert play(lock, [63, 68, 67, 60, 74], 0.7, clock) == [64, 69, 67, 60, 74]


def test_neutral_valence_and_music_already_in_the_mode_are_left_alone():
    lock, clock = primed(C_MAJOR_TUNE)
    assert play(lock, C_MAJOR_TUNE, 0.05, clock, gap=1.0) == C_MAJOR_TUNE
    lock, clock = primed(C_MAJOR_TUNE)
    assert play(lock, C_MAJOR_TUNE, 0.8, clock) == C_MAJOR_TUNE


def test_tonic_holds_after_the_move_so_the_move_is_not_undone():
    # C major moved to C minor fits E-flat major about as well; the tonic must stay C, or the
    # next notes would be moved relative to E-flat.
    lock, clock = primed(C_MAJOR_TUNE)
    for i in range(4):
        play(lock, C_MAJOR_TUNE, -0.8, clock + 6.0 * i, gap=0.5)
    assert lock.tonic == 0
    assert lock.moved(64, -0.8, clock + 30.0) == 63


def test_too_little_evidence_moves_nothing():
    assert ModeLock().moved(64, -0.8, 0.0) == 64  # no notes heard: no key to move against


def test_generation_moves_the_major_third_heard_in_the_prefix(generator):
    # A C major prefix, then music under negative valence with and without the lock, same seed:
    # both sample alike until the first note the lock moves, which must be E or A a semitone down
    # (outside the key heard, so the default sampler makes them rare: the lock alone is tested).
    tune = [Note(0.5 * i, 0.5 * i + 0.45, p, 80, 1) for i, p in enumerate(C_MAJOR_TUNE * 2)]
    prefix, _ = codec.encode(tune, 0.0)
    prefix = [int(t) for t in prefix]
    curve = EmotionCurve.constant(-0.8, 0.0)
    free = generator.generate(20.0, [], curve, seed=3, prefix=prefix, stay_in_key=False)
    locked = generator.generate(20.0, [], curve, seed=3, prefix=prefix, lock_mode=True, stay_in_key=False)
    assert locked.tokens[:len(prefix)] == prefix
    first = next(i for i, (a, b) in enumerate(zip(free.tokens, locked.tokens)) if a != b)
    assert first >= len(prefix)
    (instrument, chosen), (same, played) = codec.on_target(free.tokens[first]), codec.on_target(locked.tokens[first])
    assert same == instrument and chosen % 12 in (4, 9) and played == chosen - 1
