"""`emsync data build`: the training corpus from ../shared/data/midi.

Each piece becomes notes (for augmentation at training time), tokens (for validation
and statistics), boundaries, a valence/arousal curve and its beat grid (POP909: the annotated
beats and downbeats; VGMIDI: the written grid of its MIDI file, beats in its time signature's
unit, so a 6/8 bar has six eighths of two 16ths each).
Output: train.npz / valid.npz (concatenated arrays with offsets), pieces.jsonl and
stats.json.

Boundary rule (the training stand-in for a video cut): an onset cluster (pitched onsets
within 30 ms) is a candidate when it is a held chord -- at least 3 notes whose median
length is >= 0.6 s -- or when it falls on a POP909 chord change (+-60 ms) with at least
2 notes held >= 0.4 s. Candidates are taken strongest first (notes x median length)
with at least 1.5 s between boundaries.
"""
from __future__ import annotations

import csv
import hashlib
import json
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emsync.core import codec
from emsync.core.errors import EmsyncError
from emsync.core.features import EmotionEstimator, emotion_predictors, fit_logistic, music_features
from emsync.core.fileio import atomic_output, atomic_write_bytes
from emsync.core.midi_io import default_instrument, notes_of, read_midi, read_midi_file
from emsync.core.music import INSTRUMENTS, Note

VALID_SHARE = 0.05
WINDOW, HOP = 12.0, 6.0  # seconds, for estimated emotion curves
MIN_BOUNDARY_GAP = 1.5
ESTIMATE_STD = 0.45  # spread given to estimated emotion curves (see spread_estimates)
LICENCES = {"pop909": "MIT", "vgmidi": "research (Ferreira & Whitehead, ISMIR 2019)", "groove": "CC BY 4.0"}
PIANO, BASS = INSTRUMENTS.index("piano"), INSTRUMENTS.index("bass")
POP909_TRACKS = {"MELODY": INSTRUMENTS.index("strings"), "BRIDGE": INSTRUMENTS.index("guitar"), "PIANO": PIANO}
BASS_CEILING = 48  # below C3 the lowest piano note of an onset becomes the bass line


@dataclass
class Piece:
    id: str
    corpus: str
    source: str
    notes: list[Note]
    chord_changes: list[float] = field(default_factory=list)
    beats: list[float] = field(default_factory=list)
    downbeats: list[bool] = field(default_factory=list)  # one per beat: does a bar start there
    beat_sixteenths: list[int] = field(default_factory=list)  # one per beat: 4 for a quarter, 2 for an eighth
    bpm: float = 0.0
    labelled_curve: tuple[list, list, list] | None = None  # human valence/arousal over time
    label: tuple[float, float] | None = None  # human piece-level valence/arousal
    split: str = "train"


def split_of(piece_id: str) -> str:
    digest = int(hashlib.sha1(piece_id.encode()).hexdigest()[:8], 16)
    return "valid" if digest % 1000 < VALID_SHARE * 1000 else "train"


def pop909_instrument(track_name: str, channel: int, program: int) -> int:
    return POP909_TRACKS.get(track_name.strip().upper(), default_instrument(track_name, channel, program))


def split_bass(notes: list[Note]) -> list[Note]:
    """Give the lowest low-register piano note of each onset to the bass: pop piano
    arrangements double the bass line in the left hand, and the product needs a bass track."""
    lowest: dict[float, Note] = {}
    for n in notes:
        if n.instrument == PIANO and n.pitch < BASS_CEILING:
            key = round(n.start, 2)
            if key not in lowest or n.pitch < lowest[key].pitch:
                lowest[key] = n
    chosen = set(id(n) for n in lowest.values())
    return sorted(Note(n.start, n.end, n.pitch, n.velocity, BASS) if id(n) in chosen else n for n in notes)


