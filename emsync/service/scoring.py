"""The scoring service: one session, one generator, and every operation a host offers.

    service = ScoringService(Session(None))          # or Session(folder): kept on disk
    service.open_timeline("edit.otio")               # or open_analysis / open_scene_file / open_cuts
    service.set_default_emotion(arousal=0.5)         # scenes the editor left open
    version, take = service.generate(seed=1)         # the new version, and how it was sampled
    service.export_midi("edit.mid")

The CLI runs it once per command; the OSC host keeps one and runs the slow parts (video
analysis, generation) in a worker thread. For that split, generation is two steps: a
request (`generate_request`, `regenerate_request`) checks the arguments and takes a
snapshot of the session at once, `run` samples (slow, needs no lock), and `commit` stores
the take as the new version.
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from emsync.core.conditions import EmotionCurve
from emsync.core.errors import EmsyncError
from emsync.core.fileio import check_regular
from emsync.core.limits import CUT_THRESHOLD
from emsync.core.music import Note, Scene
from emsync.core.scenes import (boundaries, load_scene_file, scenes_from_cuts, score_markers, user_emotion,
                                with_default_emotion)
from emsync.core.tempo import Meter, TempoMap, fit_to_picture

from .exports import ExportTargets
from .session import Session, Version

SAMPLING_SETTINGS = ("temperature", "top_p", "hit_cuts", "emotion_guidance", "lock_mode", "stay_in_key",
                     "on_grid")


@dataclass
class Opened:
    """What a source gave the session."""

    kind: str  # "timeline", "video" or "scenes"
    path: str
    duration: float
    scenes: int
    cuts: int
    hits: int
    fps: float


@dataclass
class Take:
    """Music sampled for a request, not yet a version."""

    kind: str
    notes: list[Note]
    parent: int
    params: dict
    seconds: float  # wall time of the sampling
    duration: float  # seconds of music the request covered


@dataclass
class Request:
    """A generation asked for, with the session as it was when asked."""

    kind: str  # "generate" or "regenerate"
    seed: int
    duration: float
    boundaries: list[float]
    curve: EmotionCurve
    sampling: dict
    parent: int
    base: list[Note] = field(default_factory=list)  # regenerate: the music kept around the range
    start: float = 0.0
    end: float = 0.0
    candidates: int = 1
    seam_seconds: float = 0.0
    bpm: float = 0.0  # the tempo setting (0: fit a map to the picture)
    meter: str = "4/4"
    tempo: TempoMap | None = None  # fixed ahead (regenerate keeps its version's), else made in `run`

    def run(self, generator, progress: Callable[[float], None] | None = None,
            cancel: threading.Event | None = None) -> Take:
        began = time.perf_counter()
        if self.tempo is None:  # here, not when asked: fitting a long film's map takes seconds
            self.tempo = tempo_map_for(self.duration, self.boundaries, self.curve, self.bpm, self.meter)
        if self.kind == "generate":
            result = generator.generate(self.duration, self.boundaries, self.curve, seed=self.seed, **self.sampling,
                                        tempo=self.tempo, progress=progress, cancel=cancel)
            params = {"seed": self.seed, "duration": self.duration, **self.sampling, "tokens": result.stats["tokens"]}
            covered = self.duration
        else:
            from emsync.core.regenerate import regenerate

            result = regenerate(generator, self.base, self.duration, self.start, self.end, self.boundaries,
                                self.curve, seed=self.seed, candidates=self.candidates, **self.sampling,
                                seam_seconds=self.seam_seconds, tempo=self.tempo, progress=progress, cancel=cancel)
            params = {"seed": self.seed, "chosen_seed": result.seed, "start": result.start, "end": result.end,
                      **self.sampling, "candidates": result.stats["candidates"]}
            covered = result.end - result.start
        params["tempo"] = self.tempo.to_dict()
        return Take(self.kind, result.notes, self.parent, params, time.perf_counter() - began, covered)


def tempo_map_for(duration: float, marks: Sequence[float], curve: EmotionCurve, bpm: float, meter: str) -> TempoMap:
    """The tempo map music is written on: `bpm` throughout, or (bpm 0) fitted to the picture so
    the cuts land on beats (core.tempo.fit_to_picture)."""
    if bpm:
        return TempoMap.constant(bpm, Meter.parse(meter))
    return fit_to_picture(duration, marks, curve, Meter.parse(meter))


class ScoringService:
    """A session and the generator that scores it; see the module docstring.

    `isolated_reads` (the OSC service's choice) reads each timeline in a child process first,
    so a file that crashes a native reader costs an error, not the process
    (emsync.timelines.isolated). `generator`: one already loaded, shared by services that
    score one after another (a batch worker loads it once for all its items)."""

    def __init__(self, session: Session, model: str | Path | None = None, isolated_reads: bool = False,
                 generator=None):
        self.session = session
        self.model = model
        self.isolated_reads = isolated_reads
        self.exports = ExportTargets(session.dir)
        self._generator = generator
        self._generator_lock = threading.Lock()
        self._timeline = None  # the opened TimelineScenes, kept for writing the edit back

    def generator(self):
        """The ONNX generator, loaded on first use (thread-safe)."""
        with self._generator_lock:
            if self._generator is None:
                from emsync.core.generator import MusicGenerator

                self._generator = MusicGenerator(self.model)
            return self._generator

    # ---- sources of scenes ---------------------------------------------------------------
    def _read_timeline(self, path: str | Path, fps: float | None, transition: str):
        from emsync.timelines import read_timeline

        if self.isolated_reads:
            from emsync.timelines.isolated import probe_timeline

            probe_timeline(path, fps, transition)
        return read_timeline(path, fps=fps, transition=transition)

    def open_timeline(self, path: str | Path, fps: float | None = None, transition: str = "mid",
                      known_as: str | Path | None = None, media: bool = True,
                      progress: Callable[[float], None] | None = None) -> Opened:
        """`known_as`: the user's path for a timeline read from a copy (a batch item shipped to a
        remote worker): its relative media paths start from there, when the edit is written back
        and when its media is read. `media`: scenes the editor left open get the emotion of their
        clip's source range where the media file is on disk (emsync.service.media; slow: seconds
        per minute of footage); False keeps them neutral. `progress` hears the share read."""
        timeline = self.read_edit(path, fps, transition, known_as)
        if media:
            from .media import with_media_emotions

            timeline.scenes = with_media_emotions(timeline, progress)
        return self.adopt_timeline(timeline, fps, transition)

    def read_edit(self, path: str | Path, fps: float | None = None, transition: str = "mid",
                  known_as: str | Path | None = None):
        """The timeline at `path` read (a TimelineScenes; changes nothing): give it, its media
        emotions read or not, to `adopt_timeline`."""
        if not str(path):
            raise EmsyncError("path: empty")
        timeline = self._read_timeline(path, fps or None, transition)
        if known_as is not None:
            timeline.path = Path(known_as)
        return timeline

    def adopt_timeline(self, timeline, fps: float | None, transition: str) -> Opened:
        """Makes a timeline read by `read_edit` the session's scenes."""
        source = {"kind": "timeline", "path": str(Path(timeline.path).resolve()),
                  "fps": float(timeline.fps) if fps else 0.0, "transition": transition}
        self.session.set_scenes(timeline.duration, timeline.scenes, timeline.hits, source)
        self._timeline = timeline
        return Opened("timeline", source["path"], float(timeline.duration), len(timeline.scenes),
                      len(timeline.cuts), len(timeline.hits), float(timeline.fps))

    @staticmethod
    def check_video(path: str | Path, threshold: float) -> None:
        """EmsyncError naming the field unless these can be analysed (before a job starts)."""
        if not str(path):
            raise EmsyncError("path: empty")
        low, high = CUT_THRESHOLD
        if not low < threshold < high:
            raise EmsyncError(f"threshold: {threshold} is outside ({low:g}, {high:g})")
        check_regular(path, None, "video")

    def analyze_video(self, path: str | Path, threshold: float = 0.5,
                      progress: Callable[[float], None] | None = None, cancel: threading.Event | None = None):
        """Cuts and scene emotions of a video (slow; changes nothing): give it to `open_analysis`.
        `progress` and `cancel` as in `video.analysis.analyze_video`."""
        from emsync.video.analysis import analyze_video

        self.check_video(path, threshold)
        return analyze_video(path, threshold, progress=progress, cancel=cancel)

    def open_analysis(self, analysis, threshold: float = 0.5) -> Opened:
        scenes = [scene.to_scene() for scene in analysis.scenes]
        source = {"kind": "video", "path": str(Path(analysis.path).resolve()), "threshold": float(threshold),
                  "fps": float(analysis.fps)}
        self.session.set_scenes(analysis.duration, scenes, [], source)
        self._timeline = None
        return Opened("video", source["path"], float(analysis.duration), len(scenes), len(analysis.cuts), 0,
                      float(analysis.fps))

    def open_scene_file(self, path: str | Path) -> Opened:
        if not str(path):
            raise EmsyncError("path: empty")
        duration, scenes = load_scene_file(path)
        return self._open_scenes(duration, scenes, {"kind": "scenes", "path": str(Path(path).resolve())})

    def open_cuts(self, duration: float, cuts: Sequence[float], valence: float = 0.0, arousal: float = 0.0) -> Opened:
        """A cut list with one emotion (no file behind it)."""
        scenes = scenes_from_cuts(duration, cuts, valence, arousal)
        return self._open_scenes(scenes[-1].end, scenes, {"kind": "cuts", "path": ""})

    def _open_scenes(self, duration: float, scenes: list[Scene], source: dict) -> Opened:
        self.session.set_scenes(duration, scenes, [], source)
        self._timeline = None
        return Opened(source["kind"], source["path"], float(duration), len(scenes), len(scenes) - 1, 0, 0.0)

    # ---- emotions and settings -----------------------------------------------------------
    def set_default_emotion(self, valence: float | None = None, arousal: float | None = None) -> None:
        """Scenes the user has not set take these axes (core.scenes.with_default_emotion)."""
        session = self.session
        session.set_scenes(session.duration, with_default_emotion(session.scenes, valence, arousal), session.hits,
                           session.source)

    def set_emotion(self, index: int, valence: float, arousal: float) -> Scene:
        """One scene's emotion, as the user chose it."""
        self.need_scenes()
        scenes = self.session.scenes
        if not 0 <= index < len(scenes):
            raise EmsyncError(f"scene: index {index} is outside 0..{len(scenes) - 1}")
        changed = list(scenes)
        changed[index] = user_emotion(scenes[index], valence, arousal)
        self.session.set_scenes(self.session.duration, changed, self.session.hits, self.session.source)
        return self.session.scenes[index]

    def set_setting(self, name: str, value):
        return self.session.set_setting(name, value)

    def markers(self) -> list[tuple[float, str]]:
        return score_markers(self.session.scenes, self.session.hits)

    # ---- music ---------------------------------------------------------------------------
    def need_scenes(self) -> None:
        if not self.session.scenes:
            raise EmsyncError("no scenes: open a timeline, a video or a scene file first")

    def current_version(self, what: str) -> Version:
        """The current version, or EmsyncError saying `what` needs music first."""
        version = self.session.current()
        if version is None:
            raise EmsyncError(f"{what}: no music yet (generate first)")
        return version

    def _seed(self, seed: int | None) -> int:
        if seed is None:
            return (self.session.settings["seed"] + self.session.next_version) % 2**31
        if not 0 <= seed < 2**31:
            raise EmsyncError(f"seed: {seed} is outside [0, 2^31)")
        return int(seed)

    def _request(self, kind: str, seed: int | None, parent: int) -> Request:
        session = self.session
        marks = boundaries(session.scenes, session.hits, session.duration)
        curve = EmotionCurve.from_scenes(copy.deepcopy(session.scenes))
        return Request(kind, self._seed(seed), session.duration, marks, curve,
                       {name: session.settings[name] for name in SAMPLING_SETTINGS}, parent,
                       bpm=session.settings["bpm"], meter=session.settings["meter"])

    def tempo_map(self) -> TempoMap:
        """The tempo map new music would be written on now (see `tempo_map_for`)."""
        self.need_scenes()
        session = self.session
        return tempo_map_for(session.duration, boundaries(session.scenes, session.hits, session.duration),
                             EmotionCurve.from_scenes(copy.deepcopy(session.scenes)), session.settings["bpm"],
                             session.settings["meter"])

    def generate_request(self, seed: int | None = None) -> Request:
        """Music for the whole session (seed None: the session's seed setting plus the version number)."""
        self.need_scenes()
        return self._request("generate", seed, self.session.current_id)

    def regenerate_request(self, start: float, end: float, seed: int | None = None) -> Request:
        """New music for [start, end); every note outside is kept."""
        from emsync.core.regenerate import check_range

        self.need_scenes()
        base = self.current_version("regenerate")
        check_range(self.session.duration, start, end)
        request = self._request("regenerate", seed, base.id)
        request.base, request.start, request.end = list(base.notes), float(start), float(end)
        request.tempo = base.tempo()  # the music around the range keeps its grid
        request.candidates = self.session.settings["candidates"]
        request.seam_seconds = self.session.settings["seam_seconds"]
        return request

    def commit(self, take: Take) -> Version:
        params = {**take.params, "seconds": round(take.seconds, 3)}
        return self.session.add_version(take.kind, take.notes, take.parent, params)

    def generate(self, seed: int | None = None,
                 progress: Callable[[float], None] | None = None) -> tuple[Version, Take]:
        """Sample and commit music for the whole session; `progress(fraction)` hears how far it got."""
        take = self.generate_request(seed).run(self.generator(), progress)
        return self.commit(take), take

    def regenerate(self, start: float, end: float, seed: int | None = None) -> tuple[Version, Take]:
        take = self.regenerate_request(start, end, seed).run(self.generator())
        return self.commit(take), take

    def undo(self) -> int:
        return self.session.undo()

    def redo(self) -> int:
        return self.session.redo()

    # ---- exports -------------------------------------------------------------------------
    def export_midi(self, path: str | Path, overwrite: bool = False) -> Path:
        """The current version as a type 1 Standard MIDI File with a marker at every cut and hit,
        where the export rules allow (emsync.service.exports; `overwrite`: a file emsync did
        not write may be replaced)."""
        from emsync.core.midi_io import write_midi

        version = self.current_version("export")
        target = self.exports.check(path, overwrite)
        written = write_midi(target, version.notes, self.markers(), version.tempo())
        self.exports.record(written)
        return written

    def check_timeline_export(self, path: str | Path) -> None:
        """EmsyncError unless the session can be written back as an edit to `path`."""
        from emsync.timelines.timeline import WRITERS

        kind = (self.session.source or {}).get("kind")
        if kind not in ("timeline", "video"):
            raise EmsyncError("export: the session was not opened from a timeline or a video")
        if not str(path):
            raise EmsyncError("path: empty")
        if Path(path).suffix.lower() not in WRITERS:
            raise EmsyncError(f"{path}: cannot write this format (use {', '.join(WRITERS)})")
        if kind == "video" and not self.session.source.get("fps"):
            raise EmsyncError("export: this session's video was opened by an older emsync; open it again")

    def export_timeline(self, path: str | Path, midi: Path, audio: Path | None = None,
                        overwrite: bool = False) -> Path:
        """The opened edit (a timeline, or a video cut at its scenes) with a music track playing
        `audio` (the rendered MIDI; an NLE cannot play MIDI) and a marker at every cut, where
        the export rules allow (as `export_midi`)."""
        from emsync.timelines.timeline import video_edit, write_timeline

        self.check_timeline_export(path)
        target = self.exports.check(path, overwrite)
        source = self.session.source
        if source["kind"] == "timeline":
            if self._timeline is None:
                self._timeline = self._read_timeline(source["path"], source.get("fps") or None,
                                                     source.get("transition", "mid"))
            edit = copy.copy(self._timeline)
            edit.scenes = copy.deepcopy(self.session.scenes)
            edit.hits = list(self.session.hits)
        else:
            edit = video_edit(source["path"], source["fps"], self.session.duration, self.session.scenes)
        written = Path(write_timeline(edit, target, Path(midi).resolve(), Path(audio).resolve() if audio else None))
        self.exports.record(written)
        return written
