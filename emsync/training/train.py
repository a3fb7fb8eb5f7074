"""`emsync train`: train the generator on a built corpus, resumably.

Windows are cut from whole pieces at training time so every window gets fresh
augmentation: transposition (-5..+6 semitones), tempo stretch (0.9-1.1x), Groove MIDI
drums laid on POP909's beat grid, random boundary dropout, and some windows with
boundaries masked so the model also learns to play without a cut ahead.

Mode swap: half of the clearly tonal windows alternate between their own mode and the
parallel one (major third and sixth down a semitone, or minor ones up) in spans of 2-8 s,
and the valence moves by MODE_SWAP_VALENCE inside the swapped spans. A window's mode is
given away by its first bars, and transposition hides which mode a fresh start should take,
so a model trained on whole pieces learns nothing from valence (measured: the valence input
moved the next-token distribution by KL 1e-4, and swapping the mode of whole windows or once
inside them did not change that in 2,500 steps). When the mode turns every few seconds, the
context no longer tells the model which third comes next; only the valence condition does,
as a scene change asks of the music. (Tried and not kept: weighing the note-ons on the key's
thirds and sixths 3x in the loss. In 784 steps it made valence move the next-token
distribution 8x more, but sampled pieces did not follow valence any better, and their
out-of-key notes went from 8 % to 18 %.)

Openings: half the steps train on OPENING_TOKENS-long windows (four times as many per
step), the part of a piece where nothing but valence can say which mode to take. Their
valence is the mode evidence of their own first OPENING_SECONDS (after a whole-window mode
swap in half of them), and besides the next-token loss they pay `opening_losses`' contrast:
each window should be likelier under its own valence than under the mirrored one. Without
the contrast, valence was worth 0.005 nats a token on such windows and sampled pieces did
not follow it (600 steps of openings alone left it there); with it, 600 steps moved the
sampled valence response of a quick check from r 0.14 to 0.42, and 3,500 steps moved the
model's own r in `emsync eval` from -0.02 to 0.50.

Tempo swap, the same idea for arousal: some windows speed up or slow down (0.65-1.5x)
from an instant on, play louder when faster, and their arousal moves with log2 of the
factor. The corpus labels move slowly (12 s windows), so without it little inside a window
tells the model that density and loudness follow the arousal input.

The run resumes from `OUT/ckpt.pt` when present, else from the weights inside an
ONNX export (`--init-from`), so the committed model is always a valid starting point.
"""
from __future__ import annotations

import functools
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from emsync.core import codec
from emsync.training.corpus import ESTIMATE_STD
from emsync.core.conditions import NO_BOUNDARY, EmotionCurve, boundary_offset_bins
from emsync.core.errors import EmsyncError
from emsync.core.features import key_scores
from emsync.training.model import Generator, GeneratorConfig, load_weights
from emsync.core.music import DRUMS, Note

WINDOW_SECONDS = 40.0  # enough music to fill a 512-token block at POP909 densities
DRUM_OVERLAY_SHARE = 0.4
MASKED_SHARE = 0.15
BOUNDARY_DROPOUT = 0.3
MODE_SWAP_SHARE = 0.5
MODE_SWAP_VALENCE = 0.6  # about 1.3 standard deviations of the corpus valence labels
MODE_SPAN_SECONDS = (2.0, 8.0)
MIN_KEY_CLARITY = 0.6
TEMPO_SWAP_SHARE = 0.5
TEMPO_SWAP_RANGE = (0.65, 1.5)  # speed factors; > 1 is faster
AROUSAL_PER_DOUBLING = 0.6  # arousal change for twice the speed (labels' std is about 0.4)
EMOTION_LR_SCALE = 5.0  # see _optimizer
OPENING_TOKENS = 128
OPENING_SHARE = 0.5
OPENING_SECONDS = 12.0
CONTRAST_WEIGHT = 1.0
CONTRAST_MARGIN = 3.0  # nats per window
CLEAR_VALENCE = 0.5  # an opening's contrast counts fully from this |valence| on, less below
OPENING_EVIDENCE = (0.074, 0.188)  # mean and std of POP909 training windows' 20 s mode evidence


