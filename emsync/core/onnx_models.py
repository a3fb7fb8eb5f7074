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


def load_session(path: str | os.PathLike, what: str, *, threads: int = 1, how_to_get: str = "", spin: bool = True):
    """An onnxruntime InferenceSession for `path` (the `what` model) with `threads` intra-op
    threads and one inter-op thread, every graph optimisation on. `spin=False` keeps the
    intra-op threads from spinning after a run: for a session run now and then beside other
    work, whose idle threads would otherwise take the other work's cores."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise EmsyncError(f"{path}: {what} model not found" + (f" ({how_to_get})" if how_to_get else ""))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise EmsyncError(f"{path}: cannot load the {what} model ({str(exc).splitlines()[0]})") from None
