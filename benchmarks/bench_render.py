"""Audio preview speed: seconds of audio rendered per second of compute for a 3-minute score.

Wall-clock figures depend on what else the machine runs (the load average is printed);
CPU seconds (this process plus its synthesis workers) do much less.

Builds a dense five-instrument score (drums at 16ths with kick/snare/hats, piano chords and
melody, guitar arpeggios, bass, string pads; about 15 notes/s) with write_midi, or takes the
generator's music with --generator, then times each stage of emsync.preview.render. Prints
JSON and a summary; the aim is >= 50x real time for the full render on 2 cores.

    python benchmarks/bench_render.py [--seconds 180] [--generator] [--soundfont F] [--repeat 2]
"""
import argparse
import json
import os
import random
import resource
import tempfile
import time
from pathlib import Path

from emsync.core.midi_io import read_midi_file
from emsync.preview import loudness, synth
from emsync.preview import render as R
from emsync.core.midi_io import write_midi
from emsync.core.music import INSTRUMENTS, Note
from machine import cpu_line

DRUMS, PIANO, GUITAR, BASS, STRINGS = (INSTRUMENTS.index(n) for n in ("drums", "piano", "guitar", "bass", "strings"))


def dense_score(seconds: float, seed: int = 0) -> tuple[list[Note], list[tuple[float, str]]]:
    rng = random.Random(seed)
    beat = 0.5  # 120 bpm
    notes: list[Note] = []
    chords = [(48, 52, 55, 60), (45, 48, 52, 57), (41, 45, 48, 53), (43, 47, 50, 55)]
    step = 0
    t = 0.0
    while t < seconds - 1.0:
        chord = chords[(step // 16) % 4]
        if step % 4 == 0:
            notes.append(Note(t, t + 0.1, 36, 110, DRUMS))
        if step % 8 == 4:
            notes.append(Note(t, t + 0.1, 38, 105, DRUMS))
        notes.append(Note(t, t + 0.1, 42, rng.randint(50, 90), DRUMS))
        if step % 32 == 0:
            notes.append(Note(t, t + 0.1, 49, 100, DRUMS))
        if step % 8 == 0:
            notes += [Note(t, t + 4 * beat * 0.95, p + 12, rng.randint(70, 95), PIANO) for p in chord]
        if step % 2 == 0:
            notes.append(Note(t, t + beat * 0.9, rng.choice(chord) + 24 + rng.choice((0, 2, 4)), rng.randint(70, 100),
                              PIANO))
            notes.append(Note(t, t + beat * 0.45, chord[step // 2 % 4] + 12, rng.randint(60, 85), GUITAR))
        if step % 4 == 0:
            notes.append(Note(t, t + beat * 0.9, chord[0] - 12, 95, BASS))
        if step % 32 == 0:
            notes += [Note(t, t + 16 * beat * 0.98, p + 12, 70, STRINGS) for p in chord[1:]]
        step += 1
        t = step * beat / 4
    cuts = [c for c in range(12, int(seconds) - 4, 12)]
    markers = [(float(c), f"cut {i} | valence={rng.uniform(-1, 1):+.2f} arousal={rng.uniform(-1, 1):+.2f}")
               for i, c in enumerate(cuts, start=1)]
    return notes, markers


def generated_score(seconds: float) -> tuple[list[Note], list[tuple[float, str]]]:
    from emsync.core.conditions import EmotionCurve
    from emsync.core.generator import MusicGenerator

    cuts = [float(c) for c in range(12, int(seconds) - 4, 12)]
    notes = MusicGenerator().generate(seconds, cuts, EmotionCurve.constant(0.3, 0.4), seed=0).notes
    return notes, [(c, f"cut {i}") for i, c in enumerate(cuts, start=1)]


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the forked synthesis workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(function, *args, **kwargs):
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def best(function, repeat: int, *args, **kwargs):
    runs = [timed(function, *args, **kwargs) for _ in range(repeat)]
    return min(runs, key=lambda r: r[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--generator", action="store_true", help="score the generator's music (slow to make)")
    parser.add_argument("--soundfont")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the fastest counts")
    args = parser.parse_args()

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    notes, markers = generated_score(args.seconds) if args.generator else dense_score(args.seconds)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        midi = write_midi(folder / "bench.mid", notes, markers)
        _, imports, _ = timed(lambda: (__import__("scipy.signal"), __import__("pyloudnorm"),
                                       __import__(synth.available_engine())))
        score = read_midi_file(midi)
        sf_path, sf_data = synth.load_soundfont(args.soundfont)
        engine = synth.available_engine()
        seconds = score.length
        report = {"cpu": cpu_line(), "audio_seconds": round(seconds, 1), "notes": len(notes), "tracks": len(score.tracks),
                  "engine": engine, "soundfont": sf_path.name, "cpu_cores": cores,
                  "load_average_1min": round(os.getloadavg()[0], 2), "first_import_s": round(imports, 2)}
        stems, wall, cpu = best(synth.synthesize, args.repeat, score, sf_path, sf_data, engine, workers=1)
        report["synthesis_1_worker"] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                                        "x_real_time": round(seconds / wall, 1)}
        if cores and cores > 1:
            _, wall, _ = best(synth.synthesize, args.repeat, score, sf_path, sf_data, engine)
            report[f"synthesis_{min(cores, len(score.tracks))}_workers"] = {
                "wall_s": round(wall, 2), "x_real_time": round(seconds / wall, 1)}
        (mix, _, level), wall, cpu = best(loudness.normalise, args.repeat, [s.copy() for s in stems])
        report["loudness_stage"] = {"wall_s": round(wall, 2), "lufs": round(level.lufs, 2),
                                    "true_peak_dbtp": round(level.true_peak_dbtp, 2),
                                    "limiting_db": round(level.limiting_db, 2)}
        for label, stems_dir in (("render_mix_only", None), ("render_with_stems", folder / "stems")):
            result, wall, cpu = best(R.render, args.repeat, midi, folder / "bench.wav", args.soundfont, stems_dir)
            report[label] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "x_real_time": round(seconds / wall, 1),
                             "audio_s_per_cpu_s": round(seconds / cpu, 1), "files": 1 + len(result.stems)}
    print(json.dumps(report, indent=2))
    full = report["render_with_stems"]
    print(f"{seconds:.0f} s score, {len(notes)} notes, {engine}, {cores} cores (load average "
          f"{report['load_average_1min']}): synthesis {report['synthesis_1_worker']['x_real_time']}x real time on "
          f"one core; full render {report['render_mix_only']['x_real_time']}x (mix), {full['x_real_time']}x "
          f"(mix + {full['files'] - 1} stems), {full['audio_s_per_cpu_s']}x per CPU-second; aim >= 50x")


if __name__ == "__main__":
    main()
