"""Loudness to a documented target (EBU R128 / streaming practice).

- the mix is measured with an ITU-R BS.1770-4 meter (pyloudnorm: K-weighting, 400 ms
  blocks, absolute and relative gating) and given the static gain that brings it to
  -16 LUFS integrated;
- true peak (4x oversampled, BS.1770-4 Annex 2) is then held below -1 dBTP: where the
  gained mix would exceed it, a look-ahead peak limiter (10 ms ramps, stereo linked) turns
  those peaks down, at most 6 dB; a mix that would need more is turned down as a whole
  instead and ends up quieter than the target (the report says so);
- the stems get exactly the same gain curve as the mix (`Gain`), so they still sum to it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from emsync.preview.synth import CHANNELS, SAMPLE_RATE

TARGET_LUFS = -16.0
TRUE_PEAK_MAX_DBTP = -1.0  # the documented promise: true peak stays below this
LIMITER_CEILING_DBTP = -1.5  # where the limiter aims, leaving margin for the promise
MAX_LIMITING_DB = 6.0
LIMITER_RAMP_SECONDS = 0.010


def integrated_loudness(audio: np.ndarray) -> float:
    """ITU-R BS.1770-4 integrated loudness in LUFS (-inf for silence), via pyloudnorm."""
    import pyloudnorm

    audio = np.asarray(audio, dtype=np.float32)
    minimum = int(0.4 * SAMPLE_RATE) + 1  # one gating block; zeros fall under the absolute gate
    if len(audio) < minimum:
        audio = np.concatenate([audio, np.zeros((minimum - len(audio), audio.shape[1]), np.float32)])
    with np.errstate(divide="ignore"):
        return float(pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(audio))


_TP_BLOCK = 1024  # frames: the unit in which quiet stretches are skipped
_TP_TAPS = 49  # 4x interpolator: 12 taps per phase (BS.1770-4 Annex 2 uses 48), odd for a whole delay
_tp_filter_cache: list = []


def _tp_filter() -> np.ndarray:
    if not _tp_filter_cache:
        from scipy.signal import firwin

        # cut-off at the original Nyquist; under-reads a full-scale sine by at most 0.15 dB up to 18 kHz
        _tp_filter_cache.append((4 * firwin(_TP_TAPS, 0.25, window=("kaiser", 4.0))).astype(np.float32))
    return _tp_filter_cache[0]


def _peak_runs(audio: np.ndarray, floor: float):
    """(first frame, per-frame 4x-oversampled peak over channels) for each run of 1024-frame
    blocks whose sample peak reaches `floor`; the rest is skipped (callers pass a floor at
    least 6 dB under anything they look for: an inter-sample peak never rises that far
    above the samples around it in band-limited audio)."""
    from scipy.signal import upfirdn

    frames = len(audio)
    if frames == 0:
        return
    sample_peak = np.maximum(np.abs(audio[:, 0]), np.abs(audio[:, 1]))
    blocks = -(-frames // _TP_BLOCK)
    padded = np.zeros(blocks * _TP_BLOCK, dtype=np.float32)
    padded[:frames] = sample_peak
    hot = padded.reshape(blocks, _TP_BLOCK).max(axis=1) >= floor
    if not hot.any():
        return
    edges = np.flatnonzero(np.diff(np.concatenate([[0], hot.astype(np.int8), [0]])))
    taps = _tp_filter()
    delay = (_TP_TAPS - 1) // 2  # in oversampled samples: 24 = 6 frames
    context = 16  # frames of signal on either side, more than the filter's reach
    for first_block, end_block in zip(edges[::2], edges[1::2]):
        start, stop = first_block * _TP_BLOCK, min(frames, end_block * _TP_BLOCK)
        lo, hi = max(0, start - context), min(frames, stop + context)
        envelope = None
        for channel in range(audio.shape[1]):
            up = upfirdn(taps, np.ascontiguousarray(audio[lo:hi, channel], dtype=np.float32), 4)
            up = np.abs(up[delay + 4 * (start - lo): delay + 4 * (stop - lo)])
            per_frame = np.maximum(np.maximum(up[0::4], up[1::4]), np.maximum(up[2::4], up[3::4]))
            envelope = per_frame if envelope is None else np.maximum(envelope, per_frame)
        yield start, np.maximum(envelope, sample_peak[start:stop])


def true_peak(audio: np.ndarray) -> float:
    """True peak in dBTP (BS.1770-4 Annex 2: 4x oversampled, absolute, max over channels); -inf for silence."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    sample_peak = float(np.abs(audio).max(initial=0.0))
    if sample_peak <= 0:
        return -math.inf
    peak = max([sample_peak] + [float(env.max()) for _, env in _peak_runs(audio, sample_peak / 2)])
    return 20 * math.log10(peak)


