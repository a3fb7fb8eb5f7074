"""Editor timelines in and out: scenes, cuts, emotions and hits from an edit, and the edit
back with the score on a music track and the scene emotions on markers.

Emotion labels, strongest first: a marker inside a scene (the earliest one that names an
emotion) beats the scene clip's name or notes, because a marker is placed on purpose while a
clip name is often just a file name. Either makes the scene `user_set`.
"""
from __future__ import annotations

import bisect
import logging
import math
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import opentimelineio as otio

from emsync.core.emotions import find_emotion, nearest_word
from emsync.core.errors import EmsyncError
from emsync.core.fileio import atomic_write_bytes
from emsync.core.music import Scene
from emsync.core.scenes import cuts_of, user_emotion

from emsync.timelines import compositing, formats

RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
log = logging.getLogger("emsync.timelines")
TRANSITION_CUTS = ("mid", "start", "end")
WRITERS = {".otio": "otio_json", ".xml": "fcp_xml", ".fcpxml": "fcpx_xml", ".edl": "cmx_3600"}
_HIT = re.compile(r"^\s*hit\b", re.IGNORECASE)
_NOTE_KEYS = {"comment", "comments", "note", "notes", "description"}
_HD = (1920, 1080)  # the frame size written when the source records none
_MISSING_NAMED = 3  # missing media files named in the one line that reports them


@dataclass
class TimelineScenes:
    """What emsync needs from an edit. Times are seconds from programme start."""

    path: Path
    format: str  # adapter name: otio_json, otioz, otiod, cmx_3600, fcp_xml, fcpx_xml, AAF
    fps: float  # exact: 30000/1001 for 29.97
    fps_source: str  # "file", "option" or "detected" (EDLs carry no rate)
    duration: float
    cuts: list[float]
    scenes: list[Scene]
    hits: list[float]  # markers named "hit": accents the music should land on
    global_start: float  # start timecode of the programme, in seconds
    markers: list[tuple[float, str, str]]  # (time, name, comment), every marker found
    timeline_choice: str = ""  # which timeline was taken when the file holds several
    transition: str = "mid"  # where dissolves were cut: "mid", "start" or "end"
    timeline: otio.schema.Timeline | None = field(default=None, repr=False, compare=False)
    segments: list[compositing.Segment] = field(default_factory=list, repr=False, compare=False)


@dataclass(frozen=True)
class SceneSource:
    """Where a scene's picture comes from: a media file on this machine (which may not exist)
    and the stretch of it on screen, [start, end) in the file's own seconds (its media time
    less the start its media reference declares, as decoders count from the first frame)."""

    path: Path
    start: float
    end: float
    declared_start: bool = True  # False: the reference names no available range, so the media's
    # own start timecode (which the edit's source times count from) was not subtracted


def scene_sources(result: TimelineScenes) -> list[SceneSource | None]:
    """Per scene, the media file and source range of the clip on screen; None where no clip
    with a local file is (gaps, titles, nested sequences, http: media). Relative media start
    from the timeline's folder, as when the edit is written back. Speed effects are not
    followed: a retimed clip reads its first on-screen length of source."""
    folder, sources = _media_folder(result.path), []
    for seg in result.segments:
        ref = getattr(seg.item, "media_reference", None)
        path = (_local_path(ref.target_url, folder)
                if isinstance(ref, otio.schema.ExternalReference) and ref.target_url else None)
        if path is None:
            sources.append(None)
            continue
        media_start = compositing.seconds(ref.available_range.start_time) if ref.available_range else 0.0
        start = seg.start - seg.offset - media_start
        sources.append(SceneSource(path, start, start + seg.end - seg.start, ref.available_range is not None))
    return sources


