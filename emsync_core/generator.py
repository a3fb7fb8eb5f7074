"""Music generation over onnxruntime with a key/value cache.

The sampler feeds one token at a time, each with the valence/arousal wanted at its
instant and the quantized time to the next cut, exactly as in training. A small
grammar keeps the stream well formed (no release of a silent note, bounded
polyphony, time always moves on) and releases a note the model can no longer see
start: when the context window slides past its note-on (training windows never hold
the release of a note they did not see start, so the model would hold it forever)
or after MAX_NOTE_SECONDS.

Valence guidance (`valence_guidance`, off by default): while the model's own response to
valence is weak (see the model card), the sampler can hold back the mode-defining degrees of the other mode -- the minor third and sixth
above the tonic of what has been playing for positive valence, the major ones for
negative -- by `valence_guidance * |valence|` logits. It only lowers (raising notes made
the model repeat them), never forbids; evaluation reports the model with and without it. With `hit_cuts`, time may not jump over a cut and
at least two pitched notes must start on it: a constrained mode for composers who
want a hit on every cut, reported separately from the model's own alignment.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import codec
from .conditions import NO_BOUNDARY, EmotionCurve, boundary_offset_bins
from .errors import EmsyncError
from .features import key_scores
from .score import DRUMS, Note

MAX_EVENTS_PER_STEP = 48
MAX_POLYPHONY = 24
MAX_NOTE_SECONDS = 8.0
HIT_NOTES = 2
VALENCE_GUIDANCE = 4.0  # logits at |valence| = 1, when asked for (--valence-guidance)
GUIDE_SECONDS = 8.0  # the tonic is read from the note-ons of this much recent music
MODEL_NAME = "generator.onnx"


class Cancelled(EmsyncError):
    """The caller's cancel event was set before the music was finished; nothing was produced."""


def default_model_path() -> Path:
    return Path(str(resources.files("emsync_core") / "models" / MODEL_NAME))


@dataclass
class Generation:
    notes: list[Note]
    tokens: list[int]
    clocks: list[float]  # seconds after each token
    new_from: int  # index of the first generated (not prefix) token
    seconds: float  # wall time spent
    stats: dict = field(default_factory=dict)


class _Stream:
    """What the sampler needs to know about the events so far."""

    def __init__(self):
        self.step = 0
        self.sounding: dict[tuple[int, int], tuple[int, int]] = {}  # key -> (start step, token index)
        self.count = 0  # tokens pushed
        self.window_start = 0  # index of the oldest token in the model's context
        self.events_this_step = 0
        self.pitched_onsets_this_step = 0
        self.last = codec.BOS

    def push(self, token: int) -> None:
        if codec.is_shift(token):
            self.step += codec.shift_steps(token)
            self.events_this_step = 0
            self.pitched_onsets_this_step = 0
        else:
            self.events_this_step += 1
            if codec.is_on(token):
                instrument, pitch = codec.on_target(token)
                if instrument != DRUMS:
                    self.sounding[instrument, pitch] = (self.step, self.count)
                    self.pitched_onsets_this_step += 1
            elif codec.is_off(token):
                self.sounding.pop(codec.off_target(token), None)
        self.last = token
        self.count += 1

    def stale(self) -> list[tuple[int, int]]:
        """Sounding notes to release now: started out of the model's sight, or too long ago."""
        limit = round(MAX_NOTE_SECONDS / codec.STEP_SECONDS)
        return [key for key, (start, index) in self.sounding.items()
                if index < self.window_start or self.step - start >= limit]


def _degree_tilts() -> np.ndarray:
    """(12, vocab): +1 on pitched note-ons a major third or sixth above each tonic, -1 on
    those a minor third or sixth above it."""
    tilts = np.zeros((12, codec.VOCAB_SIZE))
    pitches = np.arange(codec.N_PITCH)
    for tonic in range(12):
        degree = (pitches - tonic) % 12
        sign = np.where(np.isin(degree, (4, 9)), 1.0, np.where(np.isin(degree, (3, 8)), -1.0, 0.0))
        for instrument in codec.PITCHED:
            tilts[tonic, codec.on_token(instrument, 0):codec.on_token(instrument, 0) + codec.N_PITCH] = sign
    return tilts


_TILTS = _degree_tilts()