@dataclass
class TrainConfig:
    data: str
    out: str
    steps: int = 3000
    batch_size: int = 16
    lr: float = 6e-4
    min_lr: float = 6e-5
    warmup: int = 200
    weight_decay: float = 0.1
    eval_every: int = 250
    eval_batches: int = 16
    checkpoint_every: int = 50
    seed: int = 0
    opening_share: float = OPENING_SHARE  # steps trained on short windows, see OPENING_TOKENS
    contrast: float = CONTRAST_WEIGHT  # weight of opening_losses' valence contrast
    minutes: float = 0.0  # stop (with a checkpoint) after this much wall time; 0 = no limit


class WindowSampler:
    """Random training windows (tokens plus per-token conditions) from a split file."""

    def __init__(self, path: str | Path, block_size: int):
        if not Path(path).exists():
            raise EmsyncError(f"{path}: corpus split not found (run `emsync data build` first)")
        data = np.load(path)
        self.block_size = block_size
        self.arrays = {k: data[k] for k in data.files}
        corpus = self.arrays["corpus"]
        self.music = np.flatnonzero(corpus != "groove")
        self.grooves = np.flatnonzero(corpus == "groove")
        durations = np.array([self._part("notes", i)[:, 1].max() for i in self.music])
        self.weights = durations / durations.sum()

    def _part(self, name: str, i: int) -> np.ndarray:
        offsets = self.arrays[name + "_offsets"]
        return self.arrays[name][offsets[i]:offsets[i + 1]]

    def sample(self, rng: np.random.Generator, augment: bool = True, length: int | None = None):
        length = length or self.block_size
        opening = length < self.block_size
        piece = int(rng.choice(self.music, p=self.weights))
        notes = self._part("notes", piece).copy()
        stretch = rng.uniform(0.9, 1.1) if augment else 1.0
        end = float(notes[:, 1].max()) * stretch
        t0 = float(rng.uniform(0.0, max(0.0, end - 8.0)))
        t0 = round(t0 / codec.STEP_SECONDS) * codec.STEP_SECONDS
        warp = TempoWarp(stretch)
        if augment and rng.random() < TEMPO_SWAP_SHARE:
            since = t0 if rng.random() < 0.5 else t0 + float(rng.uniform(2.0, 10.0))
            warp = TempoWarp(stretch, since, float(np.exp(rng.uniform(*np.log(TEMPO_SWAP_RANGE)))))
        notes[:, :2] = warp(notes[:, :2])
        window = notes[(notes[:, 0] >= t0) & (notes[:, 0] < t0 + WINDOW_SECONDS)]
        if augment:
            shift = int(rng.integers(-5, 7))
            pitched = window[:, 4] != DRUMS
            window[pitched, 2] = np.clip(window[pitched, 2] + shift, 0, 127)
            beats = warp(self._part("beats", piece))
            if len(beats) > 8 and self.grooves.size and rng.random() < DRUM_OVERLAY_SHARE:
                window = np.concatenate([window, self._drums_on_beats(rng, beats, t0)])
            key = window_key(window)
            swapped = np.zeros((0, 2))
            if rng.random() < MODE_SWAP_SHARE:
                swapped = np.array([[t0, np.inf]]) if opening else mode_swap_spans(rng, t0)
            valence_shift = swap_mode(window, swapped, key)
            louder = window[:, 0] >= warp.since - 1e-6
            window[louder, 3] = np.clip(np.round(window[louder, 3] * warp.speed ** 0.5), 1, 127)
        else:
            swapped, valence_shift = np.zeros((0, 2)), 0.0
        tokens, clock = codec.encode([Note(float(s), float(e), int(p), int(v), int(i)) for s, e, p, v, i in window],
                                     start_seconds=t0)
        tokens = np.concatenate([[codec.BOS], tokens])[: length + 1]
        clock = np.concatenate([[t0], clock])[: length + 1]
        curve = self._part("curve", piece)
        emotion = EmotionCurve(warp(curve[:, 0]), curve[:, 1], curve[:, 2]).at(clock)
        if opening:
            emotion[:, 0] = opening_valence(window, t0)
        else:
            emotion[:, 0] = np.clip(emotion[:, 0] + valence_shift * inside(clock, swapped), -1, 1)
        emotion[:, 1] = np.clip(emotion[:, 1] + warp.arousal_shift * (clock >= warp.since - 1e-6), -1, 1)
        boundaries = warp(self._part("boundaries", piece))
        if augment and rng.random() < MASKED_SHARE:
            offsets = np.full(len(clock), NO_BOUNDARY)
        else:
            if augment:
                boundaries = boundaries[rng.random(len(boundaries)) >= BOUNDARY_DROPOUT]
            offsets = boundary_offset_bins(clock, boundaries)
        return self._pad(tokens, emotion, offsets, length)

    def _drums_on_beats(self, rng: np.random.Generator, beats: np.ndarray, t0: float) -> np.ndarray:
        """A Groove performance warped so its beats fall on the song's beats from t0 on."""
        groove = int(rng.choice(self.grooves))
        drums = self._part("notes", groove).copy()
        bpm = float(self.arrays["bpm"][groove])
        first_beat = math.ceil(float(np.interp(t0, beats, np.arange(len(beats)))))
        position = first_beat + drums[:, 0] * bpm / 60.0
        keep = position <= len(beats) - 1
        drums = drums[keep]
        onset = np.interp(position[keep], np.arange(len(beats)), beats)
        drums[:, 1] = onset + (drums[:, 1] - drums[:, 0])
        drums[:, 0] = onset
        return drums[drums[:, 0] < t0 + WINDOW_SECONDS]

    @staticmethod
    def _pad(tokens, emotion, offsets, length: int):
        n = length + 1
        padded = np.full(n, codec.PAD, dtype=np.int64)
        padded[: len(tokens)] = tokens
        emo = np.zeros((n, 2), dtype=np.float32)
        emo[: len(emotion)] = emotion
        emo[len(emotion):] = emotion[-1]
        off = np.full(n, NO_BOUNDARY, dtype=np.int64)
        off[: len(offsets)] = offsets
        return padded[:-1], emo[:-1], off[:-1], padded[1:]

    def batch(self, rng: np.random.Generator, size: int, augment: bool = True, length: int | None = None):
        items = [self.sample(rng, augment, length) for _ in range(size)]
        return [torch.from_numpy(np.stack(column)) for column in zip(*items)]


