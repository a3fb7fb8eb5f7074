"""The machine a benchmark ran on, printed beside its figures: speed on an AVX2-only CPU with a
small cache is not speed on an AVX-512 one, and onnxruntime dispatches its kernels by both."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_line() -> str:
    """The CPU's model, cores, vector extensions (avx*, amx*), L2 and L3 sizes, and onnxruntime's version."""
    import onnxruntime

    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    vector = " ".join(sorted(f for f in flags if f.startswith(("avx", "amx")))) or "no avx"
    caches = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        level = (index / "level").read_text().strip()
        if level in ("2", "3"):
            caches[f"L{level}"] = (index / "size").read_text().strip()
    sizes = ", ".join(f"{name} {size}" for name, size in caches.items()) or "caches unknown"
    return f"{model}, {os.cpu_count()} cores, {vector}, {sizes}, onnxruntime {onnxruntime.__version__}"
