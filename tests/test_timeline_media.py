"""Timelines use their media: the scenes an editor left open get the emotion of their clip's
source range, read from the footage on disk; markers still win, missing media is one line."""
from __future__ import annotations

import logging

import mido
import pytest

from conftest import Peer, Server, run_cli
from emsync.core.emotions import emotion_for_word
from emsync.service.scoring import ScoringService
from emsync.service.session import Session
from emsync.video.analysis import SourceRange, analyze_ranges

otio = pytest.importorskip("opentimelineio")
pytest.importorskip("av")
from test_scene_emotion import film  # noqa: E402  (needs av)

FPS = 24
RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange


def _clip(name, url, start, seconds, length=6.0, marker=None):
    """A clip showing [start, start + seconds) of the media at `url`, `length` s long."""
    clip = otio.schema.Clip(name=name, source_range=TR(RT(start * FPS, FPS), RT(seconds * FPS, FPS)),
                            media_reference=otio.schema.ExternalReference(
                                target_url=url, available_range=TR(RT(0, FPS), RT(length * FPS, FPS))))
    if marker:
        clip.markers.append(otio.schema.Marker(name=marker, marked_range=TR(RT(start * FPS, FPS), RT(0, FPS))))
    return clip


@pytest.fixture(scope="module")
def edit(tmp_path_factory):
    """An edit beside a media/ folder: the bright half of a dark-then-bright film (relative
    path), its dark half, a second film by absolute path under a "sad" marker, and a clip
    whose file is missing."""
    folder = tmp_path_factory.mktemp("edit")
    (folder / "media").mkdir()
    contrast = film(folder / "media" / "contrast.mp4", "dusk", "carnival")
    bright = film(folder / "media" / "bright.mp4", "carnival", seconds=2.0)
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    track.extend([_clip("shot a", "media/contrast.mp4", 3.25, 2.5),
                  _clip("shot b", "media/contrast.mp4", 0.25, 2.5),
                  _clip("shot c", bright.resolve().as_uri(), 0.0, 2.0, length=2.0, marker="sad"),
                  _clip("shot d", "media/missing.mp4", 0.0, 2.0)])
    timeline = otio.schema.Timeline(name="media edit")
    timeline.tracks.append(track)
    path = folder / "edit.otio"
    otio.adapters.write_to_file(timeline, str(path))
    return path, contrast


def _opened(path, **options):
    service = ScoringService(Session(None))
    service.open_timeline(path, **options)
    return service.session.scenes


def _remux(source, target, timecode=None):
    """`source`'s streams copied into `target` (its container from the suffix), the video
    stamped with `timecode` as a camera would."""
    import av

    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        if timecode:
            next(s for s in streams.values() if s.type == "video").metadata["timecode"] = timecode
        for packet in inp.demux(*[inp.streams[i] for i in streams]):
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return target


def test_source_ranges_are_read_and_each_scene_gets_its_own(edit, caplog):
    path, _ = edit
    with caplog.at_level(logging.WARNING):
        scenes = _opened(path)
    bright, dark, marked, missing = scenes
    assert bright.valence > 0.3 and bright.arousal > 0.1 and not bright.user_set
    assert dark.valence < -0.3 and dark.arousal < -0.1 and not dark.user_set
    assert (marked.valence, marked.arousal) == pytest.approx(emotion_for_word("sad")) and marked.user_set
    assert (missing.valence, missing.arousal) == (0.0, 0.0) and not missing.user_set
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "missing.mp4: file not found" in warned[0] and str(path) in warned[0], warned


def test_no_media_keeps_open_scenes_neutral(edit):
    scenes = _opened(edit[0], media=False)
    assert [(s.valence, s.arousal) for s in scenes if not s.user_set] == [(0.0, 0.0)] * 3


def test_a_range_after_the_start_is_read_alone(edit):
    """A range past the file's start is reached by seeking, and reads only itself."""
    _, contrast = edit
    late, = analyze_ranges(contrast, [SourceRange(3.25, 5.75)], faces=False)
    early, = analyze_ranges(contrast, [SourceRange(0.25, 2.75)], faces=False)
    assert late.valence > 0.3 > -0.3 > early.valence


