"""Regenerate one time range of a score and keep every note outside it.

The model continues from the music before the range: the kept notes that start before it
are encoded into event tokens (notes still sounding at the range start stay sounding in the
token stream, so the model knows what it is playing over) and passed to the generator as its
prefix. Generated notes start inside the range and are released on its end, so the events
before the start and after the end of an exported MIDI file do not change.

The seam at the range end:

- the end is a boundary for the sampler (the "time to the next boundary" condition the model
  was trained with on held chords and chord changes), so the music heads for a phrase end
  there instead of running through it; every generated note is released on the end;
- each of `candidates` takes (seeds derived from `seed`) is sampled `seam_seconds` past the
  end, and the take that joins best is kept. Three criteria vote (Borda count, each ranks the
  takes; ties go to the likelihood):
  1. likelihood: log p(kept music in [end, end + seam_seconds) | the take, released at the
     end) under the model itself, one forward pass;
  2. harmony: pitch-class agreement (cosine, duration weighted) between what the take
     wanted to play after the end and what is really there;
  3. density: agreement of onset counts over that window, per instrument.
  A take heading into a different key, register or density from the kept music loses.
  A range that runs to the end of the score has no seam and samples one take.
  With `stay_in_key` the takes keep to the key heard in the music before the range (the
  sampler hears nothing after it), so a range that bridges a change of key is pulled towards
  the earlier key; the seam vote then prefers the take that joins the later music best.

The takes run in parallel threads (`workers`; unless told, `take_threads`: one more than the
usable CPUs, so a core is not left idle while a take's thread holds the GIL in the sampler's
Python; 1 runs them one after another). That is sound: each take has its own seed and random
generator and only reads the inputs it shares with the others, so it samples the same music on any thread in any order,
and the takes are kept in index order; onnxruntime releases the GIL while a session runs, and
one session may be run from several threads at once, so the takes' model steps overlap.

`regenerate` takes a `progress(fraction)` callback (the mean of the takes' fractions, called
from the worker threads one at a time) and a `cancel` threading.Event, passed on to the
generator: a set event raises `Cancelled` within one generated token. A take that fails or is
cancelled stops the others within one token, and its error is raised as it is.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from emsync.core import codec
from emsync.core.conditions import NO_BOUNDARY, EmotionCurve, boundary_offset_bins, grid_bins
from emsync.core.errors import EmsyncError
from emsync.core.generator import Cancelled, MusicGenerator
from emsync.core.music import DRUMS, Note
from emsync.core.onnx_models import usable_cpus
from emsync.core.tempo import TempoMap

Progress = Callable[[float], None]
MIN_RANGE_SECONDS = 0.1
MAX_CANDIDATES = 16
SEAM_SECONDS = 1.0
SEAM_MAX_TOKENS = 128  # at most this many kept tokens after the seam are scored


@dataclass
class Candidate:
    seed: int
    notes: list[Note]  # what this take puts in the range
    seam_logprob: float | None  # log-likelihood of the kept music after the range; None: no seam
    seconds: float
    harmony: float | None = None  # pitch-class agreement past the end with the kept music
    density: float | None = None  # onset-count mismatch past the end
    votes: float | None = None  # Borda total over the three criteria (lower is better)


@dataclass
class Regeneration:
    notes: list[Note]  # the whole score: kept notes (the same objects) and the new ones, sorted
    new_notes: list[Note]  # what now fills the range
    start: float  # the range as regenerated (quantized to the codec's 10 ms step)
    end: float
    seed: int  # seed of the chosen candidate
    candidates: list[Candidate] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def stats(self) -> dict:
        return {"start": self.start, "end": self.end, "seed": self.seed, "seconds": self.seconds,
                "new_notes": len(self.new_notes),
                "candidates": [{"seed": c.seed, "notes": len(c.notes), "seam_logprob": c.seam_logprob,
                                "harmony": c.harmony, "density": c.density, "votes": c.votes,
                                "seconds": c.seconds} for c in self.candidates]}


def _step(seconds: float) -> int:
    return round(seconds / codec.STEP_SECONDS)


def _seconds(step: int) -> float:
    return round(step * codec.STEP_SECONDS, 6)


def split_notes(notes: Sequence[Note], start: float, end: float) -> tuple[list[Note], list[Note], list[Note]]:
    """(before, inside, after): by onset, on the codec's 10 ms grid.

    A note belongs to the range when its onset step is in [start, end); notes that start
    before the range but ring into it are "before" and are kept as they are.
    """
    s0, e0 = _step(start), _step(end)
    before, inside, after = [], [], []
    for note in notes:
        onset = _step(note.start)
        (before if onset < s0 else inside if onset < e0 else after).append(note)
    return before, inside, after


def prefix_tokens(notes: Sequence[Note], start: float) -> tuple[list[int], list[float]]:
    """Event tokens of `notes` (all starting before `start`) from time 0 up to exactly `start`.

    Notes still sounding at `start` are not released: the stream ends with them held, as the
    music really is at that instant. The clock after the last token is `start` (quantized).
    """
    s0 = _step(start)
    tokens, clocks = codec.encode(notes, 0.0)
    keep = int(np.searchsorted(np.round(clocks / codec.STEP_SECONDS).astype(np.int64), s0, side="right"))
    out, out_clocks = [int(t) for t in tokens[:keep]], [float(c) for c in clocks[:keep]]
    now = _step(out_clocks[-1]) if out_clocks else 0
    while now < s0:
        shift = min(codec.MAX_SHIFT_STEPS, s0 - now)
        now += shift
        out.append(codec.shift_token(shift))
        out_clocks.append(_seconds(now))
    return out, out_clocks


def _last_velocity(tokens: Sequence[int]) -> int | None:
    for token in reversed(tokens):
        if codec.VEL0 <= token < codec.ON0:
            return int(token)
    return None


def seam_context(before: Sequence[Note], new_notes: Sequence[Note], end: float) -> tuple[list[int], list[float]]:
    """Tokens of the score as it stands at the seam: kept notes from before the range (those
    still ringing stay held) and a candidate's notes, all released by `end`."""
    return prefix_tokens(list(before) + list(new_notes), end)


