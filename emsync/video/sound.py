"""What the soundtrack says about a scene's emotion: how loud and how busy it is.

`SoundTrack` takes the mono soundtrack in chunks as it decodes and keeps only per-hop
loudness and spectral flux; `finish` gives `SoundFeatures`, whose `features` sums up one
scene (loudness, onset rate), and `sound_evidence` turns those into arousal.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from emsync.video.fusion import Evidence, rule, squash

AUDIO_RATE = 16000

# (typical film value, spread), as the picture's NORMS: a feature x becomes tanh((x - centre) / spread).
NORMS = {
    "loudness": (-28.0, 8.0),       # LUFS (ungated); broadcast programmes sit at -23
    "onset_rate": (2.0, 1.5),       # onsets per second
}
SOUND_RULE = {"loudness": 1.0, "onset_rate": 0.7}


def sound_evidence(features: Mapping[str, float], seconds: float, speech: float = 0.0) -> Evidence:
    """Arousal from loudness L and onset rate O, squashed as NORMS says:

        arousal = 0.9 * (1.0 L + 0.7 O) / 1.7

    Hanjalic & Xu's (2005) third arousal component (sound energy) and Wang & Cheong's (2006)
    audio tempo. Sound gives no valence: on mixed film soundtracks (speech, effects, music)
    loudness and onsets say how much is happening, not whether it is pleasant. Confidence 0.5
    at most, less under a second of sound, times 1 - `speech` (the share of the scene that
    is talk, from the sound-event model): where people talk, loudness and onsets measure the
    talking, its syllables and the phone's gain, not the scene's energy. Plain synthetic
    speech at a phone video's level (-24 LUFS, 3.7 onsets a second) reads arousal +0.56 here
    (`python benchmarks/probe_speech.py`); a shout, a scream or a laugh is heard by the event
    model, which says what it means."""
    arousal = rule(SOUND_RULE, squash(features, NORMS))
    confidence = 0.5 * min(1.0, seconds) * (1.0 - min(max(speech, 0.0), 1.0))
    return Evidence("sound", None, arousal, confidence, {**features, "speech": speech})


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
        """(loudness in LUFS and onsets per second over [start, end), seconds of sound there):
        loudness as BS.1770 K-weighted mean power, ungated; onsets are peaks of the spectral
        flux (`pick_onsets`)."""
        inside = (self.times >= start) & (self.times < end)
        seconds = float(inside.sum()) * self.hop
        if not seconds:
            return {}, 0.0
        loudness = max(-70.0, -0.691 + 10 * math.log10(float(self.power[inside].mean()) + 1e-12))
        onsets = float(((self.onsets >= start) & (self.onsets < end)).sum())
        return {"loudness": loudness, "onset_rate": onsets / seconds}, seconds
