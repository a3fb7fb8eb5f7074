"""The emotion of every scene of a video: six Ekman probabilities, valence/arousal, a
confidence, and which evidence spoke.

    from emsync.video.analysis import analyze_video
    analysis = analyze_video("film.mp4")
    for scene in analysis.scenes:
        scene.start, scene.end, scene.emotions, scene.valence, scene.arousal, scene.confidence, scene.evidence

One decode pass (`video.SmallFrames`) feeds TransNetV2 (cuts), the picture features (every
48x27 frame), the face model (about two 320 px frames a second) and the sound features
(mono 16 kHz). Each scene then gets up to three pieces of evidence:

faces    FER2013 expressions (`faces.FaceExpressions`), pooled over the scene's frames. The
         six Ekman probabilities map to valence/arousal as EMSYNC does: the probability-
         weighted mean of the class means in `emotions.EKMAN` (ekman_to_va.csv); the
         neutral share pulls that point towards NEUTRAL. Its confidence is the face model's.
picture  Brightness, saturation, colourfulness, warmth, motion energy and cut rate, each
         squashed to -1..1 around a typical film value (`NORMS`; saturation is chroma, which
         like the Munsell chroma Valdez & Mehrabian varied is low for dark colours), then
           valence = 0.9 * (0.69 B + 0.22 S + 0.3 C + 0.3 W) / 1.51
           arousal = 0.9 * (-0.31 B + 0.60 S + 1.0 M + 0.6 R) / 2.51
         The brightness/saturation weights are Valdez & Mehrabian's (1994) regressions of
         pleasure and arousal on colour (P = .69 B + .22 S, A = -.31 B + .60 S);
         colourfulness (Hasler & Susstrunk 2003) and warm hues read as pleasant in colour-mood
         work (Wang & Cheong 2006 use both); motion and cut rate are two of Hanjalic & Xu's
         (2005) three arousal components (motion activity, rhythm from shot length).
sound    Loudness (BS.1770 K-weighted mean power, ungated, in LUFS) and onset rate (peaks of
         the spectral flux, Dixon 2006): arousal = 0.9 * (1.0 L + 0.7 O) / 1.7 — Hanjalic &
         Xu's third component (sound energy) and Wang & Cheong's audio tempo. Sound gives no
         valence: on mixed film soundtracks (speech, effects, music) loudness and onsets say
         how much is happening, not whether it is pleasant.

Fusion: each axis is the mean of the evidence that speaks for it, weighted by confidence
times a prior (faces 1.5: a clear expression is the strongest cue; picture and sound 1.0),
plus NEUTRAL with the fixed weight NEUTRAL_WEIGHT. A scene with little or uncertain evidence
(a shot of a few frames, no sound, no face) therefore drifts towards NEUTRAL rather than towards
whatever a weak feature suggests; with picture evidence alone a scene keeps about 70 % of
its picture reading. Picture and sound reach the whole valence/arousal square (a dark
quiet scene is calm, low arousal), which the convex hull of the six Ekman means cannot
(its arousal never goes below -0.27); so the scene's valence/arousal is this fusion, and
its six probabilities mix the faces' own (by their share of the weight) with a soft
assignment of the fused point to the Ekman means (`soft_ekman`). With faces alone, the
valence/arousal is exactly the EMSYNC mapping, shrunk towards NEUTRAL by the confidence.
`confidence` is 1 - prod(1 - c) over the evidence.

Temporal smoothing: each scene's values are averaged with its two neighbours, weighted by
confidence x length (up to 8 s) and by 0.3 exp(-distance between middles / 4 s), so a
short, uncertain shot between two long ones leans towards them while long, confident
scenes hardly move. What the user sets afterwards (CLI flags, OSC; emsync.core.scenes
.with_default_emotion) replaces the result and always wins.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from emsync.core.emotions import EKMAN, MOODS, nearest_word
from emsync.core.errors import EmsyncError
from emsync.core.music import Scene

EKMAN_NAMES = tuple(EKMAN)
_EKMAN_VA = np.array([EKMAN[name] for name in EKMAN_NAMES])
NEUTRAL = MOODS["neutral"]
NEUTRAL_WEIGHT = 0.2
PRIORS = {"faces": 1.5, "picture": 1.0, "sound": 1.0}
SOFT_WIDTH = 0.35          # spread of `soft_ekman` around each Ekman mean (the CSV's stds are 0.2-0.3)
AUDIO_RATE = 16000
FACE_FPS = 2.0

# (typical film value, spread): a feature x becomes tanh((x - centre) / spread) in -1..1.
# Absolute references, not per-film ones, so a film that is dark throughout stays dark.
NORMS = {
    "brightness": (0.40, 0.15),     # mean luma 0..1 (films sit darker than photos)
    "saturation": (0.15, 0.10),     # mean chroma (max - min of RGB) 0..1
    "colourfulness": (0.15, 0.10),  # Hasler & Susstrunk M on 0..1 RGB (0.13 = their "moderately colourful")
    "warmth": (0.0, 0.12),          # mean (R - B), 0..1 RGB
    "motion": (0.015, 0.015),       # mean |luma change| per 1/25 s within the shot, 0..1, at 48x27
    "cut_rate": (12.0, 8.0),        # cuts per minute within 10 s of the scene's middle (5 s shots: 12)
    "loudness": (-28.0, 8.0),       # LUFS (ungated); broadcast programmes sit at -23
    "onset_rate": (2.0, 1.5),       # onsets per second
}
VALENCE_RULE = {"brightness": 0.69, "saturation": 0.22, "colourfulness": 0.3, "warmth": 0.3}
AROUSAL_RULE = {"brightness": -0.31, "saturation": 0.60, "motion": 1.0, "cut_rate": 0.6}
SOUND_RULE = {"loudness": 1.0, "onset_rate": 0.7}
RULE_GAIN = 0.9            # a feature at its extreme gives 0.9, leaving the corners to the editor


def _normalised(features: Mapping[str, float]) -> dict[str, float]:
    return {name: math.tanh((value - NORMS[name][0]) / NORMS[name][1]) for name, value in features.items()}


def _rule(weights: Mapping[str, float], normalised: Mapping[str, float]) -> float:
    return RULE_GAIN * sum(w * normalised[name] for name, w in weights.items()) / sum(map(abs, weights.values()))


def soft_ekman(valence: float, arousal: float) -> dict[str, float]:
    """Six probabilities from a point: Gaussian closeness to each Ekman mean. Calm, low-arousal
    points lean to sadness or joy by their valence: the six classes have no calm one."""
    d2 = (_EKMAN_VA[:, 0] - valence) ** 2 + (_EKMAN_VA[:, 1] - arousal) ** 2
    p = np.exp(-(d2 - d2.min()) / (2 * SOFT_WIDTH ** 2))
    return dict(zip(EKMAN_NAMES, (p / p.sum()).tolist()))


# ------------------------------------------------------------------ evidence

@dataclass
class Evidence:
    """What one source says about a scene; valence None: it says nothing about valence."""

    source: str                      # "faces", "picture" or "sound"
    valence: float | None
    arousal: float
    confidence: float                # 0..1
    features: dict[str, float] = field(default_factory=dict)
    emotions: dict[str, float] | None = None   # six Ekman probabilities, from the faces only

    def to_dict(self) -> dict:
        return {"valence": self.valence, "arousal": self.arousal, "confidence": self.confidence,
                "features": self.features, **({"emotions": self.emotions} if self.emotions else {})}


def picture_evidence(features: Mapping[str, float], frames: int) -> Evidence:
    """Valence/arousal from the picture features (rule in the module docstring). Confidence 0.5
    at most (colour is a weak emotion cue), less for scenes shorter than half a second."""
    normalised = _normalised(features)
    valence, arousal = _rule(VALENCE_RULE, normalised), _rule(AROUSAL_RULE, normalised)
    return Evidence("picture", valence, arousal, 0.5 * min(1.0, frames / 12), dict(features))


def sound_evidence(features: Mapping[str, float], seconds: float) -> Evidence:
    """Arousal from loudness and onset rate; confidence 0.5 at most, less under a second of sound."""
    arousal = _rule(SOUND_RULE, _normalised(features))
    return Evidence("sound", None, arousal, 0.5 * min(1.0, seconds), dict(features))


def face_evidence(evidence) -> Evidence | None:
    """EMSYNC's mapping of the face model's pooled expressions; None when no face was seen."""
    if evidence.confidence <= 0:
        return None
    emotions, neutral = evidence.ekman()
    p = np.array([emotions[name] for name in EKMAN_NAMES])
    valence, arousal = (1 - neutral) * (p @ _EKMAN_VA) + neutral * np.asarray(NEUTRAL)
    features = {"faces": evidence.faces, "frames_with_faces": evidence.frames_with_faces,
                "frames": evidence.frames, "neutral": neutral}
    return Evidence("faces", float(valence), float(arousal), float(evidence.confidence), features, dict(emotions))


# ------------------------------------------------------------------ one scene

@dataclass
class SceneEmotion:
    start: float
    end: float
    emotions: dict[str, float]       # anger, disgust, fear, joy, sadness, surprise: sums to 1
    valence: float
    arousal: float
    confidence: float
    evidence: dict[str, float]       # share of the weight each source had (with "neutral"), or {"user": 1.0}
    details: list[Evidence] = field(default_factory=list)
    user_set: bool = False

    @property
    def word(self) -> str:
        return nearest_word(self.valence, self.arousal)

    def to_scene(self) -> Scene:
        return Scene(self.start, self.end, self.valence, self.arousal, self.word, user_set=self.user_set)

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "emotions": self.emotions, "valence": self.valence,
                "arousal": self.arousal, "confidence": self.confidence, "word": self.word,
                "evidence": self.evidence, "emotion_set_by_user": self.user_set,
                "details": {e.source: e.to_dict() for e in self.details}}


def fuse(start: float, end: float, evidence: Sequence[Evidence]) -> SceneEmotion:
    """One scene's emotion from its evidence (weights and neutral drift in the module docstring)."""
    weights = {e.source: PRIORS[e.source] * e.confidence for e in evidence if e.confidence > 0}
    spoken = [e for e in evidence if e.source in weights]

    def axis(value_of, index: int) -> tuple[float, float]:
        total = NEUTRAL_WEIGHT + sum(weights[e.source] for e in spoken if value_of(e) is not None)
        mean = NEUTRAL_WEIGHT * NEUTRAL[index] + sum(weights[e.source] * value_of(e) for e in spoken
                                                     if value_of(e) is not None)
        return mean / total, total

    valence, _ = axis(lambda e: e.valence, 0)
    arousal, total = axis(lambda e: e.arousal, 1)
    emotions = soft_ekman(valence, arousal)
    faces = next((e for e in spoken if e.emotions), None)
    if faces is not None:
        share = weights["faces"] / sum(weights.values())
        emotions = {n: share * faces.emotions[n] + (1 - share) * p for n, p in emotions.items()}
    shares = {source: w / total for source, w in weights.items()}
    shares["neutral"] = NEUTRAL_WEIGHT / total
    confidence = 1.0 - math.prod(1.0 - e.confidence for e in spoken)
    return SceneEmotion(start, end, emotions, valence, arousal, confidence, shares, list(evidence))


