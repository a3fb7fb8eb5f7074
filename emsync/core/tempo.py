"""A tempo map fitted to the picture, as a film composer makes one before writing a cue.

The map is a list of constant-tempo segments in one meter. `fit_to_picture` chooses it so
that the cuts (and hits) land on beats, on bar lines where it can, at a tempo that suits the
scene's arousal, with few and small tempo changes:

- each scene prefers `preferred_bpm(arousal)`: 100 quarter notes a minute at neutral arousal,
  71 when calm (-1), 141 when excited (+1), never outside BPM_RANGE;
- a segment runs from one cut to a later one and holds a whole number of beats, so the later
  cut lands on a beat; cuts inside it land where the tempo puts them (counted as hit when
  within ON_BEAT seconds of a beat). Every segment ends on a cut, except the last;
- the choice minimises, by dynamic programming over the cuts: the squared log-distance of each
  segment's tempo from its scenes' preference, a price for each tempo change growing with its
  size (changes over MAX_CHANGE are not allowed), a price for each cut missed, and a smaller
  one for a cut on a beat that is not a bar line.

The trade-off between hitting cuts and a steady tempo is in those prices: a cut is worth a
tempo change of about 10 %, so two cuts a few seconds apart whose distance is no whole number
of beats at a good tempo cost a change, while a quick cut between two others is left off the
beat rather than jerking the tempo. `TempoMap.constant` is the map of a fixed `--bpm` (cuts
land wherever they fall) or of a host's tempo.

Tempos are quarter notes per minute (what MIDI files store); the beat is the meter's unit
(a quarter in 4/4 and 3/4, an eighth in 6/8).
"""
from __future__ import annotations

import math
import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from emsync.core.conditions import grid_points
from emsync.core.errors import EmsyncError
from emsync.core.music import Note

BPM_RANGE = (50.0, 180.0)
ON_BEAT = 0.03  # seconds: a cut this close to a beat is on it
MAX_CHANGE = 1.3  # largest tempo ratio between neighbouring segments
MIN_SEGMENT = 1.0  # seconds: cuts closer than this to the last anchor are not anchors
MAX_SPAN = 8  # cuts one segment may run across
BEAM = 96  # states kept per cut
SAME_TEMPO = 1e-9  # |log2 ratio| under which two tempos are one (merging anything wider moves beats)
TEMPO_WEIGHT, CHANGE_PRICE, CHANGE_WEIGHT, MISS_PRICE, OFF_BAR_PRICE = 6.0, 1.0, 6.0, 3.0, 0.3


@dataclass(frozen=True)
class Meter:
    beats: int = 4  # beats to the bar
    unit: int = 4  # the note value of a beat: 4 a quarter, 8 an eighth

    @classmethod
    def parse(cls, text: str, field: str = "meter") -> "Meter":
        match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{1,2})\s*", str(text))
        if not match:
            raise EmsyncError(f"{field}: expected a time signature such as 4/4, 3/4 or 6/8, got {text!r}")
        beats, unit = int(match.group(1)), int(match.group(2))
        if not 1 <= beats <= 16 or unit not in (2, 4, 8, 16):
            raise EmsyncError(f"{field}: {beats}/{unit} is not a meter emsync writes (1-16 beats of a 2, 4, 8 "
                              "or 16 note)")
        return cls(beats, unit)

    @property
    def quarters_per_beat(self) -> float:
        return 4.0 / self.unit

    def __str__(self) -> str:
        return f"{self.beats}/{self.unit}"


