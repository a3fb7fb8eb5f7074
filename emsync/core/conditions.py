"""Per-token conditions: valence/arousal curves and quantized time to the next boundary.

The generator sees, with every token, the emotion wanted at that instant and how long
remains until the next boundary (a cut at inference, a long chord onset in training).
Offsets are fine near the boundary, where timing matters, and coarse far from it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from emsync.core.music import Scene

# Bin edges in seconds: 20 ms up to 1 s, 100 ms up to 4 s, 500 ms up to 8 s.
OFFSET_EDGES = np.concatenate([
    np.arange(0.0, 1.0, 0.02),
    np.arange(1.0, 4.0, 0.1),
    np.arange(4.0, 8.0, 0.5),
])
OFFSET_HORIZON = 8.0
NO_BOUNDARY = len(OFFSET_EDGES)  # "no boundary within the horizon"
N_OFFSET_BINS = NO_BOUNDARY + 1


def boundary_offset_bins(clock: np.ndarray, boundaries: Sequence[float] | np.ndarray) -> np.ndarray:
    """For each clock time, the bin of (next boundary at or after it) - clock."""
    clock = np.asarray(clock, dtype=np.float64)
    bounds = np.sort(np.asarray(boundaries, dtype=np.float64))
    if bounds.size == 0:
        return np.full(clock.shape, NO_BOUNDARY, dtype=np.int64)
    # A boundary counts as reached for clocks within half a codec step after it.
    index = np.searchsorted(bounds, clock - 0.005, side="left")
    ahead = np.where(index < bounds.size, bounds[np.minimum(index, bounds.size - 1)] - clock, np.inf)
    ahead = np.maximum(ahead, 0.0)
    bins = np.searchsorted(OFFSET_EDGES, ahead + 1e-9, side="right") - 1
    return np.where(ahead >= OFFSET_HORIZON, NO_BOUNDARY, bins).astype(np.int64)


class EmotionCurve:
    """Valence/arousal over time, linear between knots and held beyond the ends."""

    def __init__(self, times: Sequence[float], valence: Sequence[float], arousal: Sequence[float]):
        self.times = np.asarray(times, dtype=np.float64)
        self.valence = np.clip(np.asarray(valence, dtype=np.float64), -1, 1)
        self.arousal = np.clip(np.asarray(arousal, dtype=np.float64), -1, 1)
        if self.times.size == 0 or not (self.times.size == self.valence.size == self.arousal.size):
            raise ValueError("an emotion curve needs matching, non-empty times/valence/arousal")

    @classmethod
    def constant(cls, valence: float, arousal: float) -> "EmotionCurve":
        return cls([0.0], [valence], [arousal])

    @classmethod
    def from_scenes(cls, scenes: Sequence[Scene], ramp: float = 0.5) -> "EmotionCurve":
        """Steps at each cut, softened over `ramp` seconds before it so the music can turn."""
        times, valence, arousal = [], [], []
        for scene in scenes:
            times += [scene.start, max(scene.start, scene.end - ramp)]
            valence += [scene.valence] * 2
            arousal += [scene.arousal] * 2
        order = np.argsort(times, kind="stable")
        return cls(np.asarray(times)[order], np.asarray(valence)[order], np.asarray(arousal)[order])

    def at(self, clock: np.ndarray) -> np.ndarray:
        """(N, 2) float32 array of valence, arousal at each clock time."""
        clock = np.asarray(clock, dtype=np.float64)
        return np.stack([np.interp(clock, self.times, self.valence),
                         np.interp(clock, self.times, self.arousal)], axis=-1).astype(np.float32)


# The grid the music sits on: where the next 16th note is, and which 16th of the bar it is.
GRID_AHEAD_STEPS = 40  # codec steps (10 ms) to the next grid point, capped: 0 means on it now
NO_GRID_AHEAD = GRID_AHEAD_STEPS + 1  # "no grid here" (music without a beat, or outside it)
N_GRID_AHEAD = NO_GRID_AHEAD + 1
GRID_SLOTS = 24  # 16ths of a bar, capped (a 6/4 bar has 24)
NO_GRID_SLOT = GRID_SLOTS
N_GRID_SLOTS = GRID_SLOTS + 1


def grid_points(beats: Sequence[float] | np.ndarray, downbeats: Sequence[bool] | np.ndarray,
                per_beat: int | Sequence[int] | np.ndarray = 4) -> tuple[np.ndarray, np.ndarray]:
    """(times, slot in the bar) of every 1/`per_beat` of a beat between the first and last
    beat: the 16th notes when `per_beat` is 4 for beats in quarters, 2 for beats in eighths
    (one value, or one per beat). A bar starts at each downbeat; before the first downbeat
    slots count from the first beat."""
    beats = np.asarray(beats, dtype=np.float64)
    if beats.size < 2:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    downbeats = np.asarray(downbeats, dtype=bool)
    per = np.broadcast_to(np.maximum(1, np.asarray(per_beat, dtype=np.int64)), beats.shape)
    since_bar = np.zeros(beats.size, dtype=np.int64)  # grid points since the bar line
    for i in range(1, beats.size):
        since_bar[i] = 0 if downbeats[i] else since_bar[i - 1] + per[i - 1]
    counts = per[:-1]
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)  # k of the beat's points
    times = np.repeat(beats[:-1], counts) + np.repeat(np.diff(beats) / counts, counts) * within
    slots = np.repeat(since_bar[:-1], counts) + within
    return np.append(times, beats[-1]), np.minimum(np.append(slots, since_bar[-1]), GRID_SLOTS - 1)


def grid_bins(clock: np.ndarray, times: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """(N, 2) int64: for each clock time, the codec steps to the next grid point at or after
    it (a point within half a step behind counts as now) and that point's slot in the bar;
    NO_GRID_AHEAD / NO_GRID_SLOT outside the grid."""
    clock = np.asarray(clock, dtype=np.float64)
    out = np.empty((clock.size, 2), dtype=np.int64)
    out[:, 0], out[:, 1] = NO_GRID_AHEAD, NO_GRID_SLOT
    if len(times) == 0:
        return out
    index = np.searchsorted(times, clock - 0.005, side="left")
    inside = (index < len(times)) & (clock >= times[0] - 0.005)
    ahead = times[np.minimum(index, len(times) - 1)] - clock
    steps = np.clip(np.round(np.maximum(ahead, 0.0) / 0.01), 0, GRID_AHEAD_STEPS).astype(np.int64)
    out[inside, 0] = steps[inside]
    out[inside, 1] = np.asarray(slots)[np.minimum(index, len(times) - 1)][inside]
    return out
