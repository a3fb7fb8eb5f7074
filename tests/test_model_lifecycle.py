"""The committed model, and the whole data -> train -> export -> generate path through the CLI."""
import json
from importlib.util import find_spec

import numpy as np
import pytest

from conftest import run_cli
from emsync.core.conditions import N_GRID_AHEAD, N_GRID_SLOTS
from emsync.core.decoding import cache_names
from emsync.core.generator import default_model_path

needs_torch = pytest.mark.skipif(find_spec("torch") is None, reason="needs torch (pip install 'emsync[train]')")


@needs_torch
def test_committed_model_matches_its_torch_weights():
    """onnxruntime logits of the shipped file equal torch logits of the weights it carries."""
    import onnxruntime as ort
    import torch

    from emsync.training.export import load_onnx_weights

    path = default_model_path()
    assert path.stat().st_size < 40e6
    model, history = load_onnx_weights(path)
    model.eval()
    assert history.get("steps", 0) > 0 and "val_loss" in history
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, model.cfg.vocab_size, size=(1, 40))
    emotion = rng.uniform(-1, 1, size=(1, 40, 2)).astype(np.float32)
    offsets = rng.integers(0, model.cfg.n_offset_bins, size=(1, 40))
    grid = np.stack([rng.integers(0, N_GRID_AHEAD, size=(1, 40)), rng.integers(0, N_GRID_SLOTS, size=(1, 40))], -1)
    assert model.cfg.grid, "the committed model hears the grid"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = cache_names(model.cfg.n_layer, "past")
    head, *present = session.run(None, {"tokens": tokens[:, :30], "emotion": emotion[:, :30],
                                        "offsets": offsets[:, :30], "grid": grid[:, :30],
                                        **{n: p.numpy() for n, p in zip(names, model.empty_past(1))}})
    tail = session.run(["logits"], {"tokens": tokens[:, 30:], "emotion": emotion[:, 30:],
                                    "offsets": offsets[:, 30:], "grid": grid[:, 30:], **dict(zip(names, present))})[0]
    with torch.no_grad():
        reference, _ = model(torch.from_numpy(tokens), torch.from_numpy(emotion), torch.from_numpy(offsets),
                             grid=torch.from_numpy(grid))
    np.testing.assert_allclose(np.concatenate([head, tail], axis=1), reference.numpy(), atol=2e-3)


def test_int8_copy_samples_like_the_float_model():
    """The runtime loads the int8 copy; on real music its next-token distributions match the
    float weights of record (mean KL < 1e-3 nats, same most likely token almost always)."""
    from emsync.core import codec
    from emsync.core.generator import MusicGenerator, runtime_model_path
    from emsync.core.music import Note

    assert runtime_model_path().name == "generator-int8.onnx"
    notes = []
    for bar, root in enumerate((60, 57, 53, 55) * 3):  # I-vi-IV-V on piano, bass below, a melody
        t = bar * 2.0
        notes += [Note(t, t + 1.9, p, 70, 1) for p in (root, root + 4 - (root == 57), root + 7)]
        notes += [Note(t, t + 1.0, root - 24, 80, 3)]
        notes += [Note(t + i / 2, t + i / 2 + 0.45, 72 + (bar + i) % 5, 90, 4) for i in range(4)]
    tokens, _ = codec.encode(notes)
    song = np.concatenate([[codec.BOS], tokens])[:400]
    emotion = np.tile([0.5, 0.2], (len(song), 1))
    offsets = np.full(len(song), 40)
    float_logits = MusicGenerator(default_model_path()).forward(song, emotion, offsets)[0]
    int8_logits = MusicGenerator().forward(song, emotion, offsets)[0]

    def log_softmax(x):
        x = x.astype(np.float64) - x.max(axis=1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))

    p, q = log_softmax(float_logits), log_softmax(int8_logits)
    assert (np.exp(p) * (p - q)).sum(axis=1).mean() < 1e-3
    assert (float_logits.argmax(axis=1) == int8_logits.argmax(axis=1)).mean() > 0.9


