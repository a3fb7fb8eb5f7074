"""Training side: window sampling, the KV cache, the ONNX export and resumable training.

Everything runs on a tiny model and a tiny synthetic corpus (built with corpus.build),
so the file stays light on a busy 2-core machine. The window tests need numpy only; the
rest need torch and skip, one by one, where it is not installed.
"""
import json
import math
from importlib.util import find_spec

import numpy as np
import onnxruntime as ort
import pytest

from emsync.core import codec
from emsync.core.conditions import N_GRID_AHEAD, N_GRID_SLOTS, N_OFFSET_BINS, NO_BOUNDARY, NO_GRID_AHEAD, NO_GRID_SLOT
from emsync.core.decoding import cache_names
from emsync.core.midi_io import write_midi
from emsync.core.music import DRUMS, INSTRUMENTS, Note
from emsync.training import corpus
from emsync.training.windows import (MODE_SPAN_SECONDS, MODE_SWAP_VALENCE, WINDOW_SECONDS, TempoWarp, WindowSampler,
                                     inside, mode_swap_spans, opening_valence, swap_mode, window_key)

needs_torch = pytest.mark.skipif(find_spec("torch") is None, reason="needs torch (pip install 'emsync[train]')")

TINY_FIELDS = dict(n_layer=2, n_head=2, n_embd=64, n_cond=16, block_size=64, dropout=0.1)  # the tiny GeneratorConfig
BLOCK = TINY_FIELDS["block_size"]
PIANO, STRINGS = INSTRUMENTS.index("piano"), INSTRUMENTS.index("strings")
SONGS = ["001", "002", "003", "013"]  # 013 hashes into the validation split
HISTORY = {"tokens": 1234, "seconds": 2.5, "steps": 7}


def _song(seconds: float, root: int) -> list[Note]:
    notes = [Note(float(t), float(t) + 0.2, 72 + [0, 2, 4, 7][int(t * 4) % 4], 100, STRINGS)
             for t in np.arange(0.0, seconds, 0.25)]
    for t in np.arange(0.0, seconds, 3.0):
        notes += [Note(float(t), float(t) + 1.2, root + d, 70, PIANO) for d in (-12, 4, 7, 12)]
    return notes


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    src = tmp_path_factory.mktemp("midi")
    for k, song in enumerate(SONGS):
        folder = src / "pop909" / song
        folder.mkdir(parents=True)
        write_midi(folder / f"{song}.mid", _song(30.0, 45 + k))
        (folder / "chord_midi.txt").write_text("".join(f"{t:.6f}\t{t + 3.0:.6f}\t{'CFGA'[i % 4]}:maj\n"
                                                       for i, t in enumerate(np.arange(0.0, 30.0, 3.0))))
        (folder / "beat_midi.txt").write_text("".join(f"{t} {float(i % 2)} 0.0\n"
                                                      for i, t in enumerate(np.arange(0.0, 30.0, 0.5))))
    groove = src / "groove"
    drums = [Note(float(t), float(t) + 0.05, 36 if int(t * 2) % 2 == 0 else 38, 100, DRUMS)
             for t in np.arange(0.0, 16.0, 0.5)]
    (groove / "drummer1" / "session1").mkdir(parents=True)
    write_midi(groove / "drummer1" / "session1" / "1_rock_120_beat_4-4.mid", drums)
    (groove / "info.csv").write_text(
        "drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,duration,split\n"
        "drummer1,drummer1/session1,drummer1/session1/1,rock,120,beat,4-4,"
        "drummer1/session1/1_rock_120_beat_4-4.mid,x.wav,16.0,train\n")
    out = tmp_path_factory.mktemp("corpus")
    stats = corpus.build(src, out, workers=1)
    assert stats["splits"]["valid"]["by_corpus"]["pop909"]["pieces"] == 1
    assert stats["splits"]["train"]["by_corpus"]["groove"]["pieces"] == 1
    return out


def tiny_config(**changes):
    """The tiny model's GeneratorConfig (emsync.training.model imports torch)."""
    from emsync.training.model import GeneratorConfig

    return GeneratorConfig(**(TINY_FIELDS | changes))