def find_boundaries(notes: list[Note], chord_changes: list[float] = ()) -> list[float]:
    """Instants where the music itself marks a boundary (see the module docstring)."""
    onsets = sorted((n.start, n.end - n.start) for n in notes if n.instrument != INSTRUMENTS.index("drums"))
    clusters: list[list[tuple[float, float]]] = []
    for onset in onsets:
        if clusters and onset[0] - clusters[-1][0][0] <= 0.03:
            clusters[-1].append(onset)
        else:
            clusters.append([onset])
    changes = np.asarray(sorted(chord_changes))
    candidates = []
    for cluster in clusters:
        time = cluster[0][0]
        held = float(np.median([length for _, length in cluster]))
        on_change = changes.size > 0 and np.min(np.abs(changes - time)) <= 0.06
        if (len(cluster) >= 3 and held >= 0.6) or (on_change and len(cluster) >= 2 and held >= 0.4):
            candidates.append((len(cluster) * held, time))
    chosen: list[float] = []
    for _, time in sorted(candidates, reverse=True):
        if all(abs(time - other) >= MIN_BOUNDARY_GAP for other in chosen):
            chosen.append(time)
    return sorted(chosen)


def _read_text_rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _load_pop909(folder: Path) -> Piece:
    song = folder.name
    notes = split_bass(read_midi(folder / f"{song}.mid", pop909_instrument))
    chords = _read_text_rows(folder / "chord_midi.txt")
    changes = [float(row[0]) for prev, row in zip([None] + chords, chords) if prev is None or prev[2] != row[2]]
    rows = _read_text_rows(folder / "beat_midi.txt")  # time, strong beat, downbeat (annotated quarter beats)
    beats = [float(row[0]) for row in rows]
    return Piece(f"pop909/{song}", "pop909", str(folder / f"{song}.mid"), notes, changes, beats,
                 pop909_downbeats(rows), [4] * len(beats))


def pop909_downbeats(rows: list[list[str]]) -> list[bool]:
    """The bar lines of a POP909 beat_midi.txt (time, strong beat, downbeat): its third column,
    except where that marks every other bar, as in the songs in 3/4 whose strong beats come
    every 3 beats and "downbeats" every 6; there the strong beats are the bar lines."""
    marks = [[len(row) > column and float(row[column]) == 1.0 for row in rows] for column in (1, 2)]

    def bar_beats(column: list[bool]) -> float:
        at = np.flatnonzero(column)
        return float(np.median(np.diff(at))) if at.size > 2 else 0.0

    strong, down = bar_beats(marks[0]), bar_beats(marks[1])
    return marks[0] if strong >= 3 and down == 2 * strong else marks[1]


