"""What a composer sees: a MIDI file read by MuseScore 3, and how readable its notation is.

MuseScore guesses a score's notation from the file's tempo, meter and timing. Music that sits
on its written grid comes out in the file's tempo and meter with plain values; loose timing
comes out in another tempo and meter, with 32nd and 64th values and tuplets (the shared
README's field notes). `read_in_musescore` converts a file headless (`mscore3 -o out.mscx`,
under xvfb-run where no display is set) and `Reading` counts what came out.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from emsync.core.errors import EmsyncError

SHORT_VALUES = ("32nd", "64th", "128th", "256th")


@dataclass
class Reading:
    bpm: float  # MuseScore's first tempo marking, in quarter notes a minute
    meter: str  # its first time signature, e.g. "4/4"
    values: Counter  # written values of notes and rests ("quarter", "16th", "measure", ...)
    tuplets: int

    @property
    def events(self) -> int:
        return sum(self.values.values())

    @property
    def short_share(self) -> float:
        """Share of notes and rests written as 32nd or shorter."""
        return sum(self.values[v] for v in SHORT_VALUES) / max(1, self.events)

    @property
    def tuplet_share(self) -> float:
        return self.tuplets / max(1, self.events)


def musescore() -> list[str] | None:
    """The command that runs MuseScore 3 headless here, or None where it is not installed."""
    program = shutil.which("mscore3") or shutil.which("musescore3")
    if program is None:
        return None
    if os.environ.get("DISPLAY"):
        return [program]
    xvfb = shutil.which("xvfb-run")
    return [xvfb, "-a", program] if xvfb else None


def read_in_musescore(midi: str | Path, timeout: float = 120.0) -> Reading:
    command = musescore()
    if command is None:
        raise EmsyncError("MuseScore 3 is not installed (Debian: apt-get install musescore3 xvfb)")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "score.mscx"
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": folder}
        done = subprocess.run([*command, "-o", str(out), str(midi)], capture_output=True, text=True,
                              timeout=timeout, env=env)
        if done.returncode != 0 or not out.exists():
            raise EmsyncError(f"{midi}: MuseScore could not read it ({(done.stderr or done.stdout).strip()[-200:]})")
        text = out.read_text(encoding="utf-8", errors="replace")
    tempo = re.search(r"<tempo>([\d.]+)</tempo>", text)
    numerator, denominator = re.search(r"<sigN>(\d+)</sigN>", text), re.search(r"<sigD>(\d+)</sigD>", text)
    values = Counter(re.findall(r"<durationType>([^<]+)</durationType>", text))
    return Reading(float(tempo.group(1)) * 60.0 if tempo else float("nan"),
                   f"{numerator.group(1)}/{denominator.group(1)}" if numerator and denominator else "",
                   values, len(re.findall(r"<Tuplet\b", text)))
