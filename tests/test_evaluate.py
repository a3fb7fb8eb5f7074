import json

import numpy as np
import pytest

from conftest import run_cli
from emsync.training.evaluate import alignment, instrument_roles, random_cut_list
from emsync.core.features import music_features
from emsync.core.music import DRUMS, Note


def test_alignment_counts_onsets_within_50ms():
    notes = [Note(1.00, 1.5, 60, 80, 1), Note(2.04, 2.5, 64, 80, 1), Note(3.2, 3.5, 67, 80, 1)]
    share, error = alignment(notes, [1.0, 2.0, 3.0])
    assert share == pytest.approx(2 / 3)
    assert error == pytest.approx((0.0 + 0.04 + 0.2) / 3)


def test_random_cut_lists_stay_inside():
    rng = np.random.default_rng(0)
    for _ in range(20):
        cuts = random_cut_list(rng, 30.0)
        assert cuts == sorted(cuts) and 0 < cuts[0] and cuts[-1] < 30.0
        assert np.all(np.diff(cuts) >= 2.0)


def test_features_tell_major_from_minor_and_dense_from_sparse():
    def triads(third, step, velocity):
        notes = []
        for k, t in enumerate(np.arange(0, 8, step)):
            root = 60 + [0, 5, 7, 0][k % 4]
            notes += [Note(t, t + step, p, velocity, 1) for p in (root, root + third, root + 7)]
        return notes

    major, minor = music_features(triads(4, 0.5, 90)), music_features(triads(3, 0.5, 90))
    assert major.major_minus_minor > 0 > minor.major_minus_minor
    dense, sparse = music_features(triads(4, 0.125, 110)), music_features(triads(4, 1.0, 50))
    assert dense.notes_per_second > 4 * sparse.notes_per_second
    drums = [Note(t, t + 0.1, 36, 100, DRUMS) for t in np.arange(0, 8, 0.25)]
    with_drums = music_features(triads(4, 1.0, 50) + drums, 0.0, 8.0)
    assert with_drums.pitched_notes_per_second == sparse.notes_per_second == 3.0
    assert with_drums.notes_per_second == 3.0 + 4.0
    assert dense.mean_velocity > sparse.mean_velocity
    assert major.polyphony == pytest.approx(3, abs=0.2)


def test_instrument_roles_say_who_sounds_and_whether_the_bass_is_under_the_harmony():
    piano, bass, strings = 1, 3, 4
    under = [Note(0.0, 2.0, 40, 80, bass), Note(0.0, 2.0, 60, 80, piano), Note(0.0, 4.0, 72, 80, strings)]
    over = [Note(2.0, 4.0, 70, 80, bass), Note(2.0, 4.0, 50, 80, piano)]
    roles = instrument_roles([under + over], 4.0)
    assert roles["piano_sounding"] == roles["bass_sounding"] == roles["strings_sounding"] == 1.0
    assert roles["drums_sounding"] == roles["guitar_sounding"] == 0.0
    assert roles["bass_lowest"] == 0.5  # under the piano for 2 s, over it for 2 s
    silent_bass = instrument_roles([[Note(0.0, 1.0, 60, 80, piano)], []], 4.0)
    assert silent_bass["piano_sounding"] == 0.125 and silent_bass["bass_lowest"] is None


@pytest.mark.slow
def test_quick_evaluation_end_to_end(tmp_path):
    out = tmp_path / "report.json"
    result = run_cli("eval", "--quick", "--json-out", out)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    for name in ("with_offsets", "offsets_masked", "constrained_hit_cuts"):
        assert 0 <= report["boundary_alignment"][name]["hit_rate_50ms"] <= 1
    assert report["boundary_alignment"]["constrained_hit_cuts"]["hit_rate_50ms"] == 1.0
    assert set(report["emotion_control"]) >= {"arousal_vs_note_density_r", "valence_vs_major_minus_minor_r"}
    speed = report["speed"]
    assert speed["onnxruntime_kv_cache_int8"]["tokens_per_s"] > 0 and speed["onnxruntime_kv_cache_float"]["tokens_per_s"] > 0
    assert speed["kv_cache_speedup"] > 1