def read_timeline(path: str | Path, fps: float | None = None, transition: str = "mid") -> TimelineScenes:
    """Scenes as seen on screen in an editor timeline file.

    `fps` is the rate for EDLs (found from the timecodes when None) and overrides the rate
    reported for other formats. `transition` puts the cut of a dissolve at its "mid"
    (default), "start" or "end".
    """
    if transition not in TRANSITION_CUTS:
        raise EmsyncError(f"transition: expected one of {', '.join(TRANSITION_CUTS)}, got {transition!r}")
    path = Path(path)
    loaded = formats.load(path, fps)
    timeline = loaded.timeline
    if not any(t.enabled and t.kind == otio.schema.TrackKind.Video for t in timeline.tracks):
        raise EmsyncError(f"{path}: no video track (audio-only or empty timeline)")
    try:
        segments = compositing.on_frames(compositing.visible(timeline, transition), loaded.fps)
        found = compositing.markers(timeline)
    except (otio.exceptions.OTIOError, EmsyncError) as exc:
        raise EmsyncError(f"{path}: cannot lay out the timeline ({exc})") from None
    if all(seg.item is None for seg in segments):
        raise EmsyncError(f"{path}: the timeline holds no picture (no video clips)")
    duration = segments[-1].end
    scenes = [Scene(seg.start, seg.end, name=_name(seg.item), media=_media(seg.item)) for seg in segments]
    markers = sorted({(compositing.frame_time(t, loaded.fps), m.name, _comment(m)) for t, m in found})
    _apply_emotions(path, scenes, segments, markers)
    start = timeline.global_start_time
    return TimelineScenes(
        path=path, format=loaded.format, fps=loaded.fps, fps_source=loaded.fps_source,
        duration=duration, cuts=cuts_of(scenes), scenes=scenes,
        hits=sorted({t for t, name, _ in markers if _HIT.match(name)}),
        global_start=compositing.seconds(start) if start is not None else 0.0,
        markers=markers, timeline_choice=loaded.choice, transition=transition, timeline=timeline,
        segments=segments)


def video_edit(path: str | Path, fps: float, duration: float, scenes: Sequence[Scene]) -> TimelineScenes:
    """A video file as an edit: one clip of the file per scene, so a written timeline holds its
    cuts (the video is a source of scenes like a timeline; this lets it be written back)."""
    path = Path(path)
    length = TR(RT(0, fps), RT(round(duration * fps), fps))
    clip = otio.schema.Clip(name=path.name, source_range=length, media_reference=otio.schema.ExternalReference(
        target_url=path.resolve().as_uri(), available_range=length))
    return TimelineScenes(path=path, format="video", fps=fps, fps_source="file", duration=duration,
                          cuts=cuts_of(scenes), scenes=list(scenes), hits=[],
                          global_start=0.0, markers=[],
                          segments=[compositing.Segment(s.start, s.end, clip) for s in scenes])


