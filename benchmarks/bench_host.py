"""Latency of the plugin host: generate 60 s, regenerate a 10 s section, answer while busy.

End to end over OSC (a server process on 127.0.0.1, this process as the client): from the
request datagram to the last clip chunk received. Also the same work in-process (the core
alone), there also with the candidates sampled one after another (workers=1) and on one
thread a CPU against the default parallel takes (`regenerate.take_threads`), the status round trip while a job runs, and, with --seam N, how the
seam choice compares with taking the first candidate (pitch-class agreement across the range
end between the regenerated music and the kept music, which is not one of the voting criteria).
The report names the CPU (vector extensions, L2 and L3) and the onnxruntime version.

    python benchmarks/bench_host.py [--model PATH] [--candidates 3] [--seam 0]
"""
from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from machine import cpu_line  # noqa: E402
from conftest import Peer  # noqa: E402  (the tests' OSC client: python-osc on its own socket)

from emsync.core.conditions import EmotionCurve  # noqa: E402
from emsync.core.onnx_models import usable_cpus  # noqa: E402
from emsync.core.regenerate import regenerate, split_notes, take_threads  # noqa: E402
from emsync.core.music import Scene  # noqa: E402

DURATION = 60.0
SCENES = [(0.0, 0.6, 0.3), (8.5, 0.2, -0.4), (17.0, -0.5, 0.5), (29.0, -0.3, 0.7), (41.0, 0.7, 0.6), (52.0, 0.4, -0.5)]
SECTION = (25.0, 35.0)


def scenes() -> list[Scene]:
    edges = [s[0] for s in SCENES] + [DURATION]
    return [Scene(s, e, v, a, f"scene {i}") for i, ((s, v, a), e) in enumerate(zip(SCENES, edges[1:]))]


def until(peer: Peer, address: str, timeout: float = 600.0) -> list:
    """The arguments of the first `address` reply; any /emsync/error before it stops the run."""
    messages = peer.until(address, timeout)
    errors = [args for name, args, _ in messages if name == "/emsync/error"]
    if errors:
        raise RuntimeError(f"server error: {errors[0]}")
    return messages[-1][1]


def over_osc(model: str | None, candidates: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="emsync-bench-"))
    scene_file = folder / "scenes.json"
    scene_file.write_text(json.dumps({"duration": DURATION, "scenes": [
        {"start": s, "valence": v, "arousal": a} for s, v, a in SCENES]}))
    command = [sys.executable, "-m", "emsync.cli", "serve", "--port", "0", "--session", str(folder / "session")]
    server = subprocess.Popen(command + (["--model", model] if model else []), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    try:
        select.select([server.stdout], [], [], 60)
        port = int(server.stdout.readline().decode().split("udp://127.0.0.1:")[1].split(",")[0])
        client = Peer(port)
        client.send("/emsync/open/scenes", str(scene_file))
        until(client, "/emsync/opened")
        client.send("/emsync/settings/set", "candidates", candidates)
        until(client, "/emsync/settings")
        time.sleep(2.0)  # let the model finish loading in the background, as it would in use

        started = time.perf_counter()
        client.send("/emsync/generate", 1)
        done = until(client, "/emsync/job/done")
        until(client, "/emsync/clips/end")
        largest = max(len(data) for data in client.datagrams)
        generate_s = time.perf_counter() - started

        started = time.perf_counter()
        client.send("/emsync/regenerate", *SECTION, 2)
        # While it runs: how fast is a status round trip?
        until(client, "/emsync/job/started")
        rtts = []
        probe = Peer(port)
        for _ in range(20):
            t0 = time.perf_counter()
            probe.send("/emsync/status")
            until(probe, "/emsync/status")
            rtts.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.05)
        until(client, "/emsync/job/done")
        until(client, "/emsync/clips/end")
        regenerate_s = time.perf_counter() - started
        return {"generate_60s_seconds": round(generate_s, 2), "notes": done[3],
                "regenerate_10s_seconds": round(regenerate_s, 2), "candidates": candidates,
                "status_rtt_ms_while_generating": {"median": round(statistics.median(rtts), 2),
                                                   "max": round(max(rtts), 2)},
                "largest_datagram_bytes": largest}
    finally:
        server.terminate()
        server.wait(10)


