"""Musical features of a set of notes, and valence/arousal estimated from them.

The same features serve three jobs: labelling unlabelled training music, measuring
whether generated music follows the requested emotion, and comparing generated music
with the held-out corpus.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from emsync.core.music import DRUMS, Note

# Krumhansl-Kessler key profiles (C major / C minor).
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MAJOR_SCALE = np.array([0, 2, 4, 5, 7, 9, 11])
MINOR_SCALE = np.array([0, 2, 3, 5, 7, 8, 10, 11])  # harmonic and natural minor together
GRID = 0.05  # seconds, for polyphony and silence


@dataclass
class MusicFeatures:
    duration: float
    notes_per_second: float
    pitched_notes_per_second: float  # drums left out: what a corpus without drums is compared on
    onsets_per_second: float  # distinct onset instants, so a chord counts once
    mean_velocity: float
    mean_pitch: float
    major_minus_minor: float  # best major key correlation minus best minor key correlation
    key_clarity: float  # best key correlation of either mode
    out_of_key: float  # share of pitched note time outside the best key's scale
    pitch_class_entropy: float  # bits, of the duration-weighted pitch-class histogram
    polyphony: float  # mean number of sounding pitched notes while any sounds
    silence_ratio: float  # share of time with nothing sounding

    def as_dict(self) -> dict:
        return asdict(self)


def _standardised(rows: np.ndarray) -> np.ndarray:
    centred = rows - rows.mean(axis=-1, keepdims=True)
    return centred / np.linalg.norm(centred, axis=-1, keepdims=True)


# the 24 keys' profiles, standardised, so a key's correlation is one dot product
_KEY_PROFILES = _standardised(np.stack([np.roll(profile, k) for profile in (MAJOR_PROFILE, MINOR_PROFILE)
                                        for k in range(12)]))


def key_scores(histogram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of a pitch-class histogram with each major and each minor key
    profile (index: tonic pitch class); zeros for a histogram that says nothing."""
    histogram = np.asarray(histogram, dtype=np.float64)
    if histogram.sum() <= 0 or np.ptp(histogram) <= 1e-9 * histogram.max():
        return np.zeros(12), np.zeros(12)
    scores = _KEY_PROFILES @ _standardised(histogram)
    return scores[:12], scores[12:]


def music_features(notes: Sequence[Note], start: float | None = None, end: float | None = None) -> MusicFeatures:
    """Features of the notes that start in [start, end); the span defaults to the notes' extent."""
    if start is None:
        start = min((n.start for n in notes), default=0.0)
    if end is None:
        end = max((n.end for n in notes), default=start)
    inside = [n for n in notes if start <= n.start < end]
    duration = max(end - start, 1e-6)
    pitched = [n for n in inside if n.instrument != DRUMS]
    histogram = np.zeros(12)
    for n in pitched:
        histogram[n.pitch % 12] += min(n.end, end) - n.start
    major, minor = key_scores(histogram)
    if major.max() >= minor.max():
        tonic, scale = int(major.argmax()), MAJOR_SCALE
    else:
        tonic, scale = int(minor.argmax()), MINOR_SCALE
    total = histogram.sum()
    in_key = histogram[(scale + tonic) % 12].sum()
    probabilities = histogram[histogram > 0] / total if total > 0 else np.ones(1)

    cells = max(1, int(np.ceil(duration / GRID)))
    sounding = np.zeros(cells)
    any_sound = np.zeros(cells, dtype=bool)
    for n in inside:
        a = int((n.start - start) / GRID)
        b = max(a + 1, int(np.ceil((min(n.end, end) - start) / GRID)))
        any_sound[a:b] = True
        if n.instrument != DRUMS:
            sounding[a:b] += 1
    voiced = sounding > 0
    return MusicFeatures(
        duration=float(duration),
        notes_per_second=len(inside) / duration,
        pitched_notes_per_second=len(pitched) / duration,
        onsets_per_second=len({round(n.start, 2) for n in inside}) / duration,
        mean_velocity=float(np.mean([n.velocity for n in inside])) if inside else 0.0,
        mean_pitch=float(np.mean([n.pitch for n in pitched])) if pitched else 60.0,
        major_minus_minor=float(major.max() - minor.max()),
        key_clarity=float(max(major.max(), minor.max())),
        out_of_key=float(1 - in_key / total) if total > 0 else 0.0,
        pitch_class_entropy=float(-(probabilities * np.log2(probabilities)).sum()),
        polyphony=float(sounding[voiced].mean()) if voiced.any() else 0.0,
        silence_ratio=float(1 - any_sound.mean()),
    )


def emotion_predictors(f: MusicFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Inputs of the valence and arousal estimators, roughly unit scale.

    Valence: major-vs-minor evidence and register (brighter, higher music reads as
    happier). Arousal: note and onset density and loudness, the cues that the music
    emotion literature and the EMSYNC authors' earlier work found strongest.
    """
    valence_x = np.array([f.major_minus_minor * 4.0, (f.mean_pitch - 62.0) / 8.0, f.key_clarity * 2.0 - 1.0])
    arousal_x = np.array([np.log1p(f.notes_per_second) - 1.8, np.log1p(f.onsets_per_second) - 1.4,
                          (f.mean_velocity - 80.0) / 20.0])
    return valence_x, arousal_x


@dataclass
class EmotionEstimator:
    """Logistic models from predictors to P(positive); valence = 2P - 1 (same for arousal)."""

    valence_weights: list[float]
    arousal_weights: list[float]  # last entry of each is the bias

    def estimate(self, f: MusicFeatures) -> tuple[float, float]:
        vx, ax = emotion_predictors(f)
        return _signed(vx, self.valence_weights), _signed(ax, self.arousal_weights)


def _signed(x: np.ndarray, weights: Sequence[float]) -> float:
    w = np.asarray(weights)
    return float(np.tanh(0.5 * (x @ w[:-1] + w[-1])))  # 2*sigmoid(z) - 1


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 0.1, steps: int = 2000) -> list[float]:
    """Weights (bias last) of an L2-regularised logistic regression, y in {-1, +1}."""
    x1 = np.hstack([x, np.ones((len(x), 1))])
    target = (np.asarray(y) > 0).astype(np.float64)
    w = np.zeros(x1.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x1 @ w))
        grad = x1.T @ (p - target) / len(x1) + l2 * np.r_[w[:-1], 0.0] / len(x1)
        w -= 0.5 * grad
    return w.tolist()
