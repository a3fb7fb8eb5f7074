"""One emotion per scene from what faces, sound events, picture and sound say about it.

Each source gives an `Evidence` (valence/arousal and a confidence); `fuse` weighs them into a
`SceneEmotion` (six Ekman probabilities, valence/arousal, a confidence, which source spoke),
drifting towards NEUTRAL where evidence is thin, and `smooth` lets short, uncertain scenes
lean on their neighbours. What the user sets afterwards (CLI flags, OSC;
emsync.core.scenes.with_default_emotion) replaces the result and always wins.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from emsync.core.emotions import EKMAN, MOODS, nearest_word
from emsync.core.music import Scene

EKMAN_NAMES = tuple(EKMAN)
_EKMAN_VA = np.array([EKMAN[name] for name in EKMAN_NAMES])
NEUTRAL = MOODS["neutral"]
NEUTRAL_WEIGHT = 0.2
# A clear expression is the strongest cue, in the face or in the voice (a laugh, a sob, a
# scream: Sauter et al. 2010 find vocal bursts recognised about as well as faces); sound
# events share that prior, their confidence already discounting music and scene sounds.
PRIORS = {"faces": 1.5, "events": 1.5, "picture": 1.0, "sound": 1.0}
# `soft_ekman` reads a point by its direction from neutral, sharper the further out it lies; at
# each Ekman mean this temperature gives the spread a Gaussian of width 0.35 around the means
# gave there (the CSV's stds are 0.2-0.3): at joy's mean 0.66 joy, 0.34 surprise.
CIRCUMPLEX_TEMPERATURE = 0.15
_EKMAN_DIRECTIONS = _EKMAN_VA / np.linalg.norm(_EKMAN_VA, axis=1, keepdims=True)
# Faces are read in context (Aviezer et al. 2008; Barrett, Mesquita & Gendron 2011: the same
# face is seen as joyful or fearful by what surrounds it), and a face in a home video is often
# not the scene's emotion (a grin at a frightening moment, a smile for the camera). So the
# faces' weight falls with their distance in valence/arousal from what the other sources agree
# on, the more so the more of the weight those others hold (see `temper_faces`). At this
# distance, half the gap between joy and fear, a face facing equal other weight keeps half.
FACE_DISAGREEMENT = 0.7
RULE_GAIN = 0.9            # a feature at its extreme gives 0.9, leaving the corners to the editor


def as_shown(value: float) -> float:
    """An analysed valence or arousal as the music gets it: to the hundredth that markers and
    listings show. The models' last bits differ between CPUs (int8 kernels round by instruction
    set), and the same video and seed should give the same music on any machine, but for a
    value on a rounding edge."""
    return round(float(value), 2)


def squash(features: Mapping[str, float], norms: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Each feature x as tanh((x - centre) / spread) in -1..1, (centre, spread) from `norms`."""
    return {name: math.tanh((value - norms[name][0]) / norms[name][1]) for name, value in features.items()}


def rule(weights: Mapping[str, float], normalised: Mapping[str, float]) -> float:
    """RULE_GAIN x the weighted mean of squashed features, the weights' magnitudes summing to 1."""
    return RULE_GAIN * sum(w * normalised[name] for name, w in weights.items()) / sum(map(abs, weights.values()))


def soft_ekman(valence: float, arousal: float) -> dict[str, float]:
    """Six probabilities from a point of the valence/arousal square, read as the circumplex
    reads it (Russell 1980): the direction from neutral names the emotion, the distance says
    how strongly it is felt. Each class's logit is the point's projection on the direction of
    its mean, over CIRCUMPLEX_TEMPERATURE, so the classes part more the further out the point
    lies and a point at neutral gives all six alike.

    Distance to each mean, the rule before this one, wronged the classes furthest from neutral:
    fused points are pulled towards neutral (NEUTRAL_WEIGHT, weak cues), and points half-way
    from neutral to anger's or fear's mean lay nearest disgust's, one half-way to joy's nearer
    surprise's, and calm pleasant points nearer sadness than joy. Along one direction the top
    class no longer changes with intensity. Anger and fear lie 6 degrees apart, so valence and
    arousal alone part them little: faces and sounds that name them decide."""
    logits = _EKMAN_DIRECTIONS @ np.array([valence, arousal]) / CIRCUMPLEX_TEMPERATURE
    p = np.exp(logits - logits.max())
    return dict(zip(EKMAN_NAMES, (p / p.sum()).tolist()))


