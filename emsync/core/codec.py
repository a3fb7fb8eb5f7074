"""Performance-event vocabulary (Music Transformer style) for five instruments.

Token layout:
    PAD, BOS
    TIME_SHIFT 1..MAX_SHIFT_STEPS steps of STEP_SECONDS
    VELOCITY bins (sent before a note-on when the bin changes)
    NOTE_ON  instrument x pitch (drums included: drums are one-shot)
    NOTE_OFF instrument x pitch (pitched instruments only)

A 10 ms step keeps every onset within 5 ms of the source, well inside the +-50 ms
that counts as "on the cut", and a 1 s maximum shift keeps silence cheap.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np

from emsync.core.music import DRUM_NOTE_SECONDS, DRUMS, INSTRUMENTS, Note

STEP_SECONDS = 0.01
MAX_SHIFT_STEPS = 100
VELOCITY_BINS = 32
N_PITCH = 128
N_INSTRUMENTS = len(INSTRUMENTS)
PITCHED = [i for i in range(N_INSTRUMENTS) if i != DRUMS]

PAD = 0
BOS = 1
SHIFT0 = 2  # token for a shift of k steps is SHIFT0 + k - 1
VEL0 = SHIFT0 + MAX_SHIFT_STEPS
ON0 = VEL0 + VELOCITY_BINS
OFF0 = ON0 + N_INSTRUMENTS * N_PITCH
VOCAB_SIZE = OFF0 + len(PITCHED) * N_PITCH


def shift_token(steps: int) -> int:
    return SHIFT0 + steps - 1


def velocity_token(velocity: int) -> int:
    return VEL0 + velocity_bin(velocity)


def velocity_bin(velocity: int) -> int:
    return min(VELOCITY_BINS - 1, max(0, int(velocity)) * VELOCITY_BINS // 128)


def bin_velocity(bin_index: int) -> int:
    return int(bin_index * 128 // VELOCITY_BINS + 128 // VELOCITY_BINS // 2)


def on_token(instrument: int, pitch: int) -> int:
    return ON0 + instrument * N_PITCH + pitch


def off_token(instrument: int, pitch: int) -> int:
    return OFF0 + PITCHED.index(instrument) * N_PITCH + pitch


def is_shift(token: int) -> bool:
    return SHIFT0 <= token < VEL0


def is_on(token: int) -> bool:
    return ON0 <= token < OFF0


def is_off(token: int) -> bool:
    return OFF0 <= token < VOCAB_SIZE


def shift_steps(token: int) -> int:
    return token - SHIFT0 + 1


def on_target(token: int) -> tuple[int, int]:
    return divmod(token - ON0, N_PITCH)


def off_target(token: int) -> tuple[int, int]:
    group, pitch = divmod(token - OFF0, N_PITCH)
    return PITCHED[group], pitch


def token_name(token: int) -> str:
    if token == PAD:
        return "PAD"
    if token == BOS:
        return "BOS"
    if is_shift(token):
        return f"SHIFT_{shift_steps(token) * STEP_SECONDS * 1000:.0f}ms"
    if VEL0 <= token < ON0:
        return f"VEL_{bin_velocity(token - VEL0)}"
    if is_on(token):
        instrument, pitch = on_target(token)
        return f"ON_{INSTRUMENTS[instrument]}_{pitch}"
    if is_off(token):
        instrument, pitch = off_target(token)
        return f"OFF_{INSTRUMENTS[instrument]}_{pitch}"
    raise ValueError(f"token {token} is outside the vocabulary (size {VOCAB_SIZE})")


def clean_notes(notes: Iterable[Note]) -> list[tuple[int, int, int, int, int]]:
    """Quantize to steps and resolve what a performance stream cannot express.

    Returns (start_step, end_step, pitch, velocity, instrument). Zero-length notes get
    one step; a same-pitch note that starts while another still sounds on the same
    instrument ends the earlier one (MIDI itself cannot tell them apart); exact
    duplicates keep the longer note. Drums keep their onset only.
    """
    by_key = defaultdict(list)
    for note in notes:
        if not 0 <= note.pitch < N_PITCH or not 0 <= note.instrument < N_INSTRUMENTS:
            continue
        start = max(0, round(note.start / STEP_SECONDS))
        end = max(start + 1, round(note.end / STEP_SECONDS))
        by_key[note.instrument, note.pitch].append([start, end, note.velocity])
    cleaned = []
    for (instrument, pitch), items in by_key.items():
        items.sort(key=lambda item: (item[0], -item[1]))
        kept = []
        for start, end, velocity in items:
            if kept and kept[-1][0] == start:
                continue  # duplicate onset: the longer one came first
            if kept and kept[-1][1] > start:
                kept[-1][1] = start
            kept.append([start, end, velocity])
        cleaned += [(s, e, pitch, v, instrument) for s, e, v in kept]
    return cleaned


def encode(notes: Iterable[Note], start_seconds: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Notes -> (tokens, seconds) where seconds[i] is the clock after token i.

    The clock starts at `start_seconds` (quantized); notes before it are ignored.
    """
    origin = round(start_seconds / STEP_SECONDS)
    events = []
    for start, end, pitch, velocity, instrument in clean_notes(notes):
        if start < origin:
            continue
        events.append((start, 1, instrument, pitch, velocity))
        if instrument != DRUMS:
            events.append((end, 0, instrument, pitch, velocity))
    events.sort()
    tokens: list[int] = []
    clocks: list[int] = []
    now = origin
    current_bin = -1
    for step, is_onset, instrument, pitch, velocity in events:
        while step > now:
            shift = min(MAX_SHIFT_STEPS, step - now)
            now += shift
            tokens.append(shift_token(shift))
            clocks.append(now)
        if is_onset:
            if velocity_bin(velocity) != current_bin:
                current_bin = velocity_bin(velocity)
                tokens.append(VEL0 + current_bin)
                clocks.append(now)
            tokens.append(on_token(instrument, pitch))
        else:
            tokens.append(off_token(instrument, pitch))
        clocks.append(now)
    return np.asarray(tokens, dtype=np.int64), np.asarray(clocks, dtype=np.float64) * STEP_SECONDS


