"""Music generation over onnxruntime with a key/value cache.

The sampler feeds one token at a time, each with the valence/arousal wanted at its
instant, the quantized time to the next cut and, for a model that hears it, where it sits
on the tempo map's 16th-note grid, exactly as in training. A small
grammar keeps the stream well formed (no release of a silent note, bounded
polyphony, time always moves on) and releases a note the model can no longer see
start: when the context window slides past its note-on (training windows never hold
the release of a note they did not see start, so the model would hold it forever)
or after MAX_NOTE_SECONDS.

Emotion guidance (`emotion_guidance`, off by default): every step also runs the same
music under the mirrored emotion (-valence, -arousal), as a second row of the batch, and
moves the logits away from it: logits(e) + g * (logits(e) - logits(-e)). This is
classifier-free guidance with the opposite emotion standing in for "no condition": it
strengthens whatever the model learned about emotion, adds nothing it did not, and
vanishes at a neutral request. The batch of two makes a step slower (the model card has
the cost, from benchmarks/probe_generator.py), so it is opt-in.

With a tempo map, notes start only on its grid (`follow_grid`, on unless turned off): a
time shift lands within GRID_GUIDE_SECONDS of a 16th note or a boundary, and no note starts
elsewhere. A shift the model wanted that would land off the grid gives its probability to the
shift landing nearest to where it was heading (not spread over all the others, which would
favour the tiny shifts around a grid point and crowd the music). So the model still chooses
which 16ths to play, how long to rest and its own feel around them, and it hears the rhythm
that will be written (a quantizer applied afterwards moves notes the model has already built
on). Turned off, eval measures the model's own grid fit.

With `hit_cuts`, time may not jump over a cut and at least two pitched notes must start
on it: a constrained mode for composers who want a hit on every cut, reported separately
from the model's own alignment. With `lock_mode`, valence picks the mode (mode_lock.py),
reported separately from the model's own valence response in the same way. With
`stay_in_key` (on unless turned off), a pitched note outside the key heard so far keeps
half the probability the model gave it (running_key.py); eval reports the model alone
without it.

The bundled model runs as a weight-only int8 copy of the runtime graph
(training/runtime_graph.py): onnxruntime's fused attention over a key/value cache that each
token writes in place (`SharedCache`). A float file exported from torch (`emsync train
--export`) runs as it is, its cache growing by one token a call (`GrowingCache`).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from emsync.core import codec
from emsync.core.conditions import (NO_BOUNDARY, NO_GRID_AHEAD, NO_GRID_SLOT, EmotionCurve, boundary_offset_bins,
                                    grid_bins)
from emsync.core.errors import EmsyncError
from emsync.core.mode_lock import ModeLock
from emsync.core.running_key import InKey, RunningKey
from emsync.core.music import DRUMS, Note
from emsync.core.decoding import SHARED_CACHE_GRAPH, GrowingCache, SharedCache
from emsync.core.onnx_models import load_session, usable_cpus
from emsync.core.tempo import TempoMap

MAX_EVENTS_PER_STEP = 48
MAX_POLYPHONY = 24
MAX_NOTE_SECONDS = 4.0  # 0.2 % of the held-out corpus's pitched notes are longer (probe_generator.py)
MAX_NOTE_STEPS = round(MAX_NOTE_SECONDS / codec.STEP_SECONDS)
HIT_NOTES = 2
GRID_GUIDE_SECONDS = 0.02  # guided onsets stay this close to a 16th: inside the +-30 ms counted as on it
EMOTION_GUIDANCE = 1.0  # strength g when asked for without a value (--emotion-guidance)
MODEL_NAME = "generator.onnx"  # float weights of record: training resumes from them


class Cancelled(EmsyncError):
    """The caller's cancel event was set before the music was finished; nothing was produced."""


def default_model_path() -> Path:
    return Path(str(resources.files("emsync.core") / "models" / MODEL_NAME))


def int8_path(path: str | Path) -> Path:
    """Where the int8 runtime copy of a float export lives: generator.onnx -> generator-int8.onnx
    (written by export.quantize_int8)."""
    path = Path(path)
    return path.with_name(f"{path.stem}-int8{path.suffix}")


