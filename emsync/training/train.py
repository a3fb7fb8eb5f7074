"""`emsync train`: train the generator on a built corpus, resumably.

Every step trains on a batch of windows cut and augmented afresh (windows.py). A share of
the steps (`opening_share`) trains on OPENING_TOKENS-long openings instead (as many tokens,
so four times the windows), the part of a piece where nothing but valence can say which
mode to take. Besides the next-token loss they pay `opening_losses`' contrast: each window
should be likelier under its own valence than under the mirrored one, because the
likelihood alone barely asks for valence. The emotion inputs learn faster than the rest
and without weight decay (`_optimizer`).

The run resumes from `OUT/ckpt.pt` when present, else from the weights inside an ONNX
export (`--init-from`), so the committed model is always a valid starting point. What was
tried on the way to this recipe, and what it measured, is in the model card
(emsync/core/models/MODEL_CARD.md).
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
from emsync.core.fileio import atomic_output
from emsync.training.model import Generator, GeneratorConfig, load_weights
from emsync.training.windows import WindowSampler

EMOTION_LR_SCALE = 5.0  # see _optimizer
OPENING_TOKENS = 128
OPENING_SHARE = 0.5
CONTRAST_WEIGHT = 1.0
CONTRAST_MARGIN = 3.0  # nats per window
CLEAR_VALENCE = 0.5  # an opening's contrast counts fully from this |valence| on, less below


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


def _optimizer(model: Generator, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices, except the emotion inputs (the embedding and the
    layer-norm modulation): no decay, and EMOTION_LR_SCALE times the learning rate. The
    emotion input informs few tokens (the notes where a scene's mode or pace turns), so its
    gradient is small; decay would shrink it, and at the common rate it grows too slowly."""
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


def opening_losses(model: Generator, x, emotion, offsets, targets, grid=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token loss, and how badly each window fails to be likelier under its own
    valence than under the mirrored one: softplus(CONTRAST_MARGIN - log-likelihood ratio),
    weighted by how clearly the window leans major or minor. The likelihood alone barely
    asks for valence (a window's mode shows after a few notes), so this asks the model to
    tell the two valences apart."""
    mirrored = emotion.clone()
    mirrored[..., 0] = -mirrored[..., 0]
    logits, _ = model(torch.cat([x, x]), torch.cat([emotion, mirrored]), torch.cat([offsets, offsets]),
                      grid=None if grid is None else torch.cat([grid, grid]))
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
    """Whether bf16 autocast beats fp32 here, timed on a matmul of the model's shape: CPUs
    with AVX-512 BF16 run it natively, others emulate it far slower than fp32."""
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
        x, emo, off, grid, y = (t.to(device) for t in sampler.batch(rng, batch_size, augment=False))
        with _autocast(device):
            losses.append(float(model.loss(x, emo, off, y, grid)))
    model.train()
    return float(np.mean(losses))


def _save_checkpoint(path: Path, **state) -> None:
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def _starting_point(ckpt_path: Path, init_from: str | None, model_cfg: GeneratorConfig | None, log):
    """(model, step, history, optimizer state or None): the run's own checkpoint, else the
    weights inside an ONNX export, else a fresh model of `model_cfg`."""
    from emsync.training.export import load_onnx_weights

    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model = Generator(GeneratorConfig(**state["model_config"]))
        load_weights(model, state["model"], str(ckpt_path))
        log(f"resuming {ckpt_path} at step {state['step']}")
        return model, state["step"], state["history"], state["optimizer"]
    if init_from:
        model, history = load_onnx_weights(init_from)
        log(f"starting from the weights in {init_from} ({history.get('tokens', 0)} tokens seen)")
        return model, 0, history, None
    return Generator(model_cfg or GeneratorConfig()), 0, {}, None


def train(cfg: TrainConfig, model_cfg: GeneratorConfig | None = None, init_from: str | None = None,
          log=print) -> Path:
    """Train until cfg.steps (or cfg.minutes); returns the checkpoint path."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    ckpt_path = out / "ckpt.pt"
    model, step, history, optimizer_state = _starting_point(ckpt_path, init_from, model_cfg, log)
    model_cfg = model.cfg
    history = {"tokens": 0, "seconds": 0.0, "steps": 0} | history
    why_not = "unsupported" if device == "cuda" else "slower than fp32"
    log(f"{device}, bf16 autocast {'on' if bf16_is_faster(device) else 'off: ' + why_not}")
    model.to(device).train()
    optimizer = _optimizer(model, cfg)
    if optimizer_state is not None:
        try:
            optimizer.load_state_dict(optimizer_state)
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
        x, emo, off, grid, y = (t.to(device) for t in batch)
        with _autocast(device):
            contrast = None
            if length < model_cfg.block_size and cfg.contrast:
                loss, contrast = opening_losses(model, x, emo, off, y, grid)
            else:
                loss = model.loss(x, emo, off, y, grid)
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
