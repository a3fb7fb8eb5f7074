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
