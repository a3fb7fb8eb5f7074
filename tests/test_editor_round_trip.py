"""The editor's round trip: a timeline scored with audio, written back in each format, read again."""
import json

import opentimelineio as otio
import pytest

from conftest import SHARED_DATA, run_cli
from emsync.core.midi_io import write_midi
from emsync.preview.render import render
from emsync.preview.wav import read_wav
from emsync.core.music import Note
from emsync.timelines import read_timeline
from emsync.timelines import write_timeline

SOURCES = ["25fps.edl", "premiere_example.xml", "simple.aaf", "transitions.aaf", "fcpx_example.fcpxml"]
FORMATS = [".otio", ".xml", ".fcpxml"]  # an EDL has no place for a music track (see emsync.timelines)
pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module", params=SOURCES)
def scored(request, tmp_path_factory):
    """The timeline with emotions set, and a short real score rendered to the programme's length."""
    folder = tmp_path_factory.mktemp("scored")
    timeline = read_timeline(SHARED_DATA / "timelines" / request.param)
    for scene in timeline.scenes:
        scene.valence, scene.arousal, scene.user_set = 0.4, -0.6, True
    notes = [Note(s.start, min(s.start + 0.5, timeline.duration), 60, 90, 1) for s in timeline.scenes]
    notes.append(Note(timeline.duration - 0.5, timeline.duration, 48, 80, 3))
    midi = write_midi(folder / "score.mid", notes)
    wav = render(midi, folder / "score.wav", workers=1).wav
    return timeline, midi, wav


def _audio_clips(path):
    timeline = otio.adapters.read_from_file(str(path))
    if isinstance(timeline, otio.schema.SerializableCollection):
        timeline = next(iter(timeline.find_children(descended_from_type=otio.schema.Timeline)))
    return timeline, [c for track in timeline.audio_tracks() for c in track.find_clips()
                      if c.media_reference and "score.wav" in (getattr(c.media_reference, "target_url", "") or "")]


@pytest.mark.parametrize("suffix", FORMATS)
def test_written_timeline_has_the_audio_the_cuts_and_the_emotions(scored, tmp_path, suffix):
    timeline, midi, wav = scored
    if suffix == ".fcpxml" and abs(timeline.fps - round(timeline.fps)) > 1e-6:
        pytest.skip("the FCPXML adapter cannot hold NTSC rates")
    out = write_timeline(timeline, tmp_path / f"edit{suffix}", midi, wav)
    back = read_timeline(out)
    assert back.cuts == pytest.approx(timeline.cuts, abs=1e-3)
    assert all(s.user_set for s in back.scenes)
    assert [v for s in back.scenes for v in (s.valence, s.arousal)] == \
        pytest.approx([0.4, -0.6] * len(timeline.scenes), abs=0.01)
    written, clips = _audio_clips(out)
    assert len(clips) == 1, "one clip of the rendered audio"
    assert clips[0].duration().to_seconds() == pytest.approx(timeline.duration, abs=1.5 / timeline.fps)
    assert clips[0].range_in_parent().start_time.to_seconds() == pytest.approx(0.0, abs=1e-6)
    audio, rate = read_wav(wav)
    assert len(audio) / rate == pytest.approx(timeline.duration, abs=0.05)
    if suffix != ".fcpxml":  # the FCPXML adapter writes no start timecode
        start = written.global_start_time
        assert (start.to_seconds() if start else 0.0) == pytest.approx(timeline.global_start, abs=1e-6)


def test_score_with_audio_end_to_end(tmp_path):
    source = SHARED_DATA / "timelines" / "25fps.edl"
    midi, edit = tmp_path / "score.mid", tmp_path / "edit.xml"
    result = run_cli("score", source, "-o", midi, "--emotion", "calm", "--audio", "--plot", "--otio", edit)
    assert result.returncode == 0, result.stderr
    assert midi.with_suffix(".png").stat().st_size > 10_000
    before = json.loads(run_cli("cuts", source, "--json").stdout)
    _, clips = _audio_clips(edit)
    assert len(clips) == 1 and clips[0].duration().to_seconds() == pytest.approx(before["duration"], abs=0.05)
