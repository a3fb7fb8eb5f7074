"""`emsync eval`: does the generator land on cuts, follow the emotion, and sound like music?

1. Boundary alignment on random cut lists: share of cuts with a note onset within
   +-50 ms and mean distance to the nearest onset, with boundary offsets vs the same
   model with offsets masked (same seeds), plus the constrained hit mode and a
   chance line (the same measure at random instants of the same music).
   On the same lists, the grid: each cue is written on a tempo map fitted to its cuts
   (meters 4/4, 3/4, 4/4, 6/8 in turn); the share of onsets within +-30 ms of a 16th note of that written map
   (the model alone hearing the grid, the same model not hearing it, the grid-guided sampler that
   `--free-timing` writes, and that music snapped to the grid as written by default; with the
   note densities and cuts hit; chance: random instants), cuts on a written beat and on a bar
   line, and tempo events per minute. Arousal against the map's bpm (in 2.) shows the
   tempo rule, not the model.
2. Emotion control on a 5x5 valence/arousal grid: Pearson correlation between the
   requested values and measured features (arousal: note density, velocity;
   valence: major-vs-minor key evidence), the model alone, with the sampler's
   optional emotion guidance, with the sampler the product uses ("grid guided": notes on the tempo
   map's grid, and in key), and with the mode lock (valence picks the mode; constrained,
   so reported apart).
3. Musical sanity: generated vs held-out corpus features.
4. Speed: onnxruntime with KV cache vs torch without cache (when torch is installed).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from emsync.core.conditions import EmotionCurve, grid_points
from emsync.core.features import music_features
from emsync.core.generator import EMOTION_GUIDANCE, MusicGenerator
from emsync.core.music import DRUMS, INSTRUMENTS, Note, Scene
from emsync.core.tempo import Meter, TempoMap, fit_to_picture
from emsync.training.windows import require_current

TOLERANCE = 0.05
GRID_TOLERANCE = 0.03
METERS = (Meter(4, 4), Meter(3, 4), Meter(4, 4), Meter(6, 8))
SANITY_KEYS = ("pitch_class_entropy", "polyphony", "notes_per_second", "pitched_notes_per_second", "silence_ratio",
               "out_of_key")
ROLE_FRAME = 0.5  # seconds: an instrument "sounds" in a frame when a note of it overlaps the frame


def random_cut_list(rng: np.random.Generator, duration: float) -> list[float]:
    cuts, t = [], float(rng.uniform(2.0, 6.0))
    while t < duration - 1.5:
        cuts.append(round(t, 2))
        t += float(rng.uniform(2.0, 8.0))
    return cuts


def alignment(notes: list[Note], instants: list[float]) -> tuple[float, float]:
    """(share of instants with an onset within TOLERANCE, mean distance to the nearest onset)."""
    onsets = np.sort(np.array([n.start for n in notes]))
    if not instants:
        return float("nan"), float("nan")
    if onsets.size == 0:
        return 0.0, float("inf")
    distances = [float(np.min(np.abs(onsets - t))) for t in instants]
    return float(np.mean(np.array(distances) <= TOLERANCE + 1e-9)), float(np.mean(distances))


def grid_fit(notes: list[Note], tempo: TempoMap, until: float) -> float:
    """Share of onsets within GRID_TOLERANCE of a 16th note of the written tempo map."""
    grid = tempo.grid(until + 1.0)
    onsets = np.array([n.start for n in notes])
    if onsets.size == 0:
        return float("nan")
    index = np.clip(np.searchsorted(grid, onsets), 1, len(grid) - 1)
    nearest = np.minimum(np.abs(grid[index] - onsets), np.abs(grid[index - 1] - onsets))
    return float(np.mean(nearest <= GRID_TOLERANCE + 1e-9))


def on_beat(tempo: TempoMap, instants: list[float], until: float) -> tuple[float, float]:
    """(share of instants within GRID_TOLERANCE of a written beat, share on a bar line)."""
    beats = tempo.beat_times(until + 5.0)
    bars = set(range(0, len(beats), tempo.meter.beats))
    near = [int(np.argmin(np.abs(beats - t))) for t in instants]
    hit = [abs(beats[k] - t) <= GRID_TOLERANCE + 1e-9 for k, t in zip(near, instants)]
    return float(np.mean(hit)), float(np.mean([h and k in bars for h, k in zip(hit, near)]))


def boundary_alignment(generator: MusicGenerator, n_lists: int, duration: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rows = {"with_offsets": [], "offsets_masked": [], "constrained_hit_cuts": [], "grid_guided": [],
            "chance_with_offsets": []}
    grid = {"onsets_on_16th_30ms": [], "onsets_on_16th_30ms_grid_not_heard": [], "onsets_on_16th_30ms_grid_guided": [],
            "onsets_on_16th_30ms_written": [], "onsets_on_16th_30ms_chance": [], "notes_per_second": [],
            "notes_per_second_grid_guided": [], "notes_per_second_written": [], "cuts_on_beat": [],
            "cuts_on_bar_line": [], "tempo_events_per_minute": []}
    for i in range(n_lists):
        cuts = random_cut_list(rng, duration)
        edges = [0.0] + cuts + [duration]
        scenes = [Scene(a, b, float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.8, 0.8)))
                  for a, b in zip(edges, edges[1:])]
        curve = EmotionCurve.from_scenes(scenes)
        tempo = fit_to_picture(duration, cuts, curve, METERS[i % len(METERS)])
        alone = {"seed": seed + i, "tempo": tempo, "follow_grid": False, "stay_in_key": False}
        own = generator.generate(duration, cuts, curve, **alone)
        masked = generator.generate(duration, cuts, curve, mask_boundaries=True, **alone)
        hit = generator.generate(duration, cuts, curve, hit_cuts=True, **alone)
        deaf = generator.generate(duration, cuts, curve, seed=seed + i, stay_in_key=False)
        guided = generator.generate(duration, cuts, curve, seed=seed + i, tempo=tempo)
        written = tempo.snap(guided.notes, duration, cuts)  # what generate(on_grid=True) returns
        rows["with_offsets"].append(alignment(own.notes, cuts))
        rows["offsets_masked"].append(alignment(masked.notes, cuts))
        rows["constrained_hit_cuts"].append(alignment(hit.notes, cuts))
        rows["grid_guided"].append(alignment(guided.notes, cuts))
        random_instants = [float(t) for t in rng.uniform(1.0, duration - 1.0, size=len(cuts))]
        rows["chance_with_offsets"].append(alignment(own.notes, random_instants))
        grid["onsets_on_16th_30ms"].append(grid_fit(own.notes, tempo, duration))
        grid["onsets_on_16th_30ms_grid_not_heard"].append(grid_fit(deaf.notes, tempo, duration))
        grid["onsets_on_16th_30ms_grid_guided"].append(grid_fit(guided.notes, tempo, duration))
        grid["onsets_on_16th_30ms_written"].append(grid_fit(written, tempo, duration))
        instants = np.random.default_rng(seed + 10_000 + i).uniform(0.0, duration, size=200)  # not `rng`: the cut
        chance = [Note(float(t), float(t) + 0.1, 60, 80, 1) for t in instants]             # lists stay as they were
        grid["onsets_on_16th_30ms_chance"].append(grid_fit(chance, tempo, duration))
        grid["notes_per_second"].append(len(own.notes) / duration)
        grid["notes_per_second_grid_guided"].append(len(guided.notes) / duration)
        grid["notes_per_second_written"].append(len(written) / duration)
        beat, bar = on_beat(tempo, cuts, duration)
        grid["cuts_on_beat"].append(beat)
        grid["cuts_on_bar_line"].append(bar)
        grid["tempo_events_per_minute"].append((len(tempo.bpms) - 1) * 60.0 / duration)
    report = {name: {"hit_rate_50ms": round(float(np.mean([r[0] for r in values])), 3),
                     "mean_abs_error_s": round(float(np.mean([r[1] for r in values])), 3)}
              for name, values in rows.items()} | {"cut_lists": n_lists, "duration_s": duration}
    report["grid"] = {name: round(float(np.nanmean(values)), 3) for name, values in grid.items()}
    report["grid"]["meters"] = sorted({str(m) for m in METERS})
    return report


def emotion_control(generator: MusicGenerator, grid: int, duration: float, seed: int, repeats: int = 1,
                    emotion_guidance: float = 0.0, lock_mode: bool = False,
                    follow_grid: bool = False, stay_in_key: bool = False) -> tuple[dict, list]:
    """Requested vs measured emotion over a grid x grid valence/arousal grid, each cell
    sampled `repeats` times (more takes make valence's r less noisy; see the model card);
    the model alone unless asked for guidance, the grid or the key (the product's sampler
    follows both) or the mode lock."""
    levels = np.linspace(-0.8, 0.8, grid)
    rows, outputs = [], []
    for repeat in range(repeats):
        for i, valence in enumerate(levels):
            for j, arousal in enumerate(levels):
                curve = EmotionCurve.constant(valence, arousal)
                tempo = fit_to_picture(duration, [], curve)
                result = generator.generate(duration, [], curve, seed=seed + (repeat * grid + i) * grid + j,
                                            emotion_guidance=emotion_guidance, lock_mode=lock_mode, tempo=tempo,
                                            follow_grid=follow_grid, stay_in_key=stay_in_key)
                f = music_features(result.notes, 0.0, duration)
                rows.append((valence, arousal, f.notes_per_second, f.mean_velocity, f.major_minus_minor,
                             tempo.bpms[0]))
                outputs.append(result.notes)
    table = np.array(rows)

    def r(x, y):
        return round(float(np.corrcoef(x, y)[0, 1]), 3) if np.std(y) > 0 else 0.0

    return {
        "grid": f"{grid}x{grid}, {duration:.0f} s each, {repeats} take(s) per cell",
        "emotion_guidance": emotion_guidance,
        "lock_mode": lock_mode,
        "follow_grid": follow_grid,
        "stay_in_key": stay_in_key,
        "arousal_vs_note_density_r": r(table[:, 1], table[:, 2]),
        "arousal_vs_velocity_r": r(table[:, 1], table[:, 3]),
        "arousal_vs_bpm_r": r(table[:, 1], table[:, 5]),
        "bpm_low_vs_high_arousal": [round(float(table[table[:, 1] == levels[0], 5].mean()), 1),
                                    round(float(table[table[:, 1] == levels[-1], 5].mean()), 1)],
        "valence_vs_major_minus_minor_r": r(table[:, 0], table[:, 4]),
        "note_density_low_vs_high_arousal": [round(float(table[table[:, 1] == levels[0], 2].mean()), 2),
                                             round(float(table[table[:, 1] == levels[-1], 2].mean()), 2)],
        "major_minus_minor_low_vs_high_valence": [round(float(table[table[:, 0] == levels[0], 4].mean()), 3),
                                                  round(float(table[table[:, 0] == levels[-1], 4].mean()), 3)],
    }, outputs


def _feature_means(note_sets: list[list[Note]], duration: float) -> dict:
    feats = [music_features(notes, 0.0, duration).as_dict() for notes in note_sets if notes]
    means = {k: round(float(np.mean([f[k] for f in feats])), 3) for k in SANITY_KEYS}
    return means | instrument_roles(note_sets, duration)


def instrument_roles(note_sets: list[list[Note]], duration: float, frame: float = ROLE_FRAME) -> dict:
    """Does each instrument play its part? For each instrument, the share of `frame`-long
    frames in which it sounds; and `bass_lowest`, of the frames where the bass sounds with
    another pitched instrument, the share where the bass holds the lowest note (a bass under
    the harmony). Pooled over all the pieces."""
    frames = max(1, int(round(duration / frame)))
    sounding = np.zeros((len(INSTRUMENTS), 0), dtype=bool)
    lowest = np.zeros((len(INSTRUMENTS), 0))
    for notes in note_sets:
        on = np.zeros((len(INSTRUMENTS), frames), dtype=bool)
        low = np.full((len(INSTRUMENTS), frames), np.inf)
        for note in notes:
            first, last = int(note.start / frame), int(np.ceil(min(note.end, duration) / frame))
            on[note.instrument, first:max(first + 1, last)] = True
            if note.instrument != DRUMS:
                span = low[note.instrument, first:max(first + 1, last)]
                np.minimum(span, note.pitch, out=span)
        sounding, lowest = np.concatenate([sounding, on], 1), np.concatenate([lowest, low], 1)
    bass = INSTRUMENTS.index("bass")
    others = np.delete(lowest, [DRUMS, bass], axis=0).min(axis=0)
    together = sounding[bass] & np.isfinite(others)
    roles = {f"{name}_sounding": round(float(sounding[i].mean()), 3) for i, name in enumerate(INSTRUMENTS)}
    roles["bass_lowest"] = round(float((lowest[bass][together] <= others[together]).mean()), 3) if together.any() \
        else None
    return roles


def held_out_windows(data: str | Path, duration: float, count: int, seed: int) -> list[list[Note]]:
    split = np.load(Path(data) / "valid.npz")
    rng = np.random.default_rng(seed)
    music = np.flatnonzero(split["corpus"] != "groove")
    offsets = split["notes_offsets"]
    windows = []
    for piece in rng.choice(music, size=min(count, music.size), replace=False):
        notes = split["notes"][offsets[piece]:offsets[piece + 1]]
        t0 = float(rng.uniform(0, max(0.0, notes[:, 1].max() - duration)))
        inside = notes[(notes[:, 0] >= t0) & (notes[:, 0] < t0 + duration)]
        windows.append([Note(float(s - t0), float(e - t0), int(p), int(v), int(i)) for s, e, p, v, i in inside])
    return windows


def _part(split, name: str, piece: int) -> np.ndarray:
    """One piece's rows of a concatenated corpus array."""
    return split[name][split[name + "_offsets"][piece]:split[name + "_offsets"][piece + 1]]


def held_out_grid_fit(data: str | Path, duration: float, count: int, seed: int) -> float:
    """Median share of onsets within GRID_TOLERANCE of a 16th of the held-out pieces' own beats
    (POP909's annotations, VGMIDI's written grid): the figure generated music is held to."""
    split = np.load(Path(data) / "valid.npz")
    rng = np.random.default_rng(seed)
    music = [i for i in np.flatnonzero(split["corpus"] != "groove")
             if len(_part(split, "beats", i)) > 8]
    shares = []
    for piece in rng.choice(music, size=min(count, len(music)), replace=False):
        beats, downbeats, sixteenths, notes = (_part(split, name, piece) for name in
                                               ("beats", "downbeats", "beat_sixteenths", "notes"))
        times, _ = grid_points(beats, downbeats.astype(bool), sixteenths)
        t0 = float(rng.uniform(beats[0], max(beats[0], beats[-1] - duration)))
        onsets = notes[(notes[:, 0] >= t0) & (notes[:, 0] < min(t0 + duration, beats[-1])), 0]
        if onsets.size:
            shares.append(float(np.mean(np.min(np.abs(onsets[:, None] - times[None, :]), axis=1)
                                        <= GRID_TOLERANCE + 1e-9)))
    return round(float(np.median(shares)), 3) if shares else float("nan")


def speed(generator: MusicGenerator, n_tokens: int = 256, seed: int = 0, with_float: bool = True) -> dict:
    """Tokens/s and x real time for onnxruntime with the KV cache (the int8 runtime copy and,
    `with_float`, the float file when both exist) vs torch re-running the whole prefix of
    `n_tokens` for every token (0: not measured)."""
    curve = EmotionCurve.constant(0.3, 0.3)
    weights = generator.path
    runtimes = {"onnxruntime_kv_cache": generator}
    if generator.precision == "int8":
        weights = generator.path.with_name(generator.path.name.replace("-int8", ""))
        runtimes = {"onnxruntime_kv_cache_int8": generator}
        if weights.exists() and with_float:
            runtimes["onnxruntime_kv_cache_float"] = MusicGenerator(weights)
    report = {}
    for name, runtime in runtimes.items():
        run = runtime.generate(120.0, [10.0, 20.0], curve, seed=seed)
        report[name] = {"tokens_per_s": round(run.stats["tokens_per_second"], 1),
                        "x_real_time": round(run.stats["realtime_factor"], 1)}
    music_per_token = 120.0 / max(1, run.stats["tokens"])
    if not n_tokens:
        return report
    try:
        import torch

        from emsync.training.export import load_onnx_weights
    except ImportError:
        report["torch_uncached"] = "torch not installed"
        return report
    if not weights.exists():
        report["torch_uncached"] = f"{weights}: float weights not found"
        return report
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model, _ = load_onnx_weights(weights)
    model.eval()
    tokens = torch.tensor([run.tokens[:n_tokens]])
    emotion = torch.full((1, n_tokens, 2), 0.3)
    offsets = torch.zeros(1, n_tokens, dtype=torch.long)
    started = time.perf_counter()
    with torch.no_grad():
        for t in range(1, n_tokens + 1):  # what generation costs without a cache: the whole prefix each step
            model(tokens[:, :t], emotion[:, :t], offsets[:, :t])
    torch_tps = n_tokens / (time.perf_counter() - started)
    report["torch_uncached"] = {"tokens_per_s": round(torch_tps, 1), "x_real_time": round(torch_tps * music_per_token, 1),
                                "context_tokens": n_tokens}
    report["kv_cache_speedup"] = round(report[next(iter(runtimes))]["tokens_per_s"] / torch_tps, 2)
    return report


def run_evaluation(model_path: str | None, data: str | None, quick: bool = False, seed: int = 0) -> dict:
    generator = MusicGenerator(model_path)
    if data and (Path(data) / "valid.npz").exists():  # before the long part, not after it
        require_current(Path(data) / "valid.npz", np.load(Path(data) / "valid.npz"))
    duration = 20.0 if quick else 30.0
    report = {"model": str(generator.path), "training": {k: generator.history.get(k)
                                                         for k in ("steps", "tokens", "seconds", "val_loss")}}
    report["boundary_alignment"] = boundary_alignment(generator, 4 if quick else 20, duration, seed)
    grid, window, repeats = (3, 12.0, 1) if quick else (5, 20.0, 2)
    report["emotion_control"], outputs = emotion_control(generator, grid, window, seed, repeats)
    report["emotion_control_with_guidance"] = emotion_control(generator, grid, window, seed, repeats,
                                                              emotion_guidance=EMOTION_GUIDANCE)[0]
    report["emotion_control_grid_guided"], guided = emotion_control(generator, grid, window, seed, repeats,
                                                                    follow_grid=True, stay_in_key=True)
    report["emotion_control_mode_locked"], locked = emotion_control(generator, grid, window, seed, repeats,
                                                                    lock_mode=True)
    report["musical_sanity"] = {"generated": _feature_means(outputs, window),
                                "generated_grid_guided": _feature_means(guided, window),
                                "generated_mode_locked": _feature_means(locked, window)}
    if data and (Path(data) / "valid.npz").exists():
        report["musical_sanity"]["held_out"] = _feature_means(held_out_windows(data, window, 50, seed), window)
        report["boundary_alignment"]["grid"]["held_out_onsets_on_16th_30ms"] = held_out_grid_fit(data, window, 50,
                                                                                                 seed)
    report["speed"] = speed(generator, 128 if quick else 256, seed)
    return report
