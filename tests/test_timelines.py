"""Editor timelines: cuts as seen on screen, emotions from markers, and the write -> read trip."""
from __future__ import annotations

from pathlib import Path

import opentimelineio as otio
import pytest

from emsync.core.emotions import EKMAN, MOODS
from emsync.core.errors import EmsyncError
from emsync.timelines.timeline import read_timeline, write_timeline

RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
NTSC = 30000 / 1001
TIMELINES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "timelines"
needs_data = pytest.mark.shared_data
SHARED = sorted(p.name for p in TIMELINES.glob("*") if p.suffix in {".edl", ".xml", ".fcpxml", ".aaf"}) \
    if TIMELINES.is_dir() else []


# ---- building timelines in code -------------------------------------------------------------

def clip(name, frames, rate=24, start=0, media=True):
    ref = otio.schema.ExternalReference(target_url=f"file:///media/{name}.mov",
                                        available_range=TR(RT(0, rate), RT(100000, rate))) if media else None
    return otio.schema.Clip(name=name, media_reference=ref,
                            source_range=TR(RT(start, rate), RT(frames, rate)))


def gap(frames, rate=24):
    return otio.schema.Gap(source_range=TR(RT(0, rate), RT(frames, rate)))


def video(*items):
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    track.extend(items)
    return track


def save(tmp_path, *tracks, start=None, name="edit.otio", markers=()):
    timeline = otio.schema.Timeline(name="edit", global_start_time=start)
    timeline.tracks.extend(tracks)
    timeline.tracks.markers.extend(markers)
    path = tmp_path / name
    otio.adapters.write_to_file(timeline, str(path))
    return path


def marker(name, frame, rate=24, comment=""):
    return otio.schema.Marker(name=name, marked_range=TR(RT(frame, rate), RT(0, rate)), comment=comment)


def frames(times, fps=24):
    return [round(t * fps, 6) for t in times]


# ---- the shared real-world files ------------------------------------------------------------

@needs_data
@pytest.mark.parametrize("name", SHARED)
def test_shared_timelines_parse_with_sane_cuts(name):
    result = read_timeline(TIMELINES / name)
    assert result.cuts == sorted(set(result.cuts))
    assert all(0 < cut < result.duration for cut in result.cuts)
    assert result.scenes[0].start == 0 and result.scenes[-1].end == pytest.approx(result.duration)
    assert all(a.end == b.start for a, b in zip(result.scenes, result.scenes[1:]))
    assert [s.start for s in result.scenes[1:]] == result.cuts
    assert result.fps > 0 and result.fps_source in {"file", "detected"}


def _otio_flattened_boundaries(path, fps):
    """Clip boundaries on OTIO's own flattened video track (range_in_parent: EDL-safe)."""
    raw = otio.adapters.read_from_file(str(path), **({"rate": fps} if path.suffix == ".edl" else {}))
    if isinstance(raw, otio.schema.SerializableCollection):
        raw = max(raw.find_children(descended_from_type=otio.schema.Timeline),
                  key=lambda t: t.duration().to_seconds())
    tracks = [t for t in raw.tracks if t.kind == otio.schema.TrackKind.Video]
    flat = otio.algorithms.flatten_stack(tracks) if len(tracks) > 1 else tracks[0]
    edges = set()
    for item in flat:
        where = item.range_in_parent()
        edges |= {where.start_time.to_seconds(), where.end_time_exclusive().to_seconds()}
    end = raw.tracks.duration().to_seconds()
    return [round(t, 6) for t in sorted(edges) if 1e-6 < t < end - 1e-6]


@needs_data
@pytest.mark.parametrize("name", ["25fps.edl", "avid_example.edl", "gap_test.edl",
                                  "premiere_example.edl", "simple.aaf"])
def test_plain_edits_cut_where_otio_flattening_does(name):
    result = read_timeline(TIMELINES / name)
    assert [round(c, 6) for c in result.cuts] == _otio_flattened_boundaries(TIMELINES / name, result.fps)