def seam_logprob(generator: MusicGenerator, context: Sequence[int], context_clocks: Sequence[float],
                 follow: Sequence[int], follow_clocks: Sequence[float], emotion: EmotionCurve,
                 boundaries: Sequence[float], tempo: TempoMap | None = None, alone: bool = True) -> float:
    """Sum of log p(follow | context) under the model: how well `follow` continues `context`.

    One forward pass without a cache over [BOS] + the tail of `context` + `follow`, each
    token with its conditions, as in sampling (`alone`: see MusicGenerator.decoder).
    """
    if not len(follow):
        return 0.0
    block = generator.config["block_size"]
    follow, follow_clocks = list(follow)[:SEAM_MAX_TOKENS], list(follow_clocks)[:SEAM_MAX_TOKENS]
    keep = max(0, block - 1 - len(follow))
    ctx, ctx_clocks = list(context)[len(context) - keep:], list(context_clocks)[len(context_clocks) - keep:]
    sequence = [codec.BOS] + ctx + follow
    clocks = np.asarray([(ctx_clocks or follow_clocks)[0]] + ctx_clocks + follow_clocks, dtype=np.float64)
    offsets = boundary_offset_bins(clocks, boundaries) if len(boundaries) else np.full(len(clocks), NO_BOUNDARY)
    grid = grid_bins(clocks, *tempo.grid_points(float(clocks.max()) + 1.0)) if tempo is not None else None
    logits = generator.forward(sequence, emotion.at(clocks), offsets, grid=grid, alone=alone)
    first = 1 + len(ctx)
    scores = logits[0, first - 1:first - 1 + len(follow)].astype(np.float64)
    scores -= scores.max(axis=1, keepdims=True)
    log_probs = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    return float(log_probs[np.arange(len(follow)), follow].sum())


def candidate_seed(seed: int, index: int) -> int:
    """The seed of candidate `index`: candidate 0 is `seed` itself, the others derived from it."""
    if index == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, index]).generate_state(1)[0] & 0x7FFFFFFF)


def _pitch_classes(notes: Sequence[Note], low: float, high: float) -> np.ndarray:
    profile = np.zeros(12)
    for note in notes:
        overlap = min(note.end, high) - max(note.start, low)
        if note.instrument != DRUMS and overlap > 0:
            profile[note.pitch % 12] += overlap
    return profile


def _onsets(notes: Sequence[Note], low: float, high: float) -> np.ndarray:
    counts = np.zeros(codec.N_INSTRUMENTS)
    for note in notes:
        if low <= note.start < high:
            counts[note.instrument] += 1
    return counts


def harmony_agreement(ours: Sequence[Note], theirs: Sequence[Note], low: float, high: float) -> float:
    """Cosine of the duration-weighted pitch-class profiles over [low, high): 1 same harmony,
    0 nothing shared; 0.5 when either side has no pitched note (no evidence either way)."""
    a, b = _pitch_classes(ours, low, high), _pitch_classes(theirs, low, high)
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else 0.5


