"""Where out-of-key notes come from: sampling, or the training windows.

1. Sampling: for each `--settings T,top_p[,w]` (w: stay in key with OUT_OF_KEY_WEIGHT w; 1:
   off), 5x5 valence x arousal in -0.8..0.8, 12 s pieces, two seeds each, the product's sampler (a fitted tempo map, grid-guided): out-of-key share
   against one key for 12 s and in 4 s windows, notes/s, pitch-class entropy, polyphony, and
   the r of arousal with notes/s and of valence with the mode evidence, and pitched notes/s
   (drums left out) at each arousal.
2. With `--data`: the held-out windows' notes/s (pitched and all: they hold no drums), and
   training windows: the first 12 s of 300 windows cut as training cuts them,
   unaugmented, augmented, and augmented without the mode swap.

    python benchmarks/probe_out_of_key.py --data DATA --settings 1.0,0.95 0.9,0.95 1.0,0.95,0.3
"""
import argparse
import json

import numpy as np

from emsync.core import codec, running_key
from emsync.core.conditions import EmotionCurve
from emsync.core.features import music_features
from emsync.core.generator import MusicGenerator
from emsync.core.tempo import fit_to_picture

SECONDS, PART = 12.0, 4.0


def out_of_key(notes) -> tuple[float, float]:
    """Out-of-key share over SECONDS and the mean over its PART-second windows."""
    parts = [music_features(notes, a, a + PART) for a in np.arange(0, SECONDS, PART)]
    parts = [p.out_of_key for p in parts if p.notes_per_second > 0]
    return music_features(notes, 0.0, SECONDS).out_of_key, float(np.mean(parts)) if parts else 0.0


def sampling(temperature: float, top_p: float, generator: MusicGenerator, in_key_weight: float = 1.0) -> dict:
    running_key.OUT_OF_KEY_WEIGHT = in_key_weight
    levels = np.linspace(-0.8, 0.8, 5)
    rows = []
    for v in levels:
        for a in levels:
            for seed in (11, 12):
                curve = EmotionCurve.constant(v, a)
                notes = generator.generate(SECONDS, [], curve, seed=seed + int(100 * (v + 1)) * 7 + int(100 * (a + 1)),
                                           temperature=temperature, top_p=top_p, stay_in_key=in_key_weight < 1,
                                           tempo=fit_to_picture(SECONDS, [], curve)).notes
                f = music_features(notes, 0.0, SECONDS)
                rows.append((v, a, *out_of_key(notes), f.notes_per_second, f.pitch_class_entropy, f.polyphony,
                             f.major_minus_minor, f.pitched_notes_per_second))
    t = np.array(rows)

    def r(x, y):
        return round(float(np.corrcoef(x, y)[0, 1]), 3)

    return {"temperature": temperature, "top_p": top_p, "in_key_weight": in_key_weight,
            "out_of_key_12s": round(t[:, 2].mean(), 3),
            "out_of_key_4s": round(t[:, 3].mean(), 3), "notes_per_second": round(t[:, 4].mean(), 2),
            "pitch_class_entropy": round(t[:, 5].mean(), 3), "polyphony": round(t[:, 6].mean(), 2),
            "arousal_r": r(t[:, 1], t[:, 4]), "valence_r": r(t[:, 0], t[:, 7]),
            "pitched_notes_per_second_by_arousal": {f"{a:+.1f}": round(float(t[t[:, 1] == a, 8].mean()), 2)
                                                    for a in levels}}


def held_out_density(data: str) -> dict:
    """Notes per second of 50 held-out windows of SECONDS (no drums among them: Groove is left out)."""
    from emsync.training.evaluate import held_out_windows

    features = [music_features(notes, 0.0, SECONDS) for notes in held_out_windows(data, SECONDS, 50, 0) if notes]
    return {"held_out_notes_per_second": round(float(np.mean([f.notes_per_second for f in features])), 2),
            "held_out_pitched_notes_per_second": round(float(np.mean([f.pitched_notes_per_second
                                                                      for f in features])), 2)}


def training_windows(data: str, count: int = 300) -> dict:
    import emsync.training.windows as windows

    sampler = windows.WindowSampler(f"{data}/train.npz", 512)
    share = windows.MODE_SWAP_SHARE

    def measure(augment: bool, swap: float) -> dict:
        windows.MODE_SWAP_SHARE = swap
        rng, rows = np.random.default_rng(0), []
        for _ in range(count):
            tokens = [int(x) for x in sampler.sample(rng, augment)[0] if x not in (codec.PAD, codec.BOS)]
            notes = codec.decode(tokens)
            if notes and max(n.start for n in notes) >= SECONDS:
                rows.append((*out_of_key(notes), music_features(notes, 0.0, SECONDS).notes_per_second))
        m = np.array(rows).mean(axis=0)
        return {"windows": len(rows), "out_of_key_12s": round(m[0], 3), "out_of_key_4s": round(m[1], 3),
                "notes_per_second": round(m[2], 2)}

    try:
        return {"unaugmented": measure(False, share), "augmented": measure(True, share),
                "augmented_without_mode_swap": measure(True, 0.0), "mode_span_seconds": windows.MODE_SPAN_SECONDS}
    finally:
        windows.MODE_SWAP_SHARE = share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="ONNX generator (default: the bundled int8 copy)")
    parser.add_argument("--data", help="corpus built by `emsync data build`, for the training windows")
    parser.add_argument("--settings", nargs="*", default=["1.0,0.95"], help="temperature,top_p pairs")
    args = parser.parse_args()
    generator = MusicGenerator(args.model)
    for setting in args.settings:
        temperature, top_p, *weight = map(float, setting.split(","))
        chosen = running_key.OUT_OF_KEY_WEIGHT
        try:
            print(json.dumps(sampling(temperature, top_p, generator, *weight)), flush=True)
        finally:
            running_key.OUT_OF_KEY_WEIGHT = chosen
    if args.data:
        print(json.dumps(held_out_density(args.data)), flush=True)
        print(json.dumps(training_windows(args.data)), flush=True)


if __name__ == "__main__":
    main()