class TempoWarp:
    """Piece time -> window time: a uniform stretch, then `speed` times faster from `since`
    (in stretched time) on. Continuous and increasing, so note order and lengths survive."""

    def __init__(self, stretch: float, since: float = np.inf, speed: float = 1.0):
        self.stretch, self.since, self.speed = stretch, since, speed
        self.arousal_shift = AROUSAL_PER_DOUBLING * math.log2(speed)

    def __call__(self, times: np.ndarray) -> np.ndarray:
        t = np.asarray(times, dtype=np.float64) * self.stretch
        if self.speed == 1.0:
            return t
        return np.where(t > self.since, self.since + (t - self.since) / self.speed, t)


def mode_swap_spans(rng: np.random.Generator, t0: float) -> np.ndarray:
    """(start, end) rows of the spans of a window to play in the parallel mode: every other
    span of 2-8 s, the first of them at the window start or a span later."""
    edges = [t0]
    while edges[-1] < t0 + WINDOW_SECONDS:
        edges.append(edges[-1] + float(rng.uniform(*MODE_SPAN_SECONDS)))
    edges[-1] = np.inf  # the last span runs on past the window
    first = int(rng.integers(0, 2))
    return np.array([(edges[k], edges[k + 1]) for k in range(first, len(edges) - 1, 2)]).reshape(-1, 2)


