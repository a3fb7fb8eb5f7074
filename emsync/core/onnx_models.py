"""One way to open a bundled ONNX model: onnxruntime on the CPU, a set number of threads, and
a one-line EmsyncError naming the file when it is missing or unusable."""
from __future__ import annotations

import os
from pathlib import Path

from emsync.core.errors import EmsyncError


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the system tells it, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


SPIN_MODES = ("always", "in_run", "never")


def load_session(path: str | os.PathLike, what: str, *, threads: int = 1, how_to_get: str = "",
                 spin: str = "always"):
    """An onnxruntime InferenceSession for `path` (the `what` model) with `threads` intra-op
    threads and one inter-op thread, every graph optimisation on. `spin` says what its idle
    intra-op threads do: "always" spin (onnxruntime's default: they keep spinning for a while
    after a run, on cores other work may want), "in_run" spin between the parts of one run and
    sleep when it ends (a session run in a loop with Python between runs, on a machine it
    shares with a DAW or a live player), "never" sleep (a session run now and then beside
    other work)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise EmsyncError(f"{path}: {what} model not found" + (f" ({how_to_get})" if how_to_get else ""))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    if spin not in SPIN_MODES:
        raise ValueError(f"spin: expected one of {SPIN_MODES}, got {spin!r}")
    if spin == "never":
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    elif spin == "in_run":
        options.add_session_config_entry("session.force_spinning_stop", "1")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise EmsyncError(f"{path}: cannot load the {what} model ({str(exc).splitlines()[0]})") from None
