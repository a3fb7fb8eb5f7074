"""Convert the MTCNN face detector in the `facenet-pytorch` wheel to three ONNX files.

    pip download facenet-pytorch==2.6.0 --no-deps -d /tmp/fnp   # the wheel only: it pins torch 2.2
    pip install -e .[train,test]                                 # torch, onnx; scikit-image, matplotlib
    python scripts/convert_mtcnn.py /tmp/fnp/facenet_pytorch-2.6.0-py3-none-any.whl
        # -> emsync/video/models/mtcnn_{pnet,rnet,onet}.onnx, then the parity report
    python scripts/convert_mtcnn.py WHEEL --check-only           # parity of the committed files

The wheel ships MTCNN's three networks as torch state dicts (`facenet_pytorch/data/pnet.pt`,
`rnet.pt`, `onet.pt`), ports of the weights Zhang et al. released with *Joint Face Detection
and Alignment using Multi-task Cascaded Convolutional Networks* (2016). Each network is
rebuilt here from the layer shapes in its state dict (`Stage`) and exported with its input
scaling inside the graph:

    mtcnn_pnet.onnx  pixels float32 [batch, height, width, 3] RGB 0..255 (any size >= 12)
                     -> face float32 [batch, height', width'], offsets float32 [batch, 4, height', width']
    mtcnn_rnet.onnx  pixels float32 [batch, 24, 24, 3] -> face [batch], offsets [batch, 4]
    mtcnn_onet.onnx  pixels float32 [batch, 48, 48, 3] -> face [batch], offsets [batch, 4],
                     landmarks [batch, 10] (five x, then five y, relative to the box)

`face` is the softmax probability of the face class. Checks: each ONNX file and each rebuilt
network against the wheel's own PNet/RNet/ONet modules on random inputs; and the whole
cascade, emsync.video.face_detector on the ONNX files, against the wheel's own
`MTCNN.detect` on pictures (`pictures()`), face by face (box IoU, confidence). The report
also counts, per picture, the faces OpenCV's frontal Haar cascade (emsync's detector before
MTCNN) and emsync.video.faces find (`haar_vs_emsync_faces`).

The wheel's code imports torchvision, whose PyPI build does not run beside the CPU torch
of the train extra. Without a working torchvision the check puts in a stand-in module whose
`batched_nms` (`_batched_nms`, greedy non-maximum suppression as torchvision documents it)
is the only part the detector calls; the report names which one ran.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import re
import sys
import tempfile
import types
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emsync.core.fileio import atomic_output  # noqa: E402
from emsync.video.face_detector import MODEL_PATHS, FaceDetector  # noqa: E402

NETWORKS = ("pnet", "rnet", "onet")
CROP_SIZES = {"rnet": 24, "onet": 48}
# Max pooling (kernel, stride; ceil mode, as Caffe pools) after a convolution's PReLU: not in the weights.
POOLING = {
    "pnet": {"conv1": (2, 2)},
    "rnet": {"conv1": (3, 2), "conv2": (3, 2)},
    "onet": {"conv1": (3, 2), "conv2": (3, 2), "conv3": (2, 2)},
}
HEADS = ("face", "offsets", "landmarks")  # the heads named *_1, *_2, *_3 in the state dicts
MIN_FACE = 20                             # facenet-pytorch's default smallest face, in pixels


def wheel_member(wheel: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(member)


def state_dict(wheel: Path, network: str) -> dict:
    import io

    import torch

    return torch.load(io.BytesIO(wheel_member(wheel, f"facenet_pytorch/data/{network}.pt")), weights_only=True)


def _prelu(layer: str) -> str:
    """The name of the PReLU after a trunk layer: conv2 -> prelu2, dense4 -> prelu4."""
    return re.sub(r"^(conv|dense)", "prelu", layer)


def stage_network(network: str, state: dict):
    """The MTCNN network `network` rebuilt from its state dict, weights loaded (inference only)."""
    import torch
    from torch import nn

    class Stage(nn.Module):
        """Trunk layers in the order of their number (convN: convolution, PReLU, the pooling
        in POOLING; denseN: fully connected, PReLU), then the heads on the last features.
        PNet has no dense layer and 1x1 convolution heads, so it reads any picture size."""

        def __init__(self):
            super().__init__()
            trunk = [key[:-len(".weight")] for key in state if re.fullmatch(r"(conv|dense)\d+\.weight", key)]
            self.trunk = sorted(trunk, key=lambda name: int(re.search(r"\d+", name).group()))
            self.heads = sorted(key[:-len(".weight")] for key in state if re.fullmatch(r"\w+\d_\d\.weight", key))
            for name in self.trunk + self.heads:
                weight = state[f"{name}.weight"]
                if name.startswith("conv"):
                    out_channels, in_channels, kh, kw = weight.shape
                    self.add_module(name, nn.Conv2d(in_channels, out_channels, (kh, kw)))
                else:
                    self.add_module(name, nn.Linear(weight.shape[1], weight.shape[0]))
                if name in self.trunk:
                    self.add_module(_prelu(name), nn.PReLU(weight.shape[0]))
            self.load_state_dict(state, strict=True)

        def forward(self, pixels):
            x = (pixels.permute(0, 3, 1, 2) - 127.5) * 0.0078125   # NHWC 0..255 -> NCHW about -1..1
            for name in self.trunk:
                if name.startswith("dense") and x.dim() == 4:
                    x = x.permute(0, 3, 2, 1).flatten(1)   # the dense weights read width, height, channel order
                x = getattr(self, _prelu(name))(getattr(self, name)(x))
                if name in POOLING[network]:
                    kernel, stride = POOLING[network][name]
                    x = nn.functional.max_pool2d(x, kernel, stride, ceil_mode=True)
            outputs = [getattr(self, head)(x) for head in self.heads]
            outputs[0] = torch.softmax(outputs[0], dim=1)[:, 1]   # P(face)
            return tuple(outputs)

    return Stage().eval()


def example_input(network: str, batch: int, seed: int = 0, size: tuple[int, int] = (37, 53)):
    import torch

    side = CROP_SIZES.get(network)
    height, width = (side, side) if side else size
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((batch, height, width, 3), generator=generator) * 255


def export(wheel: Path, network: str, out: Path, version: str) -> Path:
    import onnx
    import torch

    model = stage_network(network, state_dict(wheel, network))
    batch = torch.export.Dim("batch", min=1, max=4096)
    if network == "pnet":
        dims = {0: batch, 1: torch.export.Dim("height", min=12, max=8192),
                2: torch.export.Dim("width", min=12, max=8192)}
        described = "pixels float32 [batch, height, width, 3] RGB 0..255, height and width >= 12"
    else:
        dims = {0: batch}
        described = f"pixels float32 [batch, {CROP_SIZES[network]}, {CROP_SIZES[network]}, 3] RGB 0..255"
    names = list(HEADS[:len(model.heads)])
    with torch.no_grad():
        program = torch.onnx.export(model, (example_input(network, 2),), input_names=["pixels"], output_names=names,
                                    dynamic_shapes=(dims,), dynamo=True, optimize=True, verbose=False)
    graph = program.model_proto
    onnx.helper.set_model_props(graph, {
        "emsync_model": f"MTCNN {network.upper()} (Zhang et al. 2016)",
        "source": f"facenet-pytorch {version} (MIT, Timothy Esler), facenet_pytorch/data/{network}.pt",
        "weights_sha256": hashlib.sha256(wheel_member(wheel, f"facenet_pytorch/data/{network}.pt")).hexdigest(),
        "input": described,
        "output": ", ".join(names) + ": face probability, box offsets" + (", landmarks" if len(names) == 3 else "")})
    onnx.checker.check_model(graph)
    with atomic_output(out) as tmp:
        onnx.save(graph, str(tmp))
    return out


# ---------------------------------------------------------------- the wheel's own code, for the checks

def _batched_nms(boxes, scores, groups, iou_threshold):
    """torchvision.ops.batched_nms: indices of the boxes kept, highest score first; a box is
    dropped when its IoU with a kept box of the same group exceeds the threshold."""
    import torch

    keep = []
    order = scores.argsort(descending=True)
    x1, y1, x2, y2 = boxes.unbind(1)
    area = (x2 - x1) * (y2 - y1)
    while order.numel():
        best, rest = order[0], order[1:]
        keep.append(best)
        width = (torch.minimum(x2[best], x2[rest]) - torch.maximum(x1[best], x1[rest])).clamp(min=0)
        height = (torch.minimum(y2[best], y2[rest]) - torch.maximum(y1[best], y1[rest])).clamp(min=0)
        overlap = width * height / (area[best] + area[rest] - width * height)
        order = rest[(overlap <= iou_threshold) | (groups[rest] != groups[best])]
    return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long)


def _torchvision_runs() -> bool:
    try:
        import torch
        from torchvision.ops import nms

        nms(torch.zeros((1, 4)), torch.ones(1), 0.5)
        return True
    except Exception:  # not installed, or PyPI's CUDA build beside a CPU torch ("torchvision::nms does not exist")
        return False


def facenet_module(wheel: Path, folder: Path) -> tuple[types.ModuleType, str]:
    """The wheel's `facenet_pytorch.models.mtcnn`, imported from the wheel unpacked in `folder`,
    and which non-maximum suppression its detector will use."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(folder)
    nms = "torchvision"
    if not _torchvision_runs():
        nms = "stand-in (_batched_nms)"
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional",
                     "torchvision.ops", "torchvision.ops.boxes"):
            sys.modules[name] = types.ModuleType(name)
        sys.modules["torchvision.ops.boxes"].batched_nms = _batched_nms
    sys.path.insert(0, str(folder))
    return importlib.import_module("facenet_pytorch.models.mtcnn"), nms


