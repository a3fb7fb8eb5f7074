"""The bundled ONNX generator, sampled with onnxruntime."""
import numpy as np
import pytest

from emsync_core import codec
from emsync_core.conditions import EmotionCurve
from emsync_core.errors import EmsyncError
from emsync_core.generator import MusicGenerator

CURVE = EmotionCurve.constant(0.5, 0.2)


def test_same_seed_same_music_other_seed_other_music(generator):
    a = generator.generate(6.0, [2.0, 4.0], CURVE, seed=3)
    b = generator.generate(6.0, [2.0, 4.0], CURVE, seed=3)
    c = generator.generate(6.0, [2.0, 4.0], CURVE, seed=4)
    assert a.tokens == b.tokens
    assert a.tokens != c.tokens


def test_stream_is_well_formed_and_fills_the_duration(generator):
    result = generator.generate(8.0, [3.0], CURVE, seed=1)
    sounding = set()
    for token in result.tokens:
        assert token not in (codec.PAD, codec.BOS)
        if codec.is_on(token):
            sounding.add(codec.on_target(token))
        elif codec.is_off(token):
            assert codec.off_target(token) in sounding, "released a note that was not sounding"
            sounding.discard(codec.off_target(token))
    assert result.clocks[-1] >= 8.0 - codec.STEP_SECONDS
    assert result.notes, "no notes generated"
    assert all(0 <= n.start < n.end <= 8.0 for n in result.notes)


def test_hit_cuts_puts_a_chord_onset_on_every_cut(generator):
    cuts = [1.37, 2.9, 5.55, 7.01]
    result = generator.generate(9.0, cuts, CURVE, seed=2, hit_cuts=True)
    for cut in cuts:
        pitched = [n for n in result.notes if abs(n.start - cut) < 0.006 and n.instrument != 0]
        assert len(pitched) >= 2, f"no chord on the cut at {cut}"


def test_continuation_keeps_the_prefix(generator):
    first = generator.generate(4.0, [2.0], CURVE, seed=5)
    more = generator.generate(8.0, [2.0, 6.0], CURVE, seed=6, prefix=first.tokens)
    assert more.tokens[: len(first.tokens)] == first.tokens
    assert more.new_from == len(first.tokens)
    assert more.clocks[-1] >= 8.0 - codec.STEP_SECONDS
    early = {(n.start, n.pitch, n.instrument) for n in first.notes if n.end < 3.9}
    later = {(n.start, n.pitch, n.instrument) for n in more.notes}
    assert early <= later


def test_long_generation_crosses_the_context_window(generator):
    block = generator.config["block_size"]
    result = generator.generate(60.0, [20.0, 40.0], CURVE, seed=7)
    assert len(result.tokens) > block, "expected more tokens than one context window"
    assert max(n.start for n in result.notes) > 50.0


@pytest.mark.parametrize("kwargs, field", [
    ({"duration": 0}, "duration"),
    ({"duration": 5, "temperature": 0}, "temperature"),
    ({"duration": 5, "prefix": [codec.VOCAB_SIZE + 3]}, "prefix"),
])
def test_bad_requests_are_named(generator, kwargs, field):
    args = {"cuts": [], "emotion": CURVE} | kwargs
    with pytest.raises(EmsyncError, match=field):
        generator.generate(**args)


def test_missing_or_foreign_model_file(tmp_path):
    with pytest.raises(EmsyncError, match="not found"):
        MusicGenerator(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(EmsyncError, match="junk.onnx"):
        MusicGenerator(junk)


def test_valence_guidance_holds_back_the_other_modes_third_and_sixth():
    from emsync_core.generator import _ModeGuide

    guide = _ModeGuide(4.0, seed=0)
    for step, pitch in enumerate([60, 64, 67, 65, 69, 72, 67, 71, 74, 60, 64, 67]):  # C major: I IV V I
        guide.push(codec.on_token(1, pitch), step * 10)
    sad, happy = guide.tilt(-0.5), guide.tilt(0.5)
    assert guide.tonic == 0
    lowered = {codec.on_target(t)[1] % 12 for t in np.flatnonzero(sad < 0)}
    assert lowered == {4, 9} and sad.min() == pytest.approx(-2.0) and sad.max() == 0
    assert {codec.on_target(t)[1] % 12 for t in np.flatnonzero(happy < 0)} == {3, 8}
    assert guide.tilt(0.0) is None and _ModeGuide(0.0, seed=0).tilt(0.8) is None
    for step, pitch in enumerate([63, 67, 70, 63, 68, 72], start=20):  # now C minor (reads as Eb major)
        guide.push(codec.on_token(1, pitch), step * 10)
    guide.tilt(-0.5)
    assert guide.tonic == 0, "a move to the parallel mode keeps the tonic"
