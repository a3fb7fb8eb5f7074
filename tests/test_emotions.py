"""Mood words and valence/arousal text -> (valence, arousal)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from emsync.core.emotions import (EKMAN, MOODS, SYNONYMS, emotion_for_word, find_emotion,
                                  nearest_word, parse_valence_arousal)
from emsync.core.errors import EmsyncError

EKMAN_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "emotion" / "ekman_to_va.csv"


@pytest.mark.shared_data
def test_ekman_table_matches_the_published_means():
    with EKMAN_CSV.open() as handle:
        rows = {row["word"]: (float(row["V_mean"]), float(row["A_mean"])) for row in csv.DictReader(handle)}
    assert EKMAN == rows


def test_words_and_synonyms_case_insensitive():
    assert emotion_for_word("Happy") == EKMAN["joy"] == emotion_for_word(" JOY ")
    assert emotion_for_word("scary") == EKMAN["fear"]
    assert emotion_for_word("Suspense") == MOODS["suspense"]
    assert emotion_for_word("neutral") == (0.0, 0.0)
    assert emotion_for_word("spaceship") is None
    assert set(SYNONYMS.values()) <= set(MOODS)
    assert all(-1 <= v <= 1 and -1 <= a <= 1 for v, a in MOODS.values())


@pytest.mark.parametrize("text, expected", [
    ("valence=0.4 arousal=-0.2", (0.4, -0.2)),
    ("v=0.4 a=-0.2", (0.4, -0.2)),
    ("cut 3: joy | Valence: +.5, AROUSAL: -1", (0.5, -1.0)),
    ("Cam A: 2", None),
    ("nothing here", None),
])
def test_parse_valence_arousal(text, expected):
    assert parse_valence_arousal(text) == expected


@pytest.mark.parametrize("text, problem", [
    ("valence=1.2 arousal=0", "marker 4: valence 1.2 is outside"),
    ("valence=0 arousal=-3", "marker 4: arousal -3 is outside"),
    ("valence=0.2", "marker 4: arousal missing"),
])
def test_bad_numbers_name_the_field(text, problem):
    with pytest.raises(EmsyncError, match=problem):
        parse_valence_arousal(text, "marker 4")


def test_find_emotion_prefers_numbers_and_matches_whole_words():
    assert find_emotion("cut 2: joy valence=-0.1 arousal=0.2") == (-0.1, 0.2)
    assert find_emotion("really TENSE moment") == MOODS["tense"]
    assert find_emotion("so, this happened") is None
    assert nearest_word(*EKMAN["sadness"]) == "sadness"