@needs_data
def test_fcpx_library_takes_longest_timeline_and_looks_into_compound_clips():
    result = read_timeline(TIMELINES / "fcpx_example.fcpxml")
    assert result.format == "fcpx_xml" and "longest of 2 timelines" in result.timeline_choice
    cuts = frames(result.cuts, 30)
    # Every cut OTIO's flattening sees, plus the ones inside the compound clips it cannot see.
    assert set(_otio_flattened_boundaries(TIMELINES / "fcpx_example.fcpxml", 30)) < set(
        round(c, 6) for c in result.cuts)
    assert {2591, 2891, 3191, 4443} <= set(cuts)
    media = {(s.name, s.media) for s in result.scenes}
    assert ("IMG_0513", "file:///Volumes/Media/otio/IMG_0513.MOV") in media


@needs_data
def test_title_on_upper_track_does_not_erase_cuts_below():
    result = read_timeline(TIMELINES / "premiere_example.xml")
    assert frames(result.cuts, 30) == [13, 113, 165, 322, 547, 636, 956, 1164, 1246]
    # flatten_stack lets the title on V3 hide the picture cuts at 113..636.
    assert 165 / 30 not in _otio_flattened_boundaries(TIMELINES / "premiere_example.xml", 30)
    assert result.scenes[2].name == "test_title"  # the title shows where nothing is under it
    assert [(frames([t], 30)[0], name, comment) for t, name, comment in result.markers][0] == (
        113, "My MArker 1", "so, this happened")


@needs_data
def test_transitions_cut_at_their_midpoint_and_fades_keep_the_edit():
    assert frames(read_timeline(TIMELINES / "dissolve_test.edl").cuts) == [14, 19]
    aaf = read_timeline(TIMELINES / "transitions.aaf")
    assert frames(aaf.cuts) == [93, 194, 247, 391]
    assert aaf.global_start == 3600 and aaf.fps == 24


@needs_data
def test_edl_rate_is_detected_or_taken_from_the_option():
    detected = read_timeline(TIMELINES / "25fps.edl")
    assert (detected.fps, detected.fps_source) == (25, "detected")
    assert frames(detected.cuts, 25) == [161, 361, 447]
    avid = read_timeline(TIMELINES / "avid_example.edl")
    record_start = otio.opentime.from_timecode("00:59:53:11", 24).to_seconds()
    assert (avid.fps, avid.global_start) == (24, pytest.approx(record_start))
    assert read_timeline(TIMELINES / "avid_example.edl", fps=25).fps_source == "option"
    with pytest.raises(EmsyncError, match="25fps.edl"):
        read_timeline(TIMELINES / "25fps.edl", fps=24)


# ---- edge cases built in code ---------------------------------------------------------------

def test_drop_frame_edl_with_loc_markers(tmp_path):
    path = tmp_path / "df.edl"
    path.write_text(
        "TITLE: df\nFCM: DROP FRAME\n"
        "001  A001 V     C        00:00:59;26 00:01:00;04 01:00:00;00 01:00:00;06\n"
        "* FROM CLIP NAME:  a\n* LOC: 01:00:00;03 GREEN   tense\n"
        "002  B001 V     C        00:10:00;00 00:10:01;00 01:00:00;06 01:00:01;06\n"
        "* LOC: 01:00:00;20 happy\n")
    result = read_timeline(path)
    assert (result.fps, result.fps_source) == (NTSC, "detected")
    assert frames(result.cuts, NTSC) == [6]
    assert result.global_start == pytest.approx(otio.opentime.from_timecode("01:00:00;00", NTSC).to_seconds())
    assert [(s.valence, s.arousal) for s in result.scenes] == [MOODS["tense"], EKMAN["joy"]]


def test_edl_tracks_line_up_on_record_timecode(tmp_path):
    # The adapter starts every track at its own first event; picture starting after the
    # sound is black until then, and LOC timecodes count from the earliest event.
    path = tmp_path / "av.edl"
    path.write_text(
        "TITLE: av\n"
        "001  A001 V     C        00:00:10:00 00:00:12:00 01:00:01:00 01:00:03:00\n* FROM CLIP NAME:  pic\n"
        "002  A002 A     C        00:00:20:00 00:00:23:00 01:00:00:00 01:00:03:00\n"
        "* LOC: 01:00:00:12 RED hit\n")
    result = read_timeline(path)
    assert (result.global_start, result.cuts, result.hits) == (3600, [1.0], [0.5])
    assert [s.name for s in result.scenes] == ["", "pic"]


@pytest.mark.parametrize("rate, timecode", [
    (24000 / 1001, "01:00:00:00"), (24, "01:00:00:00"), (25, "10:00:00:00"), (NTSC, "01:00:00;00"),
    (NTSC, "01:00:00:00"), (30, "00:59:58:00"), (50, "01:00:00:00"), (60000 / 1001, "01:00:00;00"),
    (60, "01:00:00:00")])