def decode(tokens: Sequence[int], start_seconds: float = 0.0, end_seconds: float | None = None) -> list[Note]:
    """Tokens -> notes. Unreleased notes end at `end_seconds` (or the final clock)."""
    now = round(start_seconds / STEP_SECONDS)
    velocity = bin_velocity(VELOCITY_BINS * 5 // 8)
    sounding: dict[tuple[int, int], tuple[int, int]] = {}
    notes: list[Note] = []

    def release(key: tuple[int, int], step: int) -> None:
        start, vel = sounding.pop(key)
        if step > start:
            notes.append(Note(start * STEP_SECONDS, step * STEP_SECONDS, key[1], vel, key[0]))

    for token in tokens:
        token = int(token)
        if is_shift(token):
            now += shift_steps(token)
        elif VEL0 <= token < ON0:
            velocity = bin_velocity(token - VEL0)
        elif is_on(token):
            instrument, pitch = on_target(token)
            if instrument == DRUMS:
                notes.append(Note(now * STEP_SECONDS, now * STEP_SECONDS + DRUM_NOTE_SECONDS, pitch, velocity, DRUMS))
                continue
            if (instrument, pitch) in sounding:
                release((instrument, pitch), now)
            sounding[instrument, pitch] = (now, velocity)
        elif is_off(token):
            key = off_target(token)
            if key in sounding:
                release(key, now)
    final = now if end_seconds is None else max(now, round(end_seconds / STEP_SECONDS))
    for key in list(sounding):
        release(key, final)
    notes.sort()
    return notes