def _vgmidi_labels(root: Path) -> tuple[dict, dict]:
    """Piece-level labels from the phrase CSV and mean annotator curves from the raw JSON."""
    labels = defaultdict(list)
    with open(root / "vgmidi_labelled.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            name = Path(row["midi"]).name.rsplit("_", 1)[0] + ".mid"
            labels[name].append((float(row["valence"]), float(row["arousal"])))
    curves = {}
    for raw in sorted((root / "labelled" / "annotations").glob("vgmidi_raw_*.json")):
        data = json.loads(raw.read_text())
        for key, info in data["pieces"].items():
            tracks = [a for name, a in data["annotations"].items() if name.rsplit("_", 1)[0] == key]
            if not tracks or not info.get("measures"):
                continue
            length = min(len(a["valence"]) for a in tracks)
            valence = np.mean([a["valence"][:length] for a in tracks], axis=0)
            arousal = np.mean([a["arousal"][:length] for a in tracks], axis=0)
            seconds = float(info["duration"]) / length
            times = ((np.arange(length) + 0.5) * seconds).tolist()
            curves[info["midi"]] = (times, valence.tolist(), arousal.tolist())
    return {k: tuple(np.mean(v, axis=0)) for k, v in labels.items()}, curves


def _load_vgmidi(path: Path, label, curve) -> Piece:
    """A VGMIDI piece; its beats are its written grid (the arrangements are notated)."""
    data = read_midi_file(path)
    beats, downbeats, units = data.beats()
    return Piece(f"vgmidi/{path.stem}", "vgmidi", str(path), notes_of(data), beats=beats.tolist(),
                 downbeats=downbeats.tolist(), beat_sixteenths=np.maximum(1, 16 // units).tolist(), label=label, labelled_curve=curve)


def _load_groove(path: Path, bpm: float, split: str) -> Piece:
    return Piece(f"groove/{path.relative_to(path.parents[2]).as_posix()}", "groove", str(path), read_midi(path), bpm=bpm,
                 split="valid" if split != "train" else "train")


def _run_job(job: tuple) -> Piece | str:
    loader, *args = job
    try:
        return loader(*args)
    except EmsyncError as exc:
        return str(exc)


def collect_pieces(src: Path, workers: int = 2) -> tuple[list[Piece], list[str]]:
    jobs = []
    pop909 = src / "pop909"
    if pop909.is_dir():
        jobs += [(_load_pop909, d) for d in sorted(pop909.iterdir()) if (d / f"{d.name}.mid").exists()]
    vgmidi = src / "vgmidi"
    if (vgmidi / "vgmidi_labelled.csv").exists():
        labels, curves = _vgmidi_labels(vgmidi)
        jobs += [(_load_vgmidi, p, labels.get(p.name), curves.get(p.name))
                 for p in sorted((vgmidi / "labelled" / "midi").glob("*.mid"))]
    groove = src / "groove" / "info.csv"
    if groove.exists():
        with open(groove, newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r["beat_type"] == "beat" and r["time_signature"] == "4-4"]
        jobs += [(_load_groove, groove.parent / r["midi_filename"], float(r["bpm"]), r["split"]) for r in rows]
    if not jobs:
        raise EmsyncError(f"{src}: no pop909/, vgmidi/ or groove/ corpus found")
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_run_job, jobs, chunksize=8))
    pieces = [r for r in results if isinstance(r, Piece) and r.notes]
    problems = [r for r in results if isinstance(r, str)]
    for piece in pieces:
        if piece.corpus != "groove":
            piece.split = split_of(piece.id)
    return pieces, problems


def fit_estimator(pieces: list[Piece]) -> tuple[EmotionEstimator, dict]:
    """Fit on VGMIDI's human labels; report 5-fold agreement and correlation with the raw curves."""
    labelled = [p for p in pieces if p.label is not None]
    if len(labelled) < 20:
        return EmotionEstimator([4.0, 0.5, 0.0, 0.0], [1.0, 1.0, 0.5, 0.0]), {"labelled_pieces": len(labelled)}
    feats = [music_features(p.notes) for p in labelled]
    vx = np.array([emotion_predictors(f)[0] for f in feats])
    ax = np.array([emotion_predictors(f)[1] for f in feats])
    vy = np.array([p.label[0] for p in labelled])
    ay = np.array([p.label[1] for p in labelled])
    folds = np.arange(len(labelled)) % 5
    report = {"labelled_pieces": len(labelled)}
    for name, x, y in (("valence", vx, vy), ("arousal", ax, ay)):
        predicted = np.zeros(len(y))
        for k in range(5):
            w = np.asarray(fit_logistic(x[folds != k], y[folds != k]))
            predicted[folds == k] = x[folds == k] @ w[:-1] + w[-1]
        sign_accuracy = float(np.mean(np.sign(predicted) == np.sign(y)))
        majority = float(max(np.mean(y > 0), np.mean(y <= 0)))
        curve_means = [np.mean(p.labelled_curve[1 if name == "valence" else 2])
                       for p in labelled if p.labelled_curve]
        curve_pred = [pr for pr, p in zip(predicted, labelled) if p.labelled_curve]
        report[name] = {
            "cv_sign_accuracy": round(sign_accuracy, 3),
            "majority_baseline": round(majority, 3),
            "cv_pearson_with_raw_curve_mean": _pearson(curve_pred, curve_means),
        }
    with_curve = [f for f, p in zip(feats, labelled) if p.labelled_curve]
    report["valence"]["mode_evidence_pearson_with_raw_curve_mean"] = _pearson(
        [f.major_minus_minor for f in with_curve], [np.mean(p.labelled_curve[1]) for p in labelled if p.labelled_curve])
    estimator = EmotionEstimator(fit_logistic(vx, vy), fit_logistic(ax, ay))
    report["weights"] = {"valence": estimator.valence_weights, "arousal": estimator.arousal_weights}
    return estimator, report


def _pearson(x, y) -> float | None:
    return round(float(np.corrcoef(x, y)[0, 1]), 3) if len(x) > 3 and np.std(x) > 0 and np.std(y) > 0 else None


def estimate_emotion(features, estimator: EmotionEstimator) -> tuple[float, float]:
    """(valence, arousal) of unlabelled music, before spread_estimates.

    Arousal comes from the estimator fitted on VGMIDI's human labels. Valence is the mode
    evidence alone (best major minus best minor key correlation): on VGMIDI it follows the
    human valence curves about as well as the fitted estimator (stats.json: r 0.47 vs
    0.53), whose fit leans on key clarity -- a cue the generator cannot be steered by.
    Mode is the valence cue listeners hear most reliably (Hevner 1935; Gabrielsson and
    Lindstrom 2010), and with it the valence condition tells the model which mode to play.
    """
    return features.major_minus_minor, estimator.estimate(features)[1]


def emotion_curve_of(piece: Piece, estimator: EmotionEstimator) -> tuple[list, list, list]:
    """Human curve where annotators gave one, else estimates over sliding windows,
    each blended half-and-half with the whole-piece estimate to damp window noise."""
    if piece.labelled_curve is not None:
        return piece.labelled_curve
    if piece.label is not None:
        return [0.0], [0.6 * piece.label[0]], [0.6 * piece.label[1]]
    whole_v, whole_a = estimate_emotion(music_features(piece.notes), estimator)
    end = max(n.end for n in piece.notes)
    starts = np.array([n.start for n in piece.notes])
    times, valence, arousal = [], [], []
    for t0 in np.arange(0.0, max(end - WINDOW, 0.0) + HOP, HOP):
        lo, hi = np.searchsorted(starts, [t0, t0 + WINDOW])
        if hi - lo < 8:
            continue
        v, a = estimate_emotion(music_features(piece.notes[lo:hi], t0, min(t0 + WINDOW, end)), estimator)
        times.append(float(t0 + WINDOW / 2))
        valence.append(0.5 * (v + whole_v))
        arousal.append(0.5 * (a + whole_a))
    if not times:
        return [0.0], [whole_v], [whole_a]
    return times, valence, arousal


def spread_estimates(curves: dict, ids: list[str], target_std: float = ESTIMATE_STD) -> None:
    """Centre and scale estimated curves in place.

    The estimator ranks music well but its scale is arbitrary, and pop music leans
    major: standardising over the estimated corpus lets the condition span the whole
    -1..1 plane that users ask for, with the spread of VGMIDI's human curves.
    """
    if not ids:
        return
    for axis in (1, 2):
        values = np.concatenate([curves[i][axis] for i in ids])
        mean, std = float(values.mean()), float(values.std())
        std = std if std > 1e-9 else 1.0
        for i in ids:
            curves[i] = tuple(np.clip((np.asarray(c) - mean) / std * target_std, -1, 1).tolist() if k == axis
                              else c for k, c in enumerate(curves[i]))


def _concat(arrays: list[np.ndarray], dtype) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(a) for a in arrays])
    data = np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)
    return data, offsets


