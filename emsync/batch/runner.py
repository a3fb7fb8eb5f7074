"""Running a batch on Ray: start Ray here or join a cluster, score every pending item as one
Ray task, keep at most one task per worker in flight, and record each finished item.

- Embedded (no address): `ray.init(num_cpus=workers)` on this machine, one worker per core
  by default: generation is one onnxruntime thread, so one task per core keeps every core busy.
- A cluster (`auto`, `host:6379`, or `ray://host:10001` through Ray Client): the workers are
  the cluster's CPUs unless asked otherwise. Every node needs the same emsync installed.
- Each task reserves WORKER_MEMORY_MB of Ray's `memory` resource, so Ray never runs more on a
  node than fit in its memory, and reports its process's peak resident memory.
- Inputs travel by the object store (`ship`, the default on a cluster, files up to SHIP_LIMIT)
  or not at all (`shared`, the default embedded: the same paths on every node); see worker.py.
- Ctrl-C (or SIGTERM) cancels the tasks in flight, keeps the report (they stay `pending`)
  and stops Ray if it was started here.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from emsync.core.errors import EmsyncError
from emsync.core.fileio import atomic_write_bytes, read_regular

from .inputs import Item
from .progress import Progress
from .report import Report
from .worker import score_item

MIB = 1 << 20
WORKER_MEMORY_MB = 1024  # reserved per task: scoring a film peaks near 500 MB, plus Ray's own worker (~150 MB)
SHIP_LIMIT = 1 << 30  # larger inputs need a shared path (the object store holds every file in flight)
CONNECT_SECONDS = 10.0


@dataclass
class Settings:
    """How a batch runs: where (address: None embedded), how wide, and what every item shares."""

    out: Path
    address: str | None = None
    workers: int | None = None
    transfer: str = "auto"
    model: str | None = None
    threshold: float = 0.5
    soundfont: str | None = None

    def shared(self) -> dict:
        """What every item's outputs depend on besides the item itself (for the report's fingerprints)."""
        return {"model": self.model, "threshold": self.threshold, "soundfont": self.soundfont}


def run_batch(items: list[Item], settings: Settings, stream: TextIO | None = None) -> Report:
    """Score the items not complete from an earlier run into settings.out; the report.
    KeyboardInterrupt (Ctrl-C, SIGTERM) is re-raised after the report is written."""
    import ray

    settings.out.mkdir(parents=True, exist_ok=True)
    settings.out = settings.out.resolve()  # the report's paths read the same from any working folder
    report = Report(settings.out, items, settings.shared())
    todo = report.pending()
    report.ray = {"address": None, "version": ray.__version__, "memory_per_worker_mb": WORKER_MEMORY_MB}
    report.write()
    progress = Progress(len(items), len(todo), stream)
    if not todo:
        progress.close()
        report.close()
        return report
    _connect(ray, settings)
    was = signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill keeps the report as Ctrl-C does
    try:
        report.ray.update(_describe(ray, settings))
        report.write()
        nodes = report.ray["nodes"]
        print(f"ray {ray.__version__} at {report.ray['address']}: {nodes} node{'s' * (nodes != 1)}, "
              f"{report.ray['workers']} workers x {WORKER_MEMORY_MB} MB reserved; inputs {report.ray['transfer']}; "
              f"{len(todo)} to score, {len(items) - len(todo)} complete", file=progress.stream, flush=True)
        _score_all(ray, items, todo, settings, report, progress)
    except KeyboardInterrupt:
        progress.close()
        report.close(cancelled=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, was)
        ray.shutdown()
    progress.close()
    report.close()
    return report


def _connect(ray, settings: Settings) -> None:
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if settings.address not in (None, "auto"):
        _check_reachable(settings.address)
    try:
        if settings.address is None:
            ray.init(num_cpus=settings.workers or os.cpu_count() or 1, include_dashboard=False, **quiet)
        else:
            ray.init(address=settings.address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"--address {settings.address}" if settings.address else "ray"
        raise EmsyncError(f"{where}: cannot start or join Ray ({' '.join(str(exc).split())})") from None


def _check_reachable(address: str) -> None:
    """EmsyncError unless HOST:PORT (or ray://HOST:PORT) takes a connection within
    CONNECT_SECONDS: Ray itself keeps retrying an address where nothing listens."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except ValueError:
        raise EmsyncError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT") from None
    except OSError as exc:
        raise EmsyncError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc})") from None


def _describe(ray, settings: Settings) -> dict:
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    cpus = int(ray.cluster_resources().get("CPU", 1))
    transfer = settings.transfer if settings.transfer != "auto" else ("shared" if settings.address is None else "ship")
    address = "embedded " + ray.get_runtime_context().gcs_address if settings.address is None else settings.address
    return {"address": address, "nodes": len(nodes), "cpus": cpus, "workers": settings.workers or cpus,
            "transfer": transfer}


def _score_all(ray, items: list[Item], todo: list[int], settings: Settings, report: Report,
               progress: Progress) -> None:
    task = ray.remote(score_item).options(num_cpus=1, memory=WORKER_MEMORY_MB * MIB, max_retries=0,
                                          scheduling_strategy="SPREAD")
    ship = report.ray["transfer"] == "ship"
    waiting, running = deque(todo), {}
    try:
        while waiting or running:
            while waiting and len(running) < report.ray["workers"]:
                index = waiting.popleft()
                item = items[index]
                try:
                    payload = _payload(ray, item) if ship else None
                except EmsyncError as exc:
                    progress.item(report.finish_item(index, {"status": "failed", "error": str(exc), "seconds": 0.0}))
                    continue
                running[task.remote(item, payload, str(settings.out), settings.model, settings.threshold,
                                    settings.soundfont)] = index
            if not running:
                continue
            ready, _ = ray.wait(list(running), num_returns=1)
            index = running.pop(ready[0])
            result = _result(ray, ready[0], items[index], settings.out)
            progress.item(report.finish_item(index, result))
    except KeyboardInterrupt:
        for ref in running:
            ray.cancel(ref, force=True)
        raise


def _payload(ray, item: Item):
    """The input's bytes in the object store, for a worker on any node."""
    path = Path(item.input)
    if path.is_dir():
        raise EmsyncError(f"{path}: a folder bundle cannot be shipped to workers; give the .otioz form or use "
                          "--transfer shared")
    data = read_regular(path, SHIP_LIMIT, "input shipped to workers (larger ones need --transfer shared)")
    return ray.put(data)


def _result(ray, ref, item: Item, out: Path) -> dict:
    """A task's result, with shipped outputs written into `out`; a worker that died fails its item only."""
    try:
        result = ray.get(ref)
    except ray.exceptions.RayError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        return {"status": "failed", "error": f"{item.input}: the worker failed ({type(exc).__name__}: {first})",
                "seconds": 0.0}
    try:
        for name, data in result.pop("files").items():
            atomic_write_bytes(out / name, data)
    except EmsyncError as exc:
        result.update(status="failed", error=f"{item.input}: {exc}")
    return result