def network_parity(wheel: Path, onnx_paths: dict, theirs: types.ModuleType) -> dict:
    """max |diff| of each output: ONNX and the rebuild against the wheel's own module, on random
    pixels (PNet at several sizes, RNet and ONet in batches)."""
    import onnxruntime as ort
    import torch

    report = {}
    for network in NETWORKS:
        reference_net = getattr(theirs, network[0].upper() + "Net")().eval()   # loads its weights itself
        ours = stage_network(network, state_dict(wheel, network))
        session = ort.InferenceSession(str(onnx_paths[network]), providers=["CPUExecutionProvider"])
        worst = {"onnx": 0.0, "rebuild": 0.0}
        if network == "pnet":
            sizes = [(12, 12), (37, 53), (181, 321)]
            inputs = [example_input(network, 3, seed, size) for seed, size in enumerate(sizes)]
        else:
            inputs = [example_input(network, 3)]
        for pixels in inputs:
            with torch.no_grad():
                reference = reference_net(_their_input(pixels))
                rebuilt = ours(pixels)
            reference = _their_outputs(network, reference)
            onnx_out = session.run(None, {"pixels": pixels.numpy()})
            for name, got in (("onnx", onnx_out), ("rebuild", [t.numpy() for t in rebuilt])):
                worst[name] = max(worst[name], *(float(np.abs(a - b).max()) for a, b in zip(got, reference)))
        report[network] = {"onnx_vs_wheel_max_abs_diff": worst["onnx"],
                           "rebuild_vs_wheel_max_abs_diff": worst["rebuild"]}
    return report


