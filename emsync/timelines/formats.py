"""Find a timeline file's format, its frame rate, and load it as one normalised OTIO Timeline.

Every editor format has its own quirks (EDLs carry no rate and put record timecode into a
negative track offset, FCPXML libraries hold several timelines, drop-frame LOC markers are
silently dropped by the EDL adapter); they are all settled here so the rest of the code sees
plain OTIO semantics: programme time starts at 0 and `global_start_time` holds the start
timecode.
"""
from __future__ import annotations

import functools
import io
import logging
import re
import zipfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio

from emsync.core.errors import EmsyncError
from emsync.core.fileio import read_regular
from emsync.core.limits import MAX_TIMELINE_BYTES
from emsync.timelines.nesting import check_nesting
from emsync.timelines.suffixes import SUFFIXES

RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
log = logging.getLogger("emsync.timelines")

_AAF_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE2 compound file, AAF's container
_OTIOZ_CONTENT = "content.otio"
_BUNDLES = (("content.otio", "otiod"), ("Info.fcpxml", "fcpx_xml"))  # a folder's main file, its adapter
_JSON_ADAPTERS = {"otio_json", "otiod", "otioz"}
_XML_ADAPTERS = {"fcp_xml", "fcpx_xml"}
_FCPX_FORMAT = re.compile(r"<format\s([^>]*?)\s*/>")
_XML_ATTRIBUTE = re.compile(r'([\w:.-]+)="([^"]*)"')
_FCPX_SIZE_NAMES = {(1280, 720): "720", (1920, 1080): "1080", (3840, 2160): "3840x2160"}  # Final Cut's format names
_TEXT_ADAPTERS = {"otio_json", "fcp_xml", "fcpx_xml"}  # adapters that read a string
_EDL_EVENT = re.compile(r"^\s*\d{1,6}\s+\S+\s+\S+\s+(?:C|D|W\d+|K)\b.*\d\d[:;.]\d\d[:;.]\d\d[:;.]\d\d",
                        re.MULTILINE)
_ANY_TIMECODE = re.compile(r"\d\d[:;.]\d\d[:;.]\d\d[:;.]\d\d")
# Comment lines after an event that explain a source of another length (the adapter reads them itself).
_SPEED_OR_FREEZE = re.compile(r"^\s*(?:M2\s|\*\s*\*\s*FREEZE FRAME)", re.IGNORECASE)
_TIMECODE = re.compile(r"\b\d\d[:;.]\d\d[:;.]\d\d([:;.])(\d\d)\b")
_LOC = re.compile(r"^[ \t]*\*?[ \t]*LOC:[ \t]*(\d\d[:;.]\d\d[:;.]\d\d[:;.]\d\d)[ \t]*(\w*)[ \t]*(.*)$",
                  re.MULTILINE | re.IGNORECASE)
# Timecode alone cannot tell 23.976 from 24 or 29.97 NDF from 30: those need the fps option.
_EDL_RATES = (24.0, 25.0, 30.0, 50.0, 60.0)
_EDL_DROP_RATES = (30000 / 1001, 60000 / 1001)
_NTSC_RATES = (24000 / 1001, 30000 / 1001, 48000 / 1001, 60000 / 1001, 120000 / 1001)


@dataclass
class Loaded:
    timeline: otio.schema.Timeline
    format: str  # adapter name
    fps: float
    fps_source: str  # "file", "option" or "detected"
    choice: str  # which timeline of several was taken; "" when the file holds one


def exact_rate(rate: float) -> float:
    """29.97, 29.97002997 and 30000/1001 are one rate: return the exact rational value."""
    for ntsc in _NTSC_RATES:
        if abs(rate - ntsc) < 0.01:
            return ntsc
    return float(round(rate)) if abs(rate - round(rate)) < 1e-6 else float(rate)


