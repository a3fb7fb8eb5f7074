"""What the picture says about a scene's emotion: colour, light and movement.

`PictureTrack` collects per-frame statistics of the 48x27 frames as they decode; its
`features` sums them up for one scene (brightness, saturation, colourfulness, warmth, motion,
cut rate) and `picture_evidence` turns those into valence/arousal by a published rule.

Black borders are not picture: a letterboxed film, a 4:3 clip pillarboxed in a 16:9 export or
a portrait phone video in a landscape frame has rows or columns that stay black whatever is
filmed, and counted in they darken every scene (a quarter of the frame at 4:3 in 16:9, enough
to turn a bright, pastel music video negative). Each frame's statistics are taken inside its
borders (`picture_area`): black outer rows and columns that frame the picture evenly, as a
letterbox or pillarbox does; a dark edge on one side, or a frame dark all over, is picture.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from emsync.video.fusion import Evidence, rule, squash

# (typical film value, spread): a feature x becomes tanh((x - centre) / spread) in -1..1.
# Absolute references, not per-film ones, so a film that is dark throughout stays dark.
NORMS = {
    "brightness": (0.40, 0.15),     # mean luma 0..1 (films sit darker than photos)
    "saturation": (0.15, 0.10),     # mean chroma (max - min of RGB) 0..1
    "colourfulness": (0.15, 0.10),  # Hasler & Susstrunk M on 0..1 RGB (0.13 = their "moderately colourful")
    "warmth": (0.0, 0.12),          # mean (R - B), 0..1 RGB
    "motion": (0.015, 0.015),       # mean |luma change| per 1/25 s within the shot, 0..1, at 48x27
    "cut_rate": (12.0, 8.0),        # cuts per minute within 10 s of the scene's middle (5 s shots: 12)
}
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)   # BT.601, on 0..1 RGB
BORDER_LEVEL = 0.06   # luma 0..1 that no pixel of a black border's row or column reaches ...
BORDER_KEEP = 0.25    # ... and the least share of the height and of the width the picture inside keeps
VALENCE_RULE = {"brightness": 0.69, "saturation": 0.22, "colourfulness": 0.3, "warmth": 0.3}
AROUSAL_RULE = {"brightness": -0.31, "saturation": 0.60, "motion": 1.0, "cut_rate": 0.6}


def picture_evidence(features: Mapping[str, float], frames: int) -> Evidence:
    """Valence/arousal from the picture features, each squashed to -1..1 around a typical film
    value (NORMS; saturation is chroma, which like the Munsell chroma Valdez & Mehrabian varied
    is low for dark colours), then

        valence = 0.9 * (0.69 B + 0.22 S + 0.3 C + 0.3 W) / 1.51
        arousal = 0.9 * (-0.31 B + 0.60 S + 1.0 M + 0.6 R) / 2.51

    The brightness/saturation weights are Valdez & Mehrabian's (1994) regressions of pleasure
    and arousal on colour (P = .69 B + .22 S, A = -.31 B + .60 S); colourfulness (Hasler &
    Susstrunk 2003) and warm hues read as pleasant in colour-mood work (Wang & Cheong 2006 use
    both); motion and cut rate are two of Hanjalic & Xu's (2005) three arousal components
    (motion activity, rhythm from shot length). Confidence 0.5 at most (colour is a weak
    emotion cue), less for scenes shorter than half a second."""
    normalised = squash(features, NORMS)
    valence, arousal = rule(VALENCE_RULE, normalised), rule(AROUSAL_RULE, normalised)
    return Evidence("picture", valence, arousal, 0.5 * min(1.0, frames / 12), dict(features))


class PictureTrack:
    """Per-frame colour statistics and motion of the 48x27 frames, accumulated as they decode."""

    def __init__(self):
        self.rows: list[tuple[float, float, float, float, float]] = []
        self.times: list[float] = []
        self._previous: np.ndarray | None = None

    def add(self, frame: np.ndarray, seconds: float) -> None:
        whole = frame.astype(np.float32) / 255.0
        whole_luma = whole @ _LUMA
        inside = picture_area(whole_luma)
        rgb = whole[inside].reshape(-1, 3)
        r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        luma = whole_luma[inside]
        saturation = rgb.max(axis=1) - rgb.min(axis=1)   # chroma: dark colours are not saturated (Munsell)
        rg, yb = r - g, 0.5 * (r + g) - b                    # Hasler & Susstrunk opponent axes
        colourfulness = math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean())
        motion = 0.0
        if self._previous is not None:
            step = max(seconds - self.times[-1], 1e-3)
            change = np.abs(whole_luma - self._previous)[inside]
            motion = float(change.mean()) * (1 / 25) / step  # per 1/25 s: rate-free
        self._previous = whole_luma
        self.rows.append((float(luma.mean()), float(saturation.mean()), colourfulness, float((r - b).mean()), motion))
        self.times.append(seconds)

    def features(self, start: float, end: float, cuts: Sequence[float],
                 cut_rate: float | None = None) -> tuple[dict[str, float], int]:
        """Means over the scene's frames (motion within the shot only) and the cut rate around it
        (`cut_rate`: given, for a range of a file whose edit, not the file, says how fast it is cut)."""
        times = np.asarray(self.times)
        first, last = np.searchsorted(times, [start - 1e-6, end - 1e-6])
        if last <= first:   # a scene shorter than a frame interval: its nearest frame
            first = min(int(np.searchsorted(times, start)), len(times) - 1)
            last = first + 1
        rows = np.asarray(self.rows[first:last])
        if cut_rate is None:
            cut_rate = cuts_per_minute(cuts, start, end, self.times[-1])
        motion = rows[1:, 4].mean() if len(rows) > 1 else 0.0
        names = ("brightness", "saturation", "colourfulness", "warmth")
        return {**dict(zip(names, rows[:, :4].mean(axis=0).tolist())), "motion": float(motion),
                "cut_rate": cut_rate}, int(last - first)


def picture_area(luma: np.ndarray) -> tuple[slice, slice]:
    """(rows, columns) of a frame's luma [height, width] inside its black borders: the outer rows
    and columns whose brightest pixel is under BORDER_LEVEL, when they frame the picture as a
    letterbox, pillarbox or window does (as many above as below and left as right, give or
    take one) and leave at least BORDER_KEEP of its height and of its width. Otherwise the
    whole frame: a dark sky over a night street, a vignette or a lamp in the dark is picture."""
    height, width = luma.shape
    whole = slice(0, height), slice(0, width)
    rows, columns = (np.flatnonzero(luma.max(axis=axis) >= BORDER_LEVEL) for axis in (1, 0))
    if len(rows) == 0:
        return whole
    top, bottom, left, right = rows[0], height - 1 - rows[-1], columns[0], width - 1 - columns[-1]
    kept_rows, kept_columns = rows[-1] + 1 - rows[0], columns[-1] + 1 - columns[0]
    if (abs(top - bottom) > 1 or abs(left - right) > 1 or kept_rows < BORDER_KEEP * height
            or kept_columns < BORDER_KEEP * width):
        return whole
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(columns[0]), int(columns[-1]) + 1)


def cuts_per_minute(cuts: Sequence[float], start: float, end: float, last: float) -> float:
    """Cuts a minute within 10 s of the middle of [start, end), the window ending at `last`
    (the end of the picture), so a scene near either end is not cut faster than it is."""
    middle = (start + end) / 2
    low, high = max(0.0, middle - 10.0), middle + 10.0
    window = max(min(high, last) - low, end - start, 1e-3)
    return 60.0 * sum(low <= c <= high for c in cuts) / max(window, 1.0)
