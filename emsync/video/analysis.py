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
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np

from emsync.core.errors import EmsyncError
from emsync.video.fusion import (EKMAN_NAMES, NEUTRAL, Evidence, SceneEmotion, face_evidence, fuse, smooth,
                                 soft_ekman)
from emsync.video.picture import PictureTrack, picture_evidence
from emsync.video.sound import AUDIO_RATE, SoundFeatures, SoundTrack, pick_onsets, sound_evidence
from emsync.video.sound_events import MelTrack, spread

__all__ = ["AUDIO_RATE", "EKMAN_NAMES", "FACE_FPS", "FACES_PER_SCENE", "NEUTRAL", "Evidence", "PictureTrack",
           "SceneEmotion", "SoundFeatures", "SoundTrack", "VideoAnalysis", "analyze_video", "face_evidence", "fuse", "pick_onsets",
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

    def to_dict(self) -> dict:
        return {"file": self.path, "duration": self.duration, "fps": self.fps, "cuts": self.cuts,
                "transitions": [list(t) for t in self.transitions], "has_audio": self.has_audio,
                "faces": self.faces, "sound_events": self.sound_events, "realtime_factor": self.realtime_factor,
                "scenes": [s.to_dict() for s in self.scenes]}


@functools.lru_cache(maxsize=1)  # loaded once a process: a batch worker analyses many films
def _face_model():
    """The face model and "used", or None and why it is unavailable (analysis goes on without)."""
    try:
        from emsync.video.faces import FaceExpressions  # noqa: PLC0415

        model = FaceExpressions()
        model.predict([np.zeros((64, 64, 3), np.uint8)])   # loads OpenCV's detector now, not mid-film
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


def analyze_video(path, threshold: float = 0.5, *, faces: bool = True, smoothing: bool = True) -> VideoAnalysis:
    """Cuts and the emotion of every scene of a video file, from one decode pass.

    Raises EmsyncError naming the file when it cannot be read or holds no video."""
    from emsync.video.shots import HEIGHT, WIDTH, detect_cuts  # noqa: PLC0415
    from emsync.video.decode import SmallFrames  # noqa: PLC0415

    began = time.perf_counter()
    model, face_status = _face_model() if faces else (None, "off")
    picture, sound, mels = PictureTrack(), SoundTrack(AUDIO_RATE), MelTrack()

    def on_audio(chunk: np.ndarray) -> None:
        sound.feed(chunk)
        mels.feed(chunk)

    samples: list[tuple[float, np.ndarray]] = []
    reader = SmallFrames(path, WIDTH, HEIGHT, on_audio=on_audio, audio_rate=AUDIO_RATE,
                         on_large=(lambda frame, t: samples.append((t, frame))) if model else None,
                         large_fps=FACE_FPS)
    shots = detect_cuts(path, threshold, reader=reader, on_frame=picture.add)
    heard = sound.finish(reader.audio_start) if reader.audio_start is not None and sound.samples else None
    events, events_status = _events_model()   # loaded once the file has proved readable
    spectra = mels.finish(reader.audio_start) if heard is not None and events is not None else None
    sample_times = np.array([t for t, _ in samples])
    scenes = []
    for start, end in shots.scenes:
        features, frames = picture.features(start, end, shots.cuts)
        evidence = [picture_evidence(features, frames)]
        if heard is not None:
            values, seconds = heard.features(start, end)
            if seconds:
                evidence.append(sound_evidence(values, seconds))
        if spectra is not None and (said := events.hear(spectra, start, end)) is not None:
            evidence.append(said)
        if model is not None:
            chosen = spread(np.flatnonzero((sample_times >= start) & (sample_times < end)), FACES_PER_SCENE)
            seen = face_evidence(model.predict([samples[i][1] for i in chosen])) if len(chosen) else None
            if seen is not None:
                evidence.append(seen)
        scenes.append(fuse(start, end, evidence))
    if smoothing:
        scenes = smooth(scenes)
    return VideoAnalysis(str(path), shots.duration, shots.fps, list(shots.cuts), list(shots.transitions), scenes,
                         heard is not None, face_status, events_status, time.perf_counter() - began)