def runtime_model_path() -> Path:
    """The bundled model generation uses: the int8 copy, or the float file without one."""
    int8 = int8_path(default_model_path())
    return int8 if int8.exists() else default_model_path()


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
        return [key for key, (start, index) in self.sounding.items()
                if index < self.window_start or self.step - start >= MAX_NOTE_STEPS]


class MusicGenerator:
    """The ONNX generator and its onnxruntime sessions, one per way a step may run:

    - "alone": a generation running by itself (the CLI's, a score's, takes one after another)
      steps and starts on two intra-op threads, on a machine with two CPUs or more: a step of
      the runtime graph is then up to a fifth faster (model card). They spin inside a step and
      sleep at its end, so the sampler's Python between steps, a live player or a DAW on the
      same machine get the second core, and an idle server burns none;
    - "beside": generations running side by side on one generator (regeneration's takes on
      several threads) step on one thread each, so the takes share the CPUs instead of
      fighting over them, and start on two threads that do not spin, which would slow the
      steps running beside them.

    `threads` puts every use on one session of that many threads (one batch worker a core:
    1), as does a machine with one CPU. A float file exported from torch steps and starts on
    one session a use ("alone" or "beside"). Sessions load on first use, so the CLI loads one."""

    def __init__(self, model_path: str | Path | None = None, threads: int | None = None):
        path = Path(model_path) if model_path else runtime_model_path()
        self.path, self.threads = path, threads
        self._sessions: dict[str, object] = {}
        self._loading = threading.Lock()
        session = self.session("alone")
        meta = session.get_modelmeta().custom_metadata_map
        if "emsync_config" not in meta:
            raise EmsyncError(f"{path}: ONNX file lacks emsync metadata (not an emsync generator)")
        self.config = json.loads(meta["emsync_config"])
        self.history = json.loads(meta.get("emsync_history", "{}"))
        self.precision = meta.get("emsync_precision", "float32")
        self.hears_grid = any(i.name == "grid" for i in session.get_inputs())
        self._cache_kind = SharedCache if meta.get("emsync_graph") == SHARED_CACHE_GRAPH else GrowingCache

    def session(self, use: str = "alone"):
        """The onnxruntime session for `use`: "alone", "beside" (steps of generations running
        side by side) or "start" (their starts); see the class doc."""
        with self._loading:
            if use not in self._sessions:
                shared, threads, spin = self._plan(use)
                if shared not in self._sessions:
                    self._sessions[shared] = load_session(self.path, "generator", threads=threads, spin=spin)
                self._sessions[use] = self._sessions[shared]
            return self._sessions[use]

    def _plan(self, use: str) -> tuple[str, int, bool]:
        """(the use whose session `use` runs on, its intra-op threads, how they spin: see
        onnx_models.load_session)."""
        if self.threads:
            return "alone", self.threads, "in_run"
        cpus = min(2, usable_cpus())
        if use == "alone" or cpus < 2:   # one CPU: one single-thread session for every use
            return "alone", cpus, "in_run"
        if use == "beside":
            return "beside", 1, "in_run"   # one thread: no pool to spin
        return "start", cpus, "never"

    def decoder(self, rows: int = 1, alone: bool = True) -> "SharedCache | GrowingCache":
        """A fresh cache and its stepping for `rows` conditionings of the same tokens: `start`
        a sequence, then `step` a token at a time. Each generation has its own, so several may
        run on one generator from several threads (onnxruntime releases the GIL while it runs);
        they say so with `alone=False`."""
        return self._cache_kind(self, rows, alone)

    def feeds(self, tokens, emotion, offsets, grid, rows: int) -> dict[str, np.ndarray]:
        """The model's condition inputs for T tokens under `rows` emotions: emotion (T, 2) or
        (rows, T, 2); grid (T, 2) from `conditions.grid_bins`, None for no grid (ignored by a
        model that does not hear it)."""
        emotion = np.asarray(emotion, dtype=np.float32)
        emotion = emotion[None] if emotion.ndim == 2 else emotion
        shape = (rows, emotion.shape[1])
        arrays = {"tokens": np.array(np.broadcast_to(np.asarray(tokens, dtype=np.int64), shape), order="C"),
                  "emotion": np.array(np.broadcast_to(emotion, (*shape, 2)), order="C"),
                  "offsets": np.array(np.broadcast_to(np.asarray(offsets, dtype=np.int64), shape), order="C")}
        if self.hears_grid:
            grid = np.asarray(grid, dtype=np.int64) if grid is not None else \
                np.tile(np.array([NO_GRID_AHEAD, NO_GRID_SLOT], dtype=np.int64), (shape[1], 1))
            arrays["grid"] = np.array(np.broadcast_to(grid, (*shape, 2)), order="C")
        return arrays  # owned, writable copies: a decoder updates its one-token inputs in place

    def forward(self, tokens, emotion, offsets, grid=None, alone: bool = True) -> np.ndarray:
        """Logits (B, T, vocab) of T tokens from the start of the context, under B emotions:
        emotion is (T, 2), or (B, T, 2) for the same tokens and offsets under B emotions
        (`alone`: see `decoder`)."""
        rows = 1 if np.ndim(emotion) == 2 else len(emotion)
        return self.decoder(rows, alone).start(tokens, emotion, offsets, grid)

    @staticmethod
    def guided(last: np.ndarray, guidance: float) -> np.ndarray:
        """The logits to sample from, given the last token's logits under each row's emotion:
        the first row's, pushed away from the mirrored second row's when guided."""
        last = last.astype(np.float64)
        return last[0] + guidance * (last[0] - last[1]) if guidance else last[0]

    def generate(self, duration: float, boundaries: Sequence[float], emotion: EmotionCurve, seed: int = 0,
                 temperature: float = 1.0, top_p: float = 0.95, prefix: Sequence[int] = (),
                 hit_cuts: bool = False, mask_boundaries: bool = False,
                 emotion_guidance: float = 0.0, lock_mode: bool = False, tempo: TempoMap | None = None,
                 follow_grid: bool = True, on_grid: bool = False, stay_in_key: bool = True,
                 progress: Callable[[float], None] | None = None,
                 cancel: threading.Event | None = None, alone: bool = True) -> Generation:
        """Music from the end of `prefix` (tokens from time 0) until `duration` seconds, heading
        for a phrase end at each of `boundaries` (the cuts and hits), on the 16th-note grid of
        `tempo` (heard by a model that hears the grid; None: no grid). With `follow_grid`, notes
        start only on that grid (see the module doc). With `on_grid`, the notes are
        written on the grid (`TempoMap.snap`: every onset and release to the nearest 16th note
        or boundary) while the model keeps its own timing: a constrained mode, like
        `hit_cuts`, reported apart from the model's own grid fit.

        `progress(fraction)` hears how far the music has got before every token; a set
        `cancel` event raises Cancelled within one token. `alone=False` when other generations
        run on this generator at the same time (see the class doc); the music is the same."""
        if duration <= 0:
            raise EmsyncError("duration: must be positive")
        if temperature <= 0 or not 0 < top_p <= 1:
            raise EmsyncError("temperature must be > 0 and top_p in (0, 1]")
        started = time.perf_counter()
        rng = np.random.default_rng(seed)
        boundary_times = sorted(float(c) for c in boundaries if 0 < c < duration)
        seen_boundaries = [] if mask_boundaries else boundary_times
        cut_steps = [round(c / codec.STEP_SECONDS) for c in boundary_times]
        end_step = round(duration / codec.STEP_SECONDS)
        if on_grid and tempo is None:
            raise EmsyncError("on_grid: needs a tempo map")

        stream = _Stream()
        mode_lock = ModeLock() if lock_mode else None
        ear = mode_lock or (RunningKey() if stay_in_key else None)  # the key heard, one for both options
        in_key = InKey(ear) if stay_in_key else None
        tokens: list[int] = []
        steps: list[int] = []  # the codec step after each token
        for token in prefix:
            token = int(token)
            if not 0 <= token < codec.VOCAB_SIZE or token in (codec.PAD, codec.BOS):
                raise EmsyncError(f"prefix: token {token} is not an event of this vocabulary")
            stream.push(token)
            tokens.append(token)
            steps.append(stream.step)
            if ear is not None and _pitched_on(token):
                ear.observe(codec.on_target(token)[1], stream.step * codec.STEP_SECONDS)
        new_from = len(tokens)
        hit = {c for c in cut_steps if c < stream.step}

        landing = grid_landing(tempo, boundary_times, end_step) if tempo is not None and follow_grid else None
        landing_steps = np.flatnonzero(landing) if landing is not None else None

        # What each token hears depends only on the step it sits at: one table per condition,
        # looked up per token (a token can sit a longest shift past the end).
        step_clock = np.arange(max(end_step, stream.step) + codec.MAX_SHIFT_STEPS + 1) * codec.STEP_SECONDS
        wanted = emotion.at(step_clock)
        emotion_rows = np.stack([wanted, -wanted]) if emotion_guidance else wanted[None]
        offset_rows = boundary_offset_bins(step_clock, seen_boundaries) if seen_boundaries else \
            np.full(len(step_clock), NO_BOUNDARY)
        grid_rows = grid_bins(step_clock, *tempo.grid_points(duration + 1.0)) \
            if tempo is not None and self.hears_grid else None  # None: no grid

        def conditions(at: list[int]):
            return emotion_rows[:, at], offset_rows[at], None if grid_rows is None else grid_rows[at]

        block = self.config["block_size"]
        decoder = self.decoder(len(emotion_rows), alone)

        def prime():
            keep = block // 2 if tokens else 0
            stream.window_start = len(tokens) - min(keep, len(tokens))
            window = tokens[len(tokens) - keep:] if keep else []
            window_steps = steps[len(steps) - keep:] if keep else []
            emo, offs, grid_now = conditions([window_steps[0] if window_steps else stream.step] + window_steps)
            last = decoder.start([codec.BOS] + window, emo, offs, grid_now)[:, -1]
            return self.guided(last, emotion_guidance), len(window) + 1

        logits, cached = prime()
        folds: dict = {}
        steps_run = 0
        first_step = stream.step
        while stream.step < end_step:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            if progress is not None:
                progress((stream.step - first_step) / max(1, end_step - first_step))
            mask = self._grammar(stream, cut_steps, hit if hit_cuts else None, landing)
            fold = None
            if landing is not None:  # the same for every token at one step with the same shifts allowed
                key = (stream.step, mask[codec.SHIFT0:codec.VEL0].tobytes())
                if key not in folds:
                    folds.clear()
                    folds[key] = _onto_grid(landing, landing_steps, stream.step, mask)
                fold = folds[key]
            allowed = np.where(mask, logits, -np.inf)
            offsets = in_key.offsets(stream.step * codec.STEP_SECONDS) if in_key is not None else None
            if offsets is not None:  # scaled so that they survive the division by the temperature as they are
                allowed += offsets * temperature if temperature != 1 else offsets
            token = _sample(allowed, temperature, top_p, rng, fold)
            if ear is not None and _pitched_on(token):
                clock = stream.step * codec.STEP_SECONDS
                instrument, pitch = codec.on_target(token)
                if mode_lock is not None:
                    moved = mode_lock.moved(pitch, float(wanted[stream.step, 0]), clock)
                    if (instrument, moved) not in stream.sounding:  # a move must not re-strike a held note
                        token, pitch = codec.on_token(instrument, moved), moved
                ear.observe(pitch, clock)
            stream.push(token)
            if hit_cuts and stream.step in cut_steps and stream.pitched_onsets_this_step >= HIT_NOTES:
                hit.add(stream.step)
            tokens.append(token)
            steps.append(stream.step)
            steps_run += 1
            if stream.step >= end_step:
                break
            if cached + 1 >= block:
                logits, cached = prime()
            else:
                at = stream.step
                last = decoder.step(token, emotion_rows[:, at], offset_rows[at], None if grid_rows is None else grid_rows[at])
                logits = self.guided(last, emotion_guidance)
                cached += 1
        notes = [n for n in codec.decode(tokens, end_seconds=duration) if n.start < duration]
        notes = [Note(n.start, min(n.end, duration), n.pitch, n.velocity, n.instrument) for n in notes]
        if on_grid:
            notes = tempo.snap(notes, duration, boundary_times)
        clocks = [step * codec.STEP_SECONDS for step in steps]
        elapsed = time.perf_counter() - started
        return Generation(notes, tokens, clocks, new_from, elapsed,
                          {"tokens": steps_run, "tokens_per_second": steps_run / max(elapsed, 1e-9),
                           "realtime_factor": (duration - clocks[new_from - 1] if new_from else duration)
                           / max(elapsed, 1e-9)})

    @staticmethod
    def _grammar(stream: _Stream, cut_steps: list[int], hit: set[int] | None,
                 landing: np.ndarray | None) -> np.ndarray:
        allowed = _GRAMMAR_START.copy()
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
        if landing is not None and not landing[stream.step]:
            allowed[codec.VEL0:codec.OFF0] = False  # no velocity or note-on off the grid
        stale = stream.stale()
        if stale:
            allowed[:] = False
            allowed[[codec.off_token(instrument, pitch) for instrument, pitch in stale]] = True
        return allowed