def _save_split(path: Path, pieces: list[Piece], curves: dict, boundaries: dict) -> int:
    notes = [np.array([[n.start, n.end, n.pitch, n.velocity, n.instrument] for n in p.notes], np.float32)
             for p in pieces]
    tokens = [codec.encode(p.notes)[0] for p in pieces]
    arrays = {}
    for name, items, dtype in (
        ("notes", notes, np.float32), ("tokens", tokens, np.int16),
        ("boundaries", [np.asarray(boundaries[p.id], np.float32) for p in pieces], np.float32),
        ("beats", [np.asarray(p.beats, np.float32) for p in pieces], np.float32),
        ("downbeats", [np.asarray(p.downbeats, np.int8) for p in pieces], np.int8),
        ("beat_sixteenths", [np.asarray(p.beat_sixteenths, np.int8) for p in pieces], np.int8),
        ("curve", [np.asarray(curves[p.id], np.float32).T.reshape(-1, 3) for p in pieces], np.float32),
    ):
        arrays[name], arrays[name + "_offsets"] = _concat(items, dtype)
    arrays["corpus"] = np.array([p.corpus for p in pieces])
    arrays["bpm"] = np.array([p.bpm for p in pieces], np.float32)
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:  # a file object: np.savez adds no suffix
        np.savez(handle, **arrays)
    return int(sum(len(t) for t in tokens))