def write_timeline(scenes_result: TimelineScenes, out_path: str | Path, midi_path: str | Path,
                   audio_path: str | Path | None = None) -> Path:
    """Write the edit with the score: .otio, .xml (FCP7), .fcpxml or .edl, by suffix.

    `scenes_result` is what read_timeline returned, its scenes now carrying the emotions the
    score was made with (their boundaries unchanged).

    A music track plays `audio_path`, the score rendered from `midi_path`, over the programme
    from its start timecode (an EDL: an audio event on A1/A2); no NLE plays MIDI, so the MIDI
    is only named beside it (OTIO metadata, an FCP7 comment, an FCPXML note). Each scene start
    carries a marker "cut N: word valence=.. arousal=.." and each hit a marker "hit", on the
    music clip (the FCPX adapter keeps clip markers only; an EDL: LOC comments); the editor's
    own emotion and hit markers give way to these. Without `audio_path` the music track plays
    the WAV beside the MIDI (same name), which the NLE finds once the MIDI is rendered there;
    until then one warning says so. Media paths relative to the source timeline's folder are
    written as absolute file URLs; media not found is reported in one warning.

    .otio and .xml keep the source's video tracks. .fcpxml and .edl get the picture as seen
    on screen on one track, hard cuts at the scene starts: the FCPX adapter drops transitions
    and fails on mixed rates, and an EDL holds one picture track. When an adapter cannot write
    the source's tracks, or would move a cut (the FCP7 adapter mishandles fades at track
    ends), the on-screen picture is written instead, so the file always reads back with the
    same cuts, emotions and hits. FCPXML output has no start timecode (the adapter writes
    none), whole-number rates only, and the source's frame size (HD when it records none).
    """
    out_path = Path(out_path)
    adapter = WRITERS.get(out_path.suffix.lower())
    if adapter is None:
        raise EmsyncError(f"{out_path}: cannot write this format (use {', '.join(WRITERS)})")
    result = scenes_result
    if adapter == "fcpx_xml" and result.fps != round(result.fps):
        raise EmsyncError(f"{out_path}: the FCPXML adapter cannot hold {result.fps:.3f} fps (it truncates "
                          "NTSC rates to whole frames per second); write .otio, .xml or .edl")
    audio_path = Path(audio_path if audio_path is not None else Path(midi_path).with_suffix(".wav")).resolve()
    rendered = None
    if adapter in ("otio_json", "fcp_xml") and result.timeline is not None:
        try:
            timeline = _with_score(_source_picture(result), result, midi_path, audio_path)
            rendered = _render(timeline, adapter, out_path, result)
            if not _keeps_cuts(rendered[0], adapter, result):
                rendered = None
        except EmsyncError:
            pass  # fall back to the on-screen picture below
    if rendered is None and adapter == "cmx_3600":
        text, media = _render(_edl_timeline(result), adapter, out_path, result)
        rendered = text + _edl_audio_event(text, result, audio_path), media
    elif rendered is None:
        rendered = _render(_with_score(_scene_timeline(result), result, midi_path, audio_path), adapter, out_path,
                           result)
    text, media = rendered
    written = atomic_write_bytes(out_path, text.encode("utf-8"))
    _report(written, media, midi_path, audio_path)
    return written


def _render(timeline: otio.schema.Timeline, adapter: str, out_path: Path,
            result: TimelineScenes) -> tuple[str, dict[str, bool]]:
    """`timeline` written by `adapter`, and its media files (absolute file URLs), each with
    whether it exists."""
    media = _link_media(timeline, _media_folder(result.path))
    for clip in timeline.find_clips():  # writers need a media length; use what the edit uses
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ExternalReference) and ref.available_range is None:
            ref.available_range = clip.source_range
    try:
        if adapter == "fcpx_xml":
            return formats.write_fcpxml(timeline, *_frame_size(result.timeline)), media
        if adapter == "cmx_3600":
            return otio.adapters.write_to_string(timeline, adapter, rate=result.fps), media
        return otio.adapters.write_to_string(timeline, adapter), media
    except Exception as exc:  # adapters reject what their format cannot hold in many ways
        raise EmsyncError(f"{out_path}: the {adapter} adapter cannot write this timeline "
                          f"({formats.first_line(exc)})") from None


def _media_folder(path: Path) -> Path:
    """The folder a timeline's relative media paths start from: an .otiod bundle's own folder,
    else the folder holding the file."""
    path = Path(os.path.abspath(path))
    return path if path.is_dir() else path.parent


