"""The editor's round trip in every format an NLE imports: an edit whose media sit in a folder
beside it, scored and written elsewhere, opened again by emsync and by OpenTimelineIO's own
tools. Also the editors' files that used to be unreadable or misread: an EDL whose source and
record durations disagree, and a mixdown laid over an edit."""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import wave
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from urllib.parse import unquote, urlsplit

import opentimelineio as otio
import pytest

from emsync.core.midi_io import write_midi
from emsync.core.music import Note
from emsync.timelines.timeline import read_timeline, write_timeline

RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
RATE = 24
SHOTS = [("dawn", 24, 60), ("market", 0, 48), ("chase", 12, 72)]  # name, in-point and length in frames
OTIOTOOL = Path(sys.executable).with_name("otiotool")


def _shot(name: str, start: int, frames: int, url: str) -> otio.schema.Clip:
    media = otio.schema.ExternalReference(target_url=url, available_range=TR(RT(0, RATE), RT(1000, RATE)))
    return otio.schema.Clip(name=name, media_reference=media, source_range=TR(RT(start, RATE), RT(frames, RATE)))


def _marker(name: str, frame: int) -> otio.schema.Marker:
    return otio.schema.Marker(name=name, marked_range=TR(RT(frame, RATE), RT(0, RATE)))


def _edit(folder: Path, absent: str = "") -> Path:
    """An edit in `folder` naming its media relative to it (shots/NAME.mov, as an editor's
    project beside its media does), every file there but `absent`; a tense marker and a hit."""
    (folder / "shots").mkdir(parents=True)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for name, start, frames in SHOTS:
        if name != absent:
            (folder / "shots" / f"{name}.mov").write_bytes(b"\0" * 64)
        track.append(_shot(name, start, frames, f"shots/{name}.mov"))
    timeline = otio.schema.Timeline(name="harbour", global_start_time=RT(86400, RATE))
    timeline.tracks.append(track)
    timeline.tracks.markers.extend([_marker("tense", 70), _marker("hit", 100)])
    path = folder / "edit.otio"
    otio.adapters.write_to_file(timeline, str(path))
    return path


