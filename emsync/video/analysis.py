"""The emotion of every scene of a video: six Ekman probabilities, valence/arousal, a
confidence, and which evidence spoke.

    from emsync.video.analysis import analyze_video
    analysis = analyze_video("film.mp4")
    for scene in analysis.scenes:
        scene.start, scene.end, scene.emotions, scene.valence, scene.arousal, scene.confidence, scene.evidence

One decode pass (`decode.SmallFrames`) feeds TransNetV2 (`shots`: the cuts), the picture
features (`picture`: every 48x27 frame), the face model (`faces`: about two 320 px frames a
second, at most FACES_PER_SCENE of them per scene, spread over it), the sound features
(`sound`: loudness and onsets of the mono 16 kHz track) and the sound-event model
(`sound_events`: YAMNet on at most 16 log-mel patches per scene, spread over it). Each
scene's evidence is then fused into one emotion and smoothed across neighbouring scenes
(`fusion`).

`analyze_ranges` reads given stretches of a file instead (a timeline clip's source range),
one fused emotion each: the edit gives the cuts, so there is no cut detection, and only
those stretches are decoded.
"""
from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from emsync.core.errors import EmsyncError
from emsync.video.fusion import (EKMAN_NAMES, NEUTRAL, Evidence, SceneEmotion, face_evidence, fuse, pooled,
                                 smooth, soft_ekman)
from emsync.video.picture import PictureTrack, picture_evidence
from emsync.video.sound import AUDIO_RATE, SoundFeatures, SoundTrack, pick_onsets, sound_evidence
from emsync.video.sound_events import MelTrack, spread

__all__ = ["AUDIO_RATE", "EKMAN_NAMES", "FACE_FPS", "FACES_PER_SCENE", "NEUTRAL", "Evidence", "PictureTrack",
           "SceneEmotion", "SoundFeatures", "SoundTrack", "SourceRange", "VideoAnalysis", "analyze_ranges",
           "analyze_video", "face_evidence", "fuse", "pick_onsets",
           "picture_evidence", "smooth", "soft_ekman", "sound_evidence"]

FACE_FPS = 2.0
FACES_PER_SCENE = 12   # a scene's face evidence is a mean: more frames of one scene add little but cost


@dataclass
class VideoAnalysis:
    path: str
    duration: float
    fps: float
    cuts: list[float]
    transitions: list[tuple[float, float]]
    scenes: list[SceneEmotion]
    has_audio: bool
    faces: str             # "used", or why not
    sound_events: str      # "used", or why not
    seconds: float         # wall time of the analysis

    @property
    def realtime_factor(self) -> float:
        return self.duration / self.seconds if self.seconds > 0 else 0.0

    @property
    def whole(self) -> SceneEmotion | None:
        """The emotion of the whole video, pooled from its scenes (`fusion.pooled`); None
        without scenes (a file shorter than a frame)."""
        return pooled(self.scenes) if self.scenes else None

    def to_dict(self) -> dict:
        whole = self.whole and {key: value for key, value in self.whole.to_dict().items()
                                if key not in ("details", "emotion_set_by_user")}
        return {"file": self.path, "duration": self.duration, "fps": self.fps, "cuts": self.cuts,
                "transitions": [list(t) for t in self.transitions], "has_audio": self.has_audio,
                "faces": self.faces, "sound_events": self.sound_events, "realtime_factor": self.realtime_factor,
                "whole": whole, "scenes": [s.to_dict() for s in self.scenes]}


@functools.lru_cache(maxsize=1)  # loaded once a process: a batch worker analyses many films
def _face_model():
    """The face model and "used", or None and why it is unavailable (analysis goes on without)."""
    try:
        from emsync.video.faces import FaceExpressions  # noqa: PLC0415

        model = FaceExpressions()
        model.predict([np.zeros((64, 64, 3), np.uint8)])   # loads the face models now, not mid-film
    except (ImportError, EmsyncError) as exc:
        return None, f"unavailable ({str(exc).splitlines()[0]})"
    return model, "used"


@functools.lru_cache(maxsize=1)
def _events_model():
    """The sound-event model and "used", or None and why it is unavailable (analysis goes on without)."""
    from emsync.video.sound_events import SoundEvents  # noqa: PLC0415

    try:
        return SoundEvents(), "used"
    except (OSError, EmsyncError) as exc:
        return None, f"unavailable ({str(exc).splitlines()[0]})"


