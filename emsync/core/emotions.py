"""Emotion words and "valence=.. arousal=.." text -> (valence, arousal) on the -1..1 scale.

Editors label scenes in the words they already use ("tense", "joy", "calm") or, when they
want exact control, with numbers. Both land on the same two axes the generator is
conditioned on, so a marker in Premiere or a note on a clip can steer the music.
"""
from __future__ import annotations

import math
import re

from emsync.core.errors import EmsyncError

# Means of the six Ekman emotions on valence/arousal, copied from
# ../shared/data/emotion/ekman_to_va.csv (published with the EMSYNC authors' video emotion
# classifier). The runtime must not depend on ../shared, hence the copy.
EKMAN = {
    "anger": (-0.51, 0.59),
    "disgust": (-0.60, 0.35),
    "fear": (-0.64, 0.60),
    "joy": (0.76, 0.48),
    "sadness": (-0.63, -0.27),
    "surprise": (0.40, 0.67),
}

# Moods editors and music supervisors name that Ekman's six do not cover, placed by hand on
# Russell's circumplex (valence = pleasant/unpleasant, arousal = energetic/still) and kept
# consistent with the Ekman anchors above (e.g. "tense" sits between fear and neutral).
MOODS = {
    **EKMAN,
    "neutral": (0.0, 0.0),
    "tense": (-0.35, 0.60),
    "suspense": (-0.30, 0.50),
    "anxious": (-0.50, 0.50),
    "ominous": (-0.50, 0.30),
    "dark": (-0.50, 0.10),
    "mysterious": (-0.10, 0.20),
    "calm": (0.40, -0.60),
    "peaceful": (0.55, -0.55),
    "dreamy": (0.30, -0.40),
    "melancholy": (-0.45, -0.45),
    "lonely": (-0.50, -0.40),
    "bored": (-0.30, -0.60),
    "nostalgic": (0.10, -0.30),
    "romantic": (0.70, -0.10),
    "tender": (0.60, -0.30),
    "hopeful": (0.50, 0.10),
    "uplifting": (0.70, 0.40),
    "playful": (0.60, 0.50),
    "excited": (0.70, 0.75),
    "triumphant": (0.80, 0.70),
    "epic": (0.50, 0.80),
    "action": (0.10, 0.85),
}

# Synonyms and inflections -> a key of MOODS. Lookup is case-insensitive, whole words only.
SYNONYMS = {
    "angry": "anger", "rage": "anger", "furious": "anger", "aggressive": "anger",
    "disgusted": "disgust", "disgusting": "disgust", "gross": "disgust",
    "afraid": "fear", "scared": "fear", "scary": "fear", "fearful": "fear", "horror": "fear",
    "terror": "fear", "frightening": "fear", "creepy": "fear",
    "happy": "joy", "joyful": "joy", "happiness": "joy", "cheerful": "joy", "glad": "joy",
    "fun": "joy", "funny": "joy",
    "sad": "sadness", "sorrow": "sadness", "grief": "sadness", "tragic": "sadness",
    "mournful": "sadness", "somber": "sadness", "sombre": "sadness", "depressing": "sadness",
    "surprised": "surprise", "surprising": "surprise", "shock": "surprise", "amazed": "surprise",
    "tension": "tense", "suspenseful": "suspense", "thriller": "suspense",
    "nervous": "anxious", "anxiety": "anxious", "menacing": "ominous", "gloomy": "dark",
    "mystery": "mysterious",
    "relaxed": "calm", "serene": "peaceful", "tranquil": "peaceful", "peace": "peaceful",
    "gentle": "tender", "melancholic": "melancholy", "wistful": "nostalgic",
    "love": "romantic", "loving": "romantic", "warm": "romantic", "inspiring": "uplifting",
    "whimsical": "playful", "energetic": "excited", "exciting": "excited",
    "heroic": "triumphant", "victory": "triumphant", "grand": "epic",
}

_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
# The one-letter forms need "=": "Cam A: 2" in a clip note is not an arousal.
_VALENCE = re.compile(rf"\b(?:valence\s*[=:]|v\s*=)\s*{_NUMBER}", re.IGNORECASE)
_AROUSAL = re.compile(rf"\b(?:arousal\s*[=:]|a\s*=)\s*{_NUMBER}", re.IGNORECASE)
_WORD = re.compile(r"[a-z]+")


def emotion_for_word(word: str) -> tuple[float, float] | None:
    """(valence, arousal) for a mood word or its synonym; None for a word we do not know."""
    key = word.strip().lower()
    return MOODS.get(SYNONYMS.get(key, key))


def parse_valence_arousal(text: str, field: str = "emotion") -> tuple[float, float] | None:
    """Read "valence=0.4 arousal=-0.2" ("valence: 0.4", "v=0.4 a=-0.2") from `text`.

    None when the text names neither axis; EmsyncError naming `field` when only one axis is
    given or a number lies outside -1..1, because a half-typed label is a mistake worth
    reporting rather than silently scoring as neutral.
    """
    valence, arousal = _VALENCE.search(text), _AROUSAL.search(text)
    if not valence and not arousal:
        return None
    values = []
    for name, match in (("valence", valence), ("arousal", arousal)):
        if not match:
            raise EmsyncError(f"{field}: {name} missing in {text.strip()!r}")
        value = float(match.group(1))
        if not math.isfinite(value) or not -1.0 <= value <= 1.0:
            raise EmsyncError(f"{field}: {name} {match.group(1)} is outside [-1, 1]")
        values.append(value)
    return values[0], values[1]


def find_emotion(text: str, field: str = "emotion") -> tuple[float, float] | None:
    """The emotion a free-text label asks for: explicit numbers first, else the first mood word.

    Words match whole (so "happened" is not "happy"); None when the text names no emotion.
    """
    explicit = parse_valence_arousal(text, field)
    if explicit is not None:
        return explicit
    for word in _WORD.findall(text.lower()):
        found = emotion_for_word(word)
        if found is not None:
            return found
    return None


def nearest_word(valence: float, arousal: float) -> str:
    """The MOODS word closest to a point: a readable label for numbers a human will see."""
    return min(MOODS, key=lambda w: math.dist(MOODS[w], (valence, arousal)))