@pytest.fixture(scope="module")
def tiny_model():
    import torch

    from emsync.training.model import Generator

    torch.manual_seed(0)
    model = Generator(tiny_config()).eval()
    with torch.no_grad():  # trained modulation is not zero; the parity tests must see it work
        for block in model.blocks:
            block.modulation.weight.normal_(std=0.2)
            block.modulation.bias.normal_(std=0.05)
        model.grid_ahead_emb.weight.normal_(std=0.2)  # and the grid embeddings, zero when new
        model.grid_slot_emb.weight.normal_(std=0.2)
    return model


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    from emsync.training.export import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(tiny_model, path, history=HISTORY)
    return path


def _inputs(generator, t: int, batch: int = 1):
    """Random tokens, emotion and offsets drawn from a torch.Generator."""
    import torch

    tokens = torch.randint(2, codec.VOCAB_SIZE, (batch, t), generator=generator)
    emotion = torch.rand(batch, t, 2, generator=generator) * 2 - 1
    offsets = torch.randint(0, N_OFFSET_BINS, (batch, t), generator=generator)
    return tokens, emotion, offsets


def _grid(generator, t: int, batch: int = 1):
    """Random grid conditions: steps to the next 16th and its slot in the bar."""
    import torch

    return torch.stack([torch.randint(0, N_GRID_AHEAD, (batch, t), generator=generator),
                        torch.randint(0, N_GRID_SLOTS, (batch, t), generator=generator)], dim=-1)


# ---------------------------------------------------------------- WindowSampler


def test_window_sampler_windows(data):
    sampler = WindowSampler(data / "train.npz", BLOCK)
    rng = np.random.default_rng(0)
    n = BLOCK
    for augment in (True, False):
        for _ in range(12):
            x, emotion, offsets, grid, y = sampler.sample(rng, augment=augment)
            assert x.shape == (n,) and y.shape == (n,)
            assert emotion.shape == (n, 2) and offsets.shape == (n,)
            assert x[0] == codec.BOS
            assert np.array_equal(x[1:], y[:-1]), "targets are the inputs shifted by one"
            assert np.all((x >= 0) & (x < codec.VOCAB_SIZE)) and np.all((y >= 0) & (y < codec.VOCAB_SIZE))
            assert np.all(x[1:] != codec.BOS)
            assert np.all(np.abs(emotion) <= 1.0) and np.isfinite(emotion).all()
            assert np.all((offsets >= 0) & (offsets <= NO_BOUNDARY))
            assert grid.shape == (n, 2) and np.all((grid >= 0) & (grid <= [NO_GRID_AHEAD, NO_GRID_SLOT]))


@needs_torch
def test_window_sampler_batches_are_stacked_tensors(data):
    import torch

    sampler = WindowSampler(data / "train.npz", BLOCK)
    rng = np.random.default_rng(0)
    x, emotion, offsets, grid, y = sampler.batch(rng, 3)
    n = BLOCK
    assert x.shape == (3, n) and emotion.shape == (3, n, 2) and offsets.shape == (3, n) and y.shape == (3, n)
    assert x.dtype == torch.int64 and offsets.dtype == torch.int64 and emotion.dtype == torch.float32
    assert grid.shape == (3, n, 2) and grid.dtype == torch.int64
    x, emotion, offsets, grid, y = sampler.batch(rng, 5, length=16)  # openings
    assert x.shape == (5, 16) and emotion.shape == (5, 16, 2)


def test_window_sampler_sees_boundaries_and_is_deterministic(data):
    sampler = WindowSampler(data / "train.npz", BLOCK)
    a = [sampler.sample(np.random.default_rng(5), augment=False) for _ in range(2)]
    for left, right in zip(*a):
        assert np.array_equal(left, right), "same seed, same window"
    rng = np.random.default_rng(1)
    near = [sampler.sample(rng, augment=False)[2] for _ in range(10)]
    # a held chord every 3 s: unaugmented windows always have a boundary within the horizon
    assert all((off < NO_BOUNDARY).any() for off in near)