def test_common_rates_and_start_timecodes(tmp_path, rate, timecode):
    start = otio.opentime.from_timecode(timecode, rate)
    result = read_timeline(save(tmp_path, video(clip("a", 100, rate), clip("b", 50, rate)), start=start))
    assert result.fps == rate
    assert frames(result.cuts, rate) == [100] and result.duration == pytest.approx(150 / rate)
    assert result.global_start == pytest.approx(start.to_seconds())


def test_drop_frame_otio_and_start_timecode(tmp_path):
    start = otio.opentime.from_timecode("01:00:00;00", NTSC)
    path = save(tmp_path, video(clip("a", 1800, NTSC), clip("b", 900, NTSC)), start=start)
    result = read_timeline(path)
    assert result.fps == NTSC and result.fps_source == "file"
    assert result.cuts == [pytest.approx(60.06)]
    assert result.global_start == pytest.approx(start.to_seconds())


def test_mixed_ntsc_spellings_leave_no_slivers(tmp_path):
    # AAF mixes 29.97 and 29.97002997: the same frame lands microseconds apart.
    path = save(tmp_path, video(clip("a", 1800, 29.97), clip("b", 900, 29.97)), video(clip("c", 1800, NTSC)))
    result = read_timeline(path, fps="30000/1001")
    assert [s.name for s in result.scenes] == ["c", "b"] and frames(result.cuts, NTSC) == [1800]


def test_start_timecode_is_removed_from_cuts(tmp_path):
    path = save(tmp_path, video(clip("a", 48), clip("b", 24)), start=RT(86400, 24))
    result = read_timeline(path)
    assert (result.global_start, result.cuts, result.duration) == (3600, [2.0], 3.0)


def test_topmost_clip_wins_across_tracks(tmp_path):
    path = save(tmp_path, video(clip("a", 100)), video(gap(40), clip("b", 20)))
    result = read_timeline(path)
    assert frames(result.cuts) == [40, 60]
    assert [s.name for s in result.scenes] == ["a", "b", "a"]
    assert result.scenes[1].media == "file:///media/b.mov"


def test_nested_stack_is_looked_into_through_its_trim(tmp_path):
    nested = otio.schema.Stack(name="nest", source_range=TR(RT(24, 24), RT(48, 24)))
    nested.append(video(clip("c", 48), clip("d", 48)))
    path = save(tmp_path, video(clip("a", 48), nested))
    result = read_timeline(path)
    assert frames(result.cuts) == [48, 72]
    assert [s.name for s in result.scenes] == ["a", "c", "d"]


@pytest.mark.parametrize("how, cut", [("mid", 45), ("start", 38), ("end", 52)])
def test_transition_cut_point(tmp_path, how, cut):
    dissolve = otio.schema.Transition(in_offset=RT(10, 24), out_offset=RT(4, 24))
    path = save(tmp_path, video(clip("a", 48), dissolve, clip("b", 48, start=10)))
    result = read_timeline(path, transition=how)
    assert frames(result.cuts) == [cut] and result.transition == how


def test_gaps_are_scenes_and_disabled_items_are_not_seen(tmp_path):
    hidden, off = clip("hidden", 24), clip("off", 12)
    hidden.enabled = off.enabled = False
    path = save(tmp_path, video(clip("a", 24), gap(12), clip("b", 24), off), video(gap(6), hidden))
    result = read_timeline(path)
    scenes = [(s.name, frames([s.start])[0]) for s in result.scenes]
    assert scenes == [("a", 0), ("", 24), ("b", 36), ("", 60)]


def test_title_overlay_does_not_erase_cuts_but_shows_over_black(tmp_path):
    title = otio.schema.Clip(name="Main Title", media_reference=otio.schema.GeneratorReference(
        generator_kind="title"), source_range=TR(RT(0, 24), RT(96, 24)))
    text = clip("Lower third text", 96, media=False)
    path = save(tmp_path, video(clip("a", 48), clip("b", 24)), video(title), video(text))
    result = read_timeline(path)
    assert frames(result.cuts) == [48, 72]
    assert [s.name for s in result.scenes] == ["a", "b", "Main Title"]


