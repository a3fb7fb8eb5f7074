"""Faces in a picture, found by MTCNN: three small CNNs run as a cascade.

    from emsync.video.face_detector import FaceDetector
    detector = FaceDetector()                   # loads models/mtcnn_{pnet,rnet,onet}.onnx once; reuse it
    faces = detector.detect(rgb, min_face=20)   # [Face(box=(x1, y1, x2, y2), confidence, landmarks), ...],
                                                # best first

MTCNN is Zhang, Zhang, Li, Qiao: *Joint Face Detection and Alignment using Multi-task
Cascaded Convolutional Networks* (IEEE Signal Processing Letters, 2016), here with the
weights of the facenet-pytorch wheel, converted by scripts/convert_mtcnn.py (see
models/MTCNN_CARD.md). The cascade runs as facenet-pytorch runs it:

1. PNet slides a 12 px window in steps of 2 px over an image pyramid: the picture scaled by
   12 / min_face, then by 0.709 per level while its shorter side keeps 12 px. Windows whose
   face probability is at least 0.6 become boxes; overlaps are suppressed (IoU 0.5 within a
   level, then 0.7 over all), and the rest are moved by PNet's offsets and made square.
2. RNet reads a 24x24 crop of each box: those above 0.7 are kept, overlaps suppressed (IoU
   0.7), and the rest moved by RNet's offsets and made square again.
3. ONet reads 48x48 crops: boxes above 0.7 are moved by its offsets, and of boxes overlapping
   by more than 0.7 of the smaller one only the best stays. ONet's probability is the face's
   confidence; its five landmarks (the eyes, the nose tip, the mouth corners) are placed
   relative to the box it read, before the move, as the original places them.

Crops are cut from the picture clipped at its edges (not padded). The pyramid's levels and
the crops are resized by averaging the pixels in bins laid as torch's "area" interpolation
lays them (facenet-pytorch's resize), all read from one summed-area table of the picture;
RNet and ONet each read all their crops in one batch. Run time needs numpy and onnxruntime.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emsync.core.onnx_models import load_session

MODELS = Path(__file__).resolve().parent / "models"
MODEL_PATHS = {network: MODELS / f"mtcnn_{network}.onnx" for network in ("pnet", "rnet", "onet")}
THRESHOLDS = (0.6, 0.7, 0.7)   # the face probability PNet, RNet and ONet ask for
PYRAMID_FACTOR = 0.709         # the scale of each pyramid level relative to the one before
WINDOW, STRIDE = 12, 2         # PNet's window and step, in pixels of a pyramid level
RNET_SIZE, ONET_SIZE = 24, 48  # the crops RNet and ONet read


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]   # x1, y1, x2, y2 in pixels; may reach past the picture's edges
    confidence: float                         # ONet's face probability, above 0.7
    # (x, y) in pixels of the eye on the picture's left, the other eye, the nose tip and the
    # mouth corners (picture's left first)
    landmarks: tuple[tuple[float, float], ...] = ()

    @property
    def roll(self) -> float:
        """Degrees the line from the left to the right eye turns clockwise from level, as seen
        (0 without landmarks)."""
        if len(self.landmarks) < 2:
            return 0.0
        (left_x, left_y), (right_x, right_y) = self.landmarks[:2]
        return math.degrees(math.atan2(right_y - left_y, right_x - left_x))


def pyramid_scales(height: int, width: int, min_face: float) -> list[float]:
    """The scales PNet reads the picture at: a face of `min_face` pixels fills PNet's window
    at the first, and the last keeps the shorter side at least one window."""
    scales, scale = [], WINDOW / min_face
    while min(height, width) * scale >= WINDOW:
        scales.append(scale)
        scale *= PYRAMID_FACTOR
    return scales


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, threshold: float,
                        over_smaller: bool = False) -> np.ndarray:
    """Indices of the boxes kept, best score first: a box is dropped when its overlap with a
    better kept box exceeds `threshold`, the overlap measured as intersection over union or,
    with `over_smaller`, over the smaller of the two boxes."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        width = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        height = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        overlap = width * height
        whole = np.minimum(area[best], area[rest]) if over_smaller else area[best] + area[rest] - overlap
        order = rest[overlap <= threshold * whole]
    return np.array(keep, dtype=np.intp)


