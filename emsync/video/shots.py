"""Shot cuts and transitions in a video file, found by TransNetV2 run with onnxruntime.

    from emsync.video.shots import detect_cuts
    result = detect_cuts("film.mp4", threshold=0.5)
    result.cuts          # [4.04, 9.6, ...] seconds where a new shot starts, sorted
    result.transitions   # [(12.0, 12.8), ...] gradual transitions (dissolves, fades, wipes), seconds

TransNetV2 (Soucek & Lokoc 2020) looks at 48x27 RGB frames. Standard inference: windows of
100 frames stepped by 50, the first window preceded by 25 copies of the first frame and the
last followed by copies of the last frame; from each window the middle 50 predictions are
kept. The model has two heads: `cut` (single frame: the last frame of a shot, or the middle
of a gradual transition) and `transition` (many-hot: every frame inside a transition).

Decoding and inference overlap: windows go to onnxruntime on a worker thread while the main
thread decodes the next frames, and memory stays bounded for files of any length. A window
whose kept frames show no candidate change (`candidates.ChangeGate`: no colour jump, no
gradual drift) is not run; its probabilities stay zero. Nor is a window whose only candidates
are sure hard cuts (one clean colour step between two steady shots). A sure cut is reported
whether or not its window ran: on real footage the network misses some of them (measured in
TRANSNETV2_CARD.md).
No torch at run time: the model run is `models/transnetv2-int8.onnx`, the int8 copy of
`models/transnetv2.onnx` (the float reference), made by scripts/convert_transnetv2.py (see
TRANSNETV2_CARD.md).
"""
from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from emsync.core.errors import EmsyncError
from emsync.core.onnx_models import load_session
from emsync.video.candidates import ChangeGate
from emsync.video.decode import SmallFrames

MODELS = Path(__file__).resolve().parent / "models"
MODEL_PATH = MODELS / "transnetv2-int8.onnx"         # what runs
REFERENCE_MODEL_PATH = MODELS / "transnetv2.onnx"    # the float model it is made from and checked against
WIDTH, HEIGHT = 48, 27
WINDOW, STEP, CONTEXT = 100, 50, 25


@dataclass(frozen=True)
class ShotResult:
    duration: float                          # seconds, end of the last frame
    fps: float                               # nominal frame rate of the file
    cuts: list[float]                        # seconds at which a new shot starts, sorted, no 0.0
    transitions: list[tuple[float, float]]   # gradual transitions (start, end) in seconds, sorted
    frames_per_second_processed: float       # decode + inference throughput, frames per wall second
    frame_count: int = 0
    windows: int = 0                         # 100-frame windows the frames make ...
    windows_run: int = 0                     # ... and how many of them the network saw
    windows_decided: int = 0                 # ... and how many were not run as their only candidates were sure cuts
    cut_frames: list[int] = field(default_factory=list)   # index of the first frame of each new shot
    threshold: float = 0.5
    path: str = ""

    @property
    def scenes(self) -> list[tuple[float, float]]:
        """(start, end) seconds of every shot, covering 0..duration."""
        edges = [0.0, *self.cuts, self.duration]
        return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]

    @property
    def realtime_factor(self) -> float:
        """How many times faster than real time the file was analysed."""
        fps = self.fps or (self.frame_count / self.duration if self.duration else 0.0)
        return self.frames_per_second_processed / fps if fps else 0.0

    def to_dict(self) -> dict:
        return {"duration": self.duration, "fps": self.fps, "cuts": list(self.cuts),
                "transitions": [list(t) for t in self.transitions],
                "frames_per_second_processed": self.frames_per_second_processed,
                "frame_count": self.frame_count, "threshold": self.threshold}


