"""Valence picks the mode: a constrained sampling option (`lock_mode`), reported apart.

Listeners hear valence first in the mode, and the model follows its valence input only in
part (the model card has the figures). With the lock, the sampler keeps a running key
estimate from the pitched notes played so far, and a note-on the model chose on the wrong
mode's third or sixth (the major ones under negative valence, the minor ones under positive
valence) is played a semitone over: the parallel-mode move (`PARALLEL_MODE_MOVES`) that the
training's mode swap makes with the same table, so the result is music the model has seen.
The model hears the notes as played and goes on in the mode it was moved to. Near-neutral
valence leaves the mode to the model.

The tonic is the best-fitting key of either mode (parallel keys share it), kept until
another tonic fits clearly better: moving a passage to the parallel mode makes its
relative key fit about as well, and a tonic that changed with it would undo the move.
"""
from __future__ import annotations

import numpy as np

from emsync.core.features import key_scores

HALF_LIFE_SECONDS = 8.0  # the key is heard from the last few bars
MIN_EVIDENCE = 3.0  # weighted pitched note-ons before the key estimate is trusted
NEUTRAL_VALENCE = 0.15  # |valence| below this leaves the mode alone
TONIC_MARGIN = 0.1  # how much better another tonic must fit to replace the current one
# The parallel-mode move by target mode (major?): {scale degree above the tonic: semitones}.
# Training's mode swap (emsync.training.windows) uses this table too: both must agree.
PARALLEL_MODE_MOVES = {False: {4: -1, 9: -1},  # to minor: major third and major sixth down a semitone
                       True: {3: 1, 8: 1}}  # to major: minor third and minor sixth up


class ModeLock:
    """Running key estimate and the parallel-mode move of pitched note-ons."""

    def __init__(self):
        self.histogram = np.zeros(12)
        self.clock = 0.0
        self.tonic: int | None = None

    def _age(self, clock: float) -> None:
        if clock > self.clock:
            self.histogram *= 0.5 ** ((clock - self.clock) / HALF_LIFE_SECONDS)
            self.clock = clock

    def observe(self, pitch: int, clock: float) -> None:
        """A pitched note-on as played (the prefix's notes, or the lock's own output)."""
        self._age(clock)
        self.histogram[pitch % 12] += 1.0

    def current_tonic(self) -> int:
        """The tonic of the notes heard so far, kept until another fits clearly better."""
        major, minor = key_scores(self.histogram)
        fit = np.maximum(major, minor)
        best = int(fit.argmax())
        if self.tonic is None or fit[best] > fit[self.tonic] + TONIC_MARGIN:
            self.tonic = best
        return self.tonic

    def moved(self, pitch: int, valence: float, clock: float) -> int:
        """Where a pitched note-on the model chose at `clock` under `valence` belongs; the
        caller then observes what it played."""
        self._age(clock)
        if abs(valence) >= NEUTRAL_VALENCE and self.histogram.sum() >= MIN_EVIDENCE:
            move = PARALLEL_MODE_MOVES[valence > 0].get((pitch - self.current_tonic()) % 12, 0)
            if 0 <= pitch + move <= 127:
                return pitch + move
        return pitch
