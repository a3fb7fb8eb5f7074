"""The items of a batch: what the user named (files, folders, manifests) turned into one item
per input, each with the outputs wanted and a name in the output folder that no other item has.

A folder is searched (recursively, hidden entries left out) for videos and timelines by
suffix; an .otiod/.fcpxmld bundle is one timeline. A file named on the command line is an
item whatever its suffix (a video when it is not a timeline, as with `emsync score`), except
a manifest: a .csv (with a header row) or .jsonl file, one item per row, with the columns
`input` (relative to the manifest), and optionally `emotion`, `valence`, `arousal`, `seed` and
`outputs` (words from OUTPUT_WORDS, space- or comma-separated in CSV, a list in JSON lines;
MIDI is always written). What a row leaves empty comes from the command line.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from emsync.core.errors import EmsyncError
from emsync.core.fileio import read_regular
from emsync.service.score_file import default_emotion
from emsync.timelines.suffixes import SUFFIXES as TIMELINE_SUFFIXES
from emsync.video.suffixes import SUFFIXES as VIDEO_SUFFIXES

MANIFEST_SUFFIXES = (".csv", ".jsonl")
MAX_MANIFEST_BYTES = 16 << 20
TIMELINE_FORMATS = (".otio", ".xml", ".fcpxml", ".edl")  # what an item's edit may be written as
OUTPUT_WORDS = ("wav", "png", *(suffix[1:] for suffix in TIMELINE_FORMATS))
MANIFEST_COLUMNS = ("input", "emotion", "valence", "arousal", "seed", "outputs")
BUNDLES = (".otiod", ".fcpxmld")  # timelines that are folders


@dataclass(frozen=True)
class Item:
    """One input to score and how: `name` is its outputs' stem in the output folder."""

    input: str  # absolute path
    name: str = ""
    emotion: str | None = None
    valence: float | None = None
    arousal: float | None = None
    seed: int = 0
    audio: bool = False
    plot: bool = False
    timeline: str | None = None  # the edit's suffix (".otio"...), None: no edit written

    def outputs(self, folder: Path) -> list[Path]:
        """The files this item writes, MIDI first, in the order write_score writes them (the
        WAV also for an edit, whose music track plays it)."""
        suffixes = [".mid", *([".wav"] if self.audio or self.timeline else []), *([".png"] if self.plot else []),
                    *([self.timeline] if self.timeline else [])]
        return [folder / f"{self.name}{suffix}" for suffix in suffixes]

    def fingerprint(self, settings: dict) -> str:
        """Changes when the input file or anything asked of it does: a resumed run redoes the item then."""
        try:
            info = os.stat(self.input)
            stamp = [info.st_size, info.st_mtime_ns]
        except OSError:
            stamp = None
        text = json.dumps([asdict(self), stamp, settings], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def find_items(paths: list[str], defaults: Item, out: Path) -> list[Item]:
    """Items for the command line's INPUTS, named uniquely; `defaults` holds what the flags ask
    for. Folders skip `out`, so outputs are never read back as inputs."""
    items: list[Item] = []
    for given in paths:
        path = Path(given)
        if path.is_dir() and path.suffix.lower() not in BUNDLES:
            items += [replace(defaults, input=str(found)) for found in _search(path, out.resolve())]
        elif path.suffix.lower() in MANIFEST_SUFFIXES:
            items += read_manifest(path, defaults)
        else:
            items.append(replace(defaults, input=str(path.resolve())))
    if not items:
        raise EmsyncError(f"{' '.join(paths)}: no videos or timelines found")
    named = _unique_names(items)
    _check_outputs_spare_inputs(named, out)
    return named


def _search(folder: Path, out: Path) -> list[Path]:
    wanted = VIDEO_SUFFIXES | set(TIMELINE_SUFFIXES)
    found = []
    for root, dirs, files in os.walk(folder.resolve()):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and here / d != out)
        found += [here / d for d in dirs if Path(d).suffix.lower() in BUNDLES]
        dirs[:] = [d for d in dirs if Path(d).suffix.lower() not in BUNDLES]
        found += [here / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in wanted]
    return sorted(found)


def _unique_names(items: list[Item]) -> list[Item]:
    """Each item named after its input's stem; a repeated stem gets -2, -3... in input order."""
    taken: set[str] = set()
    named = []
    for item in items:
        stem = Path(item.input).stem or "item"
        name, number = stem, 1
        while name.lower() in taken:
            number += 1
            name = f"{stem}-{number}"
        taken.add(name.lower())
        named.append(replace(item, name=name))
    return named


