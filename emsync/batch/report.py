"""DIR/report.json: what a batch did, item by item, rewritten (atomically) after every finished
item, so a run that is killed loses nothing it finished, and the next run can tell which items
are complete.

    {"engine": "ray", "ray": {"address", "version", "nodes", "workers", "memory_per_worker_mb",
                              "peak_worker_rss_mb", "transfer"},
     "started", "finished", "cancelled", "summary": {"items", "done", "failed", "skipped", "pending",
                                                     "seconds", "items_per_minute"},
     "items": [{"input", "name", "status", "error", "outputs", "seconds", "node", "worker",
                "peak_rss_mb", "model_loaded", "fingerprint"}]}

An item is `pending` until it finishes (a killed run leaves those), then `done`, `failed`
(`error`: one line naming the file) or `skipped` (complete from an earlier run: same input
file, same settings, every output still there). `outputs` are the files an item wrote (or,
pending, will write; none when it failed).
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

from emsync.core.errors import EmsyncError
from emsync.core.fileio import atomic_write_bytes, read_regular

from .inputs import Item

REPORT_NAME = "report.json"
MAX_REPORT_BYTES = 256 << 20
STATUSES = ("done", "failed", "skipped", "pending")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _earlier_entries(path: Path) -> dict[str, dict]:
    """The items of an earlier report by name ({} when there is none or it cannot be read:
    then every item is done again, which is safe)."""
    try:
        data = json.loads(read_regular(path, MAX_REPORT_BYTES, "report"))
        return {entry["name"]: entry for entry in data["items"] if isinstance(entry, dict) and "name" in entry}
    except (EmsyncError, ValueError, TypeError, KeyError):
        return {}


class Report:
    """The report of one run over `items`, written to `folder`/report.json."""

    def __init__(self, folder: Path, items: list[Item], settings: dict):
        self.path = folder / REPORT_NAME
        self.began = time.monotonic()
        earlier = _earlier_entries(self.path)
        self.ray: dict = {}
        self.cancelled = False
        self.finished: str | None = None
        self.started = _now()
        self.entries = []
        for item in items:
            entry = {"input": item.input, "name": item.name, "status": "pending", "error": None,
                     "outputs": [str(p) for p in item.outputs(folder)], "seconds": 0.0,
                     "fingerprint": item.fingerprint(settings)}
            if self._complete(entry, earlier.get(item.name)):
                entry.update(status="skipped", error=None)
            self.entries.append(entry)

    @staticmethod
    def _complete(entry: dict, before: dict | None) -> bool:
        return (before is not None and before.get("status") in ("done", "skipped")
                and before.get("fingerprint") == entry["fingerprint"] and before.get("outputs") == entry["outputs"]
                and all(Path(p).is_file() for p in entry["outputs"]))

    def pending(self) -> list[int]:
        """Indexes of the items still to score."""
        return [i for i, entry in enumerate(self.entries) if entry["status"] == "pending"]

    def finish_item(self, index: int, result: dict) -> dict:
        """Record a worker's result (status, error, seconds, where it ran) and rewrite the report."""
        entry = self.entries[index]
        entry.update({key: result[key] for key in ("status", "error", "seconds", "node", "worker", "peak_rss_mb",
                                                   "model_loaded") if key in result})
        if entry["status"] == "failed":
            entry["outputs"] = []
        self.write()
        return entry

    def counts(self) -> dict[str, int]:
        return {status: sum(entry["status"] == status for entry in self.entries) for status in STATUSES}

    def summary(self) -> dict:
        seconds = time.monotonic() - self.began
        counts = self.counts()
        worked = counts["done"] + counts["failed"]
        return {"items": len(self.entries), **counts, "seconds": round(seconds, 2),
                "items_per_minute": round(60 * worked / seconds, 2) if seconds > 0 else 0.0}

    def peak_rss_mb(self) -> float:
        """The largest resident memory any worker reached for an item (0: none ran)."""
        return max((entry.get("peak_rss_mb") or 0.0 for entry in self.entries), default=0.0)

    def write(self) -> Path:
        ray = {**self.ray, "peak_worker_rss_mb": self.peak_rss_mb()}
        data = {"engine": "ray", "ray": ray, "started": self.started, "finished": self.finished,
                "cancelled": self.cancelled, "summary": self.summary(), "items": self.entries}
        return atomic_write_bytes(self.path, json.dumps(data, indent=2).encode("utf-8"))

    def close(self, cancelled: bool = False) -> None:
        self.cancelled = cancelled
        self.finished = _now()
        self.write()