def _their_input(pixels):
    """The wheel's networks take NCHW pixels already scaled by (x - 127.5) / 128."""
    return (pixels.permute(0, 3, 1, 2) - 127.5) * 0.0078125


def _their_outputs(network: str, outputs) -> list[np.ndarray]:
    """The wheel's outputs in this file's order: P(face), offsets[, landmarks]."""
    if network == "onet":
        offsets, landmarks, probabilities = outputs
        return [probabilities[:, 1].numpy(), offsets.numpy(), landmarks.numpy()]
    offsets, probabilities = outputs
    return [probabilities[:, 1].numpy(), offsets.numpy()]


# ---------------------------------------------------------------- the whole cascade

def pictures() -> dict[str, np.ndarray]:
    """RGB uint8 pictures for the detection checks, from wheels the test extra installs:
    scikit-image's astronaut (Eileen Collins, NASA, public domain: a frontal smile) and camera
    (a man turned three-quarters to his camera; CC0, Lav Varshney), matplotlib's Grace Hopper
    (US Navy, public domain), and video frames made of them (`video_frame`): the smile in
    16:9 frames, small, rolled 30 degrees, dark (gamma 3, 30 % level); the turned face, also
    mirrored; both faces in one frame. No face: noise, scikit-image's coffee and cat."""
    import cv2
    import matplotlib
    from skimage import data

    astronaut, camera = data.astronaut(), np.repeat(data.camera()[..., None], 3, axis=2)
    hopper = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))[..., ::-1]
    rolled = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((224, 118), 30, 1.0), (512, 512))
    dark = (255 * (astronaut / 255.0) ** 3 * 0.3).astype(np.uint8)
    both = np.zeros((360, 640, 3), np.uint8)
    both[30:330, 10:310] = cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA)
    both[30:330, 330:630] = cv2.resize(camera, (300, 300), interpolation=cv2.INTER_AREA)
    return {
        "astronaut": astronaut, "camera": camera, "grace_hopper": np.ascontiguousarray(hopper),
        "astronaut_640x360": video_frame(astronaut, 640, 360),
        "astronaut_320x180": video_frame(astronaut, 320, 180),
        "astronaut_small_320x180": video_frame(astronaut, 320, 180, scale=0.65),
        "astronaut_rolled_640x360": video_frame(rolled, 640, 360),
        "astronaut_rolled_320x180": video_frame(rolled, 320, 180),
        "astronaut_dark_320x180": video_frame(dark, 320, 180),
        "camera_640x360": video_frame(camera, 640, 360),
        "camera_320x180": video_frame(camera, 320, 180),
        "camera_mirrored_320x180": video_frame(np.ascontiguousarray(camera[:, ::-1]), 320, 180),
        "astronaut_and_camera_640x360": both,
        "noise_640x360": np.random.default_rng(3).integers(0, 256, (360, 640, 3), dtype=np.uint8),
        "coffee": data.coffee(), "chelsea": data.chelsea(),
    }