class _ModeGuide:
    """Valence guidance: which tonic the music is in, and the logit tilt toward the mode asked for."""

    def __init__(self, strength: float, seed: int):
        self.strength = strength
        self.onsets: list[tuple[int, int]] = []  # (step, pitch class) of recent pitched note-ons
        self.tonic = int(np.random.default_rng(seed + 7919).integers(12))
        self.heard = False  # the tonic has been read from the music, not drawn

    def push(self, token: int, step: int) -> None:
        if codec.is_on(token):
            instrument, pitch = codec.on_target(token)
            if instrument != DRUMS:
                self.onsets.append((step, pitch % 12))
        horizon = step - round(GUIDE_SECONDS / codec.STEP_SECONDS)
        while self.onsets and self.onsets[0][0] < horizon:
            self.onsets.pop(0)

    def tilt(self, valence: float) -> np.ndarray | None:
        if self.strength == 0 or abs(valence) < 0.05:
            return None
        if len(self.onsets) >= 6:
            self._follow_key()
        unwanted = np.minimum(_TILTS[self.tonic] * np.sign(valence), 0.0)  # -1 on the other mode's degrees
        return self.strength * abs(valence) * unwanted

    def _follow_key(self) -> None:
        """Track the tonic of the music, sticky across parallel-mode moves: C minor reads as
        its relative Eb major, so a move to the relative key is not a new tonic, and another
        key must fit clearly better before the tonic follows it."""
        major, minor = key_scores(np.bincount([pc for _, pc in self.onsets], minlength=12).astype(float))
        fit = np.maximum(major, minor)
        best = int(fit.argmax())
        if not self.heard:
            self.tonic, self.heard = best, True
        elif best not in (self.tonic, (self.tonic + 3) % 12, (self.tonic + 9) % 12) \
                and fit[best] > fit[self.tonic] + 0.1:
            self.tonic = best