class CutDetector:
    """The TransNetV2 ONNX model with its windowing; reuse one for many files."""

    def __init__(self, model_path: str | os.PathLike | None = None, *, threads: int | None = None,
                 batch: int = 4, overlap: bool = True):
        # Its threads sleep between runs: decoding runs beside them on the same cores, and
        # spinning workers took the decoder's CPU (TRANSNETV2_CARD.md, "threads that sleep").
        self.session = load_session(model_path or MODEL_PATH, "shot detection",
                                    threads=threads or min(os.cpu_count() or 1, 8),
                                    how_to_get="run scripts/convert_transnetv2.py", spin="never")
        self.batch = max(1, int(batch))
        self.overlap = overlap

    def _run(self, windows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        cut, trans = self.session.run(None, {"frames": np.stack(windows)})
        return cut[:, CONTEXT:CONTEXT + STEP].reshape(-1), trans[:, CONTEXT:CONTEXT + STEP].reshape(-1)

    def predict_stream(self, frames: Iterable[np.ndarray], gate: ChangeGate | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame (cut, transition) probabilities for uint8 [27, 48, 3] frames from any iterable.

        Inference runs on a worker thread, at most two batches ahead of decoding. With a `gate`
        (fed every frame here), windows whose kept frames hold no candidate are not run and
        give zeros, and windows whose only candidates are sure hard cuts are not run either; a
        sure cut gives certainty on the last frame before it, whether the window ran or not
        (the gate counts the kinds)."""
        parts: deque = deque()          # futures of (cut, transition) arrays, in frame order
        done: list[tuple[np.ndarray, np.ndarray]] = []
        batch: list[np.ndarray] = []
        marked: list[int] = []          # frames the gate found to end a shot for sure
        count = windows = 0

        def collect(limit: int) -> None:
            while len(parts) > limit:
                done.append(parts.popleft().result())

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="transnetv2") if self.overlap else _Inline() as pool:

            def flush() -> None:
                if batch:
                    parts.append(pool.submit(self._run, list(batch)))
                    batch.clear()
                    collect(2)

            def emit(window: np.ndarray) -> None:
                nonlocal windows
                first = windows * STEP          # the window keeps frames first .. first + STEP - 1
                windows += 1
                if gate is not None:
                    sure, needs_network = gate.review(first, first + STEP)
                    # the model's mark for a cut is on the last frame of the shot before
                    marked.extend(c - 1 for c in sure if first <= c - 1 < first + STEP)
                    if not needs_network:
                        flush()
                        parts.append(_Ready((np.zeros(STEP, np.float32), np.zeros(STEP, np.float32))))
                        return
                batch.append(window)
                if len(batch) == self.batch:
                    flush()

            buffer: list[np.ndarray] = []
            last = None
            for frame in frames:
                if frame.shape != (HEIGHT, WIDTH, 3) or frame.dtype != np.uint8:
                    raise ValueError(f"frames must be uint8 [{HEIGHT}, {WIDTH}, 3], got {frame.dtype} {frame.shape}")
                if count == 0:
                    buffer.extend([frame] * CONTEXT)
                if gate is not None:
                    gate.add(frame)
                buffer.append(frame)
                last = frame
                count += 1
                if len(buffer) >= WINDOW:
                    emit(np.stack(buffer[:WINDOW]))
                    del buffer[:STEP]
            if count == 0:
                return np.zeros(0, np.float32), np.zeros(0, np.float32)
            buffer.extend([last] * (CONTEXT + STEP - (count % STEP or STEP)))
            while len(buffer) >= WINDOW:
                emit(np.stack(buffer[:WINDOW]))
                del buffer[:STEP]
            flush()
            collect(0)
        cut = np.concatenate([cut for cut, _ in done])[:count]
        cut[marked] = 1.0
        return cut, np.concatenate([trans for _, trans in done])[:count]

    def predict_frames(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame (cut, transition) probabilities for uint8 [N, 27, 48, 3] frames."""
        return self.predict_stream(iter(frames))


class _Ready:
    """A finished result in the queue of inference futures."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class _Inline:
    """A stand-in for the worker pool that runs each batch at once (overlap=False)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def submit(fn, *args):
        return _Ready(fn(*args))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index ranges where mask is True."""
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def cuts_from_predictions(cut_probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Index of the first frame of every new shot: one per run of frames above the threshold,
    just after the run's most confident frame (the model marks the last frame of a shot)."""
    cut_probs = np.asarray(cut_probs)
    starts = [a + int(np.argmax(cut_probs[a:b])) + 1 for a, b in _runs(cut_probs > threshold)]
    return np.array([s for s in starts if 0 < s < len(cut_probs)], dtype=np.int64)


def transitions_from_predictions(trans_probs: np.ndarray, threshold: float = 0.5,
                                 min_frames: int = 5, max_gap: int = 2) -> list[tuple[int, int]]:
    """[start, end) frame ranges of gradual transitions: runs of the many-hot head above the
    threshold, joined across dips of up to `max_gap` frames, at least `min_frames` long (a hard
    cut lights one to three frames)."""
    merged: list[list[int]] = []
    for a, b in _runs(np.asarray(trans_probs) > threshold):
        if merged and a - merged[-1][1] <= max_gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged if b - a >= min_frames]


def shots_from_predictions(cut_probs: np.ndarray, trans_probs: np.ndarray, times: np.ndarray, end_time: float,
                           threshold: float = 0.5, transition_threshold: float | None = None,
                           min_transition_frames: int = 5) -> tuple[list[int], list[float], list[tuple[float, float]]]:
    """(cut frames, cut seconds, transitions in seconds). A gradual transition in which the cut
    head did not fire still yields one cut, after the cut head's most confident frame in it."""
    n = len(cut_probs)
    cut_frames = set(cuts_from_predictions(cut_probs, threshold).tolist())
    spans = transitions_from_predictions(trans_probs, threshold if transition_threshold is None
                                         else transition_threshold, min_transition_frames)
    for a, b in spans:
        if not any(a <= c <= b for c in cut_frames):
            peak = a + int(np.argmax(cut_probs[a:b])) + 1
            if 0 < peak < n:
                cut_frames.add(peak)
    ordered = sorted(cut_frames)
    times = np.asarray(times, dtype=np.float64)

    def at(i: int) -> float:
        return float(times[i]) if i < n else float(end_time)

    return ordered, [at(i) for i in ordered], [(at(a), at(b)) for a, b in spans]


_DETECTORS: dict[tuple, CutDetector] = {}


def _tapped(reader: SmallFrames, on_frame):
    for frame, seconds in reader:
        if on_frame is not None:
            on_frame(frame, seconds)
        yield frame


def detect_cuts(video_path: str | os.PathLike, threshold: float = 0.5, *, transition_threshold: float | None = None,
                min_transition_frames: int = 5, model_path: str | os.PathLike | None = None,
                threads: int | None = None, batch: int = 4, reader: SmallFrames | None = None,
                on_frame: Callable[[np.ndarray, float], None] | None = None,
                every_window: bool = False) -> ShotResult:
    """Hard cuts and gradual transitions of a video file.

    `threshold` applies to the cut head (lower finds more cuts); `transition_threshold`
    (default: the same) to the transition head. The network runs only on windows where
    `candidates.ChangeGate` sees a change that is not a sure hard cut, unless `every_window`.
    Raises EmsyncError naming the file when it cannot be read or holds no video. Other analyses share the decode pass
    through `reader` (a 48x27 `SmallFrames` of the file with their own sinks) and
    `on_frame(frame, seconds)`."""
    if not 0.0 < threshold < 1.0:
        raise EmsyncError(f"threshold: must be between 0 and 1, got {threshold}")
    if transition_threshold is not None and not 0.0 < transition_threshold < 1.0:
        raise EmsyncError(f"transition_threshold: must be between 0 and 1, got {transition_threshold}")
    key = (str(model_path or MODEL_PATH), threads, batch)
    detector = _DETECTORS.get(key)
    if detector is None:
        detector = _DETECTORS[key] = CutDetector(model_path, threads=threads, batch=batch)
    start = time.perf_counter()
    reader = reader or SmallFrames(video_path, WIDTH, HEIGHT)
    gate = None if every_window else ChangeGate()
    cut_probs, trans_probs = detector.predict_stream(_tapped(reader, on_frame), gate)
    elapsed = time.perf_counter() - start
    info = reader.info
    n = len(cut_probs)
    windows = -(-n // STEP)
    duration = max(reader.end_time, 0.0)
    fps = info.fps if info and info.fps else (n / duration if duration else 0.0)
    frames, cuts, transitions = shots_from_predictions(cut_probs, trans_probs, reader.times, reader.end_time,
                                                       threshold, transition_threshold, min_transition_frames)
    return ShotResult(duration=duration, fps=fps, cuts=cuts, transitions=transitions,
                      frames_per_second_processed=n / elapsed if elapsed > 0 else 0.0, frame_count=n,
                      cut_frames=frames, threshold=threshold, path=str(video_path), windows=windows,
                      windows_run=windows if gate is None else gate.passed,
                      windows_decided=0 if gate is None else gate.decided)
