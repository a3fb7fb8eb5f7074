"""`emsync batch INPUTS... --out DIR`: the command line of emsync.batch. Importing this module
imports no Ray (the CLI builds its parser from it on every command)."""
from __future__ import annotations

import argparse
from pathlib import Path

from emsync.cli_options import Output, number_range
from emsync.core.errors import EmsyncError
from emsync.core.limits import CUT_THRESHOLD, EMOTION_AXIS

EXIT_SOME_FAILED = 1  # 2 stays "the command itself was wrong", as elsewhere in the CLI


def add_parser(sub) -> None:
    """The `batch` subcommand, added to the CLI's subparsers."""
    batch = sub.add_parser("batch", help="score many videos and timelines on Ray (embedded, or a cluster by "
                                         "--address); resumable, with DIR/report.json")
    batch.add_argument("inputs", nargs="+", metavar="INPUT",
                       help="video or timeline files, folders (searched by suffix), or .csv/.jsonl manifests "
                            "(columns: input, emotion, valence, arousal, seed, outputs)")
    batch.add_argument("--out", required=True, metavar="DIR", help="output folder: NAME.mid (and .wav, .png, "
                                                                   "the edit) per item, and report.json")
    batch.add_argument("--address", help="Ray cluster to use: auto (the one `ray start` made here), HOST:6379, or "
                                         "ray://HOST:10001 (default: start Ray here)")
    batch.add_argument("--workers", type=int, help="items scored at once, 1 or more (default: one per CPU of this machine, "
                                                   "or of the cluster)")
    batch.add_argument("--transfer", choices=("auto", "ship", "shared"), default="auto",
                       help="how inputs reach workers: ship (the object store; outputs come back the same way) or "
                            "shared (the same paths on every node); auto: shared when Ray runs here, else ship")
    batch.add_argument("--emotion", help="emotion word for every item (a manifest row may set its own; default: each timeline's own, a video's analysis)")
    batch.add_argument("--valence", type=float, help=f"as --emotion, one axis, {number_range(*EMOTION_AXIS)}")
    batch.add_argument("--arousal", type=float, help=f"as --emotion, one axis, {number_range(*EMOTION_AXIS)}")
    batch.add_argument("--seed", type=int, default=0,
                       help="sampling seed of every item, 0..2147483647 (a manifest row may set its own)")
    batch.add_argument("--audio", action="store_true", help="also render a WAV per item")
    batch.add_argument("--plot", action="store_true", help="also draw a piano roll (PNG) per item")
    batch.add_argument("--otio-format", choices=("otio", "xml", "fcpxml", "edl"),
                       help="also write each item's edit with the score in this format (default: none)")
    batch.add_argument("--threshold", type=float, default=0.5,
                       help=f"video cut detection threshold, {number_range(*CUT_THRESHOLD)} exclusive")
    batch.add_argument("--model", help="ONNX generator (default: the bundled model)")
    batch.add_argument("--soundfont", help="General MIDI SoundFont for --audio (default: TimGM6mb)")
    batch.set_defaults(func=cmd_batch, outputs=(Output("out", "--out"),))


def cmd_batch(args: argparse.Namespace) -> None:
    """Run the batch; exit status 1 when any item failed (after every other item finished)."""
    from .inputs import Item, check_emotion, find_items
    from .runner import Settings, WORKER_MEMORY_MB, run_batch

    if args.workers is not None and args.workers < 1:
        raise EmsyncError(f"--workers: {args.workers} is less than 1")
    low, high = CUT_THRESHOLD
    if not low < args.threshold < high:
        raise EmsyncError(f"--threshold: {args.threshold} is outside ({low:g}, {high:g})")
    try:
        check_emotion(args.emotion, args.valence, args.arousal)
    except EmsyncError as exc:
        raise EmsyncError(f"--{exc}") from None
    if not 0 <= args.seed < 2**31:
        raise EmsyncError(f"--seed: {args.seed} is outside [0, 2^31)")
    out = Path(args.out)
    defaults = Item("", emotion=args.emotion, valence=args.valence, arousal=args.arousal, seed=args.seed,
                    audio=args.audio, plot=args.plot, timeline=f".{args.otio_format}" if args.otio_format else None)
    items = find_items(args.inputs, defaults, out)
    settings = Settings(out, args.address, args.workers, args.transfer, args.model, args.threshold, args.soundfont)
    report = run_batch(items, settings)
    counts = report.counts()
    print(f"{report.path}: {counts['done']} done, {counts['failed']} failed, {counts['skipped']} skipped of "
          f"{len(items)}; memory per worker {WORKER_MEMORY_MB} MB reserved, {report.peak_rss_mb():.0f} MB peak seen")
    if counts["failed"]:
        raise SystemExit(EXIT_SOME_FAILED)