class MusicGenerator:
    def __init__(self, model_path: str | Path | None = None, threads: int | None = None):
        import onnxruntime as ort

        path = Path(model_path) if model_path else default_model_path()
        if not path.exists():
            raise EmsyncError(f"{path}: generator model not found")
        options = ort.SessionOptions()
        # One thread: a one-token step is too small to share, and a second thread mostly waits.
        options.intra_op_num_threads = threads or 1
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise EmsyncError(f"{path}: not a usable ONNX generator ({exc})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "emsync_config" not in meta:
            raise EmsyncError(f"{path}: ONNX file lacks emsync metadata (not an emsync generator)")
        self.config = json.loads(meta["emsync_config"])
        self.history = json.loads(meta.get("emsync_history", "{}"))
        self.path = path
        cfg = self.config
        self._empty_past = np.zeros((cfg["n_layer"], 2, 1, cfg["n_head"], 0, cfg["n_embd"] // cfg["n_head"]),
                                    dtype=np.float32)

    def _run(self, tokens, emotion, offsets, past):
        """Logits after the last token, and the grown cache; the cache stays an onnxruntime
        value between steps (no copy through numpy: that copy was half the cost of a step)."""
        from onnxruntime import OrtValue

        feeds = {"tokens": OrtValue.ortvalue_from_numpy(np.asarray(tokens, dtype=np.int64)[None]),
                 "emotion": OrtValue.ortvalue_from_numpy(np.asarray(emotion, dtype=np.float32)[None]),
                 "offsets": OrtValue.ortvalue_from_numpy(np.asarray(offsets, dtype=np.int64)[None]),
                 "past": past if isinstance(past, OrtValue) else OrtValue.ortvalue_from_numpy(past)}
        logits, present = self.session.run_with_ort_values(["logits", "present"], feeds)
        return logits.numpy()[0, -1].astype(np.float64), present

    def generate(self, duration: float, cuts: Sequence[float], emotion: EmotionCurve, seed: int = 0,
                 temperature: float = 1.0, top_p: float = 0.95, prefix: Sequence[int] = (),
                 hit_cuts: bool = False, mask_boundaries: bool = False,
                 valence_guidance: float = 0.0,
                 progress: Callable[[float], None] | None = None,
                 cancel: threading.Event | None = None) -> Generation:
        """Music from the end of `prefix` (tokens from time 0) until `duration` seconds.

        `progress(fraction)` hears how far the music has got before every token; a set
        `cancel` event raises Cancelled within one token."""
        if duration <= 0:
            raise EmsyncError("duration: must be positive")
        if temperature <= 0 or not 0 < top_p <= 1:
            raise EmsyncError("temperature must be > 0 and top_p in (0, 1]")
        started = time.perf_counter()
        rng = np.random.default_rng(seed)
        cut_times = sorted(float(c) for c in cuts if 0 < c < duration)
        boundaries = [] if mask_boundaries else cut_times
        cut_steps = [round(c / codec.STEP_SECONDS) for c in cut_times]
        end_step = round(duration / codec.STEP_SECONDS)

        stream = _Stream()
        guide = _ModeGuide(valence_guidance, seed)
        tokens: list[int] = []
        clocks: list[float] = []
        for token in prefix:
            token = int(token)
            if not 0 <= token < codec.VOCAB_SIZE or token in (codec.PAD, codec.BOS):
                raise EmsyncError(f"prefix: token {token} is not an event of this vocabulary")
            stream.push(token)
            guide.push(token, stream.step)
            tokens.append(token)
            clocks.append(stream.step * codec.STEP_SECONDS)
        new_from = len(tokens)
        hit = {c for c in cut_steps if c < stream.step}

        def conditions(clock_values: list[float]):
            clock_array = np.asarray(clock_values, dtype=np.float64)
            offs = boundary_offset_bins(clock_array, boundaries) if boundaries else \
                np.full(len(clock_array), NO_BOUNDARY)
            return emotion.at(clock_array), offs

        block = self.config["block_size"]

        def prime():
            keep = block // 2 if tokens else 0
            stream.window_start = len(tokens) - min(keep, len(tokens))
            window = tokens[len(tokens) - keep:] if keep else []
            window_clocks = clocks[len(clocks) - keep:] if keep else []
            first_clock = window_clocks[0] if window_clocks else stream.step * codec.STEP_SECONDS
            emo, offs = conditions([first_clock] + window_clocks)
            return (*self._run([codec.BOS] + window, emo, offs, self._empty_past), len(window) + 1)

        logits, past, cached = prime()
        steps_run = 0
        first_step = stream.step
        while stream.step < end_step:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            if progress is not None:
                progress((stream.step - first_step) / max(1, end_step - first_step))
            mask = self._grammar(stream, cut_steps, hit if hit_cuts else None)
            if guide.strength:
                tilt = guide.tilt(float(emotion.at([stream.step * codec.STEP_SECONDS])[0, 0]))
                if tilt is not None:
                    logits = logits + tilt
            token = _sample(np.where(mask, logits, -np.inf), temperature, top_p, rng)
            stream.push(token)
            guide.push(token, stream.step)
            if hit_cuts and stream.step in cut_steps and stream.pitched_onsets_this_step >= HIT_NOTES:
                hit.add(stream.step)
            tokens.append(token)
            clocks.append(stream.step * codec.STEP_SECONDS)
            steps_run += 1
            if stream.step >= end_step:
                break
            if cached + 1 >= block:
                logits, past, cached = prime()
            else:
                emo, offs = conditions([clocks[-1]])
                logits, past = self._run([token], emo, offs, past)
                cached += 1
        notes = [n for n in codec.decode(tokens, end_seconds=duration) if n.start < duration]
        notes = [Note(n.start, min(n.end, duration), n.pitch, n.velocity, n.instrument) for n in notes]
        elapsed = time.perf_counter() - started
        return Generation(notes, tokens, clocks, new_from, elapsed,
                          {"tokens": steps_run, "tokens_per_second": steps_run / max(elapsed, 1e-9),
                           "realtime_factor": (duration - clocks[new_from - 1] if new_from else duration)
                           / max(elapsed, 1e-9)})

    @staticmethod
    def _grammar(stream: _Stream, cut_steps: list[int], hit: set[int] | None) -> np.ndarray:
        allowed = np.ones(codec.VOCAB_SIZE, dtype=bool)
        allowed[[codec.PAD, codec.BOS]] = False
        allowed[codec.OFF0:] = False
        for instrument, pitch in stream.sounding:
            allowed[codec.off_token(instrument, pitch)] = True
        if codec.VEL0 <= stream.last < codec.ON0:
            allowed[codec.VEL0:codec.ON0] = False  # a velocity is followed by its note
        if len(stream.sounding) >= MAX_POLYPHONY:
            allowed[codec.ON0:codec.OFF0] = False
            allowed[[codec.on_token(DRUMS, p) for p in range(codec.N_PITCH)]] = True
        if hit is not None:
            pending = [c for c in cut_steps if c >= stream.step and c not in hit]
            if pending:
                gap = pending[0] - stream.step
                if gap == 0:
                    allowed[codec.SHIFT0:codec.VEL0] = False  # stay on the cut until the chord sounds
                    allowed[codec.on_token(DRUMS, 0):codec.on_token(DRUMS, 0) + codec.N_PITCH] = False
                elif gap < codec.MAX_SHIFT_STEPS:
                    allowed[codec.shift_token(gap) + 1:codec.VEL0] = False  # land on the cut, not past it
        if stream.events_this_step >= MAX_EVENTS_PER_STEP:
            allowed[:] = False
            allowed[codec.SHIFT0:codec.VEL0] = True
        stale = stream.stale()
        if stale:
            allowed[:] = False
            allowed[[codec.off_token(instrument, pitch) for instrument, pitch in stale]] = True
        return allowed


def _sample(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    scaled = logits / temperature
    scaled -= scaled.max()
    probs = np.exp(scaled)
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    cumulative = np.cumsum(probs[order])
    keep = order[: int(np.searchsorted(cumulative, top_p)) + 1]
    kept = probs[keep] / probs[keep].sum()
    return int(keep[rng.choice(len(keep), p=kept)])