def _check_outputs_spare_inputs(items: list[Item], out: Path) -> None:
    inputs = {str(Path(item.input).resolve()) for item in items}
    for item in items:
        for path in item.outputs(out):
            if str(path.resolve()) in inputs:
                raise EmsyncError(f"{path}: an output would replace the input of the same name; choose another --out")


def read_manifest(path: Path, defaults: Item) -> list[Item]:
    """The items of a CSV or JSON lines manifest (see the module docstring); EmsyncError
    naming the file and line for a row that cannot be an item."""
    text = read_regular(path, MAX_MANIFEST_BYTES, "manifest").decode("utf-8", errors="replace")
    if path.suffix.lower() == ".csv":
        rows = enumerate(csv.DictReader(io.StringIO(text)), start=2)
    else:
        rows = ((number, _json_row(path, number, line)) for number, line in enumerate(text.splitlines(), start=1)
                if line.strip())
    items = []
    for number, row in rows:
        try:
            items.append(_manifest_item(row, path.parent.resolve(), defaults))
        except EmsyncError as exc:
            raise EmsyncError(f"{path}: line {number}: {exc}") from None
    if not items:
        raise EmsyncError(f"{path}: no items in the manifest")
    return items


def _json_row(path: Path, number: int, line: str) -> dict:
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise EmsyncError(f"{path}: line {number}: not JSON ({exc})") from None
    if not isinstance(row, dict):
        raise EmsyncError(f"{path}: line {number}: expected an object with an \"input\"")
    return row


def _manifest_item(row: dict, home: Path, defaults: Item) -> Item:
    unknown = sorted(set(row) - set(MANIFEST_COLUMNS) - {None})
    if unknown:
        raise EmsyncError(f"unknown column {unknown[0]!r} (use {', '.join(MANIFEST_COLUMNS)})")
    given = {key: value for key, value in row.items() if key and value not in (None, "")}
    if not isinstance(given.get("input"), str):
        raise EmsyncError("input: missing")
    item = replace(defaults, input=str((home / given["input"]).resolve()))
    if {"emotion", "valence", "arousal"} & set(given):
        word = given.get("emotion")
        valence, arousal = _number(given, "valence"), _number(given, "arousal")
        check_emotion(word, valence, arousal)
        item = replace(item, emotion=word, valence=valence, arousal=arousal)
    if "seed" in given:
        seed = _number(given, "seed")
        if seed != int(seed) or not 0 <= seed < 2**31:
            raise EmsyncError(f"seed: {given['seed']!r} is not a whole number in [0, 2^31)")
        item = replace(item, seed=int(seed))
    if "outputs" in given:
        item = _with_outputs(item, given["outputs"])
    return item


def check_emotion(word: str | None, valence: float | None, arousal: float | None) -> None:
    """EmsyncError naming the field for an unknown word or an axis outside -1..1: found before
    any work, not once per item on the workers."""
    default_emotion(word, valence, arousal)
    for axis, value in (("valence", valence), ("arousal", arousal)):
        if value is not None and not -1.0 <= value <= 1.0:
            raise EmsyncError(f"{axis}: {value} is outside -1..1")


def _number(row: dict, key: str) -> float | None:
    if key not in row:
        return None
    try:
        return float(row[key])
    except (TypeError, ValueError):
        raise EmsyncError(f"{key}: {row[key]!r} is not a number") from None


def _with_outputs(item: Item, wanted) -> Item:
    words = wanted.replace(",", " ").split() if isinstance(wanted, str) else wanted
    if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
        raise EmsyncError("outputs: expected a list of words")
    words = [word.lower().lstrip(".") for word in words if word.lower().lstrip(".") not in ("mid", "midi")]
    wrong = [word for word in words if word not in OUTPUT_WORDS]
    if wrong:
        raise EmsyncError(f"outputs: unknown output {wrong[0]!r} (use {', '.join(OUTPUT_WORDS)}; "
                          "MIDI is always written)")
    edits = [f".{word}" for word in words if f".{word}" in TIMELINE_FORMATS]
    if len(edits) > 1:
        raise EmsyncError(f"outputs: one edit format per item, not {' and '.join(edits)}")
    return replace(item, audio="wav" in words, plot="png" in words, timeline=edits[0] if edits else None)