def _local_path(url: str, folder: Path) -> Path | None:
    """The file `url` names (a file URL, an absolute path, or a path relative to `folder`), or
    None for other schemes (http:, a Windows drive letter), which are left as they are."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        name = urllib.parse.unquote(parts.path)
    elif parts.scheme:
        return None
    else:
        name = url
    return Path(os.path.abspath(folder / name))


def _link_media(timeline: otio.schema.Timeline, folder: Path) -> dict[str, bool]:
    """Point every clip at its media by absolute file URL (a relative path, written anywhere but
    beside the source, would lead the NLE nowhere) and say for each file whether it exists."""
    media = {}
    for clip in timeline.find_clips():
        ref = clip.media_reference
        if not isinstance(ref, otio.schema.ExternalReference) or not ref.target_url:
            continue
        path = _local_path(ref.target_url, folder)
        if path is not None:
            ref.target_url = path.as_uri()
            media[ref.target_url] = path.is_file()
    return media


def _report(out_path: Path, media: dict[str, bool], midi_path, audio_path: Path) -> None:
    """One warning line for the picture media the written timeline cannot find, one for a score
    not rendered yet."""
    picture = {url: found for url, found in media.items() if url != audio_path.as_uri()}
    missing = [Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)) for url, found in picture.items()
               if not found]
    if missing:
        named = ", ".join(str(path) for path in missing[:_MISSING_NAMED])
        more = f" and {len(missing) - _MISSING_NAMED} more" if len(missing) > _MISSING_NAMED else ""
        log.warning("%s: %d of %d media files not found (%s%s); the NLE will show those clips offline",
                    out_path, len(missing), len(picture), named, more)
    if not audio_path.is_file():
        log.warning("%s: the music track plays %s, not rendered yet (no NLE plays MIDI): render %s to it "
                    "(emsync render) and the NLE finds it", out_path, audio_path, Path(midi_path).name)


def _keeps_cuts(text: str, adapter: str, result: TimelineScenes) -> bool:
    """Whether `text` reads back with the scene starts of `result`."""
    try:
        timeline, _ = formats.pick_timeline(result.path, otio.adapters.read_from_string(text, adapter))
        segments = compositing.on_frames(compositing.visible(timeline, result.transition), result.fps)
    except Exception:  # an adapter that cannot read its own output: not kept
        return False
    cuts, wanted = [seg.start for seg in segments[1:]], [scene.start for scene in result.scenes[1:]]
    return len(cuts) == len(wanted) and all(abs(a - b) < 1e-3 for a, b in zip(cuts, wanted))


def _name(item) -> str:
    return item.name if item is not None else ""


def _media(item) -> str:
    ref = getattr(item, "media_reference", None)
    return getattr(ref, "target_url", "") or ""


def _metadata_items(metadata):
    """(mapping, key, value) for each entry of `metadata` and of the mappings nested in it, in
    document order (a nested mapping's entries come where it is), walked without recursion
    (metadata can nest as deep as a file)."""
    walks = [(metadata, iter(metadata.items()))]
    while walks:
        mapping, entries = walks[-1]
        for key, value in entries:
            yield mapping, key, value
            if isinstance(value, Mapping):
                walks.append((value, iter(value.items())))
                break
        else:
            walks.pop()


def _notes(metadata) -> list[str]:
    """Free-text notes adapters keep in metadata (FCP7 <comments>, EDL comment lines), found
    in nested mappings too."""
    notes = []
    for _, key, value in _metadata_items(metadata):
        if key.lower() not in _NOTE_KEYS:
            continue
        if isinstance(value, str):
            notes.append(value)
        elif isinstance(value, Sequence):
            notes.extend(v for v in value if isinstance(v, str))
    return notes


def _frame_size(timeline: otio.schema.Timeline | None) -> tuple[int, int]:
    """The picture's width and height as the source records them (a width beside a height in
    the timeline's metadata, as FCP7 XML's sample characteristics, else in its media's), else HD."""
    if timeline is None:
        return _HD
    holders = [timeline.metadata, *(clip.media_reference.metadata for clip in timeline.find_clips()
                                    if clip.media_reference is not None)]
    for metadata in holders:
        for mapping, key, value in _metadata_items(metadata):
            height = next((v for k, v in mapping.items() if k.lower() == "height"), None)
            if key.lower() != "width" or height is None:
                continue
            try:
                size = int(value), int(height)
            except (TypeError, ValueError):
                continue
            if all(16 <= side <= 16384 for side in size):
                return size
    return _HD


def _comment(marker: otio.schema.Marker) -> str:
    return " ".join(n for n in [marker.comment, *_notes(marker.metadata)] if n)


def _apply_emotions(path, scenes: list[Scene], segments, markers) -> None:
    """Set each scene's emotion from its earliest emotion marker, else its clip's name/notes."""
    starts = [s.start for s in scenes]
    for time, name, comment in markers:
        index = max(0, _scene_at(starts, time))
        scene = scenes[index]
        if scene.user_set:
            continue
        found = find_emotion(f"{name} {comment}", f"{path}: marker {name!r} at {time:.3f}s")
        if found is not None:
            scenes[index] = user_emotion(scene, *found)
    for index, (scene, seg) in enumerate(zip(scenes, segments)):
        if scene.user_set or not isinstance(seg.item, otio.schema.Clip):
            continue
        text = " ".join([seg.item.name, *_notes(seg.item.metadata)])
        found = find_emotion(text, f"{path}: clip {seg.item.name!r}")
        if found is not None:
            scenes[index] = user_emotion(scene, *found)


def _scene_at(starts: list[float], time: float) -> int:
    """Index of the scene holding `time`; a marker within a microsecond of a cut opens the
    next scene (formats round marker times to frames)."""
    return bisect.bisect_right(starts, time + 1e-6) - 1


def _frames(seconds: float, fps: float) -> RT:
    """The first frame at or after `seconds`: a marker never slips into the scene before it,
    and scene edges off the frame grid (mixed-rate edits) all move the same way."""
    return RT(math.ceil(seconds * fps - 1e-6), fps)


def _label_markers(result: TimelineScenes) -> list[otio.schema.Marker]:
    """A marker at each scene start and each hit, at programme time."""
    fps, markers = result.fps, []
    for number, scene in enumerate(result.scenes):
        word = nearest_word(scene.valence, scene.arousal)
        label = f"cut {number}" if number else "start"
        name = f"{label}: {word} valence={scene.valence:+.2f} arousal={scene.arousal:+.2f}"
        markers.append(otio.schema.Marker(name=name, color=otio.schema.MarkerColor.GREEN,
                                          marked_range=TR(_frames(scene.start, fps), RT(0, fps))))
    for hit in result.hits:
        markers.append(otio.schema.Marker(name="hit", color=otio.schema.MarkerColor.RED,
                                          marked_range=TR(_frames(hit, fps), RT(0, fps))))
    return markers


def _is_label(marker: otio.schema.Marker) -> bool:
    return bool(_HIT.match(marker.name)) or find_emotion(f"{marker.name} {_comment(marker)}") is not None


def _source_picture(result: TimelineScenes) -> otio.schema.Timeline:
    """A copy of the source's video tracks without its emotion and hit markers."""
    timeline = result.timeline.deepcopy()
    for track in [t for t in timeline.tracks if t.kind != otio.schema.TrackKind.Video]:
        timeline.tracks.remove(track)
    for item in [timeline.tracks, *timeline.tracks.find_children(descended_from_type=otio.core.Item)]:
        keep = [m for m in item.markers if not _is_label(m)]
        item.markers.clear()
        item.markers.extend(keep)
    return timeline


def _scene_timeline(result: TimelineScenes, black: bool = False) -> otio.schema.Timeline:
    timeline = otio.schema.Timeline(name=result.timeline.name if result.timeline else result.path.stem)
    timeline.tracks.append(_scene_track(result, black))
    return timeline


def _with_score(timeline: otio.schema.Timeline, result: TimelineScenes, midi_path, audio_path):
    """Add the music track, the label markers (on the music clip: the FCPX adapter keeps clip
    markers only) and the start timecode."""
    fps = result.fps
    music = _music_track(audio_path, midi_path, result.duration, fps)
    music[0].markers.extend(_label_markers(result))
    timeline.tracks.append(music)
    timeline.global_start_time = _frames(result.global_start, fps)
    return timeline


def _music_track(audio_path: str | Path, midi_path: str | Path, duration: float, fps: float) -> otio.schema.Track:
    """The rendered score from the programme start for its whole length, the MIDI it came from
    named where each format keeps a note (OTIO metadata, an FCP7 comment, an FCPXML note)."""
    length = TR(RT(0, fps), _frames(duration, fps))
    midi = Path(midi_path).resolve().as_uri()
    note = f"MIDI: {midi}"
    reference = otio.schema.ExternalReference(target_url=Path(audio_path).resolve().as_uri(), available_range=length,
                                              metadata={"fcpx": {"note": note}})
    clip = otio.schema.Clip(name=Path(audio_path).name, media_reference=reference, source_range=length,
                            metadata={"emsync": {"midi": midi}, "fcp_xml": {"comments": {"mastercomment1": note}}})
    track = otio.schema.Track(name="emsync score", kind=otio.schema.TrackKind.Audio)
    track.append(clip)
    return track


def _scene_track(result: TimelineScenes, black: bool = False) -> otio.schema.Track:
    """The picture as seen on screen, one item per scene, on frame boundaries. Clips keep
    their source in-points; the rest (nothing, titles over black, nested sequences) becomes
    a gap, or a black (BL) event where gaps would be lost (EDLs)."""
    fps = result.fps
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    segments = result.segments or [compositing.Segment(s.start, s.end) for s in result.scenes]
    for seg in segments:
        start, end = _frames(seg.start, fps), _frames(seg.end, fps)
        if end.value <= start.value:
            continue
        length = TR(RT(0, fps), end - start)
        if isinstance(seg.item, otio.schema.Clip) and not isinstance(
                seg.item.media_reference, otio.schema.GeneratorReference):
            clip = seg.item.deepcopy()
            clip.markers.clear()
            clip.effects.clear()
            clip.source_range = TR(RT(round((seg.start - seg.offset) * fps), fps), length.duration)
            track.append(clip)
        elif black:
            track.append(otio.schema.Clip(
                media_reference=otio.schema.GeneratorReference(generator_kind="black"),
                source_range=length, metadata={"cmx_3600": {"reel": "BL"}}))
        else:
            track.append(otio.schema.Gap(source_range=length))
    return track


def _edl_audio_event(text: str, result: TimelineScenes, audio_path: str | Path) -> str:
    """The CMX3600 audio edit laying the rendered score on A1 and A2 (channel AA, source reel AX:
    a file, not a tape) from the record start for the programme's length: the event after the
    picture's in `text` (the adapter writes one track)."""
    fps = result.fps
    record, length = _frames(result.global_start, fps), _frames(result.duration, fps)
    source_in, source_out, record_in, record_out = (otio.opentime.to_timecode(time, fps) for time in
                                                    (RT(0, fps), length, record, record + length))
    number = formats.edl_events(text) + 1
    return (f"{number:03d}  {'AX':8} {'AA':5} C        {source_in} {source_out} {record_in} {record_out}\n"
            f"* FROM CLIP NAME:  {Path(audio_path).name}\n* FROM CLIP: {Path(audio_path).resolve().as_uri()}\n")


def _edl_timeline(result: TimelineScenes) -> otio.schema.Timeline:
    """One picture track starting at the record start timecode, every scene an event (black
    as BL, so no time is lost), with LOC markers in absolute record timecode."""
    fps = result.fps
    timeline = _scene_timeline(result, black=True)
    track = timeline.tracks[0]
    record = _frames(result.global_start, fps)
    track.source_range = TR(RT(-record.value, fps), track.duration())
    clips = list(track)
    for clip in clips:  # the adapter's own reel names can hold spaces, which split EDL columns
        reel = clip.metadata.get("cmx_3600", {}).get("reel") or Path(_media(clip) or clip.name).stem
        clip.metadata.setdefault("cmx_3600", {})["reel"] = re.sub(r"\W", "", reel)[:8] or "AX"
    starts = [compositing.seconds(c.range_in_parent().start_time) for c in clips]
    for marker in _label_markers(result):
        index = max(0, _scene_at(starts, compositing.seconds(marker.marked_range.start_time)))
        marker.marked_range = TR(marker.marked_range.start_time + record, marker.marked_range.duration)
        clips[index].markers.append(marker)
    return timeline