@needs_torch
def test_runtime_graph_computes_the_torch_model_step_by_step(tmp_path):
    """The runtime graph (fused attention, cache written in place) built from the committed
    float weights, unquantized: a pass over 30 tokens, then one token a step, gives the torch
    model's logits for two emotions at once; a second start overwrites the cache."""
    import onnx
    import torch

    from emsync.core.decoding import SHARED_CACHE_GRAPH
    from emsync.core.generator import MusicGenerator
    from emsync.training.export import load_onnx_weights
    from emsync.training.runtime_graph import float_parameters, runtime_graph

    parameters, meta = float_parameters(onnx.load(str(default_model_path())), "committed")
    graph = runtime_graph(parameters, json.loads(meta["emsync_config"]))
    for key, value in (("emsync_config", meta["emsync_config"]), ("emsync_graph", SHARED_CACHE_GRAPH)):
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(tmp_path / "runtime.onnx"))
    generator = MusicGenerator(tmp_path / "runtime.onnx")
    model, _ = load_onnx_weights(default_model_path())
    model.eval()
    rng = np.random.default_rng(1)
    tokens = rng.integers(2, model.cfg.vocab_size, size=40)
    emotion = rng.uniform(-1, 1, size=(2, 40, 2)).astype(np.float32)
    offsets = rng.integers(0, model.cfg.n_offset_bins, size=40)
    grid = np.stack([rng.integers(0, N_GRID_AHEAD, size=40), rng.integers(0, N_GRID_SLOTS, size=40)], -1)
    with torch.no_grad():
        reference, _ = model(torch.from_numpy(np.stack([tokens, tokens])), torch.from_numpy(emotion),
                             torch.from_numpy(np.stack([offsets, offsets])), grid=torch.from_numpy(np.stack([grid, grid])))
    decoder = generator.decoder(2)
    decoder.start(tokens[::-1].copy(), emotion, offsets, grid)  # filled once with other music
    head = decoder.start(tokens[:30], emotion[:, :30], offsets[:30], grid[:30])
    steps = [decoder.step(int(tokens[i]), emotion[:, i], int(offsets[i]), grid[i]).copy() for i in range(30, 40)]
    np.testing.assert_allclose(np.concatenate([head, np.stack(steps, axis=1)], axis=1), reference.numpy(), atol=2e-4)


@needs_torch
def test_build_train_resume_export_generate(tmp_path):
    from test_corpus import write_pop909_song

    src = tmp_path / "src"
    for i, song in enumerate(["001", "002", "013"]):  # 013 lands in the validation split
        write_pop909_song(src, song, root=45 + 3 * i)
    data, run = tmp_path / "data", tmp_path / "run"
    result = run_cli("data", "build", "--src", src, "--out", data, "--workers", 1)
    assert result.returncode == 0, result.stderr
    assert (data / "train.npz").exists() and (data / "valid.npz").exists()

    exported = run / "model.onnx"
    result = run_cli("train", "--data", data, "--out", run, "--steps", 2, "--batch-size", 2, "--export", exported)
    assert result.returncode == 0, result.stderr
    assert "starting from the weights in" in result.stdout  # the committed model is the starting point
    result = run_cli("train", "--data", data, "--out", run, "--steps", 3, "--batch-size", 2)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout and "at step 2" in result.stdout
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]

    out = tmp_path / "song.mid"
    assert (run / "model-int8.onnx").exists(), "export writes the int8 runtime copy beside the float file"
    for model in (exported, run / "model-int8.onnx"):
        result = run_cli("generate", "--model", model, "--duration", 6, "--cuts", "2,4", "-o", out)
        assert result.returncode == 0, result.stderr
        assert out.stat().st_size > 0
    result = run_cli("train", "--data", data, "--out", tmp_path / "run2", "--steps", 1,
                     "--init-from", run / "model-int8.onnx")
    assert result.returncode == 2 and "float export" in result.stderr and "Traceback" not in result.stderr


@needs_torch
def test_train_without_a_corpus_is_one_line(tmp_path):
    result = run_cli("train", "--data", tmp_path / "none", "--out", tmp_path / "run", "--steps", 1)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "train.npz" in result.stderr