@dataclass(frozen=True)
class TempoMap:
    """Constant-tempo segments: segment k starts at `starts[k]` seconds and runs at `bpms[k]`
    quarter notes a minute until the next one. Beat 0 is a downbeat at 0 s."""

    starts: tuple[float, ...]
    bpms: tuple[float, ...]
    meter: Meter = Meter()

    def __post_init__(self):
        if not self.starts or self.starts[0] != 0.0 or len(self.starts) != len(self.bpms):
            raise ValueError("a tempo map starts at 0 s with one tempo per segment")
        quarters = [0.0]
        for k in range(1, len(self.starts)):
            quarters.append(quarters[-1] + (self.starts[k] - self.starts[k - 1]) * self.bpms[k - 1] / 60.0)
        object.__setattr__(self, "_quarters", tuple(quarters))

    @classmethod
    def constant(cls, bpm: float, meter: Meter = Meter()) -> "TempoMap":
        if not (math.isfinite(bpm) and 20.0 <= bpm <= 400.0):
            raise EmsyncError(f"bpm: {bpm} is outside [20, 400]")
        return cls((0.0,), (float(bpm),), meter)

    def quarters_at(self, seconds: float) -> float:
        """Quarter notes from the start to `seconds`."""
        k = max(0, bisect_right(self.starts, seconds) - 1)
        return self._quarters[k] + (seconds - self.starts[k]) * self.bpms[k] / 60.0

    def seconds_at(self, quarters: float) -> float:
        k = max(0, bisect_right(self._quarters, quarters) - 1)
        return self.starts[k] + (quarters - self._quarters[k]) * 60.0 / self.bpms[k]

    def beats_at(self, seconds: float) -> float:
        return self.quarters_at(seconds) / self.meter.quarters_per_beat

    def grid(self, until: float, per_beat: int | None = None) -> np.ndarray:
        """Times in seconds of every 1/`per_beat` of a beat up to `until` (16th notes by default)."""
        step = self.meter.quarters_per_beat / (per_beat or self.subdivisions)
        count = int(math.floor(self.quarters_at(until) / step + 1e-9)) + 1
        return np.array([self.seconds_at(i * step) for i in range(count)])

    def beat_times(self, until: float) -> np.ndarray:
        return self.grid(until, per_beat=1)

    def bar_times(self, until: float) -> np.ndarray:
        return self.beat_times(until)[::self.meter.beats]

    def grid_points(self, until: float) -> tuple[np.ndarray, np.ndarray]:
        """(times, slot in the bar) of the 16th notes up to `until`: what the generator hears."""
        beats = self.beat_times(until + 60.0 / min(self.bpms) * self.meter.quarters_per_beat)
        return grid_points(beats, np.arange(len(beats)) % self.meter.beats == 0, self.subdivisions)

    @property
    def subdivisions(self) -> int:
        """Grid points per beat: 16th notes."""
        return max(1, 16 // self.meter.unit)

    def to_dict(self) -> dict:
        return {"starts": list(self.starts), "bpms": list(self.bpms), "meter": str(self.meter)}

    @classmethod
    def from_dict(cls, data: dict, field: str = "tempo") -> "TempoMap":
        try:
            starts, bpms = tuple(float(s) for s in data["starts"]), tuple(float(b) for b in data["bpms"])
            meter = Meter.parse(data.get("meter", "4/4"), f"{field}.meter")
            if not all(math.isfinite(b) and 20.0 <= b <= 400.0 for b in bpms) or list(starts) != sorted(set(starts)):
                raise ValueError("tempos outside 20-400 bpm or starts out of order")
            return cls(starts, bpms, meter)
        except (KeyError, TypeError, ValueError) as exc:
            raise EmsyncError(f"{field}: not a tempo map ({exc})") from None

    def snap(self, notes: Sequence[Note], until: float, also: Sequence[float] = ()) -> list[Note]:
        """`notes` moved onto the grid, as a DAW's quantize at full strength: every onset and
        release to the nearest 16th note up to `until` (or to an instant of `also`, such as a
        cut off the grid, or `until` itself); a note lasts at least a 16th where the music
        goes on that long, a note struck twice at one point sounds once, and notes that would
        start at `until` are dropped."""
        grid = self.grid(until)
        sixteenth = 60.0 / max(self.bpms) * self.meter.quarters_per_beat / self.subdivisions
        extra = [t for t in (*also, until) if t <= until + 1e-9 and np.min(np.abs(grid - t)) > sixteenth / 4]
        points = np.union1d(grid[grid <= until + 1e-9], np.asarray(extra, dtype=np.float64))

        def nearest(times: np.ndarray) -> np.ndarray:
            index = np.clip(np.searchsorted(points, times), 1, len(points) - 1)
            left, right = points[index - 1], points[index]
            return np.where(times - left <= right - times, index - 1, index)

        if not notes:
            return []
        starts = nearest(np.array([n.start for n in notes]))
        ends = nearest(np.array([n.end for n in notes]))
        snapped, seen = [], set()
        for note, first, last in zip(notes, starts, ends):
            key = (note.instrument, note.pitch, int(first))
            if key in seen or first == len(points) - 1:
                continue
            seen.add(key)
            snapped.append(Note(float(points[first]), float(points[max(last, first + 1)]), note.pitch,
                                note.velocity, note.instrument))
        return sorted(snapped)

    def changes(self) -> list[tuple[float, float]]:
        """(seconds, bpm) of every tempo event, the first at 0 s."""
        return list(zip(self.starts, self.bpms))


def preferred_bpm(arousal: float) -> float:
    """The tempo a scene of this arousal asks for (quarter notes a minute)."""
    return float(np.clip(100.0 * 2.0 ** (0.5 * float(arousal)), *BPM_RANGE))


def _anchors(duration: float, cuts: Sequence[float]) -> list[float]:
    anchors = []
    for cut in sorted(float(c) for c in cuts if 0 < c < duration):
        if cut - (anchors[-1] if anchors else 0.0) >= MIN_SEGMENT:
            anchors.append(cut)
    return anchors


def _preference(curve, start: float, end: float) -> float:
    """The mean preferred tempo (in log) over [start, end), from the arousal curve."""
    times = np.linspace(start, end, 9)
    arousal = curve.at(times)[:, 1] if curve is not None else np.zeros(len(times))
    return float(2.0 ** np.mean([math.log2(preferred_bpm(a)) for a in arousal]))


def fit_to_picture(duration: float, cuts: Sequence[float], curve=None, meter: Meter = Meter()) -> TempoMap:
    """The tempo map for a cue of `duration` seconds whose cuts (and hits) should land on beats,
    following the arousal of `curve` (an EmotionCurve; None: neutral). See the module docstring."""
    anchors = _anchors(duration, cuts)
    points = [0.0, *anchors]
    bar = meter.beats
    q_per_beat = meter.quarters_per_beat
    # state at a point: (phase in beats mod bar, bpm of the segment that ends there) -> (cost, backpointer)
    states: list[dict] = [{(0, 0.0): (0.0, None)}]
    for j in range(1, len(points)):
        found: dict = {}
        for i in range(max(0, j - MAX_SPAN), j):
            length = points[j] - points[i]
            if not states[i] or (length > 40.0 and j - i > 1):
                continue
            want = _preference(curve, points[i], points[j])
            low, high = max(BPM_RANGE[0], want / MAX_CHANGE), min(BPM_RANGE[1], want * MAX_CHANGE)
            counts = np.arange(max(1, math.ceil(low * length / 60.0 / q_per_beat)),
                               math.floor(high * length / 60.0 / q_per_beat) + 1)
            if counts.size:
                _extend(found, states[i], i, counts, 60.0 * counts * q_per_beat / length,
                        TEMPO_WEIGHT * np.log2(60.0 * counts * q_per_beat / length / want) ** 2
                        * min(length, 10.0) / 10.0, _inner_prices(points[i + 1:j], points[i], counts, length, meter),
                        bar)
        states.append(dict(sorted(found.items(), key=lambda item: item[1][0])[:BEAM]))
    # The last segment, from the last point to the end: no cut to land, so keep the tempo or
    # take the preference (whole bpm), whichever costs less; cuts in it land where they fall.
    best, best_cost = None, math.inf
    for i in range(max(0, len(points) - MAX_SPAN), len(points)):
        want, length = _preference(curve, points[i], duration), duration - points[i]
        tempos = sorted(({previous for _, previous in states[i]} | {float(round(want))}) - {0.0})
        inner = dict(zip(tempos, _inner_prices(points[i + 1:], points[i], np.array(tempos) * length / 60.0 / q_per_beat,
                                               length, meter)))
        for (phase, previous), (cost, _) in states[i].items():
            for bpm in {previous, float(round(want))} - {0.0}:
                ratio = abs(math.log2(bpm / previous)) if previous else 0.0
                if ratio > math.log2(MAX_CHANGE):
                    continue
                total = (cost + TEMPO_WEIGHT * math.log2(bpm / want) ** 2 * min(length, 10.0) / 10.0
                         + (CHANGE_PRICE + CHANGE_WEIGHT * ratio if ratio >= SAME_TEMPO else 0.0)
                         + inner[bpm][phase])
                if total < best_cost:
                    best, best_cost = (i, phase, previous, bpm), total
    segments = []  # (start seconds, bpm), from the end back
    i, phase, previous, bpm = best
    segments.append((points[i], bpm))
    while i > 0:
        _, (i_prev, phase_prev, previous_prev, n) = states[i][(phase, previous)]
        segments.append((points[i_prev], previous))
        i, phase, previous = i_prev, phase_prev, previous_prev
    segments.reverse()
    merged = [segments[0]]
    for start, value in segments[1:]:
        if abs(math.log2(value / merged[-1][1])) >= SAME_TEMPO:
            merged.append((start, value))
    return TempoMap(tuple(s for s, _ in merged), tuple(b for _, b in merged), meter)


def _extend(found: dict, state: dict, i: int, counts: np.ndarray, bpms: np.ndarray, tempo_costs: np.ndarray,
            inner: np.ndarray, bar: int) -> None:
    """Into `found`, the cheapest way to reach the next point from each of `state`'s entries (at
    point i) with a segment of counts[k] beats at bpms[k]; one entry per (phase, bpm) there, the
    earliest-found of equal costs kept."""
    keys = list(state)
    phase = np.array([k[0] for k in keys])
    previous = np.array([k[1] for k in keys])
    cost = np.array([state[k][0] for k in keys])
    with np.errstate(divide="ignore"):
        ratio = np.abs(np.log2(bpms[:, None] / previous[None, :]))  # (tempos, states); inf from no tempo yet
    first = previous[None, :] == 0.0
    change = np.where(first | (ratio < SAME_TEMPO), 0.0, CHANGE_PRICE + CHANGE_WEIGHT * ratio)
    landing = (phase[None, :] + counts[:, None]) % bar
    total = (cost[None, :] + tempo_costs[:, None] + inner[:, phase] + change
             + np.where(landing != 0, OFF_BAR_PRICE, 0.0))
    tempo, entry = np.nonzero(first | (ratio <= math.log2(MAX_CHANGE)))
    group = tempo * bar + landing[tempo, entry]
    order = np.lexsort((entry, total[tempo, entry], group))  # by group, then cost, then state order
    leaders = order[np.r_[True, group[order][1:] != group[order][:-1]]] if order.size else order
    for k, s, cheapest in zip(tempo[leaders], entry[leaders], total[tempo[leaders], entry[leaders]]):
        key = (int(landing[k, s]), round(float(bpms[k]), 6))
        if key not in found or cheapest < found[key][0]:
            found[key] = (float(cheapest), (i, int(phase[s]), float(previous[s]), int(counts[k])))


def _inner_prices(times: Sequence[float], start: float, counts: np.ndarray, length: float,
                  meter: Meter) -> np.ndarray:
    """(tempos, beats of the bar): for a segment from `start` of counts[k] beats over `length`
    seconds that starts on beat p of the bar, the price of the cuts at `times` inside it:
    MISS_PRICE for each off the beat, OFF_BAR_PRICE for each on a beat but not a bar line."""
    times = np.asarray(times, dtype=np.float64)
    beat_seconds = length / counts[:, None]  # (tempos, 1)
    beats = (times[None, :] - start) / beat_seconds
    nearest = np.round(beats)
    landed = np.abs(beats - nearest) * beat_seconds <= ON_BEAT
    missed = MISS_PRICE * np.sum(~landed, axis=1)
    off_bar = (np.arange(meter.beats)[None, None, :] + nearest[:, :, None].astype(np.int64)) % meter.beats != 0
    return missed[:, None] + OFF_BAR_PRICE * np.sum(off_bar & landed[:, :, None], axis=1)
