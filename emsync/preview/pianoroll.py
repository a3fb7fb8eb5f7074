"""See the score: one piano roll per instrument over time, the cuts as vertical lines, and the
valence/arousal the music was asked for beneath, in one PNG (matplotlib, Agg, no pyplot).

Cuts and emotions come from the MIDI file's markers ("cut 3 chase | valence=+0.40
arousal=-0.50", as `emsync generate` writes them) or, when given, from a scene list, which
also knows the first scene's emotion (the file has no marker at 0 s).
"""
from __future__ import annotations

import io
import math
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from emsync.core.emotions import parse_valence_arousal
from emsync.core.errors import EmsyncError
from emsync.core.fileio import atomic_write_bytes
from emsync.core.midi_io import MidiFileData, Track, read_midi_file

WIDTH, HEIGHT, DPI = 1600, 900, 100
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
INSTRUMENT_COLOURS = {"drums": "#555555", "piano": "#1f77b4", "guitar": "#2ca02c", "bass": "#9467bd",
                      "strings": "#ff7f0e"}
VALENCE_COLOUR, AROUSAL_COLOUR, CUT_COLOUR = "#1b9e77", "#d95f02", "#c0392b"
NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
DRUM_NAMES = {35: "kick", 36: "kick", 37: "side stick", 38: "snare", 39: "clap", 40: "snare", 41: "low tom",
              42: "closed hat", 43: "low tom", 44: "pedal hat", 45: "mid tom", 46: "open hat", 47: "mid tom",
              48: "high tom", 49: "crash", 50: "high tom", 51: "ride", 52: "china", 53: "ride bell",
              54: "tambourine", 55: "splash", 56: "cowbell", 57: "crash", 59: "ride"}
_CUT = re.compile(r"^\s*cut\b", re.IGNORECASE)