def smooth(scenes: Sequence[SceneEmotion], strength: float = 0.3, reach: float = 4.0) -> list[SceneEmotion]:
    """Each scene averaged with its neighbours (weights in the module docstring); user-set
    scenes neither move nor pull."""
    weight = [s.confidence * min(s.end - s.start, 8.0) for s in scenes]
    out = []
    for i, scene in enumerate(scenes):
        if scene.user_set:
            out.append(scene)
            continue
        parts = [(max(weight[i], 1e-6), scene)]
        for j in (i - 1, i + 1):
            if 0 <= j < len(scenes) and not scenes[j].user_set:
                distance = abs((scenes[j].start + scenes[j].end) - (scene.start + scene.end)) / 2
                parts.append((strength * math.exp(-distance / reach) * weight[j], scenes[j]))
        total = sum(w for w, _ in parts)
        emotions = {n: sum(w * s.emotions[n] for w, s in parts) / total for n in EKMAN_NAMES}
        out.append(replace(scene, valence=sum(w * s.valence for w, s in parts) / total,
                           arousal=sum(w * s.arousal for w, s in parts) / total, emotions=emotions))
    return out


# ------------------------------------------------------------------ features from the decode pass

class PictureTrack:
    """Per-frame colour statistics and motion of the 48x27 frames, accumulated as they decode."""

    def __init__(self):
        self.rows: list[tuple[float, float, float, float, float]] = []
        self.times: list[float] = []
        self._previous: np.ndarray | None = None

    def add(self, frame: np.ndarray, seconds: float) -> None:
        rgb = frame.reshape(-1, 3).astype(np.float32) / 255.0
        r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        luma = 0.299 * r + 0.587 * g + 0.114 * b
        saturation = rgb.max(axis=1) - rgb.min(axis=1)   # chroma: dark colours are not saturated (Munsell)
        rg, yb = r - g, 0.5 * (r + g) - b                    # Hasler & Susstrunk opponent axes
        colourfulness = math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean())
        motion = 0.0
        if self._previous is not None:
            step = max(seconds - self.times[-1], 1e-3)
            motion = float(np.abs(luma - self._previous).mean()) * (1 / 25) / step  # per 1/25 s: rate-free
        self._previous = luma
        self.rows.append((float(luma.mean()), float(saturation.mean()), colourfulness, float((r - b).mean()), motion))
        self.times.append(seconds)

    def features(self, start: float, end: float, cuts: Sequence[float]) -> tuple[dict[str, float], int]:
        """Means over the scene's frames (motion within the shot only) and the cut rate around it."""
        times = np.asarray(self.times)
        first, last = np.searchsorted(times, [start - 1e-6, end - 1e-6])
        if last <= first:   # a scene shorter than a frame interval: its nearest frame
            first = min(int(np.searchsorted(times, start)), len(times) - 1)
            last = first + 1
        rows = np.asarray(self.rows[first:last])
        middle = (start + end) / 2
        low, high = max(0.0, middle - 10.0), middle + 10.0
        window = max(min(high, self.times[-1]) - low, end - start, 1e-3)
        cut_rate = 60.0 * sum(low <= c <= high for c in cuts) / max(window, 1.0)
        motion = rows[1:, 4].mean() if len(rows) > 1 else 0.0
        names = ("brightness", "saturation", "colourfulness", "warmth")
        return {**dict(zip(names, rows[:, :4].mean(axis=0).tolist())), "motion": float(motion),
                "cut_rate": cut_rate}, int(last - first)