def detect_format(path: Path, data: bytes) -> str:
    """The adapter for the file `path` holding `data`, from its content where that is
    recognisable, else its suffix."""
    suffix = path.suffix.lower()
    head = data[:65536]
    if not head.strip():
        raise EmsyncError(f"{path}: empty file")
    if head.startswith(_AAF_MAGIC):
        return "AAF"
    if head.startswith(b"PK") and zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as bundle:
            if _OTIOZ_CONTENT in bundle.namelist():
                return "otioz"
    text = head.decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    if text.startswith("{") and "OTIO_SCHEMA" in text:
        return "otio_json"
    if "<fcpxml" in text:
        return "fcpx_xml"
    if "<xmeml" in text:
        return "fcp_xml"
    if _EDL_EVENT.search(text) or (suffix == ".edl" and re.match(r"TITLE:", text)):
        return "cmx_3600"
    if suffix in SUFFIXES:
        raise EmsyncError(f"{path}: does not look like {SUFFIXES[suffix][1]} (content not recognised)")
    known = ", ".join(SUFFIXES)
    raise EmsyncError(f"{path}: unsupported timeline format (expected one of {known})")


def read_checked(path: Path) -> tuple[str, bytes]:
    """The adapter for `path` and the text its parser reads (a bundle's main file, an .otioz's
    content), read only from regular files within MAX_TIMELINE_BYTES and refused when nested
    deeper than a parser can take (emsync.timelines.nesting): nothing reaches an adapter
    before these checks."""
    if path.is_dir():
        for inner, adapter in _BUNDLES:
            if (path / inner).is_file():
                data = read_regular(path / inner, MAX_TIMELINE_BYTES, "timeline")
                break
        else:
            raise EmsyncError(f"{path}: a folder, not a timeline (no content.otio or Info.fcpxml inside)")
    else:
        data = read_regular(path, MAX_TIMELINE_BYTES, "timeline")
        adapter = detect_format(path, data)
    if adapter in _JSON_ADAPTERS:
        check_nesting(path, _otioz_content(path, data) if adapter == "otioz" else data, "json")
    elif adapter in _XML_ADAPTERS:
        check_nesting(path, data, "xml")
    return adapter, data


def _otioz_content(path: Path, data: bytes) -> bytes:
    """An .otioz's content.otio, no larger unpacked than a timeline may be."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as bundle:
            size = bundle.getinfo(_OTIOZ_CONTENT).file_size
            if size > MAX_TIMELINE_BYTES:
                raise EmsyncError(f"{path}: {_OTIOZ_CONTENT} unpacks to {size} bytes, more than the "
                                  f"{MAX_TIMELINE_BYTES} allowed for timelines")
            return bundle.read(_OTIOZ_CONTENT)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise EmsyncError(f"{path}: not a readable otioz bundle ({first_line(exc)})") from None


def load(path: str | Path, fps: float | None = None) -> Loaded:
    """Read `path` into a normalised Timeline; `fps` is the EDL rate or overrides the file's."""
    path = Path(path)
    if fps is not None:
        try:
            rate = float(Fraction(str(fps)))  # 24, 29.97, "30000/1001"
        except (ValueError, ZeroDivisionError):
            rate = 0.0
        if not 1 <= rate <= 1000:
            raise EmsyncError(f"fps: expected a frame rate such as 24, 29.97 or 30000/1001, got {fps!r}")
        fps = exact_rate(rate)
    adapter, data = read_checked(path)
    if adapter == "cmx_3600":
        return _load_edl(path, data.decode("utf-8", errors="replace"), fps)
    try:
        if adapter == "fcpx_xml":
            result = _fcpx_adapter()[0](data.decode("utf-8")).to_otio()
        elif adapter in _TEXT_ADAPTERS:  # parsed from the bytes checked, not read again
            result = otio.adapters.read_from_string(data.decode("utf-8"), adapter_name=adapter)
        else:
            result = otio.adapters.read_from_file(str(path), adapter_name=adapter)
    except Exception as exc:  # adapters raise anything from KeyError to XML errors on bad input
        raise EmsyncError(f"{path}: not a readable {adapter} timeline ({first_line(exc)})") from None
    timeline, choice = pick_timeline(path, result)
    rate = timeline.global_start_time.rate if timeline.global_start_time else timeline.duration().rate
    return Loaded(timeline, adapter, fps or exact_rate(rate), "option" if fps else "file", choice)


