"""One batch item scored in a Ray worker process, through the scoring service
(emsync.service.score_file: what `emsync score` does).

The models are loaded once per worker process, not per item: Ray runs many tasks in one
worker process, the generator is kept here for the process's life and the cut detector in
emsync.video.shots' own cache.

How the input reaches the worker (runner.py chooses):
- shared path: `payload` is None; the worker opens the user's file by its path and writes
  the outputs straight into the output folder (one machine, or a file system every node
  mounts at the same path);
- shipped: `payload` is the file's bytes (from Ray's object store); the worker writes them to
  a scratch folder under the file's own name, scores that copy, and returns the outputs'
  bytes for the driver to write. The written edit still refers to the user's video and to the
  MIDI and WAV where the driver puts them, and errors name the user's file.
"""
from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

from emsync.core.errors import EmsyncError
from emsync.service.score_file import default_emotion, open_input, write_score
from emsync.service.scoring import ScoringService
from emsync.service.session import Session

from .inputs import Item

_GENERATORS: dict = {}  # model path (None: the bundled one) -> MusicGenerator, for this process's life


def _generator(model: str | None):
    """The generator for `model`, loaded on this worker's first item, on one thread: the
    runner starts one worker a CPU."""
    if model not in _GENERATORS:
        from emsync.core.generator import MusicGenerator

        _GENERATORS[model] = MusicGenerator(model, threads=1)
    return _GENERATORS[model]


def score_item(item: Item, payload: bytes | None, out: str, model: str | None, threshold: float,
               soundfont: str | None) -> dict:
    """Score `item` and say how it went: status "done" or "failed" (with a one-line error naming
    the user's file), seconds, the node and process it ran in, the process's peak memory, whether
    it loaded the generator, and for a shipped item the outputs as {file name: bytes}."""
    import ray

    began = time.perf_counter()
    result = {"node": ray.get_runtime_context().get_node_id(), "worker": os.getpid(),
              "model_loaded": model not in _GENERATORS, "files": {}}
    local = Path(item.input)
    try:
        if payload is None:
            score_files(item, local, Path(out), model, threshold, soundfont)
        else:
            with tempfile.TemporaryDirectory(prefix="emsync-batch-") as scratch:
                local = Path(scratch) / Path(item.input).name
                local.write_bytes(payload)
                written = score_files(item, local, Path(scratch), model, threshold, soundfont, linked_from=Path(out))
                result["files"] = {path.name: path.read_bytes() for path in written}
        result.update(status="done", error=None)
    except EmsyncError as exc:
        result.update(status="failed", error=_naming(item.input, str(exc).replace(str(local), item.input)))
    except Exception as exc:  # noqa: BLE001 - a reader's own failure on a corrupt file fails this item only
        result.update(status="failed", error=_naming(item.input, f"{type(exc).__name__}: {exc}"))
    result["seconds"] = round(time.perf_counter() - began, 3)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def score_files(item: Item, source: Path, folder: Path, model: str | None, threshold: float,
                soundfont: str | None, linked_from: Path | None = None) -> list[Path]:
    """Score `item`, read from `source`, into `folder`; the files written. Raises what scoring
    raises (score_item turns it into the item's error). The plain loop a benchmark compares
    Ray against calls this too."""
    service = ScoringService(Session(None), model, generator=_generator(model))
    valence, arousal = default_emotion(item.emotion, item.valence, item.arousal)
    known_as = item.input if linked_from is not None else None
    open_input(service, source, threshold=threshold, known_as=known_as)
    service.set_default_emotion(valence, arousal)
    midi, *_ = item.outputs(folder)
    timeline = folder / f"{item.name}{item.timeline}" if item.timeline else None
    return write_score(service, midi, item.seed, audio=item.audio, plot=item.plot, timeline=timeline,
                       soundfont=soundfont, linked_from=linked_from).files


def _naming(path: str, message: str) -> str:
    """`message` on one line, naming `path` first unless it already names it."""
    line = " ".join(message.split())
    return line if path in line else f"{path}: {line}"