def _score(folder: Path, duration: float, audio: bool = True) -> tuple[Path, Path]:
    """A real MIDI score and (when `audio`) a silent 48 kHz WAV of the programme's length."""
    midi = write_midi(folder / "score.mid", [Note(0.0, 1.0, 60, 90, 1), Note(2.5, 4.0, 64, 90, 1)])
    wav = folder / "score.wav"
    if audio:
        with wave.open(str(wav), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(48000)
            out.writeframes(b"\0" * 4 * round(48000 * duration))
    return midi, wav


def _media_urls(path: Path) -> list[str]:
    """Every media reference as the file itself writes it, read without OpenTimelineIO."""
    text = path.read_text()
    if path.suffix == ".xml":
        return [element.text for element in ElementTree.fromstring(text).iter("pathurl")]
    if path.suffix == ".fcpxml":
        return [element.get("src") for element in ElementTree.fromstring(text).iter("asset")]
    if path.suffix == ".edl":
        return re.findall(r"^\* FROM CLIP: (.+)$", text, re.MULTILINE)
    return [clip.media_reference.target_url for clip in otio.adapters.read_from_file(str(path)).find_clips()]


def _local(url: str) -> Path:
    parts = urlsplit(url)
    assert parts.scheme == "file" and parts.path.startswith("/"), f"not an absolute file URL: {url}"
    return Path(unquote(parts.path))


@pytest.mark.parametrize("suffix", [".otio", ".xml", ".fcpxml", ".edl"])
def test_written_edit_finds_its_media_plays_the_wav_and_reads_back_the_same(tmp_path, suffix, caplog):
    source = read_timeline(_edit(tmp_path / "project"))
    for scene in source.scenes:
        scene.valence, scene.arousal, scene.user_set = 0.4, -0.6, True
    midi, wav = _score(tmp_path / "project", source.duration)
    out = tmp_path / "delivery" / f"edit{suffix}"
    out.parent.mkdir()
    with caplog.at_level(logging.WARNING, logger="emsync.timelines"):
        write_timeline(source, out, midi, wav)
    assert not caplog.records, "every media file is there: nothing to report"

    urls = _media_urls(out)
    assert len(urls) == len(SHOTS) + 1, "each shot and the WAV"
    assert all(_local(url).is_file() for url in urls)
    assert wav.resolve().as_uri() in urls and not any(url.endswith(".mid") for url in urls), "no NLE plays MIDI"
    if suffix != ".edl":  # an EDL has no place for a note: the MIDI sits beside the WAV, same name
        assert midi.resolve().as_uri() in out.read_text(), "the MIDI is named in a note"
    if suffix in (".xml", ".fcpxml"):
        root = ElementTree.parse(out).getroot()  # well-formed XML
        if shutil.which("xmllint"):
            checked = subprocess.run(["xmllint", "--noout", str(out)], capture_output=True, text=True)
            assert checked.returncode == 0, checked.stderr
    if suffix == ".fcpxml":
        [frame] = root.iter("format")
        assert (frame.get("name"), frame.get("width"), frame.get("height")) == ("FFVideoFormat1080p24", "1920", "1080")
    # OpenTimelineIO's own tool reads the file through the same adapter an import script would.
    listed = subprocess.run([str(OTIOTOOL), "-i", str(out), "--list-media"], capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert set(re.findall(r"MEDIA: (\S+)", listed.stdout)) == set(urls)

    back = read_timeline(out)
    assert back.cuts == pytest.approx(source.cuts, abs=1e-9) and back.duration == pytest.approx(source.duration)
    assert [v for s in back.scenes for v in (s.valence, s.arousal)] == pytest.approx([0.4, -0.6] * len(SHOTS), abs=0.01)
    wanted = sorted([(0.0, "start: calm valence=+0.40 arousal=-0.60"), (100 / RATE, "hit")] + [
        (cut, f"cut {n}: calm valence=+0.40 arousal=-0.60") for n, cut in enumerate(source.cuts, 1)])
    # Every format carries the markers (the editor's "tense" gave way to the scene's label); an
    # EDL's LOC comments are upper case.
    assert [(round(t, 6), name.lower()) for t, name, _ in back.markers] == [(round(t, 6), n) for t, n in wanted]
    assert back.global_start == (0.0 if suffix == ".fcpxml" else 3600.0)  # the FCPX adapter writes no timecode
    raw = otio.adapters.read_from_file(str(out), **({"rate": RATE} if suffix == ".edl" else {}))
    if isinstance(raw, otio.schema.SerializableCollection):
        raw = next(iter(raw.find_children(descended_from_type=otio.schema.Timeline)))
    music = [c for track in raw.audio_tracks() for c in track.find_clips()]
    assert music and {c.media_reference.target_url for c in music} == {wav.resolve().as_uri()}
    assert all(c.duration().to_seconds() == pytest.approx(source.duration) for c in music)


@pytest.mark.parametrize("suffix", [".otio", ".xml", ".fcpxml", ".edl"])
def test_missing_media_and_an_unrendered_score_are_each_said_once(tmp_path, suffix, caplog):
    source = read_timeline(_edit(tmp_path / "project", absent="market"))
    midi, wav = _score(tmp_path, source.duration, audio=False)
    with caplog.at_level(logging.WARNING, logger="emsync.timelines"):
        write_timeline(source, tmp_path / f"out{suffix}", midi)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert "1 of 3 media files not found" in lines[0] and "shots/market.mov" in lines[0]
    assert f"plays {wav.resolve()}, not rendered yet" in lines[1]
    assert wav.resolve().as_uri() in _media_urls(tmp_path / f"out{suffix}"), "the NLE finds it once rendered"


def test_fcpxml_takes_the_sources_frame_size_and_runs_no_ffprobe(tmp_path, monkeypatch, capfd):
    """A stand-in ffprobe on the PATH complains as the real one does about a file it cannot
    read: nothing may reach the output, because nothing may run it."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "ffprobe").write_text("#!/bin/sh\necho \"$@: Invalid data found when processing input\" >&2\nexit 1\n")
    (tools / "ffprobe").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{Path(sys.executable).parent}:/usr/bin:/bin")
    edit = _edit(tmp_path / "project")
    timeline = otio.adapters.read_from_file(str(edit))
    for clip in timeline.find_clips():  # as FCP7 XML records a clip's picture
        clip.media_reference.metadata["fcp_xml"] = {"media": {"video": {"samplecharacteristics": {
            "width": "1280", "height": "720"}}}}
    otio.adapters.write_to_file(timeline, str(edit))
    source = read_timeline(edit)
    midi, wav = _score(tmp_path, source.duration)
    out = write_timeline(source, tmp_path / "edit.fcpxml", midi, wav)
    [frame] = ElementTree.parse(out).getroot().iter("format")
    assert (frame.get("name"), frame.get("width"), frame.get("height")) == ("FFVideoFormat720p24", "1280", "720")
    assert capfd.readouterr().err == ""


EDL = """TITLE: trims and speed
FCM: NON-DROP FRAME

001  A001     V     C        01:00:00:00 01:00:04:00 10:00:00:00 10:00:04:00
* FROM CLIP NAME:  a.mov
002  B001     V     C        02:00:10:00 02:00:13:00 10:00:04:00 10:00:06:00
* FROM CLIP NAME:  b.mov
003  C001     V     C        03:00:00:00 03:00:02:00 10:00:06:00 10:00:07:00
M2   C001       048.0                03:00:00:00
* FROM CLIP NAME:  c.mov
004  D001     V     C        04:00:00:00 04:00:05:00 10:00:07:00 10:00:11:12
* FROM CLIP NAME:  d.mov
"""


def test_edl_whose_durations_disagree_is_read_by_its_record_side(tmp_path, caplog):
    """Event 002 runs 3 s of source in 2 s on screen, 004 5 s in 4.5 s (trims, speed changes no
    M2 line explains); 003's M2 explains its own. The cuts are the record timecodes."""
    path = tmp_path / "trims.edl"
    path.write_text(EDL)
    with caplog.at_level(logging.WARNING, logger="emsync.timelines"):
        result = read_timeline(path)
    assert result.fps == RATE and result.cuts == [4.0, 6.0, 7.0] and result.duration == 11.5
    assert result.global_start == 36000.0
    assert [s.name for s in result.scenes] == ["a.mov", "b.mov", "c.mov", "d.mov"]
    [line] = [record.getMessage() for record in caplog.records]
    assert line == (f"{path}: source and record durations disagree on events 002, 004 (speed effects, trims); "
                    "read by the record side, which is what is on screen")


def _mixdown_edit(tmp_path: Path, top: otio.schema.Clip) -> Path:
    """Three shots on V1 (cuts at 2 s and 4.5 s) and `top` alone on V2."""
    cut = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    cut.extend(_shot(name, 0, frames, f"file:///media/{name}.mov") for name, frames in
               (("a", 48), ("b", 60), ("c", 36)))
    over = otio.schema.Track(name="V2", kind=otio.schema.TrackKind.Video)
    over.append(top)
    timeline = otio.schema.Timeline(name="avid")
    timeline.tracks.extend([cut, over])
    path = tmp_path / f"{top.name}.otio"
    otio.adapters.write_to_file(timeline, str(path))
    return path


@pytest.mark.parametrize("name, frames, cuts", [
    ("Video Mixdown", 144, [2.0, 4.5]),  # named: looked through
    ("SEQ_V3_MIXDOWN", 72, [2.0, 4.5]),  # named, over part of the edit: looked through there
    ("reference_export", 144, [2.0, 4.5]),  # alone over the whole edit and its cuts: a picture of the edit
    ("insert", 72, [3.0, 4.5]),  # a shot over part of the edit hides the cut beneath it
])
def test_the_cuts_under_a_mixdown_are_the_cuts_on_screen(tmp_path, caplog, name, frames, cuts):
    with caplog.at_level(logging.WARNING, logger="emsync.timelines"):
        result = read_timeline(_mixdown_edit(tmp_path, _shot(name, 0, frames, f"file:///media/{name}.mov")))
    assert result.cuts == cuts
    assert result.scenes[0].name == ("insert" if name == "insert" else "a")
    inferred = [r.getMessage() for r in caplog.records if "read as a mixdown" in r.getMessage()]
    # only a mixdown inferred from its place, not named one, is said (in one line)
    assert inferred == (["clip 'reference_export' covers the whole edit on an upper track: read as a mixdown, "
                         "the 2 cuts beneath it are the scenes"] if name == "reference_export" else [])
