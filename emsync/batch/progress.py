"""Progress of a batch: a bar on a terminal (items finished, done, failed, ETA; a failed item's
error printed above it), one plain line per finished item otherwise (logs, pipes, CI)."""
from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 24


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """Shows `total` items, `to_run` of them to be scored in this run (the rest skipped)."""

    def __init__(self, total: int, to_run: int, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.bar = self.stream.isatty()
        self.total, self.to_run = total, to_run
        self.counts = {"done": 0, "failed": 0, "skipped": total - to_run}
        self.began = time.monotonic()
        if self.bar:
            self._draw()

    def item(self, entry: dict) -> None:
        """One item finished (a report entry)."""
        self.counts[entry["status"]] += 1
        if self.bar:
            if entry["status"] == "failed":
                self.stream.write(f"\r\x1b[K{entry['error']}\n")
            self._draw()
            return
        finished = self.counts["done"] + self.counts["failed"]
        line = f"[{finished}/{self.to_run}] {entry['status']} {entry['input']} ({entry['seconds']:.1f} s)"
        if entry["status"] == "failed":
            line += f": {entry['error']}"
        print(line, file=self.stream, flush=True)

    def _draw(self) -> None:
        finished = self.counts["done"] + self.counts["failed"]
        filled = BAR_WIDTH * finished // max(self.to_run, 1)
        elapsed = time.monotonic() - self.began
        eta = _clock(elapsed / finished * (self.to_run - finished)) if finished else "?"
        self.stream.write(f"\r\x1b[K[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {finished}/{self.to_run}  "
                          f"done {self.counts['done']}  failed {self.counts['failed']}  ETA {eta}")
        self.stream.flush()

    def close(self) -> None:
        if self.bar:
            self.stream.write("\n")
            self.stream.flush()
