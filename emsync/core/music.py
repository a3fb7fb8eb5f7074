"""Plain data objects shared by the codec, the generator and the adapters."""
from __future__ import annotations

from dataclasses import dataclass

# The five LPD-5 groups (Dong et al., 2018). Five groups keep the vocabulary small
# enough for a 2-core training budget while still giving a DAW one track per role.
INSTRUMENTS = ("drums", "piano", "guitar", "bass", "strings")
DRUMS = 0
# GM program written for each group on export (drums use channel 10, program ignored).
GM_PROGRAM = {"drums": 0, "piano": 0, "guitar": 25, "bass": 33, "strings": 48}
DRUM_NOTE_SECONDS = 0.1  # drums are one-shot events; decoded notes get this length


def instrument_for_program(program: int) -> int:
    """Map a GM program (0-127) to an LPD-5 group index.

    Piano, chromatic percussion and organ are keyboards; guitars and plucked ethnic
    instruments are guitar; basses bass; strings, ensembles, brass, reeds, pipes and
    synth leads/pads are the sustained melodic group "strings"; the rest (synth
    effects, pitched percussion, sound effects) falls back to piano.
    """
    if 24 <= program <= 31 or 104 <= program <= 108:
        return INSTRUMENTS.index("guitar")
    if 32 <= program <= 39:
        return INSTRUMENTS.index("bass")
    if 40 <= program <= 95:
        return INSTRUMENTS.index("strings")
    return INSTRUMENTS.index("piano")


@dataclass(frozen=True, order=True)
class Note:
    start: float  # seconds
    end: float  # seconds
    pitch: int
    velocity: int
    instrument: int  # index into INSTRUMENTS


@dataclass
class Scene:
    """A stretch of picture between two cuts and the emotion the music should carry."""

    start: float
    end: float
    valence: float = 0.0  # -1..1
    arousal: float = 0.0  # -1..1
    name: str = ""
    media: str = ""
    user_set: bool = False  # True when the editor chose the emotion: it always wins