def density_mismatch(ours: Sequence[Note], theirs: Sequence[Note], low: float, high: float) -> float:
    """Sum over instruments of |log((1 + onsets ours) / (1 + onsets theirs))| over [low, high)."""
    return float(np.abs(np.log1p(_onsets(ours, low, high)) - np.log1p(_onsets(theirs, low, high))).sum())


def _borda(values: Sequence[float], higher_is_better: bool) -> list[float]:
    """Rank of each value (0 best), ties sharing the mean rank."""
    keyed = [-v if higher_is_better else v for v in values]
    order = sorted(keyed)
    return [float(np.mean([i for i, k in enumerate(order) if k == value])) for value in keyed]


def check_range(duration: float, start: float, end: float) -> None:
    """EmsyncError naming `start` or `end` unless [start, end) is a range of the score that can
    be regenerated (at least MIN_RANGE_SECONDS long)."""
    if not duration > 0:
        raise EmsyncError("duration: must be positive")
    if not 0 <= start < duration:
        raise EmsyncError(f"start: {start} is outside the score [0, {duration})")
    if not start + MIN_RANGE_SECONDS <= end <= duration + codec.STEP_SECONDS / 2:
        raise EmsyncError(f"end: {end} must be at least {MIN_RANGE_SECONDS} s after start {start} and at most "
                          f"the duration {duration}")


def take_threads(takes: int, workers: int | None = None) -> int:
    """Threads the takes run on: `workers`, else one more than the usable CPUs (the model card
    compares it with one thread a CPU, from benchmarks/bench_host.py)."""
    return max(1, min(takes, workers or usable_cpus() + 1))