@pytest.mark.parametrize("container", [".mp4", ".ts"])
def test_a_range_is_read_from_its_own_frames_in_any_container(edit, tmp_path, container):
    """MPEG-TS has no index (its seek lands a keyframe late when aimed at the range itself); a
    range past the file's end holds no frame and is not read, not given its neighbour's."""
    _, contrast = edit
    source = contrast if container == ".mp4" else _remux(contrast, tmp_path / f"contrast{container}")
    late, early, beyond = analyze_ranges(source, [SourceRange(3.25, 5.75), SourceRange(0.25, 2.75),
                                                  SourceRange(40.0, 42.0)], faces=False)
    assert late.valence > 0.3 > -0.3 > early.valence and beyond is None


@pytest.mark.parametrize("timecode", ["01:00:00:00", None])
def test_an_edit_in_the_footage_timecode_reads_the_range_it_names(edit, tmp_path, timecode):
    """A clip naming its source in the camera's timecode (an EDL's way: no available range):
    the file's own start timecode is taken off, so the bright half is read where it is; a
    file without one is read from its first frame, as before."""
    from emsync.video.timecode import parse_timecode, start_timecode

    _, contrast = edit
    footage = _remux(contrast, tmp_path / "camera.mov", timecode)
    assert start_timecode(footage) == (3600.0 if timecode else None)
    offset = 3600.0 if timecode else 0.0
    clip = otio.schema.Clip(name="shot", source_range=TR(RT((offset + 3.25) * FPS, FPS), RT(2.5 * FPS, FPS)),
                            media_reference=otio.schema.ExternalReference(target_url=footage.as_uri()))
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    track.append(clip)
    timeline = otio.schema.Timeline(name="tc edit")
    timeline.tracks.append(track)
    otio.adapters.write_to_file(timeline, str(tmp_path / "tc.otio"))
    (scene,) = _opened(tmp_path / "tc.otio")
    assert scene.valence > 0.3 and scene.arousal > 0.1
    assert parse_timecode("00:01:00;02", 30000 / 1001) == pytest.approx(1800 / (30000 / 1001))
    assert parse_timecode("10:00:00;00", 30000 / 1001) == pytest.approx(10 * 107892 / (30000 / 1001))
    assert parse_timecode("junk", 25.0) is None and parse_timecode("00:00:01:30", 25.0) is None


def test_score_reads_media_unless_told_not_to(edit, tmp_path):
    path, _ = edit

    def markers(*flags):
        midi = tmp_path / "edit.mid"
        result = run_cli("score", path, "-o", midi, "--seed", 1, *flags)
        assert result.returncode == 0, result.stderr
        return result.stderr, [m.text for m in mido.MidiFile(midi).tracks[0] if m.type == "marker"]

    said, analysed = markers()
    lines = [line for line in said.splitlines() if "media files not read" in line]
    assert len(lines) == 1 and "1 of 2" in lines[0] and "Traceback" not in said, said
    quick_said, plain = markers("--no-media")
    assert "media" not in quick_said
    assert "valence=-0.63 arousal=-0.27" in analysed[1]      # the marker wins either way
    assert analysed[0] != plain[0] and "valence=+0.00 arousal=+0.00" in plain[0]


def test_osc_open_timeline_reads_media_as_a_job_with_progress_and_cancel(edit, tmp_path):
    """Over OSC the edit is read at once and its media as a job: progress, /emsync/opened with
    the scenes analysed, /emsync/job/done; a cancel while it reads ends it without opening."""
    path, _ = edit
    server = Server(tmp_path / "session", tmp_path / "server.log")
    peer = Peer(server.port)
    try:
        peer.send("/emsync/open/timeline", str(path))
        messages = peer.until("/emsync/job/done", timeout=120)
        names = [name for name, _, _ in messages]
        assert names[0] == "/emsync/job/started" and messages[0][1][1] == "open"
        assert "/emsync/job/progress" in names and names.index("/emsync/opened") < names.index("/emsync/job/done")
        opened = next(args for name, args, _ in messages if name == "/emsync/opened")
        assert opened[:5] == ["timeline", str(path.resolve()), 9.0, 4, 3]
        assert peer.ask("/emsync/status", reply="/emsync/status")[0] == "idle"
        peer.send("/emsync/open/timeline", str(path))
        peer.until("/emsync/job/started", timeout=30)
        peer.send("/emsync/cancel")
        ended = peer.until("/emsync/job/cancelled", timeout=120)
        assert "/emsync/opened" not in [name for name, _, _ in ended]
        assert peer.ask("/emsync/status", reply="/emsync/status")[0] == "idle"
    finally:
        peer.close()
        server.stop()