def test_opening_windows_are_short_and_hold_their_own_modes_valence(data):
    sampler = WindowSampler(data / "train.npz", BLOCK)
    rng = np.random.default_rng(3)
    for _ in range(12):
        x, emotion, offsets, grid, y = sampler.sample(rng, augment=True, length=16)
        assert x.shape == y.shape == offsets.shape == (16,) and emotion.shape == (16, 2)
        assert x[0] == codec.BOS and np.array_equal(x[1:], y[:-1])
        assert np.all(emotion[:, 0] == emotion[0, 0]), "one valence for the whole opening"


def test_window_sampler_needs_a_built_split(tmp_path):
    from emsync.core.errors import EmsyncError

    with pytest.raises(EmsyncError, match="emsync data build"):
        WindowSampler(tmp_path / "train.npz", 64)


# ---------------------------------------------------------------- KV cache


@needs_torch
def test_kv_cache_matches_a_full_forward(tiny_model):
    import torch

    cfg = tiny_model.cfg
    gen = torch.Generator().manual_seed(1)
    tokens, emotion, offsets = _inputs(gen, 12, batch=2)
    with torch.no_grad():
        full, present = tiny_model(tokens, emotion, offsets)
        head_dim = cfg.n_embd // cfg.n_head
        assert full.shape == (2, 12, cfg.vocab_size)
        assert len(present) == 2 * cfg.n_layer
        assert all(part.shape == (2, cfg.n_head, 12, head_dim) for part in present)
        # prefix without cache (SDPA path), then the rest with the cache (explicit path)
        first, past = tiny_model(tokens[:, :7], emotion[:, :7], offsets[:, :7])
        rest, present2 = tiny_model(tokens[:, 7:], emotion[:, 7:], offsets[:, 7:], past)
        torch.testing.assert_close(torch.cat([first, rest], dim=1), full, atol=1e-4, rtol=0)
        torch.testing.assert_close(present2, present, atol=1e-5, rtol=0)  # lists compare part by part
        # token by token from an empty cache
        past = tiny_model.empty_past(batch=2)
        steps = []
        for i in range(12):
            logits, past = tiny_model(tokens[:, i:i + 1], emotion[:, i:i + 1], offsets[:, i:i + 1], past)
            steps.append(logits)
        torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-4, rtol=0)
        assert all(part.shape[2] == 12 for part in past)


@needs_torch
def test_loss_ignores_padding(tiny_model):
    import torch

    gen = torch.Generator().manual_seed(2)
    tokens, emotion, offsets = _inputs(gen, 10)
    targets = tokens.roll(-1, dims=1)
    padded = targets.clone()
    padded[:, 6:] = codec.PAD
    with torch.no_grad():
        logits, _ = tiny_model(tokens, emotion, offsets)
        loss = tiny_model.loss(tokens, emotion, offsets, padded)
    expected = torch.nn.functional.cross_entropy(logits[0, :6], targets[0, :6])
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=0)
    assert math.isclose(float(loss), math.log(codec.VOCAB_SIZE), rel_tol=0.05)  # untrained: near uniform


# ---------------------------------------------------------------- ONNX export


def _feeds(tokens, emotion, offsets, grid, past) -> dict:
    return {"tokens": tokens.numpy(), "emotion": emotion.numpy(), "offsets": offsets.numpy(), "grid": grid.numpy(),
            **{name: part.numpy() for name, part in zip(cache_names(TINY_FIELDS["n_layer"], "past"), past)}}


@needs_torch
@pytest.mark.parametrize("t,p", [(1, 0), (1, 6), (5, 0), (3, 4)])
def test_onnx_matches_torch(tiny_model, exported, t, p):
    import torch

    cfg = tiny_model.cfg
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["tokens", "emotion", "offsets", "grid",
                                                      *cache_names(cfg.n_layer, "past")]
    assert [o.name for o in session.get_outputs()] == ["logits", *cache_names(cfg.n_layer, "present")]
    gen = torch.Generator().manual_seed(10 * t + p)
    with torch.no_grad():
        if p:
            prefix = _inputs(gen, p)
            _, past = tiny_model(*prefix, grid=_grid(gen, p))
        else:
            past = tiny_model.empty_past()
        tokens, emotion, offsets = _inputs(gen, t)
        grid = _grid(gen, t)
        want_logits, want_present = tiny_model(tokens, emotion, offsets, past, grid=grid)
        assert not torch.allclose(want_logits, tiny_model(tokens, emotion, offsets, past)[0]), "the grid is heard"
    logits, *present = session.run(None, _feeds(tokens, emotion, offsets, grid, past))
    assert logits.shape == (1, t, cfg.vocab_size)
    np.testing.assert_allclose(logits, want_logits.numpy(), atol=1e-3, rtol=0)
    assert len(present) == len(want_present)
    for part, want in zip(present, want_present):
        np.testing.assert_allclose(part, want.numpy(), atol=1e-3, rtol=0)


