"""Batch throughput: items scored a minute by `emsync batch` on embedded Ray with 1 and 2
workers, against the plain sequential loop (one process, the generator loaded once), in the
same run on the same items; and the memory each Ray worker reached.

Items are copies of examples/harbour.otio (40 s of music each, seven scenes). The Ray figures
include everything a user waits for: starting Ray, starting the workers and loading the
models in each; Ray's start alone is timed once and printed. Wall-clock figures depend on
what else the machine runs (the load average is printed).

    python benchmarks/bench_batch.py [--items 6]
"""
import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from emsync.batch.inputs import Item, find_items
from emsync.batch.runner import Settings, run_batch
from emsync.batch.worker import score_files
from machine import cpu_line

REPO = Path(__file__).resolve().parents[1]


def library(folder: Path, count: int) -> list[Item]:
    folder.mkdir()
    for number in range(count):
        shutil.copy(REPO / "examples" / "harbour.otio", folder / f"reel{number}.otio")
    return find_items([str(folder)], Item(""), folder.parent / "out")


def sequential(items: list[Item], out: Path) -> float:
    out.mkdir()
    began = time.perf_counter()
    for item in items:
        score_files(item, Path(item.input), out, None, 0.5, None)
    return time.perf_counter() - began


def on_ray(items: list[Item], out: Path, workers: int) -> tuple[float, float]:
    began = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        report = run_batch(items, Settings(out, workers=workers), quiet)
    assert report.counts()["done"] == len(items), report.entries
    return time.perf_counter() - began, report.peak_rss_mb()


def ray_start() -> float:
    import ray

    began = time.perf_counter()
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR")
    ray.get(ray.remote(lambda: None).remote())
    seconds = time.perf_counter() - began
    ray.shutdown()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        items = library(Path(tmp) / "reels", args.items)
        results = {"cpu": cpu_line(), "items": args.items, "item": "examples/harbour.otio (40 s of music)",
                   "ray_start_seconds": round(ray_start(), 1)}
        seconds = sequential(items, Path(tmp) / "plain")
        results["sequential"] = {"seconds": round(seconds, 1), "items_per_minute": round(60 * args.items / seconds, 1)}
        for workers in (1, 2):
            seconds, peak = on_ray(items, Path(tmp) / f"ray{workers}", workers)
            results[f"ray_{workers}_workers"] = {"seconds": round(seconds, 1),
                                                 "items_per_minute": round(60 * args.items / seconds, 1),
                                                 "peak_worker_rss_mb": round(peak)}
        results["load_average"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    print(f"CPU: {results['cpu']}")
    print(f"{args.items} items: sequential {results['sequential']['items_per_minute']} items/min; Ray 1 worker "
          f"{results['ray_1_workers']['items_per_minute']}, 2 workers {results['ray_2_workers']['items_per_minute']} "
          f"items/min (Ray's start {results['ray_start_seconds']} s included); memory per worker: "
          f"{results['ray_1_workers']['peak_worker_rss_mb']} / {results['ray_2_workers']['peak_worker_rss_mb']} MB "
          "peak resident, 1024 MB reserved")


if __name__ == "__main__":
    main()
