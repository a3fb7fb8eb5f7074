"""Live MIDI timing: how close to its scheduled time each note-on arrives at another port.

Starts its own JACK server with the dummy driver in synchronous mode (64-frame periods at
48 kHz: JACK moves MIDI once a period, 1.33 ms; asynchronous mode lost about one message in
300 to overruns), plays a few hundred notes (chords, runs, a tempo that keeps changing
density) from `emsync.live.player.Player` to a virtual input port of this process, and stamps
each arrival with the time the MIDI system saw it (rtmidi's time stamps, in time.monotonic()
seconds). The same notes then go through a naive reference loop (time.sleep for each gap
between events, the usual first attempt) in the same run. Prints, per method, |arrival -
scheduled| in ms (mean, p95, max) and the same after removing the median latency (the jitter
proper), as JSON and a summary. The aim is <= 5 ms; figures depend on what else the machine
runs (the load is printed). With `--beside-generation` another process generates music all
the while, as the shipped generator runs it (two threads that sleep between steps): what a
composer meets who plays the score while a new take is made.

    python benchmarks/bench_live.py [--notes 400] [--seed 0] [--beside-generation]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emsync.core.music import Note  # noqa: E402
from emsync.live import player as live  # noqa: E402
from emsync.live import ports  # noqa: E402
from machine import cpu_line  # noqa: E402

GENERATION_LOOP = """
from emsync.core.conditions import EmotionCurve
from emsync.core.generator import MusicGenerator
generator = MusicGenerator()
while True:
    generator.generate(30.0, [10.0, 20.0], EmotionCurve.constant(0.3, 0.7), seed=1)
"""
GENERATION_WARM_UP = 3.0  # seconds for the loop to load the model and start generating


def score_notes(count: int, seed: int) -> list[Note]:
    """Chords on the beat and runs between them: simultaneous onsets and 30-250 ms gaps."""
    rng, notes, t = random.Random(seed), [], 0.2
    while len(notes) < count:
        for pitch in rng.sample(range(48, 72), 3):
            notes.append(Note(t, t + 0.4, pitch, rng.randint(60, 110), 1))
        for _ in range(rng.randint(1, 4)):
            t += rng.uniform(0.03, 0.25)
            notes.append(Note(t, t + 0.1, rng.randint(60, 84), rng.randint(50, 100), 4))
        t += rng.uniform(0.05, 0.3)
    return notes[:count]


def figures(lateness: list[float]) -> dict:
    ms = sorted(abs(x) * 1000 for x in lateness)
    median = statistics.median(lateness)
    jitter = sorted(abs(x - median) * 1000 for x in lateness)

    def summary(values):
        return {"mean": round(statistics.fmean(values), 3), "p95": round(values[int(0.95 * (len(values) - 1))], 3),
                "max": round(values[-1], 3)}
    return {"notes": len(lateness), "abs_ms": summary(ms), "median_latency_ms": round(median * 1000, 3),
            "jitter_ms": summary(jitter)}


def run_player(port, score: live.Performance, arrivals: list) -> list[float]:
    player = live.Player(port, score)
    arrivals.clear()
    started = time.monotonic()
    player.play(0.0)
    player.wait_stopped(score.duration + 10)
    time.sleep(0.2)
    player.close()
    return lateness(score, arrivals, started)


def run_naive(port, score: live.Performance, arrivals: list) -> list[float]:
    """The reference: sleep for each gap between consecutive events, then send."""
    arrivals.clear()
    started, previous = time.monotonic(), 0.0
    for when, msg in zip(score.times, score.messages):
        if when > previous:
            time.sleep(when - previous)
            previous = when
        port.send(msg)
    time.sleep(0.2)
    return lateness(score, arrivals, started)


def lateness(score: live.Performance, arrivals: list, started: float) -> list[float]:
    scheduled = [t for t, m in zip(score.times, score.messages) if m.type == "note_on" and m.velocity]
    got = [t for t, m in arrivals if m.type == "note_on" and m.velocity]
    if len(got) != len(scheduled):
        raise SystemExit(f"{len(got)} note-ons arrived of {len(scheduled)} sent")
    return [(arrived - started) - due for arrived, due in zip(got, scheduled)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notes", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--beside-generation", action="store_true", help="generate music in another process all the while")
    args = parser.parse_args()

    name = f"emsync-bench-{os.getpid()}"
    jackd = subprocess.Popen(["jackd", "-n", name, "-S", "-d", "dummy", "-r", "48000", "-p", "64", "-w", "1333"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    generating = subprocess.Popen([sys.executable, "-c", GENERATION_LOOP]) if args.beside_generation else None
    try:
        if generating is not None:
            time.sleep(GENERATION_WARM_UP)
        subprocess.run(["jack_wait", "-w", "-s", name, "-t", "10"], capture_output=True, timeout=20)
        os.environ["JACK_DEFAULT_SERVER"] = name
        arrivals: list = []
        sink = ports.MidiInput(lambda m, at: arrivals.append((at, m)), virtual="bench-in", client_name="emsync-bench")
        score = live.Performance.from_notes(score_notes(args.notes, args.seed), 120.0)
        port, label = ports.open_output("emsync-bench:bench-in")
        results = {"player": figures(run_player(port, score, arrivals))}
        port, _ = ports.open_output("emsync-bench:bench-in")
        results["naive_sleep_loop"] = figures(run_naive(port, score, arrivals))
        port.close()
        sink.close()
    finally:
        for process in (jackd, generating):
            if process is not None:
                process.terminate()
                process.wait(10)
    report = {"cpu": cpu_line(), "port": label, "api": "UNIX_JACK (dummy driver, synchronous, 64 frames at 48 kHz)",
              "score_seconds": round(score.duration, 2), "load_average": os.getloadavg(),
              "beside_generation": args.beside_generation, **results}
    print(json.dumps(report, indent=2))
    for method in ("player", "naive_sleep_loop"):
        r = report[method]
        print(f"{method}: {r['notes']} note-ons, |arrival - scheduled| mean {r['abs_ms']['mean']:.2f} ms, "
              f"p95 {r['abs_ms']['p95']:.2f} ms, max {r['abs_ms']['max']:.2f} ms; jitter around the median "
              f"latency ({r['median_latency_ms']:.2f} ms): p95 {r['jitter_ms']['p95']:.2f} ms, "
              f"max {r['jitter_ms']['max']:.2f} ms")


if __name__ == "__main__":
    main()