def test_markers_set_emotions_and_hits(tmp_path):
    a = clip("calm sunrise", 48)  # the clip name names a mood...
    a.markers.append(marker("Tense", 10))  # ...but a marker beats it
    b = clip("b", 48)
    b.markers.append(marker("note", 30, comment="valence=0.3 arousal=-0.4"))
    c = clip("peaceful ending", 48)
    path = save(tmp_path, video(a, b, c), markers=[marker("HIT", 60), marker("so this happened", 120)])
    result = read_timeline(path)
    assert [(s.valence, s.arousal, s.user_set) for s in result.scenes] == [
        (*MOODS["tense"], True), (0.3, -0.4, True), (*MOODS["peaceful"], True)]
    assert frames(result.hits) == [60]
    assert (round(10 / 24, 9), "Tense", "") in result.markers


def test_scene_without_a_label_is_left_to_the_caller(tmp_path):
    result = read_timeline(save(tmp_path, video(clip("IMG_0001", 24), clip("IMG_0002", 24))))
    assert not any(s.user_set for s in result.scenes)


def test_bundles_and_content_decide_the_format(tmp_path):
    timeline = otio.adapters.read_from_file(str(save(tmp_path, video(clip("a", 24, media=False),
                                                                     clip("b", 24, media=False)))))
    for suffix, adapter in [("otioz", "otioz"), ("otiod", "otiod")]:
        otio.adapters.write_to_file(timeline, str(tmp_path / f"edit.{suffix}"))
        assert read_timeline(tmp_path / f"edit.{suffix}").format == adapter
    renamed = tmp_path / "edit.json"
    renamed.write_text(otio.adapters.write_to_string(timeline))
    assert read_timeline(renamed).cuts == [1.0]


# ---- errors name the file -------------------------------------------------------------------

