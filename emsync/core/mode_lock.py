"""Valence picks the mode: a constrained sampling option (`lock_mode`), reported apart.

Listeners hear valence first in the mode, and the model follows its valence input only in
part (the model card has the figures). With the lock, the sampler keeps a running key
estimate from the pitched notes played so far, and a note-on the model chose on the wrong
mode's third or sixth (the major ones under negative valence, the minor ones under positive
valence) is played a semitone over: the parallel-mode move (`PARALLEL_MODE_MOVES`) that the
training's mode swap makes with the same table, so the result is music the model has seen.
The model hears the notes as played and goes on in the mode it was moved to. Near-neutral
valence leaves the mode to the model.

The lock is the sampler's ear for the key (a `running_key.RunningKey`), which `stay_in_key`
shares when both are on.
"""
from __future__ import annotations

from emsync.core.running_key import RunningKey

NEUTRAL_VALENCE = 0.15  # |valence| below this leaves the mode alone
# The parallel-mode move by target mode (major?): {scale degree above the tonic: semitones}.
# Training's mode swap (emsync.training.windows) uses this table too: both must agree.
PARALLEL_MODE_MOVES = {False: {4: -1, 9: -1},  # to minor: major third and major sixth down a semitone
                       True: {3: 1, 8: 1}}  # to major: minor third and minor sixth up


class ModeLock(RunningKey):
    """The parallel-mode move of pitched note-ons, against the key heard so far."""

    def moved(self, pitch: int, valence: float, clock: float) -> int:
        """Where a pitched note-on the model chose at `clock` under `valence` belongs; the
        caller then observes what it played."""
        if abs(valence) >= NEUTRAL_VALENCE and self.heard(clock):
            move = PARALLEL_MODE_MOVES[valence > 0].get((pitch - self.current_tonic()) % 12, 0)
            if 0 <= pitch + move <= 127:
                return pitch + move
        return pitch
