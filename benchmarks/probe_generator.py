"""The generator's figures that the model card quotes beside `emsync eval`.

- step cost: one generated token as the cache grows from 200 to 500 tokens, int8 runtime copy
  vs float file, batch 1 (plain sampling) and batch 2 (`--emotion-guidance`);
- int8 vs float: mean KL of the next-token distributions and top-token agreement on held-out
  windows (needs --data);
- emotion probe (needs torch): how far valence +-0.8 and arousal +-0.8 move the next-token
  distribution over the first 24 tokens of held-out windows, and the norms of the valence and
  arousal columns of the emotion embedding;
- mode response (needs torch): teacher-forced, how much better the pitched note-ons of a
  clearly major or minor held-out window (and of the same window moved to the parallel mode,
  as training does) are predicted under the valence that fits their mode (+0.6 for major,
  -0.6 for minor) than under the opposite one, in nats per note-on; over the first 64 tokens
  (where the model must choose a mode) and later (where the context has shown it);
- sampled valence (the quick check run while training): 32 pieces of 12 s at valence -0.8
  and 32 at +0.8 (arousal +-0.4), Pearson r of valence and the pieces' mode evidence;
- opening gain (needs torch): teacher-forced on held-out 128-token openings, how much lower the
  next-token loss is under their own valence than the mirrored one, in nats per token;
- note lengths: share of pitched notes held longer than the sampler's MAX_NOTE_SECONDS in
  the held-out corpus (needs --data).

    python benchmarks/probe_generator.py --data DATA [--model generator.onnx]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emsync.core.conditions import EmotionCurve  # noqa: E402
from emsync.core.features import music_features  # noqa: E402
from emsync.core.generator import MAX_NOTE_SECONDS, MusicGenerator, default_model_path, int8_path  # noqa: E402
from emsync.core.music import DRUMS  # noqa: E402
from machine import cpu_line  # noqa: E402


def step_ms(generator: MusicGenerator, batch: int, cached: int = 200, repeat: int = 300) -> float:
    """Mean cost of one generated token for `batch` rows, the cache growing from `cached` tokens
    to `cached + repeat` (under the context's 512)."""
    decoder = generator.decoder(batch)
    decoder.start([5] * cached, np.zeros((batch, cached, 2), np.float32), [3] * cached, None)
    emotion = np.zeros((batch, 2), np.float32)
    started = time.perf_counter()
    for _ in range(repeat):
        decoder.step(5, emotion, 3, None)
    return round((time.perf_counter() - started) / repeat * 1000, 3)


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def windows(data: str, count: int, length: int):
    from emsync.training.windows import WindowSampler

    sampler = WindowSampler(Path(data) / "valid.npz", 512)
    rng = np.random.default_rng(0)
    for _ in range(count):
        tokens, emotion, offsets, _, _ = sampler.sample(rng, augment=False)
        yield tokens[:length], emotion[:length], offsets[:length]


def int8_agreement(int8: MusicGenerator, full: MusicGenerator, data: str) -> dict:
    kl, same = [], []
    for tokens, emotion, offsets in windows(data, 4, 512):
        p = log_softmax(full.forward(tokens, emotion, offsets)[0])
        q = log_softmax(int8.forward(tokens, emotion, offsets)[0])
        kl.append(float((np.exp(p) * (p - q)).sum(axis=1).mean()))
        same.append(float((p.argmax(axis=1) == q.argmax(axis=1)).mean()))
    return {"mean_kl_nats": float(np.mean(kl)), "same_top_token": round(float(np.mean(same)), 4)}


def emotion_probe(model, data: str, tokens_seen: int = 24) -> dict:
    import torch

    moved = {"valence": [], "arousal": []}
    with torch.no_grad():
        for tokens, _, offsets in windows(data, 6, tokens_seen):
            x, off = torch.from_numpy(tokens)[None], torch.from_numpy(offsets)[None]
            for axis, name in enumerate(moved):
                ends = []
                for value in (0.8, -0.8):
                    emotion = torch.zeros(1, len(tokens), 2)
                    emotion[..., axis] = value
                    ends.append(torch.log_softmax(model(x, emotion, off)[0][0].float(), -1))
                moved[name].append(float((ends[0].exp() * (ends[0] - ends[1])).sum(-1).mean()))
    weight = model.emotion_emb.weight.detach()
    return {f"kl_{name}_pm0.8": float(np.mean(values)) for name, values in moved.items()} | {
        "valence_column_norm": round(float(weight[:, 0].norm()), 4),
        "arousal_column_norm": round(float(weight[:, 1].norm()), 4)}


def opening_gain(model, data: str, count: int = 128) -> dict:
    """Teacher-forced on held-out openings as training cuts them (128 tokens, valence from
    their own mode): next-token loss under the mirrored valence minus under their own."""
    import torch

    from emsync.training.train import OPENING_TOKENS
    from emsync.training.windows import WindowSampler

    sampler = WindowSampler(Path(data) / "valid.npz", 512)
    x, emotion, offsets, grid, y = sampler.batch(np.random.default_rng(5), count, length=OPENING_TOKENS)
    mirrored = emotion.clone()
    mirrored[..., 0] = -mirrored[..., 0]
    clear = emotion[:, 0, 0].abs() > 0.4
    with torch.no_grad():
        gain = float(model.loss(x[clear], mirrored[clear], offsets[clear], y[clear], grid[clear])
                     - model.loss(x[clear], emotion[clear], offsets[clear], y[clear], grid[clear]))
    return {"nats_per_token": round(gain, 4), "windows_with_abs_valence_over_0.4": int(clear.sum())}


def mode_response(model, data: str, count: int = 30, valence: float = 0.6) -> dict:
    import torch

    from emsync.core import codec
    from emsync.core.music import Note
    from emsync.training.windows import swap_mode, window_key

    gains = {"first_64_tokens": [], "later": []}
    for tokens, emotion, offsets in windows(data, count, 512):
        notes = codec.decode([int(t) for t in tokens if t not in (codec.PAD, codec.BOS)])
        rows = np.array([(n.start, n.end, n.pitch, n.velocity, n.instrument) for n in notes], float).reshape(-1, 5)
        key = window_key(rows)
        if key is None:
            continue
        for swapped in (False, True):
            is_major = key[1] != swapped
            if swapped:
                swap_mode(rows, np.array([[-np.inf, np.inf]]), key)
            encoded, _ = codec.encode([Note(s, e, int(p), int(v), int(i)) for s, e, p, v, i in rows])
            sequence = torch.from_numpy(np.concatenate([[codec.BOS], encoded])[:len(tokens) + 1])
            x, y = sequence[None, :-1], sequence[1:]
            off = torch.full_like(x, int(offsets[0]))
            nll = []
            for v in (valence, -valence) if is_major else (-valence, valence):  # the fitting one first
                condition = torch.tensor([v, float(emotion[1, 1])]).expand(1, x.shape[1], 2)
                with torch.no_grad():
                    logp = torch.log_softmax(model(x, condition, off)[0][0].float(), -1)
                nll.append(-logp[torch.arange(len(y)), y])
            note_on = torch.tensor([codec.is_on(int(t)) and codec.on_target(int(t))[0] != DRUMS for t in y])
            early = torch.arange(len(y)) < 64
            gain = nll[1] - nll[0]
            for name, part in (("first_64_tokens", note_on & early), ("later", note_on & ~early)):
                if part.any():
                    gains[name].append(float(gain[part].mean()))
    return {name: {"nats_per_note_on": round(float(np.mean(values)), 4),
                   "share_of_windows_right_way": round(float(np.mean(np.array(values) > 0)), 2),
                   "windows": len(values)} for name, values in gains.items()}


def sampled_valence(generator: MusicGenerator, pieces: int = 32, seconds: float = 12.0) -> dict:
    rows = []
    for k in range(pieces):
        for valence in (-0.8, 0.8):
            run = generator.generate(seconds, [], EmotionCurve.constant(valence, 0.4 if k % 2 else -0.4), seed=100 + k,
                                     stay_in_key=False)  # the model's own mode, not the sampler's
            rows.append((valence, music_features(run.notes, 0.0, seconds).major_minus_minor))
    table = np.array(rows)
    return {"r": round(float(np.corrcoef(table[:, 0], table[:, 1])[0, 1]), 3),
            "mode_evidence_low_vs_high": [round(float(table[table[:, 0] < 0, 1].mean()), 3),
                                          round(float(table[table[:, 0] > 0, 1].mean()), 3)],
            "pieces": len(rows), "seconds": seconds}


def long_notes(data: str) -> dict:
    split = np.load(Path(data) / "valid.npz")
    notes = split["notes"][split["notes"][:, 4] != DRUMS]
    return {f"share_over_{MAX_NOTE_SECONDS:g}s": round(float(np.mean(notes[:, 1] - notes[:, 0] > MAX_NOTE_SECONDS)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", help="folder written by `emsync data build` (for the held-out figures)")
    parser.add_argument("--model", default=str(default_model_path()), help="float generator export")
    args = parser.parse_args()
    full, int8 = MusicGenerator(args.model), MusicGenerator(int8_path(args.model))
    report = {"cpu": cpu_line(), "step_ms_200_to_500_cached": {f"{name}_batch{batch}": step_ms(g, batch)
                                                      for name, g in (("int8", int8), ("float", full))
                                                      for batch in (1, 2)}}
    report["sampled_valence_int8"] = sampled_valence(int8)
    if args.data:
        report["int8_vs_float"] = int8_agreement(int8, full, args.data)
        report["held_out_notes"] = long_notes(args.data)
        try:
            from emsync.training.export import load_onnx_weights
        except ImportError:
            report["emotion_probe"] = "torch not installed"
        else:
            model = load_onnx_weights(args.model)[0].eval()
            report["emotion_probe"] = emotion_probe(model, args.data)
            report["mode_response"] = mode_response(model, args.data)
            report["opening_gain"] = opening_gain(model, args.data)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
