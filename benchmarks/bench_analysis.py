"""The whole analysis (cuts plus per-scene emotion from faces, picture and sound) against
PySceneDetect's cut-only pass, in one run.

    pip install --no-deps scenedetect click platformdirs    # see bench_shots.py for why --no-deps
    python benchmarks/bench_analysis.py [--quick] [--rounds 2] [--json out.json]

The videos are bench_shots.py's generated 1080p clips (made once, cached in --workdir), each
with a soundtrack. Per video and round, in this order and in this process: `analyze_video` as
`emsync analyze` runs it, emsync's cut detection alone, and PySceneDetect's ContentDetector.
Figures: x real time (the best of the rounds) and the ratios between them; every figure line
ends with the CPU it was measured on.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_shots import arguments, best_of_rounds, prepare, run, scenedetect_cuts, warm_up  # noqa: E402
from emsync.video.analysis import analyze_video  # noqa: E402
from emsync.video.shots import detect_cuts  # noqa: E402


def measure(path: Path, rounds: int) -> dict:
    methods = {"analysis": lambda: analyze_video(path), "cuts_only": lambda: detect_cuts(path),
               "scenedetect_cuts_only": lambda: scenedetect_cuts(path)}
    results, best = best_of_rounds(methods, rounds)
    analysis = results["analysis"]
    row = {"seconds_of_video": round(analysis.duration, 2), "scenes": len(analysis.scenes), "faces": analysis.faces,
           "sound": analysis.has_audio}
    for name, seconds in best.items():
        row[f"{name}_x_real_time"] = round(analysis.duration / seconds, 2)
    row["analysis_vs_cuts_only"] = round(best["cuts_only"] / best["analysis"], 2)
    if "scenedetect_cuts_only" in best:
        row["analysis_vs_scenedetect_cuts_only"] = round(best["scenedetect_cuts_only"] / best["analysis"], 2)
    else:
        row["scenedetect"] = results["scenedetect_cuts_only"]
    return row


def main(argv=None) -> int:
    args = arguments(__doc__.split("\n\n")[0]).parse_args(argv)
    videos = prepare(args.workdir, real=False)
    warm_up(args.workdir, None)
    analyze_video(args.workdir / "warm_up.mp4")   # and the face model
    run(args, videos, lambda path, _: measure(path, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
