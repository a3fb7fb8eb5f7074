"""Scene lists: from a cut list or a JSON scene file; whose emotion a scene carries; the
boundaries and markers a scene list puts into the music."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from emsync.core.emotions import nearest_word
from emsync.core.errors import EmsyncError
from emsync.core.fileio import read_regular
from emsync.core.limits import EMOTION_AXIS, MAX_CUTS, MAX_HITS, MAX_SCENE_FILE_BYTES, MAX_SCENES, MAX_SCORE_SECONDS
from emsync.core.music import Scene


def _number(value, field: str, low: float = -math.inf, high: float = math.inf) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise EmsyncError(f"{field}: expected a number, got {value!r}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise EmsyncError(f"{field}: {number} is outside [{low}, {high}]")
    return number


def scenes_from_cuts(duration: float, cuts: Sequence[float], valence: float, arousal: float) -> list[Scene]:
    """One scene between each pair of cuts, all with the same emotion."""
    duration = _number(duration, "duration", 0.0, MAX_SCORE_SECONDS)
    if duration <= 0:
        raise EmsyncError("duration: must be positive")
    if len(cuts) > MAX_CUTS:
        raise EmsyncError(f"cuts: {len(cuts)} cuts, more than the {MAX_CUTS} a score may have")
    times = sorted({_number(c, "cuts", 0.0) for c in cuts})
    outside = [t for t in times if t >= duration]
    if outside:
        raise EmsyncError(f"cuts: {outside[0]} is not inside the duration {duration}")
    edges = [0.0] + [t for t in times if t > 0] + [duration]
    v = _number(valence, "valence", *EMOTION_AXIS)
    a = _number(arousal, "arousal", *EMOTION_AXIS)
    return [Scene(start, end, v, a, user_set=True) for start, end in zip(edges, edges[1:])]


def load_scene_file(path: str | Path) -> tuple[float, list[Scene]]:
    """Read `{"duration": s, "scenes": [{"start", "end"?, "valence", "arousal", "name"?}, ...]}`
    (or a bare list of scenes). Missing ends run to the next start; returns (duration, scenes)."""
    path = Path(path)
    try:
        data = json.loads(read_regular(path, MAX_SCENE_FILE_BYTES, "scene file"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EmsyncError(f"{path}: not a readable JSON scene file ({str(exc) or 'nested too deeply'})") from None
    items = data.get("scenes") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise EmsyncError(f"{path}: expected a non-empty list of scenes")
    if len(items) > MAX_SCENES:
        raise EmsyncError(f"{path}: {len(items)} scenes, more than the {MAX_SCENES} a session may have")
    parsed = []
    for i, item in enumerate(items):
        where = f"{path}: scenes[{i}]"
        if not isinstance(item, dict):
            raise EmsyncError(f"{where}: expected an object")
        parsed.append((_number(item.get("start"), f"{where}.start", 0.0, MAX_SCORE_SECONDS),
                       None if item.get("end") is None else _number(item["end"], f"{where}.end", 0.0,
                                                                    MAX_SCORE_SECONDS),
                       _number(item.get("valence", 0.0), f"{where}.valence", *EMOTION_AXIS),
                       _number(item.get("arousal", 0.0), f"{where}.arousal", *EMOTION_AXIS),
                       str(item.get("name", ""))))
    parsed.sort(key=lambda p: p[0])
    last_end = parsed[-1][1] if parsed[-1][1] is not None else None
    duration = data.get("duration") if isinstance(data, dict) else None
    duration = _number(duration, f"{path}: duration", 0.0, MAX_SCORE_SECONDS) if duration is not None else last_end
    if not duration or duration <= parsed[-1][0]:
        raise EmsyncError(f"{path}: duration missing or not after the last scene's start")
    scenes = []
    for i, (start, end, v, a, name) in enumerate(parsed):
        stop = parsed[i + 1][0] if i + 1 < len(parsed) else duration
        scenes.append(Scene(start, min(end, stop) if end is not None else stop, v, a, name, user_set=True))
    return duration, scenes


def check_scene_list(duration: float, scenes: Sequence[Scene], hits: Sequence[float], where: str = "") -> None:
    """EmsyncError naming the field (after `where`, the file it came from) unless every number
    of a session's scenes is finite and within the bounds of emsync.core.limits: whatever
    the source, nothing out of bounds reaches a session, its file or a reply."""
    prefix = f"{where}: " if where else ""
    _number(duration, f"{prefix}duration", 0.0, MAX_SCORE_SECONDS)
    if len(scenes) > MAX_SCENES:
        raise EmsyncError(f"{prefix}{len(scenes)} scenes, more than the {MAX_SCENES} a session may have")
    if len(hits) > MAX_HITS:
        raise EmsyncError(f"{prefix}{len(hits)} hits, more than the {MAX_HITS} a session may have")
    for index, scene in enumerate(scenes):
        for name, low, high in (("start", 0.0, MAX_SCORE_SECONDS), ("end", 0.0, MAX_SCORE_SECONDS),
                                ("valence", -1.0, 1.0), ("arousal", -1.0, 1.0)):
            _number(getattr(scene, name), f"{prefix}scenes[{index}].{name}", low, high)
    for hit in hits:
        _number(hit, f"{prefix}hits", 0.0, MAX_SCORE_SECONDS)


def user_emotion(scene: Scene, valence: float, arousal: float) -> Scene:
    """The scene with the emotion the user chose (a timeline marker, a scene file, an OSC
    request, a command-line flag): it wins over anything analysed or defaulted, and nothing
    later replaces it but another user choice. A scene named after its emotion word (a
    video's scenes are) is renamed with it, so its cut marker names the emotion it carries."""
    valence = _number(valence, "valence", *EMOTION_AXIS)
    arousal = _number(arousal, "arousal", *EMOTION_AXIS)
    name = nearest_word(valence, arousal) if scene.name and scene.name == nearest_word(scene.valence,
                                                                                        scene.arousal) else scene.name
    return replace(scene, valence=valence, arousal=arousal, name=name, user_set=True)


def with_default_emotion(scenes: Sequence[Scene], valence: float | None = None,
                         arousal: float | None = None) -> list[Scene]:
    """Every scene the user has not set takes the given axes (None: keeps its own, analysed
    or neutral); scenes the user set keep theirs. This is the one rule of whose emotion wins."""
    if valence is None and arousal is None:
        return list(scenes)
    return [scene if scene.user_set else
            user_emotion(scene, scene.valence if valence is None else valence,
                         scene.arousal if arousal is None else arousal) for scene in scenes]


def cuts_of(scenes: Sequence[Scene]) -> list[float]:
    return [s.start for s in scenes if s.start > 0]


def boundaries(scenes: Sequence[Scene], hits: Sequence[float], duration: float) -> list[float]:
    """Where the music should mark a boundary: every cut and every hit inside the score."""
    return sorted(set(cuts_of(scenes)) | {float(h) for h in hits if 0 < h < duration})


def score_markers(scenes: Sequence[Scene], hits: Sequence[float] = ()) -> list[tuple[float, str]]:
    """A marker at every cut, carrying the emotion of the scene it opens, and one at every hit."""
    markers = []
    for number, scene in enumerate((s for s in scenes if s.start > 0), start=1):
        label = f"cut {number}" + (f" {scene.name}" if scene.name else "")
        markers.append((scene.start, f"{label} | valence={scene.valence:+.2f} arousal={scene.arousal:+.2f}"))
    return markers + [(float(t), "hit") for t in hits]