class SoundTrack:
    """Loudness and onsets of the mono soundtrack, computed in chunks as it decodes (memory
    per hour: a few MB of per-hop values, never the samples)."""

    HOP, FFT = 512, 1024   # 32 ms hops, 64 ms windows at 16 kHz

    def __init__(self, rate: int = AUDIO_RATE):
        from pyloudnorm.iirfilter import IIRfilter  # noqa: PLC0415
        from scipy.signal import lfilter_zi  # noqa: PLC0415

        # BS.1770 K-weighting (pre-filter shelf + RLB high-pass), as pyloudnorm designs it for this rate.
        stages = (IIRfilter(4.0, 1 / math.sqrt(2), 1500.0, rate, "high_shelf"),
                  IIRfilter(0.0, 0.5, 38.0, rate, "high_pass"))
        self.filters = [(f.b, f.a, lfilter_zi(f.b, f.a) * 0.0) for f in stages]
        self.rate = rate
        self.window = np.hanning(self.FFT).astype(np.float32)
        self.power: list[np.ndarray] = []
        self.flux: list[np.ndarray] = []
        self._weighted = np.zeros(0, np.float32)
        self._raw = np.zeros(0, np.float32)
        self._spectrum: np.ndarray | None = None
        self.samples = 0

    def feed(self, samples: np.ndarray) -> None:
        from scipy.signal import lfilter  # noqa: PLC0415

        samples = np.asarray(samples, np.float32)
        self.samples += len(samples)
        weighted = samples.astype(np.float64)
        for k, (b, a, state) in enumerate(self.filters):
            weighted, state = lfilter(b, a, weighted, zi=state)
            self.filters[k] = (b, a, state)
        self._weighted = np.concatenate([self._weighted, weighted.astype(np.float32)])
        hops = len(self._weighted) // self.HOP
        if hops:
            block = self._weighted[:hops * self.HOP].reshape(hops, self.HOP)
            self.power.append((block.astype(np.float64) ** 2).mean(axis=1))
            self._weighted = self._weighted[hops * self.HOP:]
        self._raw = np.concatenate([self._raw, samples])
        if len(self._raw) >= self.FFT:
            frames = np.lib.stride_tricks.sliding_window_view(self._raw, self.FFT)[::self.HOP]
            spectra = np.log1p(100.0 * np.abs(np.fft.rfft(frames * self.window, axis=1)))  # log compression
            previous = spectra[:1] if self._spectrum is None else self._spectrum[None]
            rise = np.diff(np.concatenate([previous, spectra]), axis=0)
            self.flux.append(np.maximum(rise, 0.0).mean(axis=1))
            self._spectrum = spectra[-1]
            self._raw = self._raw[len(frames) * self.HOP:]

    def finish(self, offset: float) -> SoundFeatures:
        """Per-hop power and onset times, in seconds from the first video frame (`offset`: the
        time of the first sample)."""
        power = np.concatenate(self.power) if self.power else np.zeros(0)
        flux = np.concatenate(self.flux) if self.flux else np.zeros(0)
        hop = self.HOP / self.rate
        onsets = pick_onsets(flux) * hop + offset + self.FFT / 2 / self.rate
        return SoundFeatures(offset + (np.arange(len(power)) + 0.5) * hop, power, onsets, hop)