def _limiter_gain(runs: list, frames: int, ceiling_db: float) -> tuple[np.ndarray | None, float]:
    """Per-frame gain that keeps the true peak under `ceiling_db` (None: none needed), from
    the oversampled envelope `runs` of `_peak_runs` (which must cover every frame within
    6 dB of the ceiling).

    Each over asks for ceiling/peak at its frame; a minimum over +-R frames then a moving
    average over R+1 frames turns that into 10 ms ramps that reach the asked value in time
    (every frame the average touches already holds it), so no over survives.
    """
    ceiling = 10 ** (ceiling_db / 20)
    need = None
    for start, envelope in runs:
        overs = np.flatnonzero(envelope > ceiling)
        if overs.size:
            if need is None:
                need = np.ones(frames, dtype=np.float32)
            need[start + overs] = ceiling / envelope[overs]
    if need is None:
        return None, 0.0
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ramp = max(1, round(LIMITER_RAMP_SECONDS * SAMPLE_RATE))
    gain = minimum_filter1d(need, size=2 * ramp + 1, mode="nearest")
    gain = uniform_filter1d(gain, size=ramp + 1, mode="nearest")
    gain = np.minimum(gain, need)  # float rounding of the average: never above what is asked
    return gain, -20 * math.log10(float(need.min()))


def _alongside(first, second):
    """(first(), second()), the first in a helper thread: two cores measure at once."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(first)
        other = second()
        return pending.result(), other


@dataclass
class Loudness:
    before_lufs: float  # the synthesizer's raw mix
    gain_db: float  # static gain applied to mix and stems
    limiting_db: float  # deepest peak-limiter gain reduction (0: the limiter did nothing)
    lufs: float  # the output mix, measured
    true_peak_dbtp: float  # the output mix, measured
    target_lufs: float | None
    reached: bool  # lufs within 0.5 LU of the target (True when there is no target)


@dataclass
class Gain:
    """What normalisation does to the mix, to be done identically to every stem."""

    static: float  # linear
    curve: np.ndarray | None = None  # per-frame limiter gain, or None

    def apply(self, audio: np.ndarray, start: int = 0) -> np.ndarray:
        """`audio` (frames from `start` on) times the gain, as a new float32 array."""
        if self.curve is None:
            return audio * np.float32(self.static)
        return audio * (self.curve[start:start + len(audio)] * np.float32(self.static))[:, None]


def normalise(stems: list[np.ndarray], target_lufs: float | None = TARGET_LUFS,
              frames: int | None = None) -> tuple[np.ndarray, Gain, Loudness]:
    """(mix with the gain applied, the gain for the stems, the loudness report).

    The mix is the sum of the stems. With `target_lufs` None its level is left as
    synthesized, except that a mix that would clip is turned down as a whole. `frames`: the
    length of the (silent) mix when there are no stems.
    """
    mix = np.zeros((len(stems[0]) if stems else frames or 1, CHANNELS), dtype=np.float32)
    for stem in stems:
        mix += stem
    sample_peak = float(np.abs(mix).max(initial=0.0))
    # The oversampled envelope, once, wherever it could reach the ceiling at any gain this
    # can choose (at most MAX_LIMITING_DB of limiting: the ceiling is never under the loudest
    # true peak minus 6 dB, and skipped blocks stay 6 dB under that), measured alongside the
    # loudness (scipy's filters release the GIL).
    floor = sample_peak * 10 ** (-(MAX_LIMITING_DB + 6.5) / 20)
    before, runs = _alongside(lambda: integrated_loudness(mix),
                              lambda: list(_peak_runs(mix, floor)) if target_lufs is not None else [])
    curve, limiting = None, 0.0
    if target_lufs is None or not math.isfinite(before):
        gain_db = min(0.0, -20 * math.log10(sample_peak) - 0.1) if sample_peak > 0 else 0.0
        gain = Gain(10 ** (gain_db / 20))
        mix = gain.apply(mix)
        return mix, gain, Loudness(before, gain_db, 0.0, before + gain_db, true_peak(mix), target_lufs, True)
    peak_in_db = 20 * math.log10(max([sample_peak] + [float(env.max()) for _, env in runs]))
    # Limiting peaks takes some loudness away: measure, make up the difference, limit again.
    gain_db = target_lufs - before
    for _ in range(4):
        # the limiter looks at the un-gained mix against a ceiling moved by the gain
        curve, limiting = _limiter_gain(runs, len(mix), LIMITER_CEILING_DBTP - gain_db)
        capped = limiting > MAX_LIMITING_DB
        if capped:  # too much to hide: the whole mix stays quieter instead
            gain_db -= limiting - MAX_LIMITING_DB
            curve, limiting = _limiter_gain(runs, len(mix), LIMITER_CEILING_DBTP - gain_db)
        gain = Gain(10 ** (gain_db / 20), curve)
        if curve is None:  # a plain gain: loudness and true peak move with it exactly
            out, after, peak_db = gain.apply(mix), before + gain_db, peak_in_db + gain_db
            break
        out = gain.apply(mix)
        after, peak_db = _alongside(lambda: integrated_loudness(out), lambda: true_peak(out))
        if capped or abs(after - target_lufs) <= 0.1:
            break
        gain_db += target_lufs - after
    mix = out
    if peak_db >= LIMITER_CEILING_DBTP + 0.2:  # the gain ramps made a new over
        trim = 10 ** ((LIMITER_CEILING_DBTP - peak_db) / 20)
        gain.static *= trim
        gain_db += 20 * math.log10(trim)
        after += 20 * math.log10(trim)
        mix *= np.float32(trim)
        peak_db = true_peak(mix)
    reached = target_lufs is None or (math.isfinite(after) and abs(after - target_lufs) <= 0.5)
    return mix, gain, Loudness(before, gain_db, limiting, after, peak_db, target_lufs, reached)