def _moved(boxes: np.ndarray, offsets: np.ndarray, inclusive: bool) -> np.ndarray:
    """[n, 5] boxes (x1, y1, x2, y2, score) with each side moved by its offset times the box's
    width or height; `inclusive` counts both edge pixels in them (x2 - x1 + 1), as the
    original does after RNet and ONet but not after PNet."""
    extra = 1.0 if inclusive else 0.0
    size = np.stack([boxes[:, 2] - boxes[:, 0] + extra, boxes[:, 3] - boxes[:, 1] + extra], axis=1)
    moved = boxes.copy()
    moved[:, :4] += offsets * np.tile(size, 2)
    return moved


def _squared(boxes: np.ndarray) -> np.ndarray:
    """The boxes made square about their centres, their longer side kept."""
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    squared = boxes.copy()
    squared[:, 0] += (width - side) / 2
    squared[:, 1] += (height - side) / 2
    squared[:, 2] = squared[:, 0] + side
    squared[:, 3] = squared[:, 1] + side
    return squared


def summed_area_table(image_rgb: np.ndarray) -> np.ndarray:
    """float64 [height + 1, width + 1, 3]: entry [y, x] is the sum of the pixels above and left
    of (y, x); any rectangle's sum is then four look-ups. Exact: the pixels are integers."""
    height, width = image_rgb.shape[:2]
    sums = np.zeros((height + 1, width + 1, 3), np.float64)
    np.cumsum(np.cumsum(image_rgb, axis=0, dtype=np.float64), axis=1, out=sums[1:, 1:])
    return sums