def regenerate(generator: MusicGenerator, notes: Sequence[Note], duration: float, start: float, end: float,
               boundaries: Sequence[float] = (), emotion: EmotionCurve | None = None, *, seed: int = 0,
               candidates: int = 3, temperature: float = 1.0, top_p: float = 0.95, hit_cuts: bool = False,
               emotion_guidance: float = 0.0, lock_mode: bool = False, stay_in_key: bool = True,
               seam_seconds: float = SEAM_SECONDS,
               tempo: TempoMap | None = None, on_grid: bool = False,
               progress: Progress | None = None,
               cancel: threading.Event | None = None, workers: int | None = None) -> Regeneration:
    """New music for [start, end) of a `duration`-second score; every other note is kept.

    `boundaries` are the score's cuts and hits, `emotion` its curve (neutral if None).
    With kept music after `end`, `candidates` takes are sampled and the one that joins best
    is returned (see the module doc). The takes run on `workers` threads (None: `take_threads`;
    1: one after another). The same arguments give the same result, whatever `workers`.
    """
    started = time.perf_counter()
    check_range(duration, start, end)
    if on_grid and tempo is None:
        raise EmsyncError("on_grid: needs a tempo map")
    if not 1 <= int(candidates) <= MAX_CANDIDATES:
        raise EmsyncError(f"candidates: expected 1..{MAX_CANDIDATES}, got {candidates}")
    if not 0 <= seam_seconds <= 8:
        raise EmsyncError(f"seam_seconds: {seam_seconds} is outside [0, 8]")
    if workers is not None and workers < 1:
        raise EmsyncError(f"workers: expected at least 1, got {workers}")
    emotion = emotion or EmotionCurve.constant(0.0, 0.0)
    s0, e0, d0 = _step(start), _step(end), _step(duration)
    seam = e0 < d0
    e0 = min(e0, d0)
    start_q, end_q = _seconds(s0), (_seconds(e0) if seam else float(duration))
    before, _, after = split_notes(notes, start_q, end_q if seam else duration + 1.0)
    prefix, _ = prefix_tokens(before, start_q)
    velocity = _last_velocity(prefix)
    kept_boundaries = sorted({float(c) for c in boundaries if 0 < c < duration})
    # The range end is a boundary for the sampler (the music heads for a phrase end there). With
    # hit_cuts every boundary must carry a chord, which belongs to the kept music: leave it out.
    sampled_boundaries = sorted(set(kept_boundaries) | ({end_q} if seam and not hit_cuts else set()))
    # Sample past the end: the boundary at end_q lies inside the span and each take shows
    # where it was heading.
    until = _seconds(min(d0, max(e0 + 1, _step(end_q + seam_seconds)))) if seam else float(duration)
    window_end = until
    count = int(candidates) if seam else 1
    follow: list[int] = []
    follow_clocks: list[float] = []
    if seam:
        tokens, clocks = codec.encode([n for n in after if n.start < window_end], end_q)
        for token, clock in zip(tokens, clocks):
            if clock > window_end + 1e-9:
                break
            follow.append(int(token))
            follow_clocks.append(float(clock))
        now, horizon = (_step(follow_clocks[-1]) if follow_clocks else e0), _step(window_end)
        while now < horizon:  # silence after the seam is part of what must be joined
            shift = min(codec.MAX_SHIFT_STEPS, horizon - now)
            now += shift
            follow.append(codec.shift_token(shift))
            follow_clocks.append(_seconds(now))
    held_over: dict[tuple[int, int], Note] = {}  # kept notes still ringing at the range start, by key
    for note in before:
        key = (note.instrument, note.pitch)
        if note.instrument != DRUMS and _step(note.end) > s0 and (key not in held_over
                                                                     or note.end > held_over[key].end):
            held_over[key] = note

    threads = take_threads(count, workers)
    alone = threads == 1  # takes one after another: each may use every CPU (MusicGenerator's doc)
    fractions = [0.0] * count  # how far each take has got
    fractions_lock = threading.Lock()
    stop = threading.Event()  # set when a take fails or is cancelled: the others stop within a token

    def report(index: int, fraction: float) -> None:
        with fractions_lock:
            fractions[index] = fraction
            if progress is not None:
                progress(sum(fractions) / count)

    def sample_take(index: int) -> Candidate:
        take_started = time.perf_counter()

        def on_token(fraction: float) -> None:
            if stop.is_set():
                raise Cancelled("cancelled")
            report(index, fraction)

        take_seed = candidate_seed(seed, index)
        result = generator.generate(until, sampled_boundaries, emotion, seed=take_seed, temperature=temperature,
                                    top_p=top_p, prefix=prefix, hit_cuts=hit_cuts, emotion_guidance=emotion_guidance,
                                    lock_mode=lock_mode, stay_in_key=stay_in_key, tempo=tempo, progress=on_token,
                                    cancel=cancel, alone=alone)
        decoded = codec.decode(([velocity] if velocity is not None else []) + result.tokens[result.new_from:],
                               start_seconds=start_q, end_seconds=until)
        if on_grid:  # onto the grid first, so the checks below see where the notes will sound
            decoded = tempo.snap(decoded, until, [start_q, end_q, *kept_boundaries])
        new_notes, heading = [], []
        for note in decoded:
            onset = _step(note.start)
            if onset >= e0:
                heading.append(note)
                continue
            if onset < s0:
                continue
            kept = held_over.get((note.instrument, note.pitch))
            if kept is not None and _step(kept.end) > onset:
                continue  # a kept note from before the range still rings on this key
            new_notes.append(Note(note.start, min(note.end, end_q), note.pitch, note.velocity, note.instrument))
        take = Candidate(take_seed, sorted(new_notes), None, 0.0)
        if seam:
            context, context_clocks = seam_context(before, new_notes, end_q)
            take.seam_logprob = seam_logprob(generator, context, context_clocks, follow, follow_clocks, emotion,
                                             kept_boundaries, tempo, alone)
            take.harmony = harmony_agreement(heading, after, end_q, window_end)
            take.density = density_mismatch(heading, after, end_q, window_end)
        take.seconds = time.perf_counter() - take_started
        return take

    def run_take(index: int) -> Candidate:
        try:
            if stop.is_set() or (cancel is not None and cancel.is_set()):
                raise Cancelled("cancelled")
            take = sample_take(index)
            report(index, 1.0)
            return take
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="emsync-take") as pool:
        futures = [pool.submit(run_take, index) for index in range(count)]
    errors = [future.exception() for future in futures if future.exception() is not None]
    if errors:  # the take that failed, not the ones it stopped; Cancelled when all were cancelled
        raise next((error for error in errors if not isinstance(error, Cancelled)), errors[0])
    takes = [future.result() for future in futures]

    best = 0
    if count > 1:
        votes = [sum(r) for r in zip(_borda([t.seam_logprob for t in takes], True),
                                     _borda([t.harmony for t in takes], True),
                                     _borda([t.density for t in takes], False))]
        for take, vote in zip(takes, votes):
            take.votes = vote
        best = min(range(count), key=lambda i: (votes[i], -takes[i].seam_logprob, i))
    chosen = takes[best]
    merged = sorted(before + chosen.notes + after)
    return Regeneration(merged, chosen.notes, start_q, end_q, chosen.seed, takes, time.perf_counter() - started)
