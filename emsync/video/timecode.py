"""A media file's own start timecode, as cameras and editors stamp it (QuickTime/MP4 `tmcd`
tracks, MXF and MPEG-TS tags: FFmpeg reports it as a `timecode` tag).

An edit list names source ranges in the footage's timecode (a clip from 01:00:10:00), and
a decoder counts from the first frame. Where the timeline does not say where its media's
timecode starts (EDLs, and references written without an available range), this tag does.
"""
from __future__ import annotations

import os
import re

from emsync.core.errors import EmsyncError

_TIMECODE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})[:;.](\d{2,3})$")


def parse_timecode(text: str, fps: float) -> float | None:
    """Seconds of `HH:MM:SS:FF` (`;` before the frames for drop-frame) at `fps` frames a second;
    None for anything else. Drop-frame timecode (29.97 and 59.94) skips two (four) frame
    numbers each minute but every tenth, so its labels are converted back to frames first."""
    match = _TIMECODE.match(text.strip())
    if not match or fps <= 0:
        return None
    hours, minutes, seconds, frames = (int(part) for part in match.groups())
    nominal = round(fps)
    if minutes >= 60 or seconds >= 60 or frames >= max(nominal, 1):
        return None
    count = ((hours * 60 + minutes) * 60 + seconds) * nominal + frames
    if ";" in text and nominal in (30, 60):
        dropped = 2 * nominal // 30
        total_minutes = hours * 60 + minutes
        count -= dropped * (total_minutes - total_minutes // 10)
    return count / fps


def start_timecode(path: str | os.PathLike) -> float | None:
    """Seconds at the file's first frame by its own timecode tag; None when it has none (or
    cannot be read: the caller reads the file from its first frame)."""
    from emsync.video.decode import _open

    try:
        container = _open(path)
    except EmsyncError:
        return None
    try:
        video = container.streams.video[0]
        rate = video.average_rate or video.guessed_rate or video.base_rate
        tags = [container.metadata or {}] + [stream.metadata or {} for stream in container.streams]
        text = next((tag["timecode"] for tag in tags if tag.get("timecode")), None)
        return parse_timecode(text, float(rate)) if text and rate else None
    finally:
        container.close()