def video_frame(picture: np.ndarray, width: int, height: int, scale: float = 1.0) -> np.ndarray:
    """The square picture scaled to `scale` x the frame's height, centred on black, as in a
    16:9 video (scale 1: pillarboxed)."""
    import cv2

    side = round(scale * height)
    frame = np.zeros((height, width, 3), np.uint8)
    left, top = (width - side) // 2, (height - side) // 2
    frame[top:top + side, left:left + side] = cv2.resize(picture, (side, side), interpolation=cv2.INTER_AREA)
    return frame


def box_iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union if union > 0 else 0.0


def reference_faces(theirs: types.ModuleType, named: dict[str, np.ndarray]
                    ) -> tuple[dict[str, list[list[float]]], dict[str, list[np.ndarray]]]:
    """The wheel's own MTCNN.detect on each picture: [x1, y1, x2, y2, confidence] per face, and
    each face's five landmarks [5, 2]."""
    detector = theirs.MTCNN(min_face_size=MIN_FACE, keep_all=True, select_largest=False)
    found, landmarks = {}, {}
    for name, picture in named.items():
        boxes, probabilities, points = detector.detect(picture, landmarks=True)
        found[name] = [] if boxes is None else [[*map(float, box), float(p)] for box, p in zip(boxes, probabilities)]
        landmarks[name] = [] if boxes is None else list(points)
    return found, landmarks


