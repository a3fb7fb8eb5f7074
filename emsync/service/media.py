"""A timeline's scenes given emotions from their own media: each scene the editor left open
(no emotion marker, no emotion in its clip's name or notes) is analysed over its clip's
source range of the media file, when that file is on disk.

An editor's timeline points at its footage; reading it gives every open scene the emotion
of what is actually on screen, where otherwise only markers or one global default would
speak. Scenes sharing a file are read in one call (emsync.video.analysis.analyze_ranges:
one decode of the stretches used). Media that is missing or unreadable is said once, in one
warning line naming up to three files, and those scenes keep their emotion (neutral, or the
default set later): a timeline moved without its footage still scores. Where the timeline
does not say where its media's timecode starts (an EDL), the file's own start timecode does
(emsync.video.timecode).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections import defaultdict
from pathlib import Path
from typing import Callable

from emsync.core.errors import EmsyncError
from emsync.core.fileio import check_regular
from emsync.core.music import Scene

log = logging.getLogger("emsync.service")
_NAMED = 3  # files named in the one line about media that could not be read


def media_to_read(timeline) -> dict[Path, list[int]]:
    """{media file: indices of the open scenes that show a range of it} for `timeline`'s
    scenes (a TimelineScenes): what `with_media_emotions` would read."""
    from emsync.timelines.timeline import scene_sources

    by_file: dict[Path, list[int]] = defaultdict(list)
    for index, (scene, source) in enumerate(zip(timeline.scenes, scene_sources(timeline))):
        if source is not None and not scene.user_set and source.end > source.start:
            by_file[source.path].append(index)
    return dict(by_file)


def with_media_emotions(timeline, progress: Callable[[float], None] | None = None,
                        cancel: threading.Event | None = None) -> list[Scene]:
    """`timeline`'s scenes (a TimelineScenes), those the editor left open given the emotion
    analysed from their source range. `progress(fraction)` hears the share of the media read
    (after each range); a set `cancel` raises Cancelled at the next range."""
    from emsync.core.generator import Cancelled
    from emsync.timelines.timeline import scene_sources
    from emsync.video.analysis import SourceRange, analyze_ranges
    from emsync.video.fusion import as_shown
    from emsync.video.picture import cuts_per_minute
    from emsync.video.timecode import start_timecode

    scenes, sources = list(timeline.scenes), scene_sources(timeline)
    by_file = media_to_read(timeline)
    unread: list[str] = []
    for number, (path, indices) in enumerate(by_file.items()):
        def heard(fraction: float, number=number) -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            if progress is not None:
                progress((number + fraction) / len(by_file))

        heard(0.0)
        try:   # a FIFO or device given as media is refused by its stat, never opened
            check_regular(path, None, "media")
        except EmsyncError as exc:
            unread.append(str(exc))
            continue
        undeclared = [i for i in indices if not sources[i].declared_start]
        file_start = (start_timecode(path) or 0.0) if undeclared else 0.0  # source times count from it
        ranges = [SourceRange(sources[i].start - (file_start if i in undeclared else 0.0),
                              sources[i].end - (file_start if i in undeclared else 0.0),
                              cuts_per_minute(timeline.cuts, scenes[i].start, scenes[i].end, timeline.duration))
                  for i in indices]
        try:
            emotions = analyze_ranges(path, ranges, progress=heard)
        except Cancelled:
            raise
        except EmsyncError as exc:
            unread.append(str(exc))
            continue
        missed = [sources[i] for i, emotion in zip(indices, emotions) if emotion is None]
        if missed:
            unread.append(f"{path}: no frames at {', '.join(f'{s.start:.2f}-{s.end:.2f} s' for s in missed[:_NAMED])}")
        for index, emotion in zip(indices, emotions):
            if emotion is not None:
                scenes[index] = dataclasses.replace(scenes[index], valence=as_shown(emotion.valence),
                                                    arousal=as_shown(emotion.arousal))
    if unread:
        more = f" and {len(unread) - _NAMED} more" if len(unread) > _NAMED else ""
        log.warning("%s: %d of %d media files not read, their scenes keep the default emotion: %s%s",
                    timeline.path, len(unread), len(by_file), "; ".join(unread[:_NAMED]), more)
    return scenes
