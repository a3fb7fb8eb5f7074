"""A timeline's scenes given emotions from their own media: each scene the editor left open
(no emotion marker, no emotion in its clip's name or notes) is analysed over its clip's
source range of the media file, when that file is on disk.

An editor's timeline points at its footage; reading it gives every open scene the emotion
of what is actually on screen, where otherwise only markers or one global default would
speak. Scenes sharing a file are read in one call (emsync.video.analysis.analyze_ranges:
one decode of the stretches used). Media that is missing or unreadable is said once, in one
warning line naming up to three files, and those scenes keep their emotion (neutral, or the
default set later): a timeline moved without its footage still scores.
"""
from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from pathlib import Path
from typing import Callable

from emsync.core.errors import EmsyncError
from emsync.core.fileio import check_regular
from emsync.core.music import Scene

log = logging.getLogger("emsync.service")
_NAMED = 3  # files named in the one line about media that could not be read


def with_media_emotions(timeline, progress: Callable[[float], None] | None = None) -> list[Scene]:
    """`timeline`'s scenes (a TimelineScenes), those the editor left open given the emotion
    analysed from their source range. `progress(fraction)` hears the share of the files done."""
    from emsync.timelines.timeline import scene_sources
    from emsync.video.analysis import SourceRange, analyze_ranges
    from emsync.video.picture import cuts_per_minute

    scenes, sources = list(timeline.scenes), scene_sources(timeline)
    by_file: dict[Path, list[int]] = defaultdict(list)
    for index, (scene, source) in enumerate(zip(scenes, sources)):
        if source is not None and not scene.user_set and source.end > source.start:
            by_file[source.path].append(index)
    if not by_file:
        return scenes
    unread: list[str] = []
    for number, (path, indices) in enumerate(by_file.items()):
        try:   # a FIFO or device given as media is refused by its stat, never opened
            check_regular(path, None, "media")
        except EmsyncError as exc:
            unread.append(str(exc))
            continue
        ranges = [SourceRange(sources[i].start, sources[i].end,
                              cuts_per_minute(timeline.cuts, scenes[i].start, scenes[i].end, timeline.duration))
                  for i in indices]
        try:
            emotions = analyze_ranges(path, ranges)
        except EmsyncError as exc:
            unread.append(str(exc))
            continue
        missed = [sources[i] for i, emotion in zip(indices, emotions) if emotion is None]
        if missed:
            unread.append(f"{path}: no frames at {', '.join(f'{s.start:.2f}-{s.end:.2f} s' for s in missed[:_NAMED])}")
        for index, emotion in zip(indices, emotions):
            if emotion is not None:
                scenes[index] = dataclasses.replace(scenes[index], valence=emotion.valence, arousal=emotion.arousal)
        if progress is not None:
            progress((number + 1) / len(by_file))
    if unread:
        more = f" and {len(unread) - _NAMED} more" if len(unread) > _NAMED else ""
        log.warning("%s: %d of %d media files not read, their scenes keep the default emotion: %s%s",
                    timeline.path, len(unread), len(by_file), "; ".join(unread[:_NAMED]), more)
    return scenes
