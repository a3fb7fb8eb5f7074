"""The EMSYNC generator: a decoder-only transformer over performance events.

Conditioning follows EMSYNC: valence and arousal are embedded and concatenated to
every token embedding ("continuous concat"), and an embedding of the quantized time
to the next boundary is added to every token. Conditions are per token, so one
sequence can cross scenes of different emotion. Training only (torch); the product
runs the ONNX export of this model with onnxruntime.

Beyond EMSYNC, valence and arousal also scale and shift the output of every layer norm
(`emotion_modulation`, as in DiT's adaLN; zero at initialisation, so it starts as the plain
model). Choosing the third and sixth of the key the context has set is a product of the
condition and the key, which concatenation alone has to bootstrap from two tiny factors; a
multiplicative path gives that product a direct, first-order gradient (the model card tells
what each measured).

Also beyond EMSYNC, every token hears where it sits on the musical grid (`grid`): the codec
steps to the next 16th note and which 16th of the bar that is, two embeddings added like the
boundary offset (zero at initialisation, so weights trained without them load unchanged).
With the grid in view the model can time its notes to the tempo map the music is written in.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from emsync.core import codec
from emsync.core.conditions import N_GRID_AHEAD, N_GRID_SLOTS, N_OFFSET_BINS
from emsync.core.errors import EmsyncError


@dataclass
class GeneratorConfig:
    vocab_size: int = codec.VOCAB_SIZE
    n_offset_bins: int = N_OFFSET_BINS
    block_size: int = 512
    n_layer: int = 6
    n_head: int = 4
    n_embd: int = 256
    n_cond: int = 32  # width of the valence/arousal embedding within n_embd
    dropout: float = 0.1
    emotion_modulation: bool = True  # valence/arousal scale and shift every layer norm's output
    grid: bool = True  # tokens hear the 16th-note grid (steps to the next 16th, its place in the bar)

    def to_dict(self) -> dict:
        return asdict(self)


class SelfAttention(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, c // self.n_head).permute(2, 0, 3, 1, 4)
        if past is None:
            # No dropout on attention weights: it forces the slow SDPA path on CPU (2.5x).
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
            n_past = k.shape[2] - t
            rows = torch.arange(t, device=x.device).unsqueeze(1) + n_past
            future = torch.arange(k.shape[2], device=x.device).unsqueeze(0) > rows
            # Explicit attention: exports to plain ONNX ops that every runtime agrees on.
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
            y = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(b, t, c)), (k, v)


class Block(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * cfg.n_embd, cfg.n_embd), nn.Dropout(cfg.dropout))
        # per-channel (scale, shift) for ln1 and ln2 from valence/arousal
        self.modulation = nn.Linear(2, 4 * cfg.n_embd) if cfg.emotion_modulation else None

    def forward(self, x, emotion, past):
        scale1 = shift1 = scale2 = shift2 = None
        if self.modulation is not None:
            scale1, shift1, scale2, shift2 = self.modulation(emotion).chunk(4, dim=-1)
        attended, present = self.attn(_modulate(self.ln1(x), scale1, shift1), past)
        x = x + attended
        return x + self.mlp(_modulate(self.ln2(x), scale2, shift2)), present


def _modulate(normed: torch.Tensor, scale: torch.Tensor | None, shift: torch.Tensor | None) -> torch.Tensor:
    return normed if scale is None else normed * (1 + scale) + shift


class Generator(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.token_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd - cfg.n_cond)
        self.emotion_emb = nn.Linear(2, cfg.n_cond)
        self.offset_emb = nn.Embedding(cfg.n_offset_bins, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd)
        if cfg.grid:
            self.grid_ahead_emb = nn.Embedding(N_GRID_AHEAD, cfg.n_embd)
            self.grid_slot_emb = nn.Embedding(N_GRID_SLOTS, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))
            if ".modulation." in name or name.startswith("grid_"):
                nn.init.zeros_(p)

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def forward(self, tokens, emotion, offsets, past: Sequence[torch.Tensor] | None = None, grid=None):
        """tokens, offsets: (B, T) int64; emotion: (B, T, 2) valence/arousal; grid: (B, T, 2)
        int64 steps to the next 16th and its slot in the bar (None: no grid).
        past: cached keys and values, [key_0, value_0, key_1, ...] each (B, n_head, P, head_dim),
        or None. Returns logits (B, T, vocab) and the grown cache (same layout, P + T long).
        One tensor per layer and kind, not one stacked tensor: onnxruntime copies a stacked
        cache whole on every generated token, so a step would grow costly with the context."""
        n_past = 0 if past is None else past[0].shape[2]
        positions = torch.arange(tokens.shape[1], device=tokens.device) + n_past
        emotion = emotion.to(self.emotion_emb.weight.dtype)
        x = torch.cat([self.token_emb(tokens), self.emotion_emb(emotion)], dim=-1)
        x = x + self.offset_emb(offsets) + self.pos_emb(positions)
        if grid is not None and self.cfg.grid:
            x = x + self.grid_ahead_emb(grid[..., 0]) + self.grid_slot_emb(grid[..., 1])
        x = self.drop(x)
        presents = []
        for i, block in enumerate(self.blocks):
            x, present = block(x, emotion, None if past is None else (past[2 * i], past[2 * i + 1]))
            presents += present
        return self.head(self.ln_f(x)), presents

    def loss(self, tokens, emotion, offsets, targets, grid=None):
        logits, _ = self(tokens, emotion, offsets, grid=grid)
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=codec.PAD)

    def empty_past(self, batch: int = 1) -> list[torch.Tensor]:
        cfg = self.cfg
        return [torch.zeros(batch, cfg.n_head, 0, cfg.n_embd // cfg.n_head) for _ in range(2 * cfg.n_layer)]


def load_weights(model: Generator, state: dict, source: str) -> None:
    """Load a state dict; weights saved before emotion modulation or the grid existed lack
    them, and their zero start leaves such a model unchanged."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [name for name in missing if ".modulation." not in name and not name.startswith("grid_")]
    if missing or unexpected:
        raise EmsyncError(f"{source}: weights do not fit the generator (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]})")
