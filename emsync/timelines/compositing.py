"""What the audience sees: the picture of an OTIO timeline as segments in programme seconds.

A cut is a change of what is on screen, which is not what any single track reports: the
topmost enabled video clip wins at each instant, nested stacks are looked into, gaps on
upper tracks let lower picture through, and a dissolve changes the picture at its midpoint.
`otio.algorithms.flatten_stack` gets one thing wrong for scoring: a title or generator on an
upper track hides every cut below it. Here such overlays only show where nothing is below
them (a title over black is a scene; a title over picture is not a cut).

Mixdowns are looked through the same way: a render of the edit laid over it (Avid's "Video
Mixdown", a reference export on the top track) shows one clip where the audience sees the
cuts beneath. A clip is a mixdown when its name says so ("mixdown", any case), or when it is
the only picture of its track over the whole of its stack with cuts beneath it: nobody cuts a
film as one shot over an edit it hides, so such a clip is a picture of that edit.

The walks recurse once per composition and are bounded: compositions nested deeper than
MAX_COMPOSITION_DEPTH are refused with an EmsyncError, never a RecursionError.
"""
from __future__ import annotations

import bisect
import logging
import math
import re
from dataclasses import dataclass, replace
from typing import Iterator

import opentimelineio as otio

from emsync.core.errors import EmsyncError
from emsync.core.limits import MAX_COMPOSITION_DEPTH

log = logging.getLogger("emsync.timelines")

_EPS = 1e-6  # seconds; far below a frame, far above float noise
_MIXDOWN = re.compile(r"mix[ _-]?down", re.IGNORECASE)
_TITLE = re.compile(r"(?<![a-z])(titles?|text|captions?|subtitles?|lower ?thirds?|credits|"
                    r"graphics?|logo|watermark|overlay)(?![a-z])", re.IGNORECASE)


@dataclass(frozen=True)
class Segment:
    """A stretch of programme time showing one item (None: nothing, i.e. black)."""

    start: float
    end: float
    item: otio.core.Item | None = None
    offset: float = 0.0  # the item's own time at programme time t is t - offset
    overlay: bool = False


def seconds(time: otio.opentime.RationalTime) -> float:
    return round(time.to_seconds(), 9)


def is_black(clip: otio.schema.Clip) -> bool:
    """EDL black (BL) events: nothing on screen, like a gap."""
    ref = clip.media_reference
    return isinstance(ref, otio.schema.GeneratorReference) and ref.generator_kind.lower() == "black"


def is_overlay(clip: otio.schema.Clip) -> bool:
    """Clips that show only where nothing is beneath them: generators (titles, mattes, slugs),
    media-less clips named like titles, and mixdowns by name."""
    ref = clip.media_reference
    if isinstance(ref, otio.schema.GeneratorReference) or _MIXDOWN.search(clip.name):
        return True
    return isinstance(ref, (otio.schema.MissingReference, type(None))) and bool(_TITLE.search(clip.name))


def visible(timeline: otio.schema.Timeline, transition: str = "mid") -> list[Segment]:
    """Segments covering [0, duration) in order; holes become Segment(item=None)."""
    stack = timeline.tracks
    duration = seconds(stack.duration())
    shown = _segments(stack, -_first_frame(stack), 0.0, duration, transition)
    filled, at = [], 0.0
    for seg in shown:
        if seg.start > at + _EPS:
            filled.append(Segment(at, seg.start))
        filled.append(seg)
        at = seg.end
    if duration > at + _EPS:
        filled.append(Segment(at, duration))
    return _merge(filled)


def on_frames(segments: list[Segment], fps: float) -> list[Segment]:
    """Move segment edges to the nearest frame: editors cut on frames, and files that mix
    29.97 with 29.97002997 (AAF does) would otherwise leave slivers a few microseconds long."""
    return _merge([replace(s, start=frame_time(s.start, fps), end=frame_time(s.end, fps)) for s in segments])


def frame_time(time: float, fps: float) -> float:
    return round(round(time * fps) / fps, 9)


def markers(timeline: otio.schema.Timeline) -> list[tuple[float, otio.schema.Marker]]:
    """Every marker on enabled items of any track, at its programme time, sorted; markers
    outside the visible part of their item (trimmed media) are left out."""
    stack = timeline.tracks
    found = _markers(stack, -_first_frame(stack), 0.0, seconds(stack.duration()))
    return sorted(found, key=lambda pair: pair[0])


def _first_frame(item) -> float:
    """The item's own time at its first visible frame (its trim). A composition's negative
    start is no trim: it is how EDLs carry record timecode."""
    if isinstance(item, otio.schema.Clip):
        return seconds(item.trimmed_range().start_time)
    if item.source_range is None:
        return 0.0
    return max(0.0, seconds(item.source_range.start_time))


def _placed(comp, offset: float) -> list[list]:
    """[child, child offset, start, end] in programme seconds for each non-transition child
    (transitions take no time of their own: they overlap their neighbours)."""
    ranges = comp.range_of_all_children()
    placed = []
    for child in comp:
        if isinstance(child, otio.schema.Transition):
            continue
        where = ranges[child]
        start = round(offset + seconds(where.start_time), 9)
        end = round(start + seconds(where.duration), 9)
        placed.append([child, round(start - _first_frame(child), 9), start, end])
    return placed