@pytest.mark.parametrize("name, content, problem", [
    ("empty.otio", b"", "empty"),
    ("broken.otio", b'{"OTIO_SCHEMA": "Timeline.1", "tracks": [', "not a readable"),
    ("broken.xml", b"<?xml version='1.0'?><xmeml><sequence>", "not a readable"),
    ("broken.aaf", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "not a readable"),
    ("page.xml", b"<html><body>hello</body></html>", "does not look like"),
    ("notes.txt", b"just some notes", "unsupported timeline format"),
    ("garbage.edl", b"001 this is not an edl", "does not look like"),
])
def test_unreadable_files_raise_naming_the_file(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(EmsyncError, match=problem) as error:
        read_timeline(path)
    assert str(path) in str(error.value)


def test_missing_audio_only_and_empty_timelines(tmp_path):
    with pytest.raises(EmsyncError, match="missing.otio: file not found"):
        read_timeline(tmp_path / "missing.otio")
    audio = otio.schema.Track(kind=otio.schema.TrackKind.Audio)
    audio.append(clip("music", 48))
    with pytest.raises(EmsyncError, match="audio.otio: no video track"):
        read_timeline(save(tmp_path, audio, name="audio.otio"))
    with pytest.raises(EmsyncError, match="blank.otio: the timeline holds no picture"):
        read_timeline(save(tmp_path, video(gap(24)), name="blank.otio"))


def test_bad_emotion_marker_names_file_and_field(tmp_path):
    a = clip("a", 24)
    a.markers.append(marker("valence=1.5 arousal=0", 3))
    path = save(tmp_path, video(a))
    with pytest.raises(EmsyncError, match=r"edit.otio: marker .* valence 1.5 is outside"):
        read_timeline(path)
    with pytest.raises(EmsyncError, match="transition"):
        read_timeline(path, transition="middle")


# ---- write -> read --------------------------------------------------------------------------

def _scored(result):
    """Give the scenes varied emotions and add a hit, as the scoring step would."""
    for i, scene in enumerate(result.scenes):
        step = i % 6
        scene.valence, scene.arousal = round(0.8 - 0.3 * step, 2), round(-0.5 + 0.2 * step, 2)
    result.hits = [result.cuts[0] + 3 / result.fps]
    return result


def _edit(tmp_path, rate):
    dissolve = otio.schema.Transition(in_offset=RT(8, rate), out_offset=RT(4, rate))  # cut at 46
    tracks = [video(clip("a", 48, rate), dissolve, clip("b", 48, rate, start=6), gap(24, rate),
                    clip("c", 30, rate)),
              video(gap(20, rate), clip("d", 16, rate))]
    return save(tmp_path, *tracks, start=otio.opentime.from_timecode("01:00:00:00", rate))


@pytest.mark.parametrize("rate", [24000 / 1001, 24, 25, NTSC, 60])
@pytest.mark.parametrize("suffix", [".otio", ".xml", ".fcpxml", ".edl"])
def test_write_then_read_gives_same_cuts_emotions_and_hits(tmp_path, rate, suffix):
    source = _scored(read_timeline(_edit(tmp_path, rate)))
    midi = tmp_path / "score.mid"
    midi.write_bytes(b"MThd")
    if suffix == ".fcpxml" and rate != round(rate):
        with pytest.raises(EmsyncError, match="scored.fcpxml: the FCPXML adapter cannot hold"):
            write_timeline(source, tmp_path / f"scored{suffix}", midi)
        return
    out = write_timeline(source, tmp_path / f"scored{suffix}", midi, audio_path=tmp_path / "score.wav")
    # Timecode cannot tell 23.976 from 24, and these short clips never show a frame >= 50.
    back = read_timeline(out, fps=rate if suffix == ".edl" and rate in (24000 / 1001, 60) else None)
    assert back.cuts == pytest.approx(source.cuts, abs=1e-6)
    assert [(s.valence, s.arousal) for s in back.scenes] == [(s.valence, s.arousal) for s in source.scenes]
    assert back.hits == pytest.approx(source.hits, abs=1e-6)
    assert back.fps == source.fps
    if suffix != ".fcpxml":  # the FCPX adapter writes no start timecode
        assert back.global_start == pytest.approx(source.global_start)
    if suffix in {".otio", ".xml"}:  # these carry the music and the source's tracks
        raw = otio.adapters.read_from_file(str(out))
        urls = {c.media_reference.target_url for c in raw.find_clips()}
        assert (tmp_path / "score.wav").resolve().as_uri() in urls  # the rendered score is the media
        assert midi.resolve().as_uri() not in urls  # no NLE plays MIDI
        assert len([t for t in raw.tracks if t.kind == otio.schema.TrackKind.Video]) == 2


@needs_data
@pytest.mark.parametrize("name", SHARED)
@pytest.mark.parametrize("suffix", [".otio", ".xml", ".edl"])
def test_shared_timelines_round_trip(tmp_path, name, suffix):
    source = _scored(read_timeline(TIMELINES / name))
    back = read_timeline(write_timeline(source, tmp_path / f"out{suffix}", tmp_path / "score.mid"))
    assert back.cuts == pytest.approx(source.cuts, abs=1e-6)
    assert [(s.valence, s.arousal) for s in back.scenes] == [(s.valence, s.arousal) for s in source.scenes]
    assert back.global_start == pytest.approx(source.global_start)


def test_write_refuses_unknown_formats_and_missing_folders(tmp_path):
    source = read_timeline(save(tmp_path, video(clip("a", 24), clip("b", 24))))
    with pytest.raises(EmsyncError, match=r"out.mov: cannot write this format"):
        write_timeline(source, tmp_path / "out.mov", tmp_path / "score.mid")
    with pytest.raises(EmsyncError, match="does not exist"):
        write_timeline(source, tmp_path / "nope" / "out.otio", tmp_path / "score.mid")
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".emsync-*"))


def test_nesting_is_measured_without_parsing():
    """The scans that guard the parsers agree with a parser on any JSON, strings with brackets,
    quotes and backslashes included, and stop counting XML past the limit."""
    import json
    import random

    from emsync.timelines.nesting import json_depth, xml_depth

    rng = random.Random(7)

    def value(depth: int):
        if depth > 6 or rng.random() < 0.3:
            return rng.choice([1, None, 'a\\"[{', "\\", "x]}", "\u00e9\""])
        if rng.random() < 0.5:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {f'k{i}"{{': value(depth + 1) for i in range(rng.randint(0, 3))}

    def depth(item) -> int:
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        return 0 if children is None else 1 + max(map(depth, children), default=0)

    for _ in range(500):
        item = value(0)
        assert json_depth(json.dumps(item).encode()) == depth(item)
    assert json_depth(b'["unterminated [[[[') == 1 and json_depth(b'"\\\\"[[]]') == 2
    assert xml_depth(b"<a><b/><c><d/></c></a>") == 3
    assert xml_depth(b"<a>" * 1000, limit=200) == 201, "stops past the limit"