def pick_onsets(flux: np.ndarray, reach: int = 3, average: int = 10, ratio: float = 1.5,
                floor: float = 0.02) -> np.ndarray:
    """Indices of onsets in a spectral-flux curve (Dixon 2006 peak picking): a local maximum
    within +-`reach` hops, above `ratio` x the mean of the preceding `average` hops and above
    an absolute `floor`, so steady tones and noise give none and silence gives none."""
    if len(flux) < 3:
        return np.zeros(0, np.int64)
    padded = np.pad(flux, reach, mode="edge")
    local_max = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1).max(axis=1)
    before = np.concatenate([[flux[0]], np.cumsum(flux)])
    lead = np.maximum(np.arange(len(flux)) - average, 0)
    mean_before = (before[np.arange(len(flux))] - before[lead]) / np.maximum(np.arange(len(flux)) - lead, 1)
    mean_before[0] = flux[0]
    return np.flatnonzero((flux >= local_max) & (flux > ratio * mean_before) & (flux > floor))


@dataclass
class SoundFeatures:
    times: np.ndarray      # middle of each hop, seconds from the first video frame
    power: np.ndarray      # K-weighted mean square per hop
    onsets: np.ndarray     # seconds
    hop: float

    def features(self, start: float, end: float) -> tuple[dict[str, float], float]:
        """(loudness in LUFS and onsets per second over [start, end), seconds of sound there)."""
        inside = (self.times >= start) & (self.times < end)
        seconds = float(inside.sum()) * self.hop
        if not seconds:
            return {}, 0.0
        loudness = max(-70.0, -0.691 + 10 * math.log10(float(self.power[inside].mean()) + 1e-12))
        onsets = float(((self.onsets >= start) & (self.onsets < end)).sum())
        return {"loudness": loudness, "onset_rate": onsets / seconds}, seconds