@dataclass
class Evidence:
    """What one source says about a scene; valence None: it says nothing about valence."""

    source: str                      # "faces", "events", "picture" or "sound"
    valence: float | None
    arousal: float
    confidence: float                # 0..1
    features: dict[str, float] = field(default_factory=dict)
    emotions: dict[str, float] | None = None   # six Ekman probabilities, from faces and sound events
    spoke: dict[str, float] | None = None      # sound events: the classes that moved it, mean scores
    heard: dict[str, float] | None = None      # sound events: the loudest classes, whatever they say

    def to_dict(self) -> dict:
        named = {key: value for key in ("emotions", "spoke", "heard") if (value := getattr(self, key)) is not None}
        return {"valence": self.valence, "arousal": self.arousal, "confidence": self.confidence,
                "features": self.features, **named}


def face_evidence(evidence) -> Evidence | None:
    """The face model's pooled expressions (`faces.FaceEvidence`) as evidence; None when no face
    was seen. The six Ekman probabilities map to valence/arousal by the class means in
    `emotions.EKMAN` (ekman_to_va.csv), as EMSYNC maps its classifier's, but each class counts
    by how far it stands above chance (1/6), scaled so that a face read as one class for sure
    lands on its mean: sum_k max(p_k - 1/6, 0) x mean_k / (5/6). EMSYNC's plain
    probability-weighted mean reads the classifier's doubt as displeasure, four of the six
    means being negative: six equal probabilities gave valence -0.20, arousal +0.40, which a
    clearly seen but ambiguous face then pressed on its scene at full confidence (on a real
    music video, 49 of 74 scenes' faces read negative against 17 positive; 25 had joy on
    top). Here doubt reads as neutral. The neutral share then pulls the point towards
    NEUTRAL. Its confidence is the face model's."""
    if evidence.confidence <= 0:
        return None
    emotions, neutral = evidence.ekman()
    p = np.array([emotions[name] for name in EKMAN_NAMES])
    above_chance = np.maximum(p - 1 / len(p), 0.0) / (1 - 1 / len(p))
    valence, arousal = (1 - neutral) * (above_chance @ _EKMAN_VA) + neutral * np.asarray(NEUTRAL)
    features = {"faces": evidence.faces, "frames_with_faces": evidence.frames_with_faces,
                "frames": evidence.frames, "neutral": neutral}
    return Evidence("faces", float(valence), float(arousal), float(evidence.confidence), features, dict(emotions))


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
        """The mood word of the values `as_shown`, the word the music's scene gets (`to_scene`)."""
        return nearest_word(as_shown(self.valence), as_shown(self.arousal))

    @property
    def decided_by(self) -> str:
        """The source with the largest share of the weight ("neutral" when none spoke louder)."""
        return max(self.evidence, key=self.evidence.get) if self.evidence else "neutral"

    def to_scene(self) -> Scene:
        """The scene the music follows, its valence and arousal `as_shown`."""
        return Scene(self.start, self.end, as_shown(self.valence), as_shown(self.arousal), self.word,
                     user_set=self.user_set)

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "emotions": self.emotions, "valence": self.valence,
                "arousal": self.arousal, "confidence": self.confidence, "word": self.word,
                "evidence": self.evidence, "decided_by": self.decided_by, "emotion_set_by_user": self.user_set,
                "details": {e.source: e.to_dict() for e in self.details}}


def temper_faces(weights: dict[str, float], evidence: Sequence[Evidence]) -> float:
    """The factor (0..1] on the faces' weight: 1 / (1 + (d / FACE_DISAGREEMENT)^2 x r), with d
    the distance between the faces' valence/arousal and the other sources' weighted mean (over
    the axes both speak for) and r the others' share of the faces' and others' weight. 1 when
    no face or nothing else speaks."""
    faces = next((e for e in evidence if e.source == "faces" and e.source in weights), None)
    others = [e for e in evidence if e.source != "faces" and e.source in weights]
    if faces is None or not others:
        return 1.0
    gaps = []
    for value_of in (lambda e: e.valence, lambda e: e.arousal):
        speaking = [e for e in others if value_of(e) is not None]
        if speaking and value_of(faces) is not None:
            mean = sum(weights[e.source] * value_of(e) for e in speaking) / sum(weights[e.source] for e in speaking)
            gaps.append(value_of(faces) - mean)
    other_weight = sum(weights[e.source] for e in others)
    share = other_weight / (other_weight + weights["faces"])
    return 1.0 / (1.0 + (math.hypot(*gaps) / FACE_DISAGREEMENT) ** 2 * share)


