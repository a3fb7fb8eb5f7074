"""48 kHz 24-bit PCM WAV files: writing float audio (with a gain applied on the way), reading back."""
from __future__ import annotations

import os
import wave

import numpy as np

from emsync.preview.loudness import Gain
from emsync.preview.synth import CHANNELS, SAMPLE_RATE

SAMPLE_WIDTH = 3  # bytes: 24-bit PCM
_FULL_SCALE = float(1 << 23)


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """(float32 (frames, channels) in -1..1, sample rate) of a 16/24/32-bit PCM WAV."""
    with wave.open(str(path), "rb") as reader:
        width, channels, rate = reader.getsampwidth(), reader.getnchannels(), reader.getframerate()
        raw = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.uint8)
    if width == 3:
        padded = np.zeros((len(raw) // 3, 4), dtype=np.uint8)
        padded[:, 1:] = raw.reshape(-1, 3)
        values = padded.view("<i4").ravel().astype(np.float32) / float(1 << 31)
    else:
        values = raw.view(f"<i{width}").astype(np.float32) / float(1 << (8 * width - 1))
    return values.reshape(-1, channels), rate


def write_wav(handle, audio: np.ndarray, gain: Gain | None = None, chunk: int = 1 << 18) -> None:
    """Write `audio` (float, -1..1, times `gain`) to a file name or handle, a block at a time,
    clamped below full scale."""
    with wave.open(handle, "wb") as writer:
        writer.setnchannels(CHANNELS)
        writer.setsampwidth(SAMPLE_WIDTH)
        writer.setframerate(SAMPLE_RATE)
        for start in range(0, len(audio), chunk):
            block = np.asarray(audio[start:start + chunk], dtype=np.float32)
            if gain is not None:
                block = gain.apply(block, start)
            block = np.rint(block * np.float32(_FULL_SCALE))
            ints = np.clip(block, -_FULL_SCALE, _FULL_SCALE - 1).astype("<i4")
            writer.writeframesraw(ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes())