def _transition_point(transition, edit: float, how: str) -> float:
    """Where the picture changes during `transition` around the edit point: its start, its
    end, or its midpoint rounded down to a whole frame (frame formats cannot hold half)."""
    before, after = transition.in_offset, transition.out_offset
    if how == "start":
        return round(edit - seconds(before), 9)
    if how == "end":
        return round(edit + seconds(after), 9)
    frames = before.value + after.rescaled_to(before.rate).value
    return round(edit - seconds(before) + math.floor(frames / 2) / before.rate, 9)


def _track_entries(track, offset: float, how: str) -> list[list]:
    """_placed for a track, with each transition's neighbours meeting at its cut point.
    Fades from or to nothing (a zero-length neighbour) keep the edit point."""
    placed = _placed(track, offset)
    index, entry_of = 0, {}
    for position, child in enumerate(track):
        if not isinstance(child, otio.schema.Transition):
            entry_of[position] = placed[index]
            index += 1
    for position, child in enumerate(track):
        before, after = entry_of.get(position - 1), entry_of.get(position + 1)
        if not isinstance(child, otio.schema.Transition) or before is None or after is None:
            continue
        if before[3] - before[2] < _EPS or after[3] - after[2] < _EPS:
            continue
        point = min(max(_transition_point(child, after[2], how), before[2]), after[3])
        before[3] = after[2] = point
    return placed


def _within_depth(depth: int) -> int:
    """The depth of a composition's children, or EmsyncError when that is too deep to walk."""
    if depth >= MAX_COMPOSITION_DEPTH:
        raise EmsyncError(f"stacks and tracks nested deeper than {MAX_COMPOSITION_DEPTH}")
    return depth + 1


def _segments(item, offset: float, lo: float, hi: float, how: str, depth: int = 0) -> list[Segment]:
    """The visible picture of `item` (`depth` compositions down) between programme times lo and hi, in order."""
    if hi - lo < _EPS or not item.enabled or isinstance(item, otio.schema.Gap):
        return []
    if isinstance(item, otio.schema.Clip):
        if is_black(item):
            return []
        return [Segment(lo, hi, item, offset, is_overlay(item))]
    if isinstance(item, otio.schema.Track):
        if item.kind != otio.schema.TrackKind.Video:
            return []
        below = _within_depth(depth)
        return [seg for child, child_offset, start, end in _track_entries(item, offset, how)
                for seg in _segments(child, child_offset, max(start, lo), min(end, hi), how, below)]
    if isinstance(item, otio.schema.Stack):
        if not len(item):  # a nested sequence the adapter could not resolve: opaque picture
            return [Segment(lo, hi, item, offset)]
        canvas: list[Segment] = []
        below = _within_depth(depth)
        for child, child_offset, start, end in _placed(item, offset):
            above = _segments(child, child_offset, max(start, lo), min(end, hi), how, below)
            canvas = _paint(canvas, _through_mixdown(above, canvas, lo, hi))
        return canvas
    return []


def _through_mixdown(above: list[Segment], below: list[Segment], lo: float, hi: float) -> list[Segment]:
    """`above` as an overlay when it is one clip over the whole of [lo, hi) and `below` has cuts:
    a mixdown of the edit beneath (see the module docstring). One not named so is said in a
    line: the rule is an inference the editor may want to know about."""
    if (len(above) == 1 and len(below) > 1 and isinstance(above[0].item, otio.schema.Clip)
            and above[0].start <= lo + _EPS and above[0].end >= hi - _EPS):
        if not above[0].overlay:
            log.warning("clip %r covers the whole edit on an upper track: read as a mixdown, the %d cuts "
                        "beneath it are the scenes", above[0].item.name, len(below) - 1)
        return [replace(above[0], overlay=True)]
    return above


def _at(segments: list[Segment], starts: list[float], time: float) -> Segment | None:
    index = bisect.bisect_right(starts, time) - 1
    return segments[index] if index >= 0 and segments[index].end > time else None


def _paint(below: list[Segment], above: list[Segment]) -> list[Segment]:
    """Lay `above` over `below`: picture covers, overlays only fill what is empty below."""
    if not below or not above:
        return below or above
    points = sorted({p for seg in below + above for p in (seg.start, seg.end)})
    below_starts, above_starts = [s.start for s in below], [s.start for s in above]
    result = []
    for start, end in zip(points, points[1:]):
        middle = (start + end) / 2
        top, under = _at(above, above_starts, middle), _at(below, below_starts, middle)
        chosen = top if top is not None and not top.overlay else under or top
        if chosen is not None:
            result.append(replace(chosen, start=start, end=end))
    return _merge(result)


def _merge(segments: list[Segment]) -> list[Segment]:
    """Join neighbours that continue the same picture (same item, same media time)."""
    merged: list[Segment] = []
    for seg in segments:
        if seg.end - seg.start < _EPS:
            continue
        last = merged[-1] if merged else None
        if (last is not None and abs(last.end - seg.start) < _EPS and last.item is seg.item
                and abs(last.offset - seg.offset) < _EPS and last.overlay == seg.overlay):
            merged[-1] = replace(last, end=seg.end)
        else:
            merged.append(seg)
    return merged


def _markers(item, offset: float, lo: float, hi: float,
             depth: int = 0) -> Iterator[tuple[float, otio.schema.Marker]]:
    if not item.enabled:
        return
    for marker in item.markers:
        time = round(offset + seconds(marker.marked_range.start_time), 9)
        if lo - _EPS <= time <= hi + _EPS:
            yield max(lo, min(hi, time)), marker
    if isinstance(item, otio.core.Composition):
        below = _within_depth(depth)
        for child, child_offset, start, end in _placed(item, offset):
            yield from _markers(child, child_offset, max(start, lo), min(end, hi), below)
