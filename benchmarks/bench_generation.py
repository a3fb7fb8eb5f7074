"""Generation speed on this machine, every path measured in the same run.

1. Token loop (`emsync.training.evaluate.speed`, 120 s of music at valence/arousal 0.3): the
   shipped runtime copy (int8, cache written in place) and the float file beside it (the torch
   export, its cache growing a token a call), against torch re-running the whole prefix for
   every token (what generation costs without a cache). Then the shipped copy again on one
   intra-op thread: a lone generation steps on two (`MusicGenerator`), and the ratio says
   whether that pays on this CPU; and the CPU seconds this process spends in the second after a
   generation on the shipped copy (threads that spin on after a run would spend them).
2. Whole cues through the CLI, start-up included (`emsync generate` in a fresh process,
   wall time): a dense 3-minute cue (arousal 0.7, a cut every 7.5 s) and a calm one (arousal
   -0.6, a cut every 20 s), with the shipped model and, given `--previous`, with an earlier
   runtime file (e.g. `git show HEAD~1:emsync/core/models/generator-int8.onnx > prev.onnx`).
   Each cue runs `--rounds` times (shipped and previous interleaved) and the fastest run is
   kept, as bench_shots.py keeps its best round: this machine's speed varies between runs.
   Prints x real time, notes a second and the ratio shipped / previous.

    python benchmarks/bench_generation.py [--model PATH] [--previous PATH] [--tokens 256] [--rounds 2]
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mido

from emsync.core.conditions import EmotionCurve
from emsync.core.generator import MusicGenerator
from emsync.training.evaluate import speed
from machine import cpu_line

CUES = {"dense": {"duration": 180.0, "arousal": 0.7, "valence": 0.3, "cut_every": 7.5},
        "calm": {"duration": 180.0, "arousal": -0.6, "valence": 0.2, "cut_every": 20.0}}


def cue_seconds(model: str | None, cue: dict, folder: Path) -> dict:
    """Wall time of `emsync generate` for one cue in a fresh process, and the notes it wrote."""
    cuts = ",".join(f"{t:.2f}" for t in [1.3 + cue["cut_every"] * i for i in range(1, 99)]
                    if 0 < float(t) < cue["duration"])
    output = folder / "cue.mid"
    command = [sys.executable, "-m", "emsync.cli", "generate", "--duration", str(cue["duration"]), "--cuts", cuts,
               "--arousal", str(cue["arousal"]), "--valence", str(cue["valence"]), "--seed", "3", "-o", str(output)]
    began = time.perf_counter()
    subprocess.run(command + (["--model", model] if model else []), check=True, capture_output=True)
    seconds = time.perf_counter() - began
    notes = sum(1 for track in mido.MidiFile(output).tracks for m in track if m.type == "note_on" and m.velocity)
    return {"seconds": round(seconds, 2), "x_real_time": round(cue["duration"] / seconds, 1),
            "notes_per_s": round(notes / cue["duration"], 1)}


def idle_cpu_seconds(seconds: float = 1.0) -> float:
    """CPU seconds this process spends while it sleeps `seconds`, right after its last run."""
    before = time.process_time()
    time.sleep(seconds)
    return round(time.process_time() - before, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="runtime file to measure (default: the shipped one)")
    parser.add_argument("--previous", help="an earlier runtime file to measure beside it")
    parser.add_argument("--tokens", type=int, default=256, help="context length for the uncached torch run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each cue; the fastest is kept")
    args = parser.parse_args()
    generator = MusicGenerator(args.model)
    report = {"cpu": cpu_line(), "token_loop": speed(generator, args.tokens)}
    generator.generate(10.0, [5.0], EmotionCurve.constant(0.3, 0.7), seed=0)
    report["cpu_seconds_in_the_idle_second_after"] = idle_cpu_seconds()
    one_thread = speed(MusicGenerator(args.model, threads=1), 0, with_float=False)
    shipped = next(name for name in one_thread if name.startswith("onnxruntime"))
    report["token_loop_one_thread"] = {shipped: one_thread[shipped], "two_threads_over_one": round(
        report["token_loop"][shipped]["tokens_per_s"] / one_thread[shipped]["tokens_per_s"], 2)}
    if args.previous:
        report["token_loop_previous"] = speed(MusicGenerator(args.previous), 0, with_float=False)
    with tempfile.TemporaryDirectory() as folder:
        for name, cue in CUES.items():
            files = {"shipped": args.model, **({"previous": args.previous} if args.previous else {})}
            runs = {label: [] for label in files}
            for _ in range(max(1, args.rounds)):
                for label, model in files.items():
                    runs[label].append(cue_seconds(model, cue, Path(folder)))
            row = report[f"cli_{name}"] = {label: min(found, key=lambda run: run["seconds"])
                                           for label, found in runs.items()}
            row["x_real_time_of_each_round"] = {label: [run["x_real_time"] for run in found]
                                                for label, found in runs.items()}
            if args.previous:
                row["speedup"] = round(row["previous"]["seconds"] / row["shipped"]["seconds"], 2)
    print(json.dumps(report, indent=2))
    print(report["cpu"])
    for name, figures in report["token_loop"].items():
        if name.startswith("onnxruntime"):
            print(f"{name}: {figures['tokens_per_s']:.0f} tokens/s, {figures['x_real_time']:.1f}x real time")
    print(f"{shipped} on one thread: {report['token_loop_one_thread'][shipped]['tokens_per_s']:.0f} tokens/s; "
          f"two threads (as shipped) / one: {report['token_loop_one_thread']['two_threads_over_one']}x; "
          f"CPU seconds in the idle second after: {report['cpu_seconds_in_the_idle_second_after']}")
    if isinstance(report["token_loop"].get("torch_uncached"), dict):
        print(f"torch, no cache: {report['token_loop']['torch_uncached']['tokens_per_s']:.0f} tokens/s -> "
              f"cache speed-up {report['token_loop']['kv_cache_speedup']:.1f}x")
    for name in CUES:
        row = report[f"cli_{name}"]
        line = (f"{name} 3-minute cue, CLI start-up included: {row['shipped']['x_real_time']}x real time, the fastest "
                f"of {row['x_real_time_of_each_round']['shipped']} ({row['shipped']['notes_per_s']} notes/s)")
        if "previous" in row:
            line += f"; previous file {row['previous']['x_real_time']}x -> {row['speedup']}x faster"
        print(line + (" (aim: >= 15x)" if name == "dense" else ""))


if __name__ == "__main__":
    main()
