import numpy as np
import pytest

from emsync.core.conditions import NO_BOUNDARY, OFFSET_EDGES, OFFSET_HORIZON, EmotionCurve, boundary_offset_bins
from emsync.core.errors import EmsyncError
from emsync.core.scenes import load_scene_file, scenes_from_cuts, score_markers
from emsync.core.music import Scene


def test_offset_bins_count_down_to_each_boundary():
    clock = np.array([0.0, 4.0, 4.99, 5.0, 5.004, 5.01, 6.0, 20.0])
    bins = boundary_offset_bins(clock, [5.0, 7.0])
    assert bins[3] == 0 and bins[4] == 0, "on the boundary (within half a step) the offset is zero"
    assert bins[2] == 0  # 10 ms before: inside the first 20 ms bin
    assert bins[1] == np.searchsorted(OFFSET_EDGES, 1.0, side="right") - 1
    assert bins[5] > 0, "past the boundary the next one counts"
    assert bins[7] == NO_BOUNDARY
    assert bins[0] == np.searchsorted(OFFSET_EDGES, 5.0 + 1e-9, side="right") - 1
    assert boundary_offset_bins(clock, []).tolist() == [NO_BOUNDARY] * len(clock)


def test_offset_bins_shrink_monotonically_towards_a_boundary():
    clock = np.linspace(0.0, OFFSET_HORIZON + 1.0, 500)
    bins = boundary_offset_bins(clock, [OFFSET_HORIZON + 1.0])
    ahead = bins[bins != NO_BOUNDARY]
    assert np.all(np.diff(ahead) <= 0)
    assert bins[0] == NO_BOUNDARY


def test_emotion_curve_from_scenes_steps_at_cuts():
    curve = EmotionCurve.from_scenes([Scene(0, 5, 0.8, -0.5), Scene(5, 10, -0.6, 0.7)])
    values = curve.at([0.0, 4.0, 5.0, 9.9])
    assert values[0].tolist() == pytest.approx([0.8, -0.5])
    assert values[1].tolist() == pytest.approx([0.8, -0.5])
    assert values[2].tolist() == pytest.approx([-0.6, 0.7])
    assert values[3].tolist() == pytest.approx([-0.6, 0.7])


def test_scene_file_and_markers(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"duration": 20, "scenes": [{"start": 8, "valence": -0.5, "arousal": 0.5, "name": "b"},'
                    '{"start": 0, "valence": 0.5, "arousal": 0.1}]}')
    duration, scenes = load_scene_file(path)
    assert duration == 20
    assert [(s.start, s.end) for s in scenes] == [(0, 8), (8, 20)]
    markers = score_markers(scenes, [12.0])
    assert markers[1] == (12.0, "hit")
    markers = markers[:1]
    assert len(markers) == 1 and markers[0][0] == 8 and "b" in markers[0][1] and "valence=-0.50" in markers[0][1]


@pytest.mark.parametrize("text, field", [
    ('{"scenes": []}', "non-empty"),
    ('{"duration": 10, "scenes": [{"start": "x"}]}', "scenes[0].start"),
    ('{"duration": 10, "scenes": [{"start": 0, "valence": 2}]}', "scenes[0].valence"),
    ('{"duration": 3, "scenes": [{"start": 0}, {"start": 5}]}', "duration"),
    ('[1, 2]', "scenes[0]"),
])
def test_bad_scene_files_name_the_field(tmp_path, text, field):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(EmsyncError) as error:
        load_scene_file(path)
    assert field in str(error.value) and "bad.json" in str(error.value)


def test_scenes_from_cuts_validates():
    scenes = scenes_from_cuts(10, [7, 2.5, 2.5], 0.2, -0.2)
    assert [(s.start, s.end) for s in scenes] == [(0, 2.5), (2.5, 7), (7, 10)]
    with pytest.raises(EmsyncError, match="arousal"):
        scenes_from_cuts(10, [2], 0, 1.5)