def pick_timeline(path: Path, result) -> tuple[otio.schema.Timeline, str]:
    """FCPXML libraries read as collections of timelines: take the longest (first on ties)."""
    if isinstance(result, otio.schema.Timeline):
        return result, ""
    timelines = list(result.find_children(descended_from_type=otio.schema.Timeline)) \
        if isinstance(result, otio.schema.SerializableCollection) else []
    if not timelines:
        raise EmsyncError(f"{path}: holds no timeline")
    if len(timelines) == 1:
        return timelines[0], ""
    lengths = [t.duration().to_seconds() for t in timelines]
    index = lengths.index(max(lengths))
    chosen = timelines[index]
    return chosen, f"longest of {len(timelines)} timelines: #{index + 1} {chosen.name!r}"


def _load_edl(path: Path, text: str, fps: float | None) -> Loaded:
    """Parse the EDL `text` at `fps`, or at the lowest common rate its timecodes fit (no frame
    field reaching the rate, drop-frame separators meaning 29.97/59.94)."""
    if fps is not None:
        rates, source = (fps,), "option"
    else:
        found = _TIMECODE.findall(text)
        drop = any(sep == ";" for sep, _ in found) or re.search(r"FCM:\s*DROP", text, re.I)
        top = max((int(frames) for _, frames in found), default=-1)
        rates = [r for r in (_EDL_DROP_RATES if drop else _EDL_RATES) if top < round(r)]
        source = "detected"
    errors = []
    for rate in rates:
        on_screen, moved = _by_record_side(text, rate)
        try:
            timeline = otio.adapters.read_from_string(on_screen, "cmx_3600", rate=rate)
        except Exception as exc:  # the adapter's own parse errors, KeyErrors, ValueErrors...
            errors.append(f"{rate:g} fps: {first_line(exc)}")
            continue
        if moved:
            log.warning("%s: source and record durations disagree on event%s %s (speed effects, trims); "
                        "read by the record side, which is what is on screen",
                        path, "s" if len(moved) > 1 else "", ", ".join(moved))
        return Loaded(_normalise_edl(path, timeline, text, rate), "cmx_3600", rate, source, "")
    if fps is not None:
        raise EmsyncError(f"{path}: not a readable EDL at {fps:g} fps ({errors[0]})")
    tried = "; ".join(errors) or "no common rate fits its timecodes"
    raise EmsyncError(f"{path}: cannot find the EDL's frame rate, pass fps ({tried})")


def edl_events(text: str) -> int:
    """How many events (edit lines) the CMX3600 `text` holds."""
    return len(_EDL_EVENT.findall(text))


def write_fcpxml(timeline: otio.schema.Timeline, width: int, height: int) -> str:
    """FCPXML text of `timeline`, each format named and sized `width` x `height`. The adapter
    writes formats without a size and names one by running ffprobe on the first media file it
    finds, whose complaints about files it cannot read (MIDI, camera RAW) land in emsync's
    output: here no media file is probed."""
    text = _fcpx_adapter()[1](timeline).to_xml()
    return _FCPX_FORMAT.sub(lambda match: _sized_format(match.group(1), width, height), text)


@functools.cache
def _fcpx_adapter() -> tuple[type, type]:
    """The FCPXML adapter's reader and writer without two habits: the writer runs ffprobe on a
    media file to name a format (see write_fcpxml), and the reader hands a clip the markers of
    the clips connected to it as well as its own, at the wrong times (a score's markers, on its
    music clip, would turn up again on the first picture clip)."""
    module = otio.adapters.from_name("fcpx_xml").module()

    class Reader(module.FcpxXml):
        def _build_composable(self, element, default_format):
            composable = super()._build_composable(element, default_format)
            clip = self._timing_clip(element)
            owners = [self._timing_clip(self.child_parent_map[marker]) for marker in clip.findall(".//marker")]
            own = [marker for marker, owner in zip(composable.markers, owners) if owner is clip]
            composable.markers.clear()
            composable.markers.extend(own)
            return composable

    class Writer(module.FcpxOtio):
        def _clip_format_name(self, clip) -> str:
            return ""

    return Reader, Writer


