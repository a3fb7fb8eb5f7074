"""Where a video can hold a shot transition, found by a cheap colour-histogram measure, so that
TransNetV2 runs only on the windows that need it.

Each 48x27 frame becomes the 512-bin colour histogram TransNetV2 itself computes (3 bits per
channel); two frames differ by half the L1 distance of their histograms (0: same colours,
1: no colour in common). A frame is a candidate when

- it jumps from the previous frame by more than JUMP and by more than SPIKE x the median jump
  of the frames around it (hard cuts and flashes; a moving camera keeps its colours, so its
  jumps are small and steady),
- or its brightness changes from the previous frame's, pixel by pixel, by more than
  LUMA_JUMP on average and by more than LUMA_SPIKE x the local median (a cut between two
  shots of much the same colours still moves the picture),
- or it differs from the frame LAG frames earlier by more than DRIFT with no single step
  carrying most of that change (dissolves, fades, wipes): then the frames between are
  candidates too.

A window whose kept frames (with MARGIN frames either side) hold no candidate cannot hold a
cut or a transition the network would report, so its probabilities are left at zero without
running it. A window whose only candidates are sure hard cuts is not run either, and a sure
cut is reported whatever the network makes of it. A frame is a sure cut when its colours
change by at least SURE_JUMP from the previous frame while no other frame within LOCAL either
side changes by more than SURE_CALM x that jump: two steady shots joined by one clean step. A
flash or a light switched off again changes twice, a moving camera or a whip pan changes
steadily, a cut between shots of like colours jumps too little, and all of these still go to
the network. How often each holds (the windows run, and whether the cuts match running every
window) is measured by benchmarks/bench_shots.py and written in models/TRANSNETV2_CARD.md.
"""
from __future__ import annotations

from collections import deque

import numpy as np

JUMP = 0.1        # least histogram change between neighbouring frames that can be a cut
SPIKE = 1.5       # ... and how far above the local median jump it must stand
LUMA_JUMP = 0.03  # least mean absolute brightness change (0..1) that can be a cut ...
LUMA_SPIKE = 2.0  # ... and how far above the local median change it must stand
LOCAL = 10        # frames either side whose median jump is the local level
LAG = 12          # span over which a gradual transition is looked for
DRIFT = 0.25      # least change over LAG frames that can be a gradual transition ...
SPREAD = 0.5      # ... when no single step carries more than this share of it
MARGIN = 3        # frames either side of a window's kept range that also count
SURE_JUMP = 0.3   # least colour change of a hard cut decided without the network ...
SURE_CALM = 0.25  # ... when no other frame within LOCAL either side changes by more than this share of it
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32) / 255   # BT.601, on 0..255 RGB


def colour_histogram(frame: np.ndarray) -> np.ndarray:
    """float32 [512]: the share of pixels in each 3-bit-per-channel RGB bin."""
    pixels = frame.reshape(-1, 3) >> 5
    bins = (pixels[:, 0].astype(np.int32) << 6) | (pixels[:, 1].astype(np.int32) << 3) | pixels[:, 2]
    return np.bincount(bins, minlength=512).astype(np.float32) / len(bins)


class ChangeGate:
    """Fed every frame in order (`add`), says whether a range of frames needs the network
    (`review`: no candidate, only sure cuts, or something to look at) and counts the ranges it
    passed to the network and those it decided. Memory: three small numbers per frame, LAG + 1
    histograms and one brightness picture."""

    def __init__(self):
        self.passed = 0                         # ranges that needed the network
        self.decided = 0                        # ranges not run because their candidates were sure cuts
                                                # (their own, or a neighbour's within MARGIN)
        self.jumps: list[float] = []            # colour change from the previous frame, per frame
        self.luma_jumps: list[float] = []       # brightness change from the previous frame, per frame
        self._luma: np.ndarray | None = None
        self.gradual: bytearray = bytearray()   # 1 where a gradual change was found
        self._recent: deque[np.ndarray] = deque(maxlen=LAG + 1)

    def add(self, frame: np.ndarray) -> None:
        histogram = colour_histogram(frame)
        luma = frame.reshape(-1, 3) @ _LUMA_WEIGHTS
        self.luma_jumps.append(float(np.abs(luma - self._luma).mean()) if self._luma is not None else 0.0)
        self._luma = luma
        recent = self._recent
        self.jumps.append(_distance(histogram, recent[-1]) if recent else 0.0)
        self.gradual.append(0)
        recent.append(histogram)
        if len(recent) == LAG + 1:
            drift = _distance(histogram, recent[0])
            if drift > DRIFT and max(self.jumps[-LAG:]) < SPREAD * drift:
                count = len(self.gradual)
                self.gradual[count - LAG - 1:count] = b"\x01" * (LAG + 1)

    def review(self, first: int, stop: int) -> tuple[list[int], bool]:
        """What frames first..stop-1 (widened by MARGIN) hold, judged on the frames added so far:
        the sure cuts among them (the first frame of each new shot), and whether some other
        candidate needs the network (counted in `passed`; sure cuts alone count in `decided`).
        A cut is sure only once LOCAL frames after it were added."""
        candidates = self.candidates(first, stop)
        sure = [int(i) for i in candidates if self._is_sure_cut(int(i))]
        needs_network = len(sure) < len(candidates)
        self.passed += needs_network
        self.decided += bool(sure) and not needs_network
        return sure, needs_network

    def candidates(self, first: int, stop: int) -> np.ndarray:
        """Indices of the candidate frames in first..stop-1 widened by MARGIN, judged on the
        frames added so far."""
        low, high = max(0, first - MARGIN), min(len(self.jumps), stop + MARGIN)
        if low >= high:
            return np.zeros(0, np.int64)
        mask = (np.frombuffer(self.gradual[low:high], np.uint8).astype(bool)   # a copy: `gradual` grows
                | _spikes(self.jumps, low, high, JUMP, SPIKE)
                | _spikes(self.luma_jumps, low, high, LUMA_JUMP, LUMA_SPIKE))
        return low + np.flatnonzero(mask)

    def _is_sure_cut(self, frame: int) -> bool:
        """LOCAL steady frames before and after are needed: a one-frame leader is no shot."""
        if self.gradual[frame] or frame <= LOCAL or frame + LOCAL >= len(self.jumps):
            return False
        jump = self.jumps[frame]
        around = self.jumps[frame - LOCAL:frame] + self.jumps[frame + 1:frame + LOCAL + 1]
        return jump >= SURE_JUMP and max(around, default=0.0) <= SURE_CALM * jump


def _spikes(values: list[float], low: int, high: int, floor: float, spike: float) -> np.ndarray:
    """bool [high - low]: which of values[low:high] stand above `floor` and `spike` x the median
    of the 2 LOCAL + 1 values around them."""
    start = max(0, low - LOCAL)
    around = np.asarray(values[start:high + LOCAL])
    inside = around[low - start:high - start]
    above = inside > floor
    if not above.any():
        return above
    local = np.median(np.lib.stride_tricks.sliding_window_view(np.pad(around, LOCAL, mode="edge"), 2 * LOCAL + 1),
                      axis=1)[low - start:high - start]
    return above & (inside > spike * local)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return 0.5 * float(np.abs(a - b).sum())