def inside(times: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Whether each time falls in one of the (start, end) spans."""
    times = np.asarray(times)[:, None]
    return ((times >= spans[:, 0] - 1e-6) & (times < spans[:, 1] - 1e-6)).any(axis=1)


def opening_valence(window: np.ndarray, t0: float) -> float:
    """The valence that the mode of a window's first OPENING_SECONDS asks for: their
    major-minus-minor key evidence, centred and scaled as the corpus labels are."""
    major, minor = _window_key_scores(window[window[:, 0] < t0 + OPENING_SECONDS])
    if not major.any():  # no pitched notes, or pitches that say nothing: neutral
        return 0.0
    evidence = major.max() - minor.max()
    return float(np.clip((evidence - OPENING_EVIDENCE[0]) / OPENING_EVIDENCE[1] * ESTIMATE_STD, -1, 1))


def _window_key_scores(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """features.key_scores of the duration-weighted pitch classes of a window's pitched
    notes (zeros when it has none)."""
    pitched = window[window[:, 4] != DRUMS]
    histogram = np.bincount(pitched[:, 2].astype(int) % 12, weights=pitched[:, 1] - pitched[:, 0], minlength=12)
    return key_scores(histogram)


def window_key(window: np.ndarray) -> tuple[int, bool] | None:
    """(tonic pitch class, major?) of a window (rows: start, end, pitch, velocity, instrument)
    whose pitches fit one key clearly, else None."""
    major, minor = _window_key_scores(window)
    if max(major.max(), minor.max()) < MIN_KEY_CLARITY:
        return None
    return (int(major.argmax()), True) if major.max() >= minor.max() else (int(minor.argmax()), False)


def swap_mode(window: np.ndarray, spans: np.ndarray, key: tuple[int, bool] | None) -> float:
    """Move the notes of a window in `key` (window_key) that start inside the (start, end)
    spans to the parallel mode, in place; returns the valence change that goes with it (0
    when left alone: no key, or no spans)."""
    if key is None or not len(spans):
        return 0.0
    tonic, major = key
    moves, shift = ({4: -1, 9: -1}, -MODE_SWAP_VALENCE) if major else ({3: 1, 8: 1}, MODE_SWAP_VALENCE)
    pitched = window[:, 4] != DRUMS
    degree = (window[:, 2].astype(int) - tonic) % 12
    moved = pitched & inside(window[:, 0], spans)
    for step, move in moves.items():
        window[moved & (degree == step), 2] += move
    return shift


def _optimizer(model: Generator, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices, except the emotion inputs (the embedding and the
    layer-norm modulation), which also learn EMOTION_LR_SCALE times faster. The emotion input
    informs few tokens (the notes where a scene's mode or pace turns), so its gradient is
    small and decay wins: the valence column of the embedding shrank from its initial norm of
    about 0.11 to 0.01, and without decay it did not grow back either (see model.py)."""
    def is_emotion(name: str) -> bool:
        return name.startswith("emotion_emb.") or ".modulation." in name

    named = list(model.named_parameters())
    emotion = [p for n, p in named if is_emotion(n)]
    decay = [p for n, p in named if p.dim() >= 2 and not is_emotion(n)]
    no_decay = [p for n, p in named if p.dim() < 2 and not is_emotion(n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay, "lr_scale": 1.0},
                              {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
                              {"params": emotion, "weight_decay": 0.0, "lr_scale": EMOTION_LR_SCALE}],
                             lr=cfg.lr, betas=(0.9, 0.95))


def opening_losses(model: Generator, x, emotion, offsets, targets) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token loss, and how badly each window fails to be likelier under its own
    valence than under the mirrored one: softplus(CONTRAST_MARGIN - log-likelihood ratio),
    weighted by how clearly the window leans major or minor. The likelihood alone barely
    asks for valence (a window's mode shows after a few notes, so valence is worth about
    0.005 nats a token), so this asks the model to tell the two valences apart."""
    mirrored = emotion.clone()
    mirrored[..., 0] = -mirrored[..., 0]
    logits, _ = model(torch.cat([x, x]), torch.cat([emotion, mirrored]), torch.cat([offsets, offsets]))
    log_p = torch.log_softmax(logits.float(), dim=-1).gather(-1, torch.cat([targets, targets]).unsqueeze(-1))
    log_p = log_p.squeeze(-1) * (torch.cat([targets, targets]) != codec.PAD)
    own, other = log_p.chunk(2)
    loss = -own.sum() / (targets != codec.PAD).sum()
    weight = (emotion[:, 0, 0].abs() / CLEAR_VALENCE).clamp(max=1.0)
    ratio = (own - other).sum(dim=1)
    return loss, (weight * torch.nn.functional.softplus(CONTRAST_MARGIN - ratio)).mean()


def learning_rate(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


@functools.cache
def bf16_is_faster(device: str) -> bool:
    """Whether bf16 autocast beats fp32 here, timed on a matmul of the model's shape. With
    AVX-512 BF16 this model trained at 4.3-4.9k tokens/s; an AVX2-only CPU emulates bf16,
    about 20x slower than fp32 (83 vs 1,750 tokens/s on a 2-core EPYC without AVX-512)."""
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    a, b = torch.randn(512, 256), torch.randn(256, 1024)

    def seconds(enabled: bool) -> float:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=enabled):
            a @ b  # warm-up
            tick = time.perf_counter()
            for _ in range(5):
                a @ b
        return time.perf_counter() - tick
    return seconds(True) < seconds(False)


def _autocast(device: str):
    return torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16_is_faster(device))


@torch.no_grad()
def evaluate_loss(model: Generator, sampler: WindowSampler, batches: int, batch_size: int, device: str) -> float:
    """Mean loss over fixed (seeded, unaugmented) validation windows."""
    model.eval()
    rng = np.random.default_rng(1234)
    losses = []
    for _ in range(batches):
        x, emo, off, y = (t.to(device) for t in sampler.batch(rng, batch_size, augment=False))
        with _autocast(device):
            losses.append(float(model.loss(x, emo, off, y)))
    model.train()
    return float(np.mean(losses))


def _save_checkpoint(path: Path, **state) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig, model_cfg: GeneratorConfig | None = None, init_from: str | None = None,
          log=print) -> Path:
    """Train until cfg.steps (or cfg.minutes); returns the checkpoint path."""
    from emsync.training.export import load_onnx_weights

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    ckpt_path = out / "ckpt.pt"
    step, history = 0, {}
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model_cfg = GeneratorConfig(**state["model_config"])
        model = Generator(model_cfg)
        load_weights(model, state["model"], str(ckpt_path))
        step, history = state["step"], state["history"]
        log(f"resuming {ckpt_path} at step {step}")
    elif init_from:
        model, history = load_onnx_weights(init_from)
        model_cfg = model.cfg
        log(f"starting from the weights in {init_from} ({history.get('tokens', 0)} tokens seen)")
    else:
        model_cfg = model_cfg or GeneratorConfig()
        model = Generator(model_cfg)
    history = {"tokens": 0, "seconds": 0.0, "steps": 0} | history
    why_not = "unsupported" if device == "cuda" else "slower than fp32"
    log(f"{device}, bf16 autocast {'on' if bf16_is_faster(device) else 'off: ' + why_not}")
    model.to(device).train()
    optimizer = _optimizer(model, cfg)
    if ckpt_path.exists():
        try:
            optimizer.load_state_dict(state["optimizer"])
        except ValueError:  # saved with other parameter groups: keep the weights, fresh moments
            log("optimizer state not reused (its parameter groups changed)")
    train_set = WindowSampler(Path(cfg.data) / "train.npz", model_cfg.block_size)
    valid_set = WindowSampler(Path(cfg.data) / "valid.npz", model_cfg.block_size)
    rng = np.random.default_rng(cfg.seed + step)
    opening_tokens = min(OPENING_TOKENS, model_cfg.block_size // 2)
    log_file = open(out / "log.jsonl", "a")
    started = time.time()

    def checkpoint():
        _save_checkpoint(ckpt_path, model=model.state_dict(), optimizer=optimizer.state_dict(), step=step,
                         history=history, model_config=model_cfg.to_dict(), train_config=asdict(cfg))

    while step < cfg.steps:
        tick = time.time()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg) * group["lr_scale"]
        length = opening_tokens if rng.random() < cfg.opening_share else model_cfg.block_size
        batch = train_set.batch(rng, cfg.batch_size * model_cfg.block_size // length, length=length)
        x, emo, off, y = (t.to(device) for t in batch)
        with _autocast(device):
            contrast = None
            if length < model_cfg.block_size and cfg.contrast:
                loss, contrast = opening_losses(model, x, emo, off, y)
            else:
                loss = model.loss(x, emo, off, y)
        total = loss if contrast is None else loss + cfg.contrast * contrast
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        history["steps"] += 1
        n_tokens = int((y != codec.PAD).sum())
        elapsed = time.time() - tick
        history["tokens"] += n_tokens
        history["seconds"] += elapsed
        record = {"step": step, "loss": round(loss.item(), 4), "lr": optimizer.param_groups[0]["lr"],
                  "tokens_per_s": round(n_tokens / elapsed), "device": device}
        if contrast is not None:
            record["contrast"] = round(contrast.item(), 4)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            record["val_loss"] = round(evaluate_loss(model, valid_set, cfg.eval_batches, cfg.batch_size, device), 4)
            history["val_loss"] = record["val_loss"]
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()
        if step % 10 == 0 or "val_loss" in record:
            log(json.dumps(record))
        out_of_time = cfg.minutes and time.time() - started > cfg.minutes * 60
        if step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time:
            checkpoint()
        if out_of_time:
            log(f"time limit reached at step {step}")
            break
    checkpoint()
    return ckpt_path
