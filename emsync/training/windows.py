"""Training windows: cut from whole pieces at training time, so every window gets fresh augmentation.

Augmentation: transposition (-5..+6 semitones), tempo stretch (0.9-1.1x), Groove MIDI drums
laid on POP909's beat grid, random boundary dropout, and some windows with boundaries masked
so the model also learns to play without a cut ahead.

Grid: every token hears the 16th-note grid of its piece's beats (POP909's annotated beats,
VGMIDI's written grid), moved by the same tempo warp as the notes; a few windows hear none.

Mode swap: half of the clearly tonal windows alternate between their own mode and the
parallel one (`PARALLEL_MODE_MOVES`, the move the sampler's mode lock makes too) in spans of
8-20 s, about a scene's length, and the valence moves by MODE_SWAP_VALENCE inside the swapped
spans (spans of 2-8 s had the model turn mode every few seconds at a constant valence: the
model card has the figures). A window's mode is
given away by its first bars, and transposition hides which mode a fresh start should take,
so on whole pieces the valence input says next to nothing the context does not. When the
mode turns every few seconds, the context no longer tells the model which third comes next;
only the valence condition does, as a scene change asks of the music.

Openings: windows shorter than the model's block (the training loop asks for OPENING_TOKENS)
are the part of a piece where nothing but valence can say which mode to take. Their valence
is the mode evidence of their own first OPENING_SECONDS (after a whole-window mode swap in
half of them).

Tempo swap, the same idea for arousal: some windows speed up or slow down (0.65-1.5x) from an
instant on, play louder when faster, and their arousal moves with log2 of the factor. The
corpus labels move slowly (12 s windows), so without it little inside a window tells the
model that density and loudness follow the arousal input.

Numpy only: `WindowSampler.batch` imports torch for its tensors.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from emsync.core import codec
from emsync.core.conditions import (NO_BOUNDARY, NO_GRID_AHEAD, NO_GRID_SLOT, EmotionCurve, boundary_offset_bins,
                                    grid_bins, grid_points)
from emsync.core.errors import EmsyncError
from emsync.core.features import key_scores
from emsync.core.mode_lock import PARALLEL_MODE_MOVES
from emsync.core.music import DRUMS, Note
from emsync.training.corpus import ESTIMATE_STD

WINDOW_SECONDS = 40.0  # enough music to fill a 512-token block at POP909 densities
DRUM_OVERLAY_SHARE = 0.4
MASKED_SHARE = 0.15
GRID_DROPOUT = 0.1  # windows that do not hear their grid, so the model also plays without one
BOUNDARY_DROPOUT = 0.3
MODE_SWAP_SHARE = 0.5
MODE_SWAP_VALENCE = 0.6  # about 1.3 standard deviations of the corpus valence labels
MODE_SPAN_SECONDS = (8.0, 20.0)
MIN_KEY_CLARITY = 0.6
TEMPO_SWAP_SHARE = 0.5
TEMPO_SWAP_RANGE = (0.65, 1.5)  # speed factors; > 1 is faster
AROUSAL_PER_DOUBLING = 0.6  # arousal change for twice the speed (labels' std is about 0.4)
OPENING_SECONDS = 12.0
OPENING_EVIDENCE = (0.074, 0.188)  # mean and std of POP909 training windows' 20 s mode evidence


def require_current(path: str | Path, arrays) -> None:
    """EmsyncError unless the split at `path` (its arrays) was built by this version of the corpus."""
    if "beat_sixteenths" not in arrays:
        raise EmsyncError(f"{path}: built before corpora carried their bar lines and beat lengths; rebuild it "
                          "with `emsync data build`")


class WindowSampler:
    """Random training windows (tokens plus per-token conditions) from a split file."""

    def __init__(self, path: str | Path, block_size: int):
        if not Path(path).exists():
            raise EmsyncError(f"{path}: corpus split not found (run `emsync data build` first)")
        data = np.load(path)
        self.block_size = block_size
        self.arrays = {k: data[k] for k in data.files}
        require_current(path, self.arrays)
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
        beats = warp(self._part("beats", piece))
        window = notes[(notes[:, 0] >= t0) & (notes[:, 0] < t0 + WINDOW_SECONDS)]
        if augment:
            shift = int(rng.integers(-5, 7))
            pitched = window[:, 4] != DRUMS
            window[pitched, 2] = np.clip(window[pitched, 2] + shift, 0, 127)
            if self.arrays["corpus"][piece] == "pop909" and len(beats) > 8 and self.grooves.size \
                    and rng.random() < DRUM_OVERLAY_SHARE:
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
        if len(beats) < 2 or (augment and rng.random() < GRID_DROPOUT):
            grid = grid_bins(clock, np.zeros(0), np.zeros(0, np.int64))
        else:
            grid = grid_bins(clock, *grid_points(beats, self._part("downbeats", piece).astype(bool),
                                                 self._part("beat_sixteenths", piece)))
        return self._pad(tokens, emotion, offsets, grid, length)

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
    def _pad(tokens, emotion, offsets, grid, length: int):
        n = length + 1
        padded = np.full(n, codec.PAD, dtype=np.int64)
        padded[: len(tokens)] = tokens
        emo = np.zeros((n, 2), dtype=np.float32)
        emo[: len(emotion)] = emotion
        emo[len(emotion):] = emotion[-1]
        off = np.full(n, NO_BOUNDARY, dtype=np.int64)
        off[: len(offsets)] = offsets
        on_grid = np.tile(np.array([NO_GRID_AHEAD, NO_GRID_SLOT], dtype=np.int64), (n, 1))
        on_grid[: len(grid)] = grid
        return padded[:-1], emo[:-1], off[:-1], on_grid[:-1], padded[1:]

    def batch(self, rng: np.random.Generator, size: int, augment: bool = True, length: int | None = None):
        """`size` samples stacked as torch tensors: inputs, emotion, offsets, grid, targets."""
        import torch

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
    span of MODE_SPAN_SECONDS, the first of them at the window start or a span later."""
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
    pitched = window[:, 4] != DRUMS
    degree = (window[:, 2].astype(int) - tonic) % 12
    moved = pitched & inside(window[:, 0], spans)
    for step, move in PARALLEL_MODE_MOVES[not major].items():  # major music goes minor, minor goes major
        window[moved & (degree == step), 2] += move
    return -MODE_SWAP_VALENCE if major else MODE_SWAP_VALENCE
