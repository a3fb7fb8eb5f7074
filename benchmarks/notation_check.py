"""How MuseScore 3 reads generated cues: written tempo and meter kept, plain note values.

For random cut lists, emotions and meters (not the examples), each cue is generated on a
tempo map fitted to its cuts, written to MIDI and read by MuseScore headless. Reported per
cue and overall: whether MuseScore kept the file's first tempo (within 1 %) and meter, the
share of notes and rests written as 32nd or shorter, and tuplets per note or rest; beside
them the share of onsets within 30 ms of a written 16th.

    python benchmarks/notation_check.py [--cues 8] [--seconds 30] [--model M] [--seed 0] [--free-timing]

As the product writes them (notes on the grid) by default; `--free-timing` reads the played
feel instead (the sampler keeps onsets within 20 ms of a 16th; see emsync.core.generator).

Needs Debian's musescore3 and xvfb.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emsync.core.conditions import EmotionCurve  # noqa: E402
from emsync.core.generator import MusicGenerator  # noqa: E402
from emsync.core.midi_io import write_midi  # noqa: E402
from emsync.core.music import Scene  # noqa: E402
from emsync.core.scenes import score_markers  # noqa: E402
from emsync.core.tempo import Meter, fit_to_picture  # noqa: E402
from emsync.preview.notation import read_in_musescore  # noqa: E402
from emsync.training.evaluate import grid_fit, random_cut_list  # noqa: E402

METERS = (Meter(4, 4), Meter(3, 4), Meter(6, 8), Meter(4, 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cues", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--free-timing", action="store_true", help="the played feel, not written exactly on the grid")
    args = parser.parse_args()
    generator = MusicGenerator(args.model)
    rng = np.random.default_rng(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.cues):
            cuts = random_cut_list(rng, args.seconds)
            edges = [0.0, *cuts, args.seconds]
            scenes = [Scene(a, b, float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.8, 0.8)))
                      for a, b in zip(edges, edges[1:])]
            curve = EmotionCurve.from_scenes(scenes)
            tempo = fit_to_picture(args.seconds, cuts, curve, METERS[i % len(METERS)])
            music = generator.generate(args.seconds, cuts, curve, seed=args.seed + i, tempo=tempo,
                                       on_grid=not args.free_timing)
            path = write_midi(Path(folder) / f"cue{i}.mid", music.notes, score_markers(scenes), tempo)
            reading = read_in_musescore(path)
            rows.append({"meter": str(tempo.meter), "written_bpm": round(tempo.bpms[0], 2),
                         "musescore_bpm": round(reading.bpm, 2), "musescore_meter": reading.meter,
                         "kept_tempo_and_meter": bool(abs(reading.bpm / tempo.bpms[0] - 1) <= 0.01
                                                      and reading.meter == str(tempo.meter)),
                         "short_values": round(reading.short_share, 3), "tuplets": round(reading.tuplet_share, 3),
                         "onsets_on_16th_30ms": round(grid_fit(music.notes, tempo, args.seconds), 3)})
    summary = {"cues": len(rows), "model": str(generator.path), "on_grid": not args.free_timing,
               "kept_tempo_and_meter": round(float(np.mean([r["kept_tempo_and_meter"] for r in rows])), 3),
               "short_values_mean": round(float(np.mean([r["short_values"] for r in rows])), 3),
               "tuplets_mean": round(float(np.mean([r["tuplets"] for r in rows])), 3),
               "onsets_on_16th_30ms_mean": round(float(np.mean([r["onsets_on_16th_30ms"] for r in rows])), 3)}
    print(json.dumps({"summary": summary, "cues": rows}, indent=1))


if __name__ == "__main__":
    main()