@needs_torch
def test_onnx_batch_of_two(tiny_model, exported):
    import torch

    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        _, past = tiny_model(*_inputs(gen, 3, batch=2))
        tokens, emotion, offsets = _inputs(gen, 2, batch=2)
        grid = _grid(gen, 2, batch=2)
        want, _ = tiny_model(tokens, emotion, offsets, past, grid=grid)
    logits = session.run(["logits"], _feeds(tokens, emotion, offsets, grid, past))[0]
    np.testing.assert_allclose(logits, want.numpy(), atol=1e-3, rtol=0)


@needs_torch
def test_onnx_metadata_and_weights_round_trip(tiny_model, exported):
    import torch

    from emsync.training.export import load_onnx_weights, onnx_metadata

    meta = onnx_metadata(exported)
    assert json.loads(meta["emsync_config"]) == tiny_config().to_dict()
    assert json.loads(meta["emsync_history"]) == HISTORY
    assert set(json.loads(meta["emsync_parameters"])) == set(tiny_model.state_dict())
    model, history = load_onnx_weights(exported)
    assert history == HISTORY
    assert model.cfg == tiny_config()
    want = tiny_model.state_dict()
    got = model.state_dict()
    assert set(got) == set(want)
    for name, tensor in want.items():
        assert torch.equal(got[name], tensor), name
    assert not any(p.name.startswith(".") for p in exported.parent.iterdir()), "temporary file left behind"


@needs_torch
def test_an_export_from_before_emotion_modulation_loads_unchanged(tmp_path):
    import onnx
    import torch

    from emsync.training.export import export_onnx, load_onnx_weights
    from emsync.training.model import Generator

    torch.manual_seed(4)
    plain = Generator(tiny_config(emotion_modulation=False)).eval()
    path = export_onnx(plain, tmp_path / "plain.onnx")
    graph = onnx.load(str(path))
    for entry in graph.metadata_props:  # as the exports written before the option existed
        if entry.key == "emsync_config":
            config = json.loads(entry.value)
            del config["emotion_modulation"]
            entry.value = json.dumps(config)
    onnx.save(graph, str(path))
    model, _ = load_onnx_weights(path)
    assert model.cfg.emotion_modulation and all(not block.modulation.weight.any() for block in model.blocks)
    tokens, emotion, offsets = _inputs(torch.Generator().manual_seed(5), 6)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(tokens, emotion, offsets)[0], plain(tokens, emotion, offsets)[0])


# ---------------------------------------------------------------- train()


def _train(data, out, model_cfg=None, init_from=None, log=lambda *_: None, **kw):
    """emsync.training.train.train on a small config: 3 steps of 2 windows, a checkpoint every step."""
    from emsync.training.train import TrainConfig, train

    base = dict(data=str(data), out=str(out), steps=3, batch_size=2, warmup=2, eval_every=3, eval_batches=1,
                checkpoint_every=1)
    base.update(kw)
    return train(TrainConfig(**base), model_cfg, init_from=init_from, log=log)


