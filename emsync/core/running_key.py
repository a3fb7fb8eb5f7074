"""The key of the music played so far, as the sampler hears it, and the option that keeps
the music in it (`stay_in_key`).

The key is heard from the pitched note-ons already played, each counted once and faded
with a half-life of HALF_LIFE_SECONDS (the last few bars), and fitted to the 24
Krumhansl-Kessler key profiles (`features.key_scores`). Its tonic is kept until another
fits clearly better (TONIC_MARGIN): a passage moved to the parallel mode makes its
relative key fit about as well, and a tonic that followed would undo the move. Two
sampling options listen to it, one ear for both when both are on: the mode lock
(`mode_lock.py`, itself a RunningKey) and `InKey` below. A key whose notes have faded below
MIN_EVIDENCE is forgotten, tonic included: music after a long rest finds its own.

Stay in key: the model alone plays about twice the corpus's share of notes outside the
key (the model card has the figures, and why a lower temperature is not the answer: it
thins the whole distribution, rhythm included). `InKey` lowers the probability of a
pitched note-on outside the scale of the key heard so far to OUT_OF_KEY_WEIGHT of what
the model gave it, and leaves every other token alone: the model still chooses when and
how much to play, and can still step outside the key when it wants to strongly (a
chromatic passing note, a borrowed chord), as the corpus does about one note in twenty.
The scale is the one eval measures against (`features.MAJOR_SCALE`, `MINOR_SCALE`:
natural and harmonic minor together, so the raised seventh that leads home is in key).
"""
from __future__ import annotations

import numpy as np

from emsync.core import codec
from emsync.core.features import MAJOR_SCALE, MINOR_SCALE, key_scores

HALF_LIFE_SECONDS = 8.0  # the key is heard from the last few bars
MIN_EVIDENCE = 3.0  # weighted pitched note-ons before the key estimate is trusted
TONIC_MARGIN = 0.1  # how much better another tonic must fit to replace the current one
OUT_OF_KEY_WEIGHT = 0.5  # probability left to a pitched note-on outside the key (benchmarks/probe_out_of_key.py)


class RunningKey:
    """A recency-weighted pitch-class histogram of the pitched note-ons played, and its key."""

    def __init__(self):
        self.histogram = np.zeros(12)
        self.clock = 0.0
        self.tonic: int | None = None
        self._scale: tuple[int, bool] | None = None  # the key of the notes observed, until the next one

    def _age(self, clock: float) -> None:
        if clock > self.clock:
            self.histogram *= 0.5 ** ((clock - self.clock) / HALF_LIFE_SECONDS)
            self.clock = clock

    def observe(self, pitch: int, clock: float) -> None:
        """A pitched note-on as played (the prefix's notes, or the sampler's own output)."""
        self._age(clock)
        self.histogram[pitch % 12] += 1.0
        self._scale = None

    def heard(self, clock: float) -> bool:
        """Is there enough recent music at `clock` to name a key? (If not, the key is forgotten.)"""
        self._age(clock)
        if self.histogram.sum() >= MIN_EVIDENCE:
            return True
        self.tonic = self._scale = None
        return False

    def current_tonic(self) -> int:
        """The tonic of the notes heard so far, kept until another fits clearly better."""
        return self._tonic(*key_scores(self.histogram))

    def _tonic(self, major: np.ndarray, minor: np.ndarray) -> int:
        fit = np.maximum(major, minor)
        best = int(fit.argmax())
        if self.tonic is None or fit[best] > fit[self.tonic] + TONIC_MARGIN:
            self.tonic = best
        return self.tonic

    def current_scale(self) -> tuple[int, bool]:
        """(tonic, major?) of the key heard so far: the kept tonic in the mode that fits it better.
        Fading scales the whole histogram, which leaves its correlations alone: the key changes
        only with a note observed."""
        if self._scale is None:
            major, minor = key_scores(self.histogram)
            tonic = self._tonic(major, minor)
            self._scale = tonic, bool(major[tonic] >= minor[tonic])
        return self._scale


class InKey:
    """Stay in key: log-probability offsets that lower pitched note-ons outside the key that
    `ear` heard (the caller has it observe the notes played)."""

    def __init__(self, ear: RunningKey):
        self.ear = ear
        self.log_weight = float(np.log(OUT_OF_KEY_WEIGHT))
        self._offsets: dict[tuple[int, bool], np.ndarray] = {}

    def offsets(self, clock: float) -> np.ndarray | None:
        """What to add to the log-probabilities of a token sampled at `clock` (None: no key
        heard). They apply after the temperature, so the weight is OUT_OF_KEY_WEIGHT at any."""
        if not self.ear.heard(clock):
            return None
        key = self.ear.current_scale()
        if key not in self._offsets:
            self._offsets[key] = self._table(*key)
        return self._offsets[key]

    def _table(self, tonic: int, major: bool) -> np.ndarray:
        outside = np.ones(12, dtype=bool)
        outside[(np.asarray(MAJOR_SCALE if major else MINOR_SCALE) + tonic) % 12] = False
        by_pitch = np.where(outside[np.arange(codec.N_PITCH) % 12], self.log_weight, 0.0)
        table = np.zeros(codec.VOCAB_SIZE)
        for instrument in codec.PITCHED:
            start = codec.on_token(instrument, 0)
            table[start:start + codec.N_PITCH] = by_pitch
        return table
