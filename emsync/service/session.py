"""A scoring session on disk: scenes, emotions, settings and every version of the music.

Layout of a session folder:

    session.json          settings, the version history and where undo/redo stands (small:
                          rewritten after each of these changes)
    scenes.json           the source, its duration, scenes and hits (rewritten when they change)
    versions/vNNNNNN.json one file per version of the music, written once: its notes and how
                          they were made

A session without a folder (`Session(None)`, what one CLI run uses) keeps all of this in
memory. Every change is written before it is acknowledged, each file to a temporary name, fsynced
and renamed over the old one (emsync.core.fileio.atomic_write_bytes), a new version's file
before the session file that names it. A server killed at any instant therefore reopens at
the last state it acknowledged: at worst a version file that was written but never named
is overwritten by the next version. Sessions written before scenes.json (format 1, the
scenes inside session.json) are read as they are and written in this layout.

Files are read only when regular and within emsync.core.limits; scenes or settings out of
bounds in a file (an older emsync let a duration of 1e300 in) are set aside with a warning
in the log, so the session still opens.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emsync.core.errors import EmsyncError
from emsync.core.fileio import atomic_write_bytes, own_temp_files, read_regular
from emsync.core.limits import (MAX_CANDIDATES, MAX_SCENE_FILE_BYTES, MAX_SCORE_SECONDS, MAX_SESSION_FILE_BYTES,
                                MAX_VERSION_FILE_BYTES)
from emsync.core.music import INSTRUMENTS, Note, Scene
from emsync.core.scenes import check_scene_list
from emsync.core.tempo import Meter, TempoMap

log = logging.getLogger("emsync.session")

FORMAT = "emsync-session"
FORMAT_VERSION = 2  # 1: scenes inside session.json
SCENES_FORMAT = "emsync-scenes"
SESSION_FILE = "session.json"
SCENES_FILE = "scenes.json"
VERSIONS = "versions"
OWN_FILES = re.compile(r"session\.json|scenes\.json|exports\.json")  # what atomic writes here may leave
OWN_VERSION_FILES = re.compile(r"v\d{6}\.json")

# name -> (type, low, high, default). Validation lives here so every surface (OSC, CLI, tests)
# gets the same checks and messages.
SETTINGS: dict[str, tuple[type, float, float, Any]] = {
    "seed": (int, 0, 2**31 - 1, 0),
    "temperature": (float, 0.05, 3.0, 1.0),
    "top_p": (float, 0.01, 1.0, 0.95),
    "hit_cuts": (bool, 0, 1, False),
    "candidates": (int, 1, MAX_CANDIDATES, 3),
    "seam_seconds": (float, 0.0, 8.0, 1.0),
    "bpm": (float, 0.0, 400.0, 0.0),  # 0: a tempo map fitted to the picture; 20-400: this tempo throughout
    "meter": (str, 0, 0, "4/4"),  # the time signature the music is written in
    "emotion_guidance": (float, 0.0, 4.0, 0.0),  # see emsync.core.generator
    "lock_mode": (bool, 0, 1, False),  # see emsync.core.mode_lock
    "stay_in_key": (bool, 0, 1, True),  # notes outside the key heard so far made rarer (see emsync.core.running_key)
    "on_grid": (bool, 0, 1, True),  # notes written on the tempo map's 16ths (see emsync.core.generator)
}


def check_setting(name: str, value: Any) -> Any:
    """The value converted to the setting's type, or EmsyncError naming the setting."""
    if name not in SETTINGS:
        raise EmsyncError(f"settings: unknown setting {name!r} (known: {', '.join(SETTINGS)})")
    kind, low, high, _ = SETTINGS[name]
    if kind is str:
        if not isinstance(value, str):
            raise EmsyncError(f"{name}: expected text, got {value!r}")
        return str(Meter.parse(value, name))
    if name == "bpm" and isinstance(value, (int, float)) and 0 < value < 20:
        raise EmsyncError("bpm: 0 fits the tempo to the picture; a fixed tempo is 20-400")
    if kind is bool:
        if isinstance(value, bool) or (isinstance(value, (int, float)) and value in (0, 1)):
            return bool(value)
        raise EmsyncError(f"{name}: expected true/false or 0/1, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EmsyncError(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise EmsyncError(f"{name}: {value} is outside [{low}, {high}]")
    if kind is int and float(value) != int(value):
        raise EmsyncError(f"{name}: expected a whole number, got {value!r}")
    value = kind(value)
    if not low <= value <= high:
        raise EmsyncError(f"{name}: {value} is outside [{low}, {high}]")
    return value


@dataclass
class Version:
    id: int
    kind: str  # "generate" or "regenerate"
    parent: int  # version it was made from (0: none)
    notes: list[Note]
    params: dict = field(default_factory=dict)
    created: float = 0.0

    def tempo(self) -> TempoMap:
        """The tempo map the music was written on (120 bpm in 4/4 where a version carries none;
        versions read from a session made before tempo maps carry its bpm)."""
        return TempoMap.from_dict(self.params["tempo"]) if "tempo" in self.params else TempoMap.constant(120.0)


def _scene_json(scene: Scene) -> dict:
    return asdict(scene)


def _read_json(path: Path, limit: int, what: str):
    """A JSON file of the session, regular and at most `limit` bytes."""
    try:
        return json.loads(read_regular(path, limit, what))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EmsyncError(f"{path}: not a readable {what} ({str(exc) or 'nested too deeply'})") from None


def _stored_note(start, end, pitch, velocity, instrument) -> Note:
    """A note of a version file, or ValueError for numbers emsync never writes (a note rings at
    most a score's length past the score)."""
    note = Note(float(start), float(end), int(pitch), int(velocity), int(instrument))
    if not (0.0 <= note.start <= note.end <= 2 * MAX_SCORE_SECONDS and 0 <= note.pitch <= 127
            and 0 <= note.velocity <= 127 and 0 <= note.instrument < len(INSTRUMENTS)):
        raise ValueError(f"note {[start, end, pitch, velocity, instrument]} is out of bounds")
    return note


def _scene_from(data: dict) -> Scene:
    return Scene(float(data["start"]), float(data["end"]), float(data.get("valence", 0.0)),
                 float(data.get("arousal", 0.0)), str(data.get("name", "")), str(data.get("media", "")),
                 bool(data.get("user_set", False)))


class Session:
    """The state of one scoring session; every mutating method saves before it returns."""

    def __init__(self, directory: str | os.PathLike | None):
        self.dir = Path(directory) if directory is not None else None
        self.source: dict | None = None  # {"kind": "timeline"|"video"|"scenes"|"cuts", "path", ...}
        self.duration = 0.0
        self.scenes: list[Scene] = []
        self.hits: list[float] = []
        self.settings = {name: spec[3] for name, spec in SETTINGS.items()}
        self.history: list[int] = []  # version ids, oldest first
        self.position = -1  # index into history of the current version; -1: no music
        self.next_version = 1
        self._cache: dict[int, Version] = {}
        self._unmapped_bpm = 120.0  # the tempo of versions written before tempo maps
        self._load()

    # ---- files -------------------------------------------------------------------------
    @property
    def file(self) -> Path:
        return self.dir / SESSION_FILE

    def version_file(self, version_id: int) -> Path:
        return self.dir / VERSIONS / f"v{version_id:06d}.json"

    @property
    def scenes_file(self) -> Path:
        return self.dir / SCENES_FILE

    def _load(self) -> None:
        if self.dir is None:
            return
        try:
            (self.dir / VERSIONS).mkdir(parents=True, exist_ok=True)
            leftovers = own_temp_files(self.dir, OWN_FILES) + own_temp_files(self.dir / VERSIONS, OWN_VERSION_FILES)
        except OSError as exc:
            raise EmsyncError(f"{self.dir}: cannot use this session folder ({exc.strerror or exc})") from None
        for stale in leftovers:  # of a write cut short by a kill
            with contextlib.suppress(OSError):
                stale.unlink()
        if not self.file.exists():
            self.save()
            return
        data = _read_json(self.file, MAX_SESSION_FILE_BYTES, "emsync session")
        try:
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"format is {data.get('format') if isinstance(data, dict) else data!r}, "
                                 f"not {FORMAT!r}")
            if int(data.get("format_version", 0)) > FORMAT_VERSION:
                raise ValueError("written by a newer emsync")
            repaired = self._load_settings(data.get("settings", {}))
            self.history = [int(v) for v in data.get("history", [])]
            self.position = int(data.get("position", len(self.history) - 1))
            self.next_version = int(data.get("next_version", max(self.history, default=0) + 1))
            if not -1 <= self.position < len(self.history):
                raise ValueError(f"position {self.position} outside the history")
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, EmsyncError) as exc:
            raise EmsyncError(f"{self.file}: not a readable emsync session ({exc})") from None
        migrating = not self.scenes_file.exists()  # format 1: the scenes inside session.json
        if migrating:
            repaired |= self._load_scenes(self.file, data)
        else:
            repaired |= self._load_scenes(self.scenes_file, _read_json(self.scenes_file, MAX_SCENE_FILE_BYTES,
                                                                       "scenes file"))
        missing = [v for v in self.history if not self.version_file(v).exists()]
        if missing:
            raise EmsyncError(f"{self.version_file(missing[0])}: version file missing from the session")
        if repaired:  # written back as read, so a warning is given once; the file as it was is kept beside
            for original in (self.file, self.scenes_file):
                if original.exists():
                    atomic_write_bytes(original.with_name(original.name + ".set-aside"), original.read_bytes())
            self.save()
        elif migrating:  # session.json keeps its old form until its next change
            self._save_scenes()

    def _load_settings(self, saved: dict) -> bool:
        """Saved settings; one out of its range keeps its default, with a warning (True: one did)."""
        repaired = False
        for name, value in saved.items():
            if name not in SETTINGS:
                continue
            try:
                self.settings[name] = check_setting(name, value)
            except EmsyncError as exc:
                log.warning("%s: %s; the setting is back to its default %r", self.file, exc, self.settings[name])
                repaired = True
        if "meter" not in saved:  # a session from before tempo maps: its music was written at its bpm
            self._unmapped_bpm = self.settings["bpm"]
            if self.settings["bpm"] == 120.0:  # the old default: fit maps from now on
                self.settings["bpm"] = 0.0
        return repaired

    def _load_scenes(self, path: Path, data) -> bool:
        """The source, duration, scenes and hits of a file; out of bounds, they are set aside
        (the session opens without scenes, its music and settings kept) with a warning (True)."""
        try:
            if not isinstance(data, dict) or not isinstance(data.get("source") or {}, dict):
                raise ValueError("not a JSON object with a source object")
            duration = float(data.get("duration", 0.0))
            scenes = [_scene_from(s) for s in data.get("scenes", [])]
            hits = [float(h) for h in data.get("hits", [])]
            check_scene_list(duration, scenes, hits)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, EmsyncError) as exc:
            log.warning("%s: %s; its scenes are set aside (the file as it was: %s.set-aside): open the timeline, "
                        "video or scene file again", path, exc, path.name)
            return True
        self.source, self.duration, self.scenes, self.hits = data.get("source"), duration, scenes, hits
        return False

    def to_json(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "saved": time.time(), "settings": self.settings,
                "history": self.history, "position": self.position, "next_version": self.next_version}

    def scenes_json(self) -> dict:
        return {"format": SCENES_FORMAT, "source": self.source, "duration": self.duration,
                "scenes": [_scene_json(s) for s in self.scenes], "hits": self.hits}

    def save(self) -> None:
        """Write the whole session: scenes first, then the state."""
        self._save_scenes()
        self._save_state()

    def _save_scenes(self) -> None:
        if self.dir is not None:
            atomic_write_bytes(self.scenes_file, json.dumps(self.scenes_json(), indent=1).encode("utf-8"))

    def _save_state(self) -> None:
        if self.dir is not None:
            atomic_write_bytes(self.file, json.dumps(self.to_json(), indent=1).encode("utf-8"))

    @contextlib.contextmanager
    def _change(self, scenes: bool = False):
        """Apply a change and save it (the scenes file when `scenes`, else the small session
        file); if saving fails, memory goes back to what is on disk. Scenes are never changed
        in place, so keeping the lists is keeping the state."""
        keep = (self.source, self.duration, list(self.scenes), list(self.hits), dict(self.settings),
                list(self.history), self.position, self.next_version)
        try:
            yield
            if scenes:
                self._save_scenes()
            else:
                self._save_state()
        except BaseException:
            (self.source, self.duration, self.scenes, self.hits, self.settings, self.history, self.position,
             self.next_version) = keep
            raise

    # ---- scenes and settings -----------------------------------------------------------
    def set_scenes(self, duration: float, scenes: list[Scene], hits: list[float], source: dict | None) -> None:
        """Replace the scenes; EmsyncError (naming the source's file) for numbers out of bounds,
        and the session stays as it was."""
        check_scene_list(duration, scenes, hits, (source or {}).get("path", ""))
        with self._change(scenes=True):
            self.duration = float(duration)
            self.scenes = [copy.copy(s) for s in scenes]
            self.hits = sorted(float(h) for h in hits)
            self.source = source

    def set_setting(self, name: str, value: Any) -> Any:
        value = check_setting(name, value)
        with self._change():
            self.settings[name] = value
        return value

    # ---- versions ----------------------------------------------------------------------
    @property
    def current_id(self) -> int:
        return self.history[self.position] if self.position >= 0 else 0

    def current(self) -> Version | None:
        return self.version(self.current_id) if self.position >= 0 else None

    def current_notes(self) -> list[Note]:
        version = self.current()
        return list(version.notes) if version else []

    def version(self, version_id: int) -> Version:
        if version_id in self._cache:
            return self._cache[version_id]
        if version_id not in self.history:
            raise EmsyncError(f"version: {version_id} is not in this session")
        path = self.version_file(version_id)
        data = _read_json(path, MAX_VERSION_FILE_BYTES, "version file")
        try:
            notes = [_stored_note(*note) for note in data["notes"]]
            params = dict(data.get("params", {}))
            params.setdefault("tempo", TempoMap.constant(self._unmapped_bpm).to_dict())
            version = Version(int(data["id"]), str(data["kind"]), int(data.get("parent", 0)), notes, params,
                              float(data.get("created", 0.0)))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, EmsyncError) as exc:
            raise EmsyncError(f"{path}: not a readable version file ({exc})") from None
        self._cache[version_id] = version
        return version

    def add_version(self, kind: str, notes: list[Note], parent: int, params: dict) -> Version:
        """Store a new version after the current one (dropping the redo branch) and make it current."""
        version = Version(self.next_version, kind, parent, list(notes), dict(params), time.time())
        if self.dir is not None:
            data = {"id": version.id, "kind": kind, "parent": parent, "created": version.created, "params": params,
                    "notes": [[n.start, n.end, n.pitch, n.velocity, n.instrument] for n in version.notes]}
            atomic_write_bytes(self.version_file(version.id), json.dumps(data).encode("utf-8"))
        with self._change():
            self.history = self.history[: self.position + 1] + [version.id]
            self.position = len(self.history) - 1
            self.next_version += 1
        self._cache[version.id] = version
        return version

    def can_undo(self) -> int:
        return self.position + 1

    def can_redo(self) -> int:
        return len(self.history) - 1 - self.position

    def undo(self) -> int:
        if self.position < 0:
            raise EmsyncError("undo: nothing to undo")
        with self._change():
            self.position -= 1
        return self.current_id

    def redo(self) -> int:
        if self.position + 1 >= len(self.history):
            raise EmsyncError("redo: nothing to redo")
        with self._change():
            self.position += 1
        return self.current_id