def in_process(model: str | None, candidates: int) -> dict:
    from emsync.core.generator import MusicGenerator

    generator = MusicGenerator(model)
    found = scenes()
    curve, cuts = EmotionCurve.from_scenes(found), [s.start for s in found[1:]]
    base = generator.generate(DURATION, cuts, curve, seed=1)
    out = {"generate_60s_seconds": round(base.seconds, 2), "tokens_per_second": round(base.stats["tokens_per_second"]),
           "x_real_time": round(base.stats["realtime_factor"], 1)}
    results = {}
    for count in sorted({1, candidates}):
        results[count] = regenerate(generator, base.notes, DURATION, *SECTION, cuts, curve, seed=2, candidates=count)
        out[f"regenerate_10s_seconds_{count}_candidates"] = round(results[count].seconds, 2)
    parallel = results[candidates]
    sequential = regenerate(generator, base.notes, DURATION, *SECTION, cuts, curve, seed=2, candidates=candidates,
                            workers=1)
    a_thread_a_cpu = regenerate(generator, base.notes, DURATION, *SECTION, cuts, curve, seed=2,
                                candidates=candidates, workers=usable_cpus())
    out.update({"workers": take_threads(candidates),
                f"regenerate_10s_seconds_{candidates}_candidates_a_thread_a_cpu": round(a_thread_a_cpu.seconds, 2),
                f"regenerate_10s_seconds_{candidates}_candidates_sequential": round(sequential.seconds, 2),
                "sequential_over_parallel": round(sequential.seconds / parallel.seconds, 2),
                "sequential_same_music": sequential.notes == parallel.notes})
    return out


def seam_study(model: str | None, trials: int, candidates: int) -> dict:
    """Across the range end: pitch-class agreement (cosine, last 1 s of the range vs first 1 s
    after it), chosen take vs first take vs the music the range replaced."""
    from emsync.core.generator import MusicGenerator

    generator = MusicGenerator(model)
    rows = []
    for trial in range(trials):
        duration = 14.0
        curve = EmotionCurve.constant([0.5, -0.4, 0.2][trial % 3], [0.3, 0.4, -0.3][trial % 3])
        base = generator.generate(duration, [5.0, 10.0], curve, seed=100 + trial).notes
        start, end = 4.0, 8.0
        result = regenerate(generator, base, duration, start, end, [5.0, 10.0], curve, seed=trial,
                            candidates=candidates)
        before, inside, after = split_notes(base, start, end)

        def across(new):
            return _cos(before + list(new), after, end)

        clipped = [n.__class__(n.start, min(n.end, end), n.pitch, n.velocity, n.instrument) for n in inside]
        rows.append((across(clipped), across(result.candidates[0].notes), across(result.new_notes)))
    rows = np.asarray(rows)
    return {"trials": trials, "candidates": candidates,
            "pitch_class_agreement_across_the_end": {"original": round(float(rows[:, 0].mean()), 3),
                                                     "first_take": round(float(rows[:, 1].mean()), 3),
                                                     "chosen_take": round(float(rows[:, 2].mean()), 3)}}


def _cos(ours, theirs, end: float) -> float:
    def profile(notes, low, high):
        v = np.zeros(12)
        for n in notes:
            overlap = min(n.end, high) - max(n.start, low)
            if n.instrument != 0 and overlap > 0:
                v[n.pitch % 12] += overlap
        return v
    a, b = profile(ours, end - 1.0, end), profile(theirs, end, end + 1.0)
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model")
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--seam", type=int, default=0, help="trials of the seam study (0: skip)")
    args = parser.parse_args()
    report = {"cpu": cpu_line(), "cpu_cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
              "over_osc": over_osc(args.model, args.candidates), "in_process": in_process(args.model, args.candidates)}
    if args.seam:
        report["seam"] = seam_study(args.model, args.seam, args.candidates)
    print(json.dumps(report, indent=2))
    osc, core = report["over_osc"], report["in_process"]
    print(f"over OSC: generate 60 s -> clips in {osc['generate_60s_seconds']} s; regenerate 10 s "
          f"({args.candidates} candidates) -> clips in {osc['regenerate_10s_seconds']} s; in process "
          f"{core[f'regenerate_10s_seconds_{args.candidates}_candidates']} s on {core['workers']} threads vs "
          f"{core[f'regenerate_10s_seconds_{args.candidates}_candidates_sequential']} s one take after another "
          f"(sequential / parallel {core['sequential_over_parallel']}); status while busy "
          f"{osc['status_rtt_ms_while_generating']['median']} ms median; {report['cpu']}")


if __name__ == "__main__":
    main()