def detection_parity(reference: dict[str, list[list[float]]], landmarks: dict[str, list[np.ndarray]],
                     named: dict[str, np.ndarray], onnx_paths: dict) -> dict:
    """emsync's cascade on the ONNX files against the reference, face by face: each reference
    face matched to our face of highest IoU; faces left over on either side are counted; the
    matched faces' landmarks compared in pixels."""
    detector = FaceDetector(onnx_paths)
    ious, confidence_diffs, landmark_diffs, missed, extra = [], [], [], 0, 0
    per_picture = {}
    for name, picture in named.items():
        ours = detector.detect(picture, min_face=MIN_FACE)
        matched = set()
        for (*box, confidence), points in zip(reference[name], landmarks[name]):
            best = max(range(len(ours)), key=lambda i: box_iou(box, ours[i].box), default=None)
            if best is None or box_iou(box, ours[best].box) < 0.5:
                missed += 1
                continue
            matched.add(best)
            ious.append(box_iou(box, ours[best].box))
            confidence_diffs.append(abs(confidence - ours[best].confidence))
            landmark_diffs.append(float(np.abs(np.asarray(ours[best].landmarks) - points).max()))
        extra += len(ours) - len(matched)
        per_picture[name] = {"reference": len(reference[name]), "ours": len(ours)}
    return {"faces": sum(len(faces) for faces in reference.values()), "missed": missed, "extra": extra,
            "min_iou": min(ious, default=1.0), "mean_iou": float(np.mean(ious)) if ious else 1.0,
            "max_confidence_diff": max(confidence_diffs, default=0.0),
            "max_landmark_diff_px": max(landmark_diffs, default=0.0), "pictures": per_picture}


def haar_comparison(named: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """Faces found per picture, [Haar, emsync]: OpenCV's frontal Haar cascade as
    emsync.video.faces ran it before MTCNN (fer's scale step 1.1 and 5 neighbours, smallest
    face 8 % of the shorter side and at least 24 px), and emsync.video.faces.detect_faces now."""
    import os

    import cv2

    from emsync.video.faces import detect_faces

    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    found = {}
    for name, picture in named.items():
        gray = cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY)
        smallest = max(24, round(0.08 * min(gray.shape)))
        haar = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE,
                                        minSize=(smallest, smallest))
        found[name] = [len(haar), len(detect_faces(picture))]
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="facenet_pytorch-2.6.0-py3-none-any.whl (pip download --no-deps)")
    parser.add_argument("-o", "--out-dir", type=Path, default=MODEL_PATHS["pnet"].parent)
    parser.add_argument("--check-only", action="store_true",
                        help="skip the export, check parity of the files in --out-dir")
    parser.add_argument("--print-reference", action="store_true", help="also print the wheel's faces per picture")
    args = parser.parse_args(argv)
    paths = {network: args.out_dir / MODEL_PATHS[network].name for network in NETWORKS}
    if not args.check_only:
        version = args.wheel.name.split("-")[1]
        for network in NETWORKS:
            export(args.wheel, network, paths[network], version)
            print(f"wrote {paths[network]} ({paths[network].stat().st_size / 1e3:.0f} kB)")
    with tempfile.TemporaryDirectory() as folder:
        theirs, nms = facenet_module(args.wheel, Path(folder))
        report = {"networks": network_parity(args.wheel, paths, theirs)}
        named = pictures()
        reference, landmarks = reference_faces(theirs, named)
    report["cascade"] = {"reference_nms": nms, **detection_parity(reference, landmarks, named, paths)}
    report["haar_vs_emsync_faces"] = haar_comparison(named)
    if args.print_reference:
        report["reference_faces"] = {name: [[*(round(v, 2) for v in face[:4]), round(face[4], 4)] for face in faces]
                                     for name, faces in reference.items()}
    print(json.dumps(report, indent=1))
    cascade = report["cascade"]
    ok = (all(r["onnx_vs_wheel_max_abs_diff"] < 1e-4 for r in report["networks"].values())
          and cascade["missed"] == 0 and cascade["extra"] == 0 and cascade["min_iou"] > 0.9
          and cascade["max_landmark_diff_px"] < 1.0)
    print("parity OK" if ok else "PARITY FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