def _sized_format(attributes: str, width: int, height: int) -> str:
    """A <format> element with `attributes` (as the adapter wrote them), the frame size, and
    Final Cut's name for it where there is one (FFVideoFormat1080p25)."""
    values = dict(_XML_ATTRIBUTE.findall(attributes))
    values.pop("name", None)
    number, _, per = values.get("frameDuration", "").rstrip("s").partition("/")
    rate = Fraction(int(per), int(number)) if number.isdigit() and per.isdigit() and int(number) else None
    size = _FCPX_SIZE_NAMES.get((width, height))
    named = {"name": f"FFVideoFormat{size}p{rate}"} if size and rate is not None and rate.denominator == 1 else {}
    values.update(named, width=str(width), height=str(height))
    return "<format " + " ".join(f'{key}="{value}"' for key, value in values.items()) + "/>"


def _by_record_side(text: str, rate: float) -> tuple[str, list[str]]:
    """`text` with each event's source out set to its source in plus its record duration where
    the two durations disagree (editors' EDLs do this for speed effects and trims; the adapter
    refuses them), unless an M2 speed or a freeze frame comment explains it (the adapter reads
    those itself); and the numbers of the events so changed. What is on screen is the record side."""
    lines = text.splitlines(keepends=True)
    events = [index for index, line in enumerate(lines) if _EDL_EVENT.match(line)]
    moved = []
    for start, end in zip(events, [*events[1:], len(lines)]):
        if any(_SPEED_OR_FREEZE.match(line) for line in lines[start + 1:end]):
            continue
        line = lines[start]
        spans = [match.span() for match in _ANY_TIMECODE.finditer(line)][-4:]
        try:
            source_in, source_out, record_in, record_out = (
                otio.opentime.from_timecode(line[a:b], rate) for a, b in spans)
        except ValueError:  # fewer than four timecodes, or one this rate cannot hold: the adapter says which
            continue
        if source_out - source_in == record_out - record_in or record_out <= record_in:
            continue  # agreeing, or a record side the adapter refuses on its own
        out = otio.opentime.to_timecode(source_in + (record_out - record_in), rate)
        lines[start] = line[:spans[1][0]] + out + line[spans[1][1]:]
        moved.append(line.split()[0])
    return "".join(lines), moved


def _normalise_edl(path: Path, timeline: otio.schema.Timeline, text: str, rate: float):
    """Move record timecode from the tracks' negative offsets to global_start_time (tracks
    that start later get a leading gap so all line up), and read LOC markers ourselves
    (absolute record timecode; the adapter drops drop-frame ones) onto the top stack."""
    starts = {}
    for track in timeline.tracks:
        if track.source_range is not None and track.source_range.start_time.value <= 0:
            starts[track] = -track.source_range.start_time
            track.source_range = None
        for clip in track.find_clips():
            clip.markers.clear()
    record_start = min(starts.values(), default=RT(0, rate))
    for track, start in starts.items():
        if start > record_start:
            track.insert(0, otio.schema.Gap(source_range=TR(RT(0, rate), start - record_start)))
    timeline.global_start_time = record_start.rescaled_to(rate)
    for match in _LOC.finditer(text):
        timecode, color, name = match.groups()
        if not (color.isalpha() and hasattr(otio.schema.MarkerColor, color.upper())):
            color, name = "", f"{color} {name}"
        try:
            at = otio.opentime.from_timecode(timecode, rate) - record_start
        except ValueError as exc:
            raise EmsyncError(f"{path}: LOC {timecode}: {first_line(exc)}") from None
        marker = otio.schema.Marker(name=name.strip(), marked_range=TR(at, RT(0, rate)))
        if color:
            marker.color = color.upper()
        timeline.tracks.markers.append(marker)
    return timeline


def first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