class _Gathered:
    """What one decode pass gathers for scene emotions: picture features of every small frame,
    sound and sound-event features of the soundtrack, and face samples; then each scene's
    evidence fused (`scene`). Shared by whole videos and by timeline source ranges."""

    def __init__(self, faces: bool):
        self.model, self.face_status = _face_model() if faces else (None, "off")
        self.picture, self.sound, self.mels = PictureTrack(), SoundTrack(AUDIO_RATE), MelTrack()
        self.samples: list[tuple[float, np.ndarray]] = []
        self.heard = self.spectra = self.events = None
        self.events_status = "off"
        self.sample_times = np.zeros(0)

    def reader(self, path, **span):
        """The one decode pass feeding this evidence (`span`: SmallFrames' start= and end=)."""
        from emsync.video.decode import SmallFrames  # noqa: PLC0415
        from emsync.video.shots import HEIGHT, WIDTH  # noqa: PLC0415

        return SmallFrames(path, WIDTH, HEIGHT, on_audio=self._on_audio, audio_rate=AUDIO_RATE,
                           on_large=self._on_large if self.model else None, large_fps=FACE_FPS, **span)

    def _on_audio(self, chunk: np.ndarray) -> None:
        self.sound.feed(chunk)
        self.mels.feed(chunk)

    def _on_large(self, frame: np.ndarray, seconds: float) -> None:
        self.samples.append((seconds, frame))

    def finish(self, reader) -> None:
        """Close the sound tracks once `reader` has been read."""
        sound = self.sound
        self.heard = sound.finish(reader.audio_start) if reader.audio_start is not None and sound.samples else None
        self.events, self.events_status = _events_model()   # loaded once the file has proved readable
        self.spectra = self.mels.finish(reader.audio_start) if self.heard is not None and self.events else None
        self.sample_times = np.array([t for t, _ in self.samples])

    def scene(self, start: float, end: float, cuts, cut_rate: float | None = None) -> SceneEmotion:
        """The fused emotion of [start, end) seconds; `cuts` around it give the cut rate (unless
        `cut_rate` is given)."""
        features, frames = self.picture.features(start, end, cuts, cut_rate)
        evidence = [picture_evidence(features, frames)]
        said = self.events.hear(self.spectra, start, end) if self.spectra is not None else None
        if self.heard is not None:
            values, seconds = self.heard.features(start, end)
            if seconds:
                evidence.append(sound_evidence(values, seconds, said.features["speech"] if said else 0.0))
        if said is not None:
            evidence.append(said)
        if self.model is not None:
            times = self.sample_times
            chosen = spread(np.flatnonzero((times >= start) & (times < end)), FACES_PER_SCENE)
            seen = face_evidence(self.model.predict([self.samples[i][1] for i in chosen])) if len(chosen) else None
            if seen is not None:
                evidence.append(seen)
        return fuse(start, end, evidence)


DECODE_SHARE = 0.9  # of the progress: the decode pass (cuts, picture, sound); the rest fuses each scene (faces, events)


def analyze_video(path, threshold: float = 0.5, *, faces: bool = True, smoothing: bool = True,
                  progress: Callable[[float], None] | None = None,
                  cancel: threading.Event | None = None) -> VideoAnalysis:
    """Cuts and the emotion of every scene of a video file, from one decode pass.

    `progress(fraction)` hears how far it got: the decoded seconds of the container's
    duration up to DECODE_SHARE, then the scenes read; a set `cancel` raises Cancelled at the
    next frame or scene. Raises EmsyncError naming the file when it cannot be read or holds
    no video."""
    from emsync.core.generator import Cancelled  # noqa: PLC0415
    from emsync.video.shots import detect_cuts  # noqa: PLC0415

    began = time.perf_counter()
    gathered = _Gathered(faces)
    reader = gathered.reader(path)

    def on_frame(frame: np.ndarray, seconds: float) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        gathered.picture.add(frame, seconds)
        duration = reader.info.duration if reader.info else 0.0
        if progress is not None and duration > 0:
            progress(DECODE_SHARE * min(1.0, seconds / duration))

    shots = detect_cuts(path, threshold, reader=reader, on_frame=on_frame)
    gathered.finish(reader)
    scenes = []
    for index, (start, end) in enumerate(shots.scenes):
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        scenes.append(gathered.scene(start, end, shots.cuts))
        if progress is not None:
            progress(DECODE_SHARE + (1 - DECODE_SHARE) * (index + 1) / len(shots.scenes))
    if smoothing:
        scenes = smooth(scenes)
    return VideoAnalysis(str(path), shots.duration, shots.fps, list(shots.cuts), list(shots.transitions), scenes,
                         gathered.heard is not None, gathered.face_status, gathered.events_status,
                         time.perf_counter() - began)


@dataclass(frozen=True)
class SourceRange:
    """A stretch of a video file to read as one scene: [start, end) in the file's seconds, and
    the edit's cuts a minute around the scene (`picture.cuts_per_minute` in the edit's time:
    the edit, not the file, says how fast the picture is cut)."""

    start: float
    end: float
    cut_rate: float = 0.0


SPAN_GAP = 10.0   # seconds: ranges of one file closer than this are decoded in one pass, gap included


def analyze_ranges(path, ranges: Sequence[SourceRange], *, faces: bool = True,
                   progress: Callable[[float], None] | None = None) -> list[SceneEmotion]:
    """One fused emotion per range of a video file, no cut detection (the caller's edit gives
    the cuts). Only the ranges are decoded: ranges closer than SPAN_GAP are read in one pass,
    seeking past longer gaps, so a timeline using seconds of an hour-long take costs seconds.
    `progress(fraction)` hears the share of the ranges' seconds done.

    A range that holds no decoded frame, or whose pass could not be read, gets None; raises
    EmsyncError naming the file when no range could be read."""
    order = sorted(range(len(ranges)), key=lambda i: ranges[i].start)
    spans: list[list[int]] = []
    for index in order:
        if spans and ranges[index].start - max(ranges[i].end for i in spans[-1]) < SPAN_GAP:
            spans[-1].append(index)
        else:
            spans.append([index])
    total = sum(max(r.end - r.start, 0.0) for r in ranges) or 1.0
    done, out = 0.0, [None] * len(ranges)
    failure = None
    for span in spans:
        gathered = _Gathered(faces)
        try:
            reader = gathered.reader(path, start=ranges[span[0]].start, end=max(ranges[i].end for i in span))
            for frame, seconds in reader:
                gathered.picture.add(frame, seconds)
            gathered.finish(reader)
        except EmsyncError as exc:   # this pass only: other ranges of the file may still read
            failure = failure or exc
            continue
        times = np.asarray(reader.times)
        for index in span:
            part = ranges[index]
            if ((times >= part.start - 1e-6) & (times < part.end)).any():   # never a neighbour's frame
                out[index] = gathered.scene(part.start, part.end, (), part.cut_rate)
            done += max(part.end - part.start, 0.0)
            if progress is not None:
                progress(done / total)
    if failure is not None and all(emotion is None for emotion in out):
        raise failure
    return out
