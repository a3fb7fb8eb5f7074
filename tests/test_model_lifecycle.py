"""The committed model, and the whole data -> train -> export -> generate path through the CLI."""
import json

import numpy as np
import pytest

from conftest import run_cli
from emsync_core.generator import default_model_path

torch = pytest.importorskip("torch")


def test_committed_model_matches_its_torch_weights():
    """onnxruntime logits of the shipped file equal torch logits of the weights it carries."""
    import onnxruntime as ort

    from emsync_core.export import load_onnx_weights

    path = default_model_path()
    assert path.stat().st_size < 40e6
    model, history = load_onnx_weights(path)
    model.eval()
    assert history.get("steps", 0) > 0 and "val_loss" in history
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, model.cfg.vocab_size, size=(1, 40))
    emotion = rng.uniform(-1, 1, size=(1, 40, 2)).astype(np.float32)
    offsets = rng.integers(0, model.cfg.n_offset_bins, size=(1, 40))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    past = model.empty_past(1).numpy()
    head, present = session.run(None, {"tokens": tokens[:, :30], "emotion": emotion[:, :30],
                                       "offsets": offsets[:, :30], "past": past})
    tail, _ = session.run(None, {"tokens": tokens[:, 30:], "emotion": emotion[:, 30:],
                                 "offsets": offsets[:, 30:], "past": present})
    with torch.no_grad():
        reference, _ = model(torch.from_numpy(tokens), torch.from_numpy(emotion), torch.from_numpy(offsets))
    np.testing.assert_allclose(np.concatenate([head, tail], axis=1), reference.numpy(), atol=2e-3)


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
    result = run_cli("generate", "--model", exported, "--duration", 6, "--cuts", "2,4", "-o", out)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0


def test_train_without_a_corpus_is_one_line(tmp_path):
    result = run_cli("train", "--data", tmp_path / "none", "--out", tmp_path / "run", "--steps", 1)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "train.npz" in result.stderr
