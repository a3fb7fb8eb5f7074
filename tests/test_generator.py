"""The bundled ONNX generator, sampled with onnxruntime."""
import numpy as np
import pytest

from emsync.core import codec
from emsync.core.conditions import NO_BOUNDARY, EmotionCurve
from emsync.core.errors import EmsyncError
from emsync.core.generator import GRID_GUIDE_SECONDS, MAX_NOTE_SECONDS, MusicGenerator, default_model_path
from emsync.core.music import DRUMS, Note
from emsync.core.tempo import Meter, TempoMap, fit_to_picture

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
    longest = max(n.end - n.start for n in result.notes if n.instrument != DRUMS)
    # released at the first event past MAX_NOTE_SECONDS: at most one time shift (1 s) later
    assert longest <= MAX_NOTE_SECONDS + codec.MAX_SHIFT_STEPS * codec.STEP_SECONDS + 1e-6


@pytest.mark.parametrize("tempo, cuts", [
    (TempoMap.constant(87.0, Meter(4, 4)), [3.33]),  # a cut off the grid is a place to start a note too
    (fit_to_picture(12.0, [2.9, 7.4], EmotionCurve.constant(0.0, 0.8), Meter(6, 8)), [2.9, 7.4]),
])
def test_notes_start_only_on_the_grid_when_following_it(generator, tempo, cuts):
    result = generator.generate(12.0, cuts, CURVE, seed=3, tempo=tempo)
    points = np.union1d(tempo.grid(13.0), cuts)
    onsets = np.array([n.start for n in result.notes])
    assert onsets.size > 20
    distance = np.min(np.abs(onsets[:, None] - points[None, :]), axis=1)
    assert distance.max() <= GRID_GUIDE_SECONDS + 1e-6
    free = generator.generate(12.0, cuts, CURVE, seed=3, tempo=tempo, follow_grid=False)
    free_onsets = np.array([n.start for n in free.notes])
    assert np.min(np.abs(free_onsets[:, None] - points[None, :]), axis=1).max() > GRID_GUIDE_SECONDS, \
        "the model alone strays from the grid somewhere: otherwise this test shows nothing"


def test_hits_on_the_grid_and_on_every_cut_together(generator):
    tempo = TempoMap.constant(100.0, Meter(3, 4))
    cuts = [1.37, 4.2]  # off the grid
    result = generator.generate(6.0, cuts, CURVE, seed=2, hit_cuts=True, tempo=tempo)
    for cut in cuts:
        assert len([n for n in result.notes if abs(n.start - cut) < 0.006 and n.instrument != DRUMS]) >= 2


@pytest.mark.parametrize("kwargs, field", [
    ({"duration": 0}, "duration"),
    ({"duration": 5, "temperature": 0}, "temperature"),
    ({"duration": 5, "prefix": [codec.VOCAB_SIZE + 3]}, "prefix"),
])
def test_bad_requests_are_named(generator, kwargs, field):
    args = {"boundaries": [], "emotion": CURVE} | kwargs
    with pytest.raises(EmsyncError, match=field):
        generator.generate(**args)


def test_a_lone_generation_runs_on_two_threads_and_side_by_side_ones_on_one_each():
    """The CLI's generation steps on two threads (up to a fifth faster on two cores, model card) that
    stop spinning when a step ends; regeneration's takes, which run side by side, step on one
    each and start on a session whose threads do not spin; a fixed thread count puts
    everything on one session. Which session runs a generation never changes its music."""
    from emsync.core.onnx_models import usable_cpus

    generator = MusicGenerator()
    threads = {use: generator.session(use).get_session_options().intra_op_num_threads
               for use in ("alone", "beside", "start")}
    assert threads == {"alone": min(2, usable_cpus()), "beside": 1, "start": min(2, usable_cpus())}
    if usable_cpus() >= 2:
        assert len({id(generator.session(use)) for use in ("alone", "beside", "start")}) == 3
        assert generator.session("start").get_session_options().get_session_config_entry(
            "session.intra_op.allow_spinning") == "0"
    # the lone generation's threads sleep at the end of each step (a live player, a DAW, an idle server)
    assert generator.session("alone").get_session_options().get_session_config_entry(
        "session.force_spinning_stop") == "1"
    exported = MusicGenerator(default_model_path())   # torch's graph: steps and starts on one session a use
    assert exported.session("beside").get_session_options().intra_op_num_threads == 1
    alone = generator.generate(8.0, [3.0], CURVE, seed=5)
    beside = generator.generate(8.0, [3.0], CURVE, seed=5, alone=False)
    assert alone.tokens == beside.tokens and len(alone.tokens) > 100
    fixed = MusicGenerator(threads=1)
    assert len({id(fixed.session(use)) for use in ("alone", "beside", "start")}) == 1
    assert fixed.generate(8.0, [3.0], CURVE, seed=5).tokens == alone.tokens