# ------------------------------------------------------------------ a whole video

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
    seconds: float         # wall time of the analysis

    @property
    def realtime_factor(self) -> float:
        return self.duration / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {"file": self.path, "duration": self.duration, "fps": self.fps, "cuts": self.cuts,
                "transitions": [list(t) for t in self.transitions], "has_audio": self.has_audio,
                "faces": self.faces, "realtime_factor": self.realtime_factor,
                "scenes": [s.to_dict() for s in self.scenes]}


def _face_model():
    """The face model and "used", or None and why it is unavailable (analysis goes on without)."""
    try:
        from emsync.video.faces import FaceExpressions  # noqa: PLC0415

        model = FaceExpressions()
        model.predict([np.zeros((64, 64, 3), np.uint8)])   # loads OpenCV's detector now, not mid-film
    except (ImportError, EmsyncError) as exc:
        return None, f"unavailable ({str(exc).splitlines()[0]})"
    return model, "used"


def analyze_video(path, threshold: float = 0.5, *, faces: bool = True, smoothing: bool = True) -> VideoAnalysis:
    """Cuts and the emotion of every scene of a video file, from one decode pass.

    Raises EmsyncError naming the file when it cannot be read or holds no video."""
    from emsync.video.shots import HEIGHT, WIDTH, detect_cuts  # noqa: PLC0415
    from emsync.video.decode import SmallFrames  # noqa: PLC0415

    began = time.perf_counter()
    model, face_status = _face_model() if faces else (None, "off")
    picture, sound = PictureTrack(), SoundTrack(AUDIO_RATE)
    samples: list[tuple[float, np.ndarray]] = []
    reader = SmallFrames(path, WIDTH, HEIGHT, on_audio=sound.feed, audio_rate=AUDIO_RATE,
                         on_large=(lambda frame, t: samples.append((t, frame))) if model else None,
                         large_fps=FACE_FPS)
    shots = detect_cuts(path, threshold, reader=reader, on_frame=picture.add)
    heard = sound.finish(reader.audio_start) if reader.audio_start is not None and sound.samples else None
    sample_times = np.array([t for t, _ in samples])
    scenes = []
    for start, end in shots.scenes:
        features, frames = picture.features(start, end, shots.cuts)
        evidence = [picture_evidence(features, frames)]
        if heard is not None:
            values, seconds = heard.features(start, end)
            if seconds:
                evidence.append(sound_evidence(values, seconds))
        if model is not None:
            chosen = np.flatnonzero((sample_times >= start) & (sample_times < end))
            seen = face_evidence(model.predict([samples[i][1] for i in chosen])) if len(chosen) else None
            if seen is not None:
                evidence.append(seen)
        scenes.append(fuse(start, end, evidence))
    if smoothing:
        scenes = smooth(scenes)
    return VideoAnalysis(str(path), shots.duration, shots.fps, list(shots.cuts), list(shots.transitions), scenes,
                         heard is not None, face_status, time.perf_counter() - began)