def fuse(start: float, end: float, evidence: Sequence[Evidence]) -> SceneEmotion:
    """One scene's emotion from its evidence.

    Each axis is the mean of the evidence that speaks for it, weighted by confidence times a
    prior (PRIORS: faces and sound events 1.5, picture and sound 1.0), plus NEUTRAL with the
    fixed weight NEUTRAL_WEIGHT. A scene with little or uncertain evidence (a shot of a few frames, no
    sound, no face) therefore drifts towards NEUTRAL rather than towards whatever a weak
    feature suggests; with picture evidence alone a scene keeps about 70 % of its picture
    reading. Picture and sound reach the whole valence/arousal square (a dark quiet scene is
    calm, low arousal), which the convex hull of the six Ekman means cannot (its arousal never
    goes below -0.27); so the scene's valence/arousal is this fusion, and its six
    probabilities mix the faces' and sound events' own (each by its share of the weight) with
    a soft reading of the fused point's direction (`soft_ekman`). With faces alone,
    the valence/arousal is the faces' point (`face_evidence`), shrunk towards NEUTRAL by the
    confidence. Faces that disagree with the rest are tempered first (`temper_faces`); the
    factor is kept in the faces' features ("tempered"). `confidence` is 1 - prod(1 - c) over
    the evidence; `decided_by` names the source with the largest share of the weight."""
    weights = {e.source: PRIORS[e.source] * e.confidence for e in evidence if e.confidence > 0}
    if "faces" in weights:
        factor = temper_faces(weights, evidence)
        weights["faces"] *= factor
        next(e for e in evidence if e.source == "faces").features["tempered"] = round(factor, 3)
    spoken = [e for e in evidence if e.source in weights]

    def axis(value_of, index: int) -> tuple[float, float]:
        total = NEUTRAL_WEIGHT + sum(weights[e.source] for e in spoken if value_of(e) is not None)
        mean = NEUTRAL_WEIGHT * NEUTRAL[index] + sum(weights[e.source] * value_of(e) for e in spoken
                                                     if value_of(e) is not None)
        return mean / total, total

    valence, _ = axis(lambda e: e.valence, 0)
    arousal, total = axis(lambda e: e.arousal, 1)
    emotions = soft_ekman(valence, arousal)
    named = [(weights[e.source] / sum(weights.values()), e.emotions) for e in spoken if e.emotions]
    rest = 1.0 - sum(share for share, _ in named)
    emotions = {n: rest * p + sum(share * own[n] for share, own in named) for n, p in emotions.items()}
    shares = {source: w / total for source, w in weights.items()}
    shares["neutral"] = NEUTRAL_WEIGHT / total
    confidence = 1.0 - math.prod(1.0 - e.confidence for e in spoken)
    return SceneEmotion(start, end, emotions, valence, arousal, confidence, shares, list(evidence))


def pooled(scenes: Sequence[SceneEmotion]) -> SceneEmotion:
    """One emotion for the whole stretch the scenes cover: what a library tags a clip with and
    what "is this video sad?" asks. Each scene counts by its length times its confidence (a
    long scene read surely outweighs a flash; length alone where no scene is sure), for its
    valence/arousal, its six probabilities and its sources' shares, so `decided_by` names
    the source that carried most of the video. The confidence is the scenes' length-weighted
    mean. Raises ValueError for no scenes."""
    if not scenes:
        raise ValueError("no scenes to pool")
    lengths = np.array([max(s.end - s.start, 0.0) for s in scenes]) + 1e-9
    weights = lengths * np.array([s.confidence for s in scenes])
    if weights.sum() <= 1e-9:
        weights = lengths
    weights = weights / weights.sum()

    def mean(value_of) -> float:
        return float(sum(w * value_of(s) for w, s in zip(weights, scenes)))

    sources = {source for s in scenes for source in s.evidence}
    return SceneEmotion(scenes[0].start, scenes[-1].end, {n: mean(lambda s: s.emotions[n]) for n in EKMAN_NAMES},
                        mean(lambda s: s.valence), mean(lambda s: s.arousal),
                        float(lengths @ [s.confidence for s in scenes] / lengths.sum()),
                        dict(sorted(((source, mean(lambda s: s.evidence.get(source, 0.0))) for source in sources),
                                    key=lambda item: -item[1])))


def smooth(scenes: Sequence[SceneEmotion], strength: float = 0.3, reach: float = 4.0) -> list[SceneEmotion]:
    """Each scene's values averaged with its two neighbours, weighted by confidence x length
    (up to 8 s) and by `strength` x exp(-distance between middles / `reach` seconds), so a
    short, uncertain shot between two long ones leans towards them while long, confident
    scenes hardly move. User-set scenes neither move nor pull."""
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