def plot(midi_path: str | os.PathLike, png_path: str | os.PathLike, scenes: Sequence | None = None, *,
         width: int = WIDTH, height: int = HEIGHT, title: str | None = None) -> Path:
    """Draw `midi_path` to a `width` x `height` PNG at `png_path` (written atomically).

    `scenes`: Scene objects (start, end, valence, arousal, name); their starts after 0 are the
    cuts and their emotions the curves. Without them the file's markers are used: a marker
    whose text starts with "cut" is a cut, "valence=.. arousal=.." in a marker sets the
    emotion from there on, and any other marker ("hit") is drawn as a dotted line.
    Raises EmsyncError naming the file at fault.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    midi_path, png_path = Path(midi_path), Path(png_path)
    folder = png_path.parent if str(png_path.parent) else Path(".")
    if not folder.is_dir():
        raise EmsyncError(f"{png_path}: output folder {folder} does not exist")
    if png_path.is_dir():
        raise EmsyncError(f"{png_path}: is a folder; give a .png file name")
    if width < 400 or height < 300:
        raise EmsyncError(f"plot size {width}x{height}: too small to read (at least 400x300 pixels)")
    score = read_midi_file(midi_path)
    cuts, others, emotion = _cuts_and_emotion(score, scenes)
    duration = max([score.length, *(n[1] for t in score.tracks for n in t.notes), *(c[0] for c in cuts), 1.0])
    rows = [t for t in score.tracks if t.notes]

    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ratios = [_row_height(t) for t in rows] + [2.2]
    grid = fig.add_gridspec(len(ratios), 1, height_ratios=ratios, hspace=0.08,
                            left=0.11, right=0.985, top=0.885, bottom=0.075)
    axes = [fig.add_subplot(grid[0])]
    axes += [fig.add_subplot(grid[i], sharex=axes[0]) for i in range(1, len(ratios))]
    for ax, track in zip(axes, rows):
        _piano_roll(ax, track, _colour(track))
    _emotion_panel(axes[-1], emotion, cuts, duration, scenes is not None)

    for ax in axes:
        ax.set_xlim(0, duration)
        for time, _ in cuts:
            ax.axvline(time, color=CUT_COLOUR, lw=1.3, alpha=0.9, zorder=5)
        for time, _ in others:
            ax.axvline(time, color="#555555", lw=0.9, ls=(0, (2, 2)), alpha=0.8, zorder=4)
        ax.tick_params(labelbottom=False, labelsize=9)
    axes[-1].tick_params(labelbottom=True)
    axes[-1].xaxis.set_major_formatter(_clock)
    axes[-1].set_xlabel("time (min:s)", fontsize=10)
    _label_cuts(axes[0], cuts, others, duration)

    notes = sum(len(t.notes) for t in score.tracks)
    silent = [t.label for t in score.tracks if not t.notes]
    heading = title or midi_path.name
    fig.suptitle(heading, x=0.11, y=0.985, ha="left", fontsize=15, fontweight="bold")
    detail = (f"{_clock(score.length)} long  ·  {len(rows)} instrument{'s' * (len(rows) != 1)}  ·  "
              f"{notes:,} notes  ·  {len(cuts)} cut{'s' * (len(cuts) != 1)} (red lines)")
    if others:
        detail += "  ·  dotted: other markers"
    if silent:
        detail += "  ·  no notes: " + (", ".join(silent) if rows else "any track")
    fig.text(0.11, 0.935, detail, ha="left", va="bottom", fontsize=10.5, color="#333333")

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return atomic_write_bytes(png_path, buffer.getvalue())


# --------------------------------------------------------------------------- what to draw

def _cuts_and_emotion(score: MidiFileData, scenes: Sequence | None):
    """(cuts [(t, label)], other markers [(t, text)], emotion steps [(start, end, v, a)])."""
    if scenes is not None:
        ordered = sorted(scenes, key=lambda s: float(s.start))
        cuts = [(float(s.start), f"cut {i}" + (f" {s.name}" if getattr(s, "name", "") else ""))
                for i, s in enumerate((s for s in ordered if float(s.start) > 0), start=1)]
        ends = [float(s.start) for s in ordered[1:]] + [max(score.length, float(ordered[-1].end))] if ordered else []
        emotion = [(float(s.start), end, float(s.valence), float(s.arousal)) for s, end in zip(ordered, ends)]
        return cuts, [], emotion
    cuts, others, knots = [], [], []
    for time, text in score.markers:
        try:
            found = parse_valence_arousal(text, "marker")
        except EmsyncError:
            found = None
        if _CUT.match(text) or found is not None:
            cuts.append((time, text.split("|")[0].strip() or "cut"))
        else:
            others.append((time, text.strip()))
        if found is not None:
            knots.append((time, *found))
    end = max(score.length, *(t for t, *_ in knots)) if knots else score.length
    emotion = [(t, knots[i + 1][0] if i + 1 < len(knots) else end, v, a) for i, (t, v, a) in enumerate(knots)]
    cuts = [(t, label) for t, label in cuts if t > 0 or not _CUT.match(label)]
    return cuts, others, emotion


def _colour(track: Track) -> str:
    key = track.label.lower()
    if track.drums:
        return INSTRUMENT_COLOURS["drums"]
    return INSTRUMENT_COLOURS.get(key, COLOURS[(track.number - 1) % len(COLOURS)])


def _row_height(track: Track) -> float:
    if track.drums:
        return 1.2
    pitches = [n[2] for n in track.notes]
    return float(np.clip((max(pitches) - min(pitches) + 6) / 18, 1.0, 2.6))


def _piano_roll(ax, track: Track, colour: str) -> None:
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgba

    notes = np.array([(s, e, p, v) for s, e, p, v in track.notes], dtype=np.float64)
    starts, ends, pitches, velocities = notes.T
    ends = np.maximum(ends, starts + 0.05)  # zero-length and drum hits stay visible
    if track.drums:
        used = sorted(set(pitches.astype(int)))
        row = {p: i for i, p in enumerate(used)}
        ys = np.array([row[int(p)] for p in pitches], dtype=np.float64)
        ends = np.minimum(ends, starts + 0.12)
    else:
        ys = pitches
    verts = np.stack([np.stack([starts, ys - 0.42], 1), np.stack([ends, ys - 0.42], 1),
                      np.stack([ends, ys + 0.42], 1), np.stack([starts, ys + 0.42], 1)], axis=1)
    rgba = np.tile(to_rgba(colour), (len(notes), 1))
    rgba[:, 3] = 0.35 + 0.65 * np.clip(velocities / 127.0, 0, 1)  # louder notes are more solid
    ax.add_collection(PolyCollection(verts, facecolors=rgba, edgecolors="none", zorder=3))
    ax.set_facecolor("#fafafa")
    ax.grid(axis="x", color="#e6e6e6", lw=0.6)
    ax.set_ylabel(track.label, rotation=0, ha="right", va="center", fontsize=11, fontweight="bold",
                  color=colour, labelpad=8)
    if track.drums:
        ax.set_ylim(-0.8, len(used) - 0.2)
        if len(used) <= 6:
            ax.set_yticks(range(len(used)), [DRUM_NAMES.get(p, str(p)) for p in used])
        else:
            ax.set_yticks([])
        return
    low, high = int(pitches.min()), int(pitches.max())
    pad = max(1, (high - low) // 10)
    ax.set_ylim(low - pad - 0.5, high + pad + 0.5)
    span = high - low
    step = 12 if span > 14 else 6 if span > 5 else 1
    ticks = [p for p in range(low - pad, high + pad + 1) if p % step == 0] or [low]
    if len(ticks) > 5:
        ticks = ticks[::math.ceil(len(ticks) / 5)]
    ax.set_yticks(ticks, [_note_name(p) for p in ticks])
    ax.grid(axis="y", color="#e6e6e6", lw=0.6)


def _emotion_panel(ax, emotion, cuts, duration: float, from_scenes: bool) -> None:
    ax.set_ylim(-1.15, 1.75)  # the band above +1 holds the legend, clear of the curves
    ax.set_yticks([-1, -0.5, 0, 0.5, 1], ["-1", "", "0", "", "+1"])
    ax.axhline(0, color="#999999", lw=0.8)
    ax.grid(axis="both", color="#e6e6e6", lw=0.6)
    ax.set_ylabel("emotion", rotation=0, ha="right", va="center", fontsize=11, fontweight="bold", labelpad=8)
    if not emotion:
        ax.text(0.5, 0.5, "no valence/arousal in the file's markers (pass the scene list to show them)",
                transform=ax.transAxes, ha="center", va="center", fontsize=10, color="#777777")
        return
    xs, vs, as_ = [], [], []
    for start, end, valence, arousal in emotion:
        xs += [start, end]
        vs += [valence, valence]
        as_ += [arousal, arousal]
    ax.plot(xs, vs, color=VALENCE_COLOUR, lw=2.4, label="valence (sad → happy)", zorder=6)
    ax.plot(xs, as_, color=AROUSAL_COLOUR, lw=2.4, ls=(0, (5, 2)), label="arousal (calm → excited)", zorder=6)
    first = emotion[0][0]
    if first > 0.002 * duration and not from_scenes:  # cut markers start at cut 1: scene 0 is unknown
        ax.axvspan(0, first, ymax=2.15 / 2.9, color="#e4e4e4", zorder=1,
                   label="emotion not stored in the file (pass the scenes)")
    legend = ax.legend(loc="upper right", ncol=3, fontsize=9.5, frameon=True, framealpha=0.95, edgecolor="none",
                       borderaxespad=0.15, handlelength=2.6)
    legend.set_zorder(10)  # above the cut lines


def _label_cuts(ax, cuts, others, duration: float) -> None:
    """Cut names above the top row; close cuts get only their number so labels never collide."""
    transform = ax.get_xaxis_transform()
    last = -math.inf
    min_gap = duration / 28
    for number, (time, label) in enumerate(cuts, start=1):
        text = label if len(cuts) <= 12 else str(number)
        if time - last < min_gap * (len(text) / 6 + 0.5):
            text = str(number)
        ax.text(time, 1.02, text[:18], transform=transform, ha="center", va="bottom", fontsize=8.5,
                color=CUT_COLOUR, fontweight="bold", clip_on=False)
        last = time
    for time, label in others:
        ax.text(time, 1.02, label[:10], transform=transform, ha="center", va="bottom", fontsize=7.5,
                color="#555555", clip_on=False)


def _note_name(pitch: int) -> str:
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _clock(seconds: float, _position=None) -> str:
    seconds = max(0.0, float(seconds))
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}" if rest % 1 else f"{int(minutes)}:{int(rest):02d}"
