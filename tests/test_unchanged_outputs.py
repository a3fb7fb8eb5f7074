"""The entry points' outputs for fixed seeds, held against a recording.

Each entry point runs as a user runs it: the CLI in a subprocess (a scene file, an editor
timeline, the bundled video) and `emsync serve` over real UDP (open, set, generate,
regenerate, export). The MIDI files they write must be byte for byte those recorded in
`tests/data/entry_point_outputs.json`. A refactor that changes the music, the markers or
the written file fails here. They run the float generator: the int8 copy's music differs
between CPUs (AVX2 and AVX-512 machines sampled different music from it: their int8 kernels
round differently), while float kernels differ only in a logit's last bits, which rarely
changes a sampled token. A deliberate change (a retrained model, a new MIDI layout)
re-records with

    python tests/test_unchanged_outputs.py --record

and says why in its commit. The recording names the generator it was made with, so a new
model fails with that reason rather than as a mystery.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import REPO, Peer, Server, run_cli  # noqa: E402

RECORDING = Path(__file__).resolve().parent / "data" / "entry_point_outputs.json"
SCENES = {"duration": 9.0, "scenes": [{"start": 0.0, "valence": 0.5, "arousal": -0.2, "name": "morning"},
                                      {"start": 3.5, "valence": -0.6, "arousal": 0.7, "name": "storm"},
                                      {"start": 6.0, "valence": 0.1, "arousal": 0.0, "name": "after"}]}


def _float_model() -> Path:
    from emsync.core.generator import default_model_path

    return default_model_path()


def _generator_digest() -> str:
    return hashlib.sha256(_float_model().read_bytes()).hexdigest()[:16]


def _midi(path: Path) -> dict:
    """A MIDI file as its digest and, to show where two differ, its notes and markers."""
    import mido

    midi = mido.MidiFile(path)
    events = []
    for number, track in enumerate(midi.tracks):
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type in ("note_on", "marker"):
                events.append([number, tick, msg.type, getattr(msg, "note", getattr(msg, "text", ""))])
    return {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "events": len(events), "first": events[:40]}


def _cli(*args) -> None:
    done = run_cli(*args, "--model", _float_model())
    assert done.returncode == 0, done.stderr


def collect(folder: Path) -> dict:
    """Run every entry point with fixed seeds into `folder`; what they wrote, as `_midi` records."""
    scene_file = folder / "scenes.json"
    scene_file.write_text(json.dumps(SCENES))
    out = {"generator": _generator_digest()}

    _cli("generate", "--scenes", scene_file, "--seed", 7, "-o", folder / "generate.mid")
    _cli("generate", "--duration", 8, "--cuts", "2.5,5", "--valence", -0.5, "--arousal", 0.4, "--seed", 3,
         "--hit-cuts", "--lock-mode", "-o", folder / "generate_constrained.mid")
    _cli("score", REPO / "examples" / "harbour.otio", "--emotion", "calm", "--seed", 2, "-o", folder / "timeline.mid")
    _cli("score", REPO / "examples" / "five_scenes.mp4", "--arousal", 0.5, "--seed", 5, "-o", folder / "video.mid")
    for name in ("generate", "generate_constrained", "timeline", "video"):
        out[f"cli_{name}"] = _midi(folder / f"{name}.mid")

    server = Server(folder / "session", folder / "server.log", args=("--model", _float_model()))
    peer = Peer(server.port)
    try:
        peer.ask("/emsync/open/scenes", str(scene_file), reply="/emsync/opened")
        peer.ask("/emsync/settings/set", "temperature", 0.9, reply="/emsync/settings")
        peer.ask("/emsync/scene/emotion", 1, "sad", reply="/emsync/scene")
        peer.send("/emsync/generate", 11)
        peer.until("/emsync/job/done", 120)
        peer.send("/emsync/regenerate", 2.0, 5.0, 12)
        peer.until("/emsync/job/done", 120)
        peer.ask("/emsync/export/midi", str(folder / "osc.mid"), reply="/emsync/exported")
        peer.ask("/emsync/open/timeline", str(REPO / "examples" / "harbour.otio"), reply="/emsync/opened")
        peer.send("/emsync/generate", 4)  # its media (missing) was looked for in an "open" job
        peer.until("/emsync/job/done", 120, lambda args: args[1] == "generate")
        peer.ask("/emsync/export/midi", str(folder / "osc_timeline.mid"), reply="/emsync/exported")
    finally:
        peer.close()
        server.stop()
    out["osc_regenerated"] = _midi(folder / "osc.mid")
    out["osc_timeline"] = _midi(folder / "osc_timeline.mid")
    return out


def test_entry_points_write_what_was_recorded(tmp_path):
    recorded = json.loads(RECORDING.read_text())
    assert recorded["generator"] == _generator_digest(), (
        "the bundled generator changed since the recording: re-record with "
        "`python tests/test_unchanged_outputs.py --record` and say why in the commit")
    now = collect(tmp_path)
    for name, record in recorded.items():
        if name == "generator":
            continue
        assert now[name]["sha256"] == record["sha256"], (name, now[name], record)


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_unchanged_outputs.py --record")
    with tempfile.TemporaryDirectory() as tmp:
        result = collect(Path(tmp))
    RECORDING.parent.mkdir(exist_ok=True)
    RECORDING.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RECORDING}")