def build(src: str | Path, out: str | Path, workers: int = 2) -> dict:
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise EmsyncError(f"{src}: corpus folder not found")
    out.mkdir(parents=True, exist_ok=True)
    pieces, problems = collect_pieces(src, workers)
    estimator, agreement = fit_estimator(pieces)
    curves = {p.id: emotion_curve_of(p, estimator) for p in pieces}
    estimated = [p.id for p in pieces if p.corpus != "groove" and p.label is None and p.labelled_curve is None]
    spread_estimates(curves, estimated)
    boundaries = {p.id: find_boundaries(p.notes, p.chord_changes) if p.corpus != "groove" else [] for p in pieces}
    stats: dict = {"source": str(src), "problems": problems, "emotion_estimator": agreement,
                   "boundary_rule": __doc__.split("Boundary rule")[1].strip(), "splits": {}}
    with atomic_output(out / "pieces.jsonl") as tmp, open(tmp, "w") as handle:
        for p in pieces:
            times, valence, arousal = curves[p.id]
            duration = max(n.end for n in p.notes)
            handle.write(json.dumps({
                "id": p.id, "corpus": p.corpus, "source": p.source, "licence": LICENCES[p.corpus],
                "split": p.split, "duration": round(duration, 3), "notes": len(p.notes),
                "valence": round(float(np.mean(valence)), 3), "arousal": round(float(np.mean(arousal)), 3),
                "emotion_from": "human" if p.label is not None or p.labelled_curve else "estimated",
                "boundaries": len(boundaries[p.id]),
            }) + "\n")
    for split in ("train", "valid"):
        chosen = [p for p in pieces if p.split == split]
        n_tokens = _save_split(out / f"{split}.npz", chosen, curves, boundaries)
        by_corpus = defaultdict(lambda: {"pieces": 0, "hours": 0.0, "boundaries": 0})
        for p in chosen:
            entry = by_corpus[p.corpus]
            entry["pieces"] += 1
            entry["hours"] += max(n.end for n in p.notes) / 3600
            entry["boundaries"] += len(boundaries[p.id])
        stats["splits"][split] = {"tokens": n_tokens, "by_corpus": {k: {**v, "hours": round(v["hours"], 2)}
                                                                     for k, v in by_corpus.items()}}
    all_v = np.concatenate([curves[p.id][1] for p in pieces if p.corpus != "groove"])
    all_a = np.concatenate([curves[p.id][2] for p in pieces if p.corpus != "groove"])
    stats["emotion_distribution"] = {
        "valence_mean": round(float(all_v.mean()), 3), "valence_std": round(float(all_v.std()), 3),
        "arousal_mean": round(float(all_a.mean()), 3), "arousal_std": round(float(all_a.std()), 3)}
    atomic_write_bytes(out / "stats.json", json.dumps(stats, indent=2).encode())
    return stats