def _bins(start: np.ndarray, stop: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """[n, size] first and one-past-last input index of each of `size` output pixels over the
    input span start..stop - 1, as torch's "area" interpolation (adaptive average pooling)
    bins it: floor(i * length / size) to ceil((i + 1) * length / size)."""
    length, index = (stop - start)[:, None], np.arange(size)
    return start[:, None] + index * length // size, start[:, None] - (-(index + 1) * length // size)


def area_resize(sums: np.ndarray, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """float32 [n, height, width, 3]: the n regions `boxes` (int [n, 4] left, top, right,
    bottom, right and bottom exclusive) of the picture whose summed-area table is `sums`,
    each resized to height x width by averaging the input pixels in each output pixel's bin."""
    row_start, row_stop = _bins(boxes[:, 1], boxes[:, 3], height)
    col_start, col_stop = _bins(boxes[:, 0], boxes[:, 2], width)
    table = sums.reshape(-1, 3)   # one gather per corner: entry [y, x] is row y * (picture width + 1) + x
    r0, r1 = row_start[:, :, None] * sums.shape[1], row_stop[:, :, None] * sums.shape[1]
    c0, c1 = col_start[:, None, :], col_stop[:, None, :]
    total = table[r1 + c1] - table[r0 + c1] - table[r1 + c0] + table[r0 + c0]
    count = (row_stop - row_start)[:, :, None] * (col_stop - col_start)[:, None, :]
    return (total / count[..., None]).astype(np.float32)


def _crops(sums: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The boxes whose crop is not empty, and their crops resized to size x size: each box
    truncated to whole pixels and clipped to the picture, its left and top edges one pixel
    out (the original's 1-based corners read 0-based)."""
    height, width = sums.shape[0] - 1, sums.shape[1] - 1
    corners = boxes[:, :4].astype(np.int64)   # truncated toward zero
    regions = np.stack([np.maximum(corners[:, 0], 1) - 1, np.maximum(corners[:, 1], 1) - 1,
                        np.minimum(corners[:, 2], width), np.minimum(corners[:, 3], height)], axis=1)
    inside = (regions[:, 2] > regions[:, 0]) & (regions[:, 3] > regions[:, 1])
    return boxes[inside], area_resize(sums, regions[inside], size, size)


class FaceDetector:
    """MTCNN on onnxruntime (models/mtcnn_*.onnx); reuse one instance."""

    def __init__(self, model_paths: dict[str, str | os.PathLike] | None = None, *, threads: int = 1):
        paths = MODEL_PATHS | (model_paths or {})
        self.pnet, self.rnet, self.onet = (
            load_session(paths[network], f"face detector ({network.upper()})", threads=threads,
                         how_to_get="run scripts/convert_mtcnn.py") for network in ("pnet", "rnet", "onet"))

    def detect(self, image_rgb: np.ndarray, min_face: float = 20) -> list[Face]:
        """Faces at least about `min_face` pixels wide in an RGB uint8 [height, width, 3] picture."""
        image_rgb = np.asarray(image_rgb)
        if image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
            raise ValueError(f"pictures must be uint8 [height, width, 3] RGB, got {image_rgb.dtype} {image_rgb.shape}")
        sums = summed_area_table(image_rgb)
        boxes = self._propose(sums, min_face)
        if len(boxes):
            boxes = self._refine(sums, boxes)
        if not len(boxes):
            return []
        boxes, landmarks = self._confirm(sums, boxes)
        return [Face(tuple(float(v) for v in box[:4]), float(box[4]), tuple(map(tuple, points.tolist())))
                for box, points in zip(boxes, landmarks)]

    def _propose(self, sums: np.ndarray, min_face: float) -> np.ndarray:
        """PNet's square boxes, [n, 5]: x1, y1, x2, y2, face probability."""
        height, width = sums.shape[0] - 1, sums.shape[1] - 1
        whole = np.array([[0, 0, width, height]])
        found = []
        for scale in pyramid_scales(height, width, min_face):
            level = area_resize(sums, whole, int(height * scale + 1), int(width * scale + 1))
            face, offsets = self.pnet.run(None, {"pixels": level})
            rows, cols = np.nonzero(face[0] >= THRESHOLDS[0])
            windows = np.floor((np.stack([cols, rows, cols, rows], axis=1) * STRIDE + [1, 1, WINDOW, WINDOW]) / scale)
            scores = face[0, rows, cols]
            keep = non_max_suppression(windows, scores, 0.5)
            found.append(np.column_stack([windows, scores, offsets[0][:, rows, cols].T])[keep])
        found = np.concatenate(found) if found else np.zeros((0, 9))
        found = found[non_max_suppression(found[:, :4], found[:, 4], 0.7)]
        return _squared(_moved(found[:, :5], found[:, 5:], inclusive=False))

    def _refine(self, sums: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """RNet's verdict on PNet's boxes: the boxes it keeps, moved and squared, with its probability."""
        boxes, crops = _crops(sums, boxes, RNET_SIZE)
        face, offsets = self.rnet.run(None, {"pixels": crops})
        passed = face > THRESHOLDS[1]
        boxes, offsets = np.column_stack([boxes[passed, :4], face[passed]]), offsets[passed]
        keep = non_max_suppression(boxes[:, :4], boxes[:, 4], 0.7)
        return _squared(_moved(boxes[keep], offsets[keep], inclusive=True))

    def _confirm(self, sums: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ONet's faces among RNet's boxes, moved by its offsets, with its probability, and
        their landmarks [n, 5, 2] (x, y) in pixels."""
        boxes, crops = _crops(sums, boxes, ONET_SIZE)
        face, offsets, landmarks = self.onet.run(["face", "offsets", "landmarks"], {"pixels": crops})
        passed = face > THRESHOLDS[2]
        read = boxes[passed]
        size = np.stack([read[:, 2] - read[:, 0] + 1, read[:, 3] - read[:, 1] + 1], axis=1)   # inclusive, as moved
        points = landmarks[passed].reshape(-1, 2, 5).transpose(0, 2, 1) * size[:, None, :] + read[:, None, :2] - 1
        boxes = _moved(np.column_stack([read[:, :4], face[passed]]), offsets[passed], inclusive=True)
        keep = non_max_suppression(boxes[:, :4], boxes[:, 4], 0.7, over_smaller=True)
        return boxes[keep], points[keep]
