import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def generator():
    from emsync_core.generator import MusicGenerator

    return MusicGenerator()


def run_cli(*args, cwd=None):
    """Run the real `emsync` entry point in a subprocess."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "plugin_host.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or REPO, timeout=600)