def test_missing_or_foreign_model_file(tmp_path):
    with pytest.raises(EmsyncError, match="not found"):
        MusicGenerator(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(EmsyncError, match="junk.onnx"):
        MusicGenerator(junk)


def test_the_bundled_model_steps_a_cache_written_in_place_like_one_pass():
    """The shipped runtime copy: token-by-token steps after a start give the distributions of
    one pass over the same tokens, for two emotions at once and on a grid (int8 arithmetic
    quantizes one row and many rows a little differently, as the previous graph did), and a
    full context says so in one line."""
    generator = MusicGenerator()
    assert generator.precision == "int8"
    notes = [Note(i * 0.25, i * 0.25 + 0.2, 60 + (0, 4, 7, 12)[i % 4], 80, 1 + i % 2) for i in range(40)]
    song = [codec.BOS, *codec.encode(notes)[0][:80]]
    wanted = np.stack([np.tile([0.6, 0.3], (len(song), 1)), np.tile([-0.5, -0.2], (len(song), 1))])
    offsets = np.arange(len(song)) % 80
    grid = np.stack([np.arange(len(song)) % 25, np.arange(len(song)) % 16], axis=1)
    whole = generator.forward(song, wanted, offsets, grid)
    decoder = generator.decoder(2)
    first = decoder.start(song[:50], wanted[:, :50], offsets[:50], grid[:50])
    steps = [decoder.step(song[i], wanted[:, i], int(offsets[i]), grid[i]).copy() for i in range(50, len(song))]
    stepped = np.concatenate([first, np.stack(steps, axis=1)], axis=1).astype(np.float64)

    def log_softmax(x):
        x = x - x.max(axis=-1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))

    p, q = log_softmax(whole.astype(np.float64)), log_softmax(stepped)
    assert (np.exp(p) * (p - q)).sum(axis=-1).mean() < 1e-3
    assert (stepped.argmax(-1) == whole.argmax(-1)).mean() > 0.95
    block = generator.config["block_size"]
    full = generator.decoder()
    full.start([5] * block, np.zeros((block, 2)), [0] * block, None)
    with pytest.raises(EmsyncError, match="context is full"):
        full.step(5, np.zeros((1, 2)), 0, None)


def test_emotion_guidance_runs_the_mirrored_emotion_beside_and_pushes_away_from_it():
    generator = MusicGenerator()
    notes = [Note(i * 0.5, i * 0.5 + 0.4, 60 + (0, 4, 7, 12)[i % 4], 80, 1) for i in range(16)]
    song = [codec.BOS, *codec.encode(notes)[0][:60]]
    wanted = np.tile([0.7, -0.4], (len(song), 1))
    offsets = np.full(len(song), NO_BOUNDARY)
    both = generator.forward(song, np.stack([wanted, -wanted]), offsets)
    alone = generator.forward(song, wanted, offsets)
    mirrored = generator.forward(song, -wanted, offsets)
    assert both.shape == (2, len(song), codec.VOCAB_SIZE)
    np.testing.assert_allclose(both[0], alone[0], atol=1e-3)
    np.testing.assert_allclose(both[1], mirrored[0], atol=1e-3)
    guided = generator.guided(both[:, -1], 1.0)
    np.testing.assert_allclose(guided, 2 * alone[0, -1] - mirrored[0, -1], atol=1e-3)
    runs = [generator.generate(4.0, [2.0], EmotionCurve.constant(0.7, -0.4), seed=1, emotion_guidance=1.0)
            for _ in range(2)]
    assert runs[0].notes and runs[0].tokens == runs[1].tokens

def test_a_shift_off_the_grid_gives_its_probability_to_the_nearest_landing_one():
    from emsync.core.generator import _onto_grid

    landing = np.zeros(400, dtype=bool)
    landing[::25] = True  # a grid point every 250 ms, nothing in between
    steps = np.flatnonzero(landing)
    allowed = np.ones(codec.VOCAB_SIZE, dtype=bool)
    sources, destinations = _onto_grid(landing, steps, 50, allowed)
    moved = dict(zip((sources - codec.SHIFT0 + 1).tolist(), (destinations - codec.SHIFT0 + 1).tolist()))
    assert moved[1] == 25 and moved[12] == 25 and moved[13] == 25 and moved[37] == 25 and moved[38] == 50
    assert moved[99] == 100 and 25 not in moved and 50 not in moved, "shifts landing on the grid stay"
    allowed[codec.shift_token(50)] = False  # e.g. a cut to land on first: that destination is barred
    sources, destinations = _onto_grid(landing, steps, 50, allowed)
    assert codec.shift_token(50) not in destinations.tolist()