def _log_lines(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _checkpoint(path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


@needs_torch
def test_train_writes_checkpoint_and_log_then_resumes(data, tmp_path):
    out = tmp_path / "run"
    messages = []
    ckpt = _train(data, out, tiny_config(), log=messages.append)
    assert ckpt == out / "ckpt.pt" and ckpt.exists()
    lines = _log_lines(out)
    assert [r["step"] for r in lines] == [1, 2, 3]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in lines)
    assert "val_loss" in lines[-1] and math.isfinite(lines[-1]["val_loss"])
    assert all("val_loss" not in r for r in lines[:-1])
    state = _checkpoint(ckpt)
    assert state["step"] == 3
    assert state["model_config"] == tiny_config().to_dict()
    assert state["history"]["steps"] == 3 and state["history"]["tokens"] > 0
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    messages.clear()
    _train(data, out, steps=5, log=messages.append)  # no model config: it comes from the checkpoint
    assert any("resuming" in m and "step 3" in m for m in messages)
    lines = _log_lines(out)
    assert [r["step"] for r in lines] == [1, 2, 3, 4, 5]
    assert all(math.isfinite(r["loss"]) for r in lines)
    state = _checkpoint(ckpt)
    assert state["step"] == 5 and state["history"]["steps"] == 5
    assert state["train_config"]["steps"] == 5


@needs_torch
def test_train_on_openings_logs_the_valence_contrast(data, tmp_path):
    out = tmp_path / "openings"
    _train(data, out, tiny_config(), opening_share=1.0)
    lines = _log_lines(out)
    assert len(lines) == 3 and all(math.isfinite(r["contrast"]) and r["contrast"] >= 0 for r in lines)
    _train(data, tmp_path / "plain", tiny_config(), opening_share=0.0)
    assert all("contrast" not in r for r in _log_lines(tmp_path / "plain"))


@needs_torch
def test_train_from_an_onnx_export_starts_from_its_weights(data, tiny_model, exported, tmp_path):
    import torch

    out = tmp_path / "init"
    messages = []
    ckpt = _train(data, out, init_from=str(exported), log=messages.append, steps=1, lr=0.0, min_lr=0.0,
                  eval_every=1)
    assert any(str(exported) in m for m in messages)
    state = _checkpoint(ckpt)
    assert state["step"] == 1
    assert state["model_config"] == tiny_config().to_dict()
    want = tiny_model.state_dict()
    assert set(state["model"]) == set(want)
    for name, tensor in want.items():
        assert torch.equal(state["model"][name].float(), tensor), name
    # the history carried in the export goes on counting
    assert state["history"]["tokens"] > HISTORY["tokens"]
    assert state["history"]["steps"] == HISTORY["steps"] + 1


@needs_torch
def test_train_from_an_export_without_history(data, exported, tmp_path):
    import onnx

    model = onnx.load(str(exported))
    for entry in model.metadata_props:
        if entry.key == "emsync_history":
            entry.value = "{}"  # what export_onnx writes when no history is given
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    ckpt = _train(data, tmp_path / "bare_run", init_from=str(bare), steps=1, lr=0.0, min_lr=0.0)
    assert ckpt.exists()


# ---------------------------------------------------------------- augmentation


def test_tempo_warp_is_continuous_and_moves_arousal_with_speed():
    warp = TempoWarp(1.1, since=11.0, speed=2.0)
    assert np.allclose(warp(np.array([0.0, 10.0, 12.0])), [0.0, 11.0, 11.0 + (13.2 - 11.0) / 2])
    assert warp.arousal_shift > 0 and TempoWarp(1.0, 0.0, 0.5).arousal_shift == -warp.arousal_shift
    assert TempoWarp(0.9).arousal_shift == 0 and np.allclose(TempoWarp(0.9)(np.array([10.0])), [9.0])


def test_mode_swap_spans_alternate_over_the_whole_window():
    rng = np.random.default_rng(0)
    for _ in range(50):
        spans = mode_swap_spans(rng, 100.0)
        assert spans[0, 0] >= 100.0 and np.all(spans[:, 1] > spans[:, 0])
        gaps = spans[1:, 0] - spans[:-1, 1]  # the unswapped spans between
        assert np.all(gaps >= MODE_SPAN_SECONDS[0]) and np.all(gaps <= MODE_SPAN_SECONDS[1])
        assert spans[-1, 1] >= 100.0 + WINDOW_SECONDS - MODE_SPAN_SECONDS[1] or spans[-1, 1] == np.inf
    assert inside(np.array([1.0, 2.0, 5.0]), np.array([[2.0, 3.0]])).tolist() == [False, True, False]


def _chords(roots_and_thirds, length=1.0):
    """Triads in C, one per second: (root, third) pitch pairs plus the fifth above the root."""
    rows = []
    for k, (root, third) in enumerate(roots_and_thirds):
        rows += [(k * length, (k + 1) * length, p, 80, PIANO) for p in (root, third, root + 7)]
    return np.array(rows, dtype=float)


def test_swap_mode_moves_the_third_only_inside_the_spans_and_says_which_way():
    major = _chords([(60, 64), (65, 69), (67, 71), (60, 64)] * 3)  # C, F, G, C: clearly C major
    window = major.copy()
    window = np.concatenate([window, [(0.0, 0.1, 36, 100, DRUMS)]])  # drums never move
    assert window_key(window) == (0, True)
    shift = swap_mode(window, np.array([[4.0, 8.0]]), window_key(window))
    assert shift == -MODE_SWAP_VALENCE
    moved = window[:-1, 2] != major[:, 2]
    assert np.all(window[:-1][moved, 0] >= 4.0) and np.all(window[:-1][moved, 0] < 8.0)
    assert set(window[:-1][moved, 2].astype(int) % 12) == {3, 8}  # E -> Eb, A -> Ab
    assert window[-1, 2] == 36
    minor = _chords([(57, 60), (62, 65), (64, 68), (57, 60)] * 3)  # Am, Dm, E, Am
    assert window_key(minor) == (9, False)
    assert swap_mode(minor, np.array([[0.0, np.inf]]), window_key(minor)) == MODE_SWAP_VALENCE
    assert swap_mode(major.copy(), np.zeros((0, 2)), (0, True)) == 0.0
    assert swap_mode(major.copy(), np.array([[0.0, np.inf]]), None) == 0.0, "no clear key: left alone"
    chromatic = np.array([(k * 0.5, k * 0.5 + 0.5, 60 + k, 80, PIANO) for k in range(12)], dtype=float)
    assert window_key(chromatic) is None


def test_opening_valence_follows_the_mode_of_the_first_seconds():
    major = _chords([(60, 64), (65, 69), (67, 71), (60, 64)] * 3)
    assert opening_valence(major, 0.0) > 0.3
    minor = major.copy()
    swap_mode(minor, np.array([[0.0, np.inf]]), window_key(minor))
    assert opening_valence(minor, 0.0) < -0.3
    late_minor = np.concatenate([major, minor + [100.0, 100.0, 0, 0, 0]])
    assert opening_valence(late_minor, 0.0) == opening_valence(major, 0.0), "only the first seconds count"
    assert opening_valence(np.array([(0.0, 0.1, 36, 100, DRUMS)], dtype=float), 0.0) == 0.0


# ---------------------------------------------------------------- the openings' valence contrast


@needs_torch
def test_opening_losses_contrast_own_and_mirrored_valence():
    import torch

    from emsync.training.model import Generator
    from emsync.training.train import CONTRAST_MARGIN, opening_losses

    torch.manual_seed(1)
    model = Generator(tiny_config()).eval()
    tokens, emotion, offsets = _inputs(torch.Generator().manual_seed(2), 16, batch=4)
    targets = torch.roll(tokens, -1, dims=1)
    emotion[:, :, 0] = torch.tensor([0.8, -0.8, 0.1, 0.0])[:, None]
    with torch.no_grad():
        model.emotion_emb.weight[:, 0] = 0.0  # blind to valence: both valences fit equally
        loss, contrast = opening_losses(model, tokens, emotion, offsets, targets)
    assert torch.isclose(loss, model.loss(tokens, emotion, offsets, targets), atol=1e-5)
    weights = torch.tensor([1.0, 1.0, 0.2, 0.0])  # by how clearly each window leans
    assert torch.isclose(contrast, (weights * torch.nn.functional.softplus(torch.tensor(CONTRAST_MARGIN))).mean(),
                         atol=1e-4)
    _, contrast = opening_losses(model, tokens, emotion, offsets, targets)
    contrast.backward()
    assert model.emotion_emb.weight.grad[:, 0].abs().sum() > 0, "the contrast teaches the valence input"