_GRAMMAR_START = np.ones(codec.VOCAB_SIZE, dtype=bool)  # every event but PAD, BOS and the note-offs
_GRAMMAR_START[[codec.PAD, codec.BOS]] = False
_GRAMMAR_START[codec.OFF0:] = False


def grid_landing(tempo: TempoMap, boundaries: Sequence[float], end_step: int) -> np.ndarray:
    """For each codec step up to a longest shift past `end_step`: may a note start there? Yes
    within GRID_GUIDE_SECONDS of a 16th note of `tempo` or of a boundary, and anywhere from
    `end_step` on (the music has ended there)."""
    clock = np.arange(end_step + codec.MAX_SHIFT_STEPS + 1) * codec.STEP_SECONDS
    points = np.union1d(tempo.grid(float(clock[-1]) + 1.0), np.asarray(boundaries, dtype=np.float64))
    index = np.clip(np.searchsorted(points, clock), 1, len(points) - 1)
    distance = np.minimum(np.abs(points[index] - clock), np.abs(points[index - 1] - clock))
    landing = distance <= GRID_GUIDE_SECONDS + 1e-9
    landing[end_step:] = True
    return landing


def _onto_grid(landing: np.ndarray, landing_steps: np.ndarray, step: int,
               allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(shift tokens, the tokens they give their probability to): each allowed shift from `step`
    that would land off the grid goes to the allowed shift landing nearest to its target (the
    later on a tie, never no shift at all); None when every allowed shift lands on it."""
    targets = step + np.arange(1, codec.MAX_SHIFT_STEPS + 1)
    off = ~landing[targets] & allowed[codec.SHIFT0:codec.VEL0]
    if not off.any():
        return None
    targets = targets[off]
    index = np.minimum(np.maximum(np.searchsorted(landing_steps, targets), 1), len(landing_steps) - 1)
    before, after = landing_steps[index - 1], landing_steps[index]
    nearest = np.where((targets - before < after - targets) & (before > step), before, after)
    nearest = np.where(nearest - step > codec.MAX_SHIFT_STEPS, before, nearest)
    sources, destinations = codec.SHIFT0 + targets - step - 1, codec.SHIFT0 + nearest - step - 1
    usable = (nearest > step) & (nearest - step <= codec.MAX_SHIFT_STEPS)
    usable[usable] &= allowed[destinations[usable]]
    return sources[usable], destinations[usable]


def _pitched_on(token: int) -> bool:
    return codec.is_on(token) and codec.on_target(token)[0] != DRUMS


def _sample(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator,
            fold: tuple[np.ndarray, np.ndarray] | None = None) -> int:
    """A token from the nucleus of softmax(logits / temperature); `fold` (sources, destinations)
    first moves each source token's probability onto its destination. `logits` (float64) may
    be overwritten.

    Only tokens of probability at least (1 - top_p) / vocab are sorted: together the others
    hold less than 1 - top_p, so the nucleus never reaches them, and the draw is the one a
    sort of the whole vocabulary would give (same order, same cut, same use of `rng`)."""
    scaled = logits / temperature if temperature != 1 else logits
    scaled -= scaled.max()
    probs = np.exp(scaled, out=scaled)
    probs /= probs.sum()
    if fold is not None:
        sources, destinations = fold
        moved = probs[sources]
        probs[sources] = 0.0
        probs += np.bincount(destinations, weights=moved, minlength=len(probs))
    candidates = np.flatnonzero(probs >= (1.0 - top_p) / len(probs)) if top_p < 1 else np.flatnonzero(probs)
    order = candidates[np.argsort(-probs[candidates], kind="stable")]
    cumulative = np.cumsum(probs[order])
    cdf = cumulative[:int(np.searchsorted(cumulative, top_p)) + 1]  # the nucleus, most probable first
    return int(order[np.searchsorted(cdf / cdf[-1], rng.random(), side="right")])
