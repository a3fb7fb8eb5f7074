"""The `emsync` command line: one host of the scoring service (emsync.service), and the
training, preview and live commands."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from emsync.cli_options import Output, Parser, bounded, check_outputs, number_range, setting_range, stage
from emsync.core.emotions import MOODS
from emsync.core.errors import EmsyncError
from emsync.core.generator import EMOTION_GUIDANCE
from emsync.core.limits import CUT_THRESHOLD, EMOTION_AXIS, MAX_CUTS, MAX_SCORE_SECONDS
from emsync.service.scoring import SAMPLING_SETTINGS
from emsync.service.session import SETTINGS

DEFAULT_CORPUS = "../shared/data/midi"
EXTRA_OF_MODULE = {  # a third-party module -> the pyproject extra that installs it
    "opentimelineio": "timelines", "av": "video", "cv2": "video", "pyloudnorm": "all", "scipy": "all",
    "matplotlib": "preview", "pretty_midi": "preview", "midirenderer": "preview", "pythonosc": "osc",
    "rtmidi": "live", "ray": "batch", "torch": "train", "onnx": "train", "onnxscript": "train", "h5py": "train",
}
MIDI_SUFFIXES = (".mid", ".midi")
# Bounds of the numeric options without a session setting (argparse holds to them: see cli_options.bounded).
STEPS, BATCH, MINUTES = bounded(int, 1, 10**7), bounded(int, 1, 4096), bounded(float, 0, 7 * 24 * 60)
RATE, WORKERS = bounded(float, 1e-8, 1.0), bounded(int, 1, 256)
SEED, SECONDS = bounded(int, 0, SETTINGS["seed"][2]), bounded(float, 0, MAX_SCORE_SECONDS)
SCORE_OUTPUTS = (Output("output", "-o", MIDI_SUFFIXES), Output("output", "--audio", (".wav",), ("audio", "otio"), ".wav"),
                 Output("output", "--plot", (".png",), "plot", ".png"))


def _timeline_writers() -> tuple[str, ...]:
    from emsync.timelines.timeline import WRITERS

    return tuple(WRITERS)


def _needs_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        raise EmsyncError("this command trains or exports models and needs torch: pip install 'emsync[train]'") \
            from None


def cmd_data_build(args) -> None:
    from emsync.training.corpus import build

    with stage(f"building the corpus from {args.src}"):
        stats = build(args.src, args.out, workers=args.workers)
    splits = stats["splits"]
    print(f"wrote {args.out}: {splits['train']['tokens']} train and {splits['valid']['tokens']} validation tokens")
    print(json.dumps(stats["emotion_estimator"], indent=2))
    for problem in stats["problems"]:
        print(f"skipped: {problem}", file=sys.stderr)


def cmd_train(args) -> None:
    _needs_torch()
    out = Path(args.out)
    if args.background:
        out.mkdir(parents=True, exist_ok=True)
        argv = [a for a in sys.argv[1:] if a != "--background"]
        with open(out / "train.log", "a") as log:
            process = subprocess.Popen([sys.executable, "-m", "emsync.cli", *argv], stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        print(f"training in the background (pid {process.pid}); log: {out / 'train.log'}, "
              f"metrics: {out / 'log.jsonl'}")
        return
    from emsync.core.generator import default_model_path
    from emsync.training.train import TrainConfig, train

    init_from = None if args.fresh else (args.init_from or default_model_path())
    if init_from and not Path(init_from).exists():
        init_from = None
    cfg = TrainConfig(data=args.data, out=args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                      minutes=args.minutes, seed=args.seed)
    ckpt = train(cfg, init_from=str(init_from) if init_from else None)
    if args.export:
        cmd_export(argparse.Namespace(checkpoint=str(ckpt), output=args.export))


def cmd_export(args) -> None:
    _needs_torch()
    import torch

    from emsync.training.export import export_onnx, quantize_int8
    from emsync.core.generator import int8_path
    from emsync.training.model import Generator, GeneratorConfig, load_weights

    try:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise EmsyncError(f"{args.checkpoint}: checkpoint not found") from None
    model = Generator(GeneratorConfig(**state["model_config"]))
    load_weights(model, state["model"], args.checkpoint)
    history = dict(state.get("history", {}))
    history["train_config"] = state.get("train_config")
    with stage(f"exporting {args.output}"):
        export_onnx(model, args.output, history)
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 1e6:.1f} MB)")
    with stage(f"quantizing {int8_path(args.output)}"):
        int8 = quantize_int8(args.output, int8_path(args.output))
    print(f"wrote {int8} ({os.path.getsize(int8) / 1e6:.1f} MB), the int8 copy generation loads")


def _service(args):
    """A scoring service over a session in memory, its sampling settings from the flags."""
    from emsync.service.scoring import ScoringService
    from emsync.service.session import Session

    service = ScoringService(Session(None), args.model)
    for name in (*SAMPLING_SETTINGS, "bpm", "meter"):
        with _as_flag(name):
            service.set_setting(name, getattr(args, name))
    return service


@contextlib.contextmanager
def _as_flag(name: str):
    """An error about a setting or an axis names the command-line flag that gave it."""
    try:
        yield
    except EmsyncError as exc:
        if str(exc).startswith(f"{name}:"):
            raise EmsyncError(f"--{name.replace('_', '-')}{str(exc)[len(name):]}") from None
        raise


def _write_score(args, service) -> None:
    """Generate for the opened scenes and write the MIDI file (the user named it: it may be
    replaced), and the WAV, piano roll and edit asked for (emsync.service.score_file)."""
    from emsync.service.score_file import write_score

    seed = args.seed if args.seed is not None else secrets.randbelow(SETTINGS["seed"][2] + 1)
    write_score(service, args.output, seed, audio=args.audio, plot=args.plot, timeline=getattr(args, "otio", None),
                soundfont=args.soundfont, say=print, stage=stage)
    if args.seed is None:
        print(f"seed {seed} (chosen at random: --seed {seed} makes this music again)")


def cmd_generate(args) -> None:
    service = _service(args)
    if args.scenes:
        service.open_scene_file(args.scenes)
    elif args.duration is None:
        raise EmsyncError("give --duration (with --cuts/--valence/--arousal) or --scenes FILE")
    else:
        try:
            cuts = [float(c) for c in args.cuts.split(",") if c.strip()] if args.cuts else []
        except ValueError:
            raise EmsyncError(f"--cuts: expected comma-separated seconds, got {args.cuts!r}") from None
        with _as_flag("duration"), _as_flag("cuts"), _as_flag("valence"), _as_flag("arousal"):
            service.open_cuts(args.duration, cuts, args.valence, args.arousal)
    _write_score(args, service)


def cmd_cuts(args) -> None:
    from emsync.timelines.timeline import read_timeline

    timeline = read_timeline(args.timeline, fps=args.fps, transition=args.transition)
    if args.json:
        print(json.dumps(_timeline_json(timeline), indent=2))
        return
    print(f"{timeline.path}: {timeline.format}, {timeline.fps:.3f} fps ({timeline.fps_source}), "
          f"{timeline.duration:.3f} s, {len(timeline.cuts)} cuts")
    for number, scene in enumerate(timeline.scenes):
        mood = f"valence={scene.valence:+.2f} arousal={scene.arousal:+.2f}" if scene.user_set else "emotion not set"
        print(f"  {number:3d}  {scene.start:9.3f} - {scene.end:9.3f}  {scene.name or '(gap)'}  [{mood}]")


def _timeline_json(timeline) -> dict:
    return {
        "file": str(timeline.path), "format": timeline.format, "fps": timeline.fps, "fps_source": timeline.fps_source,
        "duration": timeline.duration, "global_start": timeline.global_start, "timeline": timeline.timeline_choice,
        "cuts": [{"time": t, "frame": round(t * timeline.fps)} for t in timeline.cuts],
        "scenes": [{"start": s.start, "end": s.end, "name": s.name, "media": s.media, "valence": s.valence,
                    "arousal": s.arousal, "emotion_set_by_user": s.user_set} for s in timeline.scenes],
        "hits": timeline.hits,
    }


def cmd_analyze(args) -> None:
    from emsync.video.analysis import analyze_video
    from emsync.video.decode import probe

    probe(args.video)  # an unreadable file fails in one line before any progress is shown
    with stage(f"analysing {args.video} (cuts, faces, picture, sound)") as heard:
        analysis = analyze_video(args.video, args.threshold, progress=heard)
    if args.json:
        print(json.dumps(analysis.to_dict(), indent=2))
        return
    _print_analysis(analysis)


def _print_analysis(analysis) -> None:
    print(f"{analysis.path}: {analysis.duration:.2f} s, {analysis.fps:.3f} fps, {len(analysis.cuts)} cuts, "
          f"sound {'analysed' if analysis.has_audio else 'none'}, faces {analysis.faces}; "
          f"{analysis.realtime_factor:.1f}x real time")
    for number, s in enumerate(analysis.scenes):
        print(f"  {number:3d}  {s.start:8.3f} - {s.end:8.3f}  {_emotion_line(s)}")
    if analysis.whole is not None:
        print(f"  whole video            {_emotion_line(analysis.whole)}")


def _emotion_line(s) -> str:
    spoke = ", ".join(f"{source} {share:.2f}" for source, share in s.evidence.items())
    top = max(s.emotions, key=s.emotions.get)
    return (f"{s.word:<11} valence={s.valence:+.2f} arousal={s.arousal:+.2f}  confidence {s.confidence:.2f}  "
            f"{top} {s.emotions[top]:.2f}  decided by {s.decided_by} [{spoke}]")


def cmd_score(args) -> None:
    """A timeline's scenes (emotions the editor set win over the flags) or a video's analysed
    scenes (the flags override the analysis), then the score."""
    from emsync.service.score_file import default_emotion, is_timeline, open_input

    with _as_flag("emotion"):
        valence, arousal = default_emotion(args.emotion, args.valence, args.arousal)
    if args.otio and Path(args.otio).resolve() == Path(args.timeline).resolve():
        raise EmsyncError(f"--otio {args.otio}: is the timeline being scored; write the edit to another file")
    service = _service(args)
    if not is_timeline(args.timeline):
        from emsync.video.decode import probe

        probe(args.timeline)  # an unreadable video fails in one line before any progress is shown
    with stage(f"{'reading' if is_timeline(args.timeline) else 'analysing'} {args.timeline}") as heard:
        analysis = open_input(service, args.timeline, args.fps, args.transition, args.threshold,
                              media=not args.no_media and None in (valence, arousal), progress=heard)
    if analysis is not None:
        _print_analysis(analysis)
    with _as_flag("valence"), _as_flag("arousal"):
        service.set_default_emotion(valence, arousal)
    _write_score(args, service)


def cmd_render(args) -> None:
    from emsync.preview.render import render

    with stage(f"rendering {args.score}"):
        report = render(args.score, args.output, args.soundfont, args.stems)
    print(report.summary())


def cmd_plot(args) -> None:
    from emsync.preview.pianoroll import plot

    scenes = None
    if args.scenes:
        from emsync.core.scenes import load_scene_file

        scenes = load_scene_file(args.scenes)[1]
    with stage(f"drawing {args.score}"):
        picture = plot(args.score, args.output, scenes)
    print(f"wrote {picture}")


def cmd_serve(args) -> None:
    from emsync.osc.server import serve

    serve(args.host, args.port, args.session, args.model)


def cmd_play(args) -> None:
    import signal
    import threading

    from emsync.live.player import Player, Performance
    from emsync.live.ports import open_output

    score = Performance.from_file(args.score, args.track)
    port, label = open_output(args.port)
    player = Player(port, score)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill still releases held notes
    try:
        if args.follow:
            followed = player.follow(args.follow)
            print(f"{args.score}: following {followed} (clock, start/continue/stop, song position), playing to "
                  f"{label}; Ctrl-C quits", flush=True)
            threading.Event().wait()
        print(f"{args.score}: playing {score.duration:.2f} s to {label} from {args.start:.2f} s; Ctrl-C stops",
              flush=True)
        player.play(args.start, args.end)
        player.wait_stopped()
    finally:
        player.close()


def cmd_eval(args) -> None:
    from emsync.training.evaluate import run_evaluation

    with stage("evaluating the generator"):
        report = run_evaluation(args.model, args.data, quick=args.quick, seed=args.seed)
    text = json.dumps(report, indent=2)
    if args.json_out:
        from emsync.core.fileio import atomic_write_bytes

        atomic_write_bytes(args.json_out, text.encode())
    print(text)


def _timeline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("timeline", help="editor timeline: .otio/.otioz, .edl, FCP7 .xml, .fcpxml, .aaf")
    parser.add_argument("--fps", help="frame rate of an EDL, e.g. 24, 25, 29.97 (default: found from the timecodes)")
    parser.add_argument("--transition", choices=("mid", "start", "end"), default="mid",
                        help="where a dissolve counts as the cut")


def _threshold_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=float, default=0.5,
                        help=f"video cut detection threshold, {number_range(*CUT_THRESHOLD)} exclusive (lower finds "
                        "more cuts)")


def _sampling_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, help=f"random seed, {setting_range('seed')}; the same seed gives the same "
                        "music. Without it the music changes each run: a seed is chosen at random and printed")
    parser.add_argument("--temperature", type=float, default=SETTINGS["temperature"][3],
                        help=f"sampling temperature, {setting_range('temperature')} (lower: safer, higher: bolder)")
    parser.add_argument("--top-p", type=float, default=SETTINGS["top_p"][3],
                        help=f"sample only from the likeliest tokens up to this probability, {setting_range('top_p')}")
    parser.add_argument("--hit-cuts", action="store_true", help="guarantee a chord onset on every cut")
    parser.add_argument("--emotion-guidance", type=float, nargs="?", const=EMOTION_GUIDANCE, default=0.0,
                        metavar="G", help="follow the emotion more strongly: push away from the mirrored "
                        f"emotion by G, {setting_range('emotion_guidance')} (off by default; G is {EMOTION_GUIDANCE} "
                        "when not given); about half the speed")
    parser.add_argument("--free-timing", dest="on_grid", action="store_false",
                        help="keep the played feel (onsets up to 20 ms either side of a 16th) instead of writing every "
                        "note exactly on a 16th of the tempo map")
    parser.add_argument("--lock-mode", action="store_true",
                        help="constrained mode: valence picks major or minor (the wrong mode's third and sixth "
                        "are played a semitone over; |valence| < 0.15 leaves the mode to the model)")
    parser.add_argument("--chromatic", dest="stay_in_key", action="store_false",
                        help="let notes outside the key through as often as the model plays them (by default a note "
                        "outside the key heard so far keeps half its probability: the model alone plays about twice "
                        "the corpus's share)")
    parser.add_argument("--bpm", type=float, default=0.0, help="write the music at this tempo (quarter notes a minute, "
                        f"{setting_range('bpm')}) throughout (cuts land wherever they fall); default: 0, a tempo map "
                        "fitted to the picture, the cuts on beats")
    parser.add_argument("--meter", default="4/4", help="time signature of the music: 4/4 (default), 3/4, 6/8...")
    parser.add_argument("--model", help="ONNX generator (default: the bundled model)")
    parser.add_argument("-o", "--output", required=True, help="MIDI file to write (.mid); its folder must exist")
    parser.add_argument("--audio", action="store_true", help="also render a WAV beside the MIDI file")
    parser.add_argument("--soundfont", help="General MIDI SoundFont for --audio (default: TimGM6mb)")
    parser.add_argument("--plot", action="store_true", help="also draw a piano roll (PNG) beside the MIDI file")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="emsync", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="training corpus").add_subparsers(dest="data_command", required=True)
    build = data.add_parser("build", help="token shards, metadata and stats from MIDI corpora")
    build.add_argument("--src", default=DEFAULT_CORPUS, help="folder holding pop909/, vgmidi/ and groove/")
    build.add_argument("--out", required=True, help="folder to write the corpus to (made if missing)")
    build.add_argument("--workers", type=WORKERS, default=2, help=f"processes reading MIDI files, {WORKERS.range}")
    build.set_defaults(func=cmd_data_build, outputs=(Output("out", "--out"),))

    train = sub.add_parser("train", help="train the generator (resumes from OUT/ckpt.pt or the committed model)")
    train.add_argument("--data", required=True, help="folder written by `emsync data build`")
    train.add_argument("--out", required=True, help="run folder: checkpoint and logs (made if missing)")
    train.add_argument("--steps", type=STEPS, default=3000, help=f"optimizer steps, {STEPS.range}")
    train.add_argument("--minutes", type=MINUTES, default=0.0,
                       help=f"stop with a checkpoint after this long, {MINUTES.range} (0: no limit)")
    train.add_argument("--batch-size", type=BATCH, default=16, help=f"windows per step, {BATCH.range}")
    train.add_argument("--lr", type=RATE, default=6e-4, help=f"peak learning rate, {RATE.range}")
    train.add_argument("--seed", type=SEED, default=0, help=f"random seed of initialisation and batches, {SEED.range}")
    train.add_argument("--init-from", help="ONNX generator to start from (default: the committed model)")
    train.add_argument("--fresh", action="store_true", help="start from random weights")
    train.add_argument("--export", metavar="ONNX", help="export to this ONNX file when done (default: no export)")
    train.add_argument("--background", action="store_true", help="detach and log to OUT/train.log")
    train.set_defaults(func=cmd_train, outputs=(Output("out", "--out"), Output("export", "--export", (".onnx",))))

    export = sub.add_parser("export", help="checkpoint to ONNX (with KV cache)")
    export.add_argument("--checkpoint", required=True, help="ckpt.pt written by `emsync train`")
    export.add_argument("-o", "--output", required=True, help="ONNX file to write (.onnx; its int8 copy goes beside)")
    export.set_defaults(func=cmd_export, outputs=(Output("output", "-o", (".onnx",)),))

    gen = sub.add_parser("generate", help="MIDI for a duration, cut list and emotion")
    gen.add_argument("--duration", type=float, help=f"seconds of music, {number_range(0, MAX_SCORE_SECONDS)} "
                     "(required unless --scenes)")
    gen.add_argument("--cuts", default="", help=f"comma-separated seconds inside the duration, e.g. 5,12.5,20; at most "
                     f"{MAX_CUTS} (default: no cuts)")
    gen.add_argument("--valence", type=float, default=0.0, help=f"unpleasant to pleasant, {number_range(*EMOTION_AXIS)}")
    gen.add_argument("--arousal", type=float, default=0.0, help=f"still to energetic, {number_range(*EMOTION_AXIS)}")
    gen.add_argument("--scenes", help="JSON scene file with per-scene emotions (default: one emotion, from the flags)")
    _sampling_options(gen)
    gen.set_defaults(func=cmd_generate, outputs=SCORE_OUTPUTS)

    cuts = sub.add_parser("cuts", help="cut points and scenes of an editor timeline")
    _timeline_options(cuts)
    cuts.add_argument("--json", action="store_true", help="print JSON for programs instead of text")
    cuts.set_defaults(func=cmd_cuts)

    analyze = sub.add_parser("analyze", help="cuts and per-scene emotion of a video file (picture, sound, faces)")
    analyze.add_argument("video", help="video file (anything FFmpeg reads: .mp4, .mov, .mkv, ...)")
    analyze.add_argument("--json", action="store_true", help="print JSON for programs instead of text")
    _threshold_option(analyze)
    analyze.set_defaults(func=cmd_analyze)

    score = sub.add_parser("score", help="MIDI score for an editor timeline (OTIO, EDL, FCP7 XML, FCPXML, AAF) "
                                         "or a video file (cuts and emotions analysed)")
    _timeline_options(score)
    score.add_argument("--emotion", help="emotion word for scenes without one on the timeline, or for every "
                       f"scene of a video: {', '.join(MOODS)} or a synonym (default: the timeline's or the analysis')")
    for axis in ("valence", "arousal"):
        score.add_argument(f"--{axis}", type=float, help=f"as --emotion, one axis, {number_range(*EMOTION_AXIS)} (a video "
                           "keeps its other axis; default: the timeline's or the analysis')")
    score.add_argument("--otio", metavar="OUT", help="write the edit back with the score (.otio, .xml, .fcpxml, .edl; "
                       "default: none)")
    score.add_argument("--no-media", action="store_true", help="a timeline's scenes without an emotion stay neutral "
                       "(or --emotion) instead of being analysed from their clips' media files (faster; --emotion, or both "
                       "--valence and --arousal, skip the analysis too: they would replace it)")
    _threshold_option(score)
    _sampling_options(score)
    score.set_defaults(func=cmd_score, outputs=(*SCORE_OUTPUTS, Output("otio", "--otio", _timeline_writers)))

    ren = sub.add_parser("render", help="MIDI to a 48 kHz 24-bit WAV (-16 LUFS) with a GM SoundFont")
    ren.add_argument("score", help="MIDI file")
    ren.add_argument("-o", "--output", required=True, help="WAV file to write")
    ren.add_argument("--soundfont", help="General MIDI .sf2/.sf3 (default: TimGM6mb from pretty_midi)")
    ren.add_argument("--stems", metavar="DIR", help="also write one WAV per instrument track that plays notes here "
                     "(made if missing; default: no stems)")
    ren.set_defaults(func=cmd_render, outputs=(Output("output", "-o", (".wav",)), Output("stems", "--stems")))

    plo = sub.add_parser("plot", help="piano roll per instrument with cuts and the emotion curve (PNG)")
    plo.add_argument("score", help="MIDI file")
    plo.add_argument("-o", "--output", required=True, help="PNG file to write")
    plo.add_argument("--scenes", help="JSON scene file (default: cuts and emotions read from the file's markers)")
    plo.set_defaults(func=cmd_plot, outputs=(Output("output", "-o", (".png",)),))

    srv = sub.add_parser("serve", help="OSC service for DAW/NLE plugins (see docs/osc.md)")
    srv.add_argument("--host", default="127.0.0.1", help="interface to listen on (loopback unless asked)")
    srv.add_argument("--port", type=int, default=9000, help="UDP port, 0..65535 (0: any free port)")
    srv.add_argument("--session", help="session folder (default ./emsync-session); reopened where it was")
    srv.add_argument("--model", help="ONNX generator (default: the bundled model)")
    srv.set_defaults(func=cmd_serve, outputs=(Output("session", "--session"),))

    ply = sub.add_parser("play", help="play a MIDI file to a MIDI port, or follow a host's MIDI clock")
    ply.add_argument("score", help="MIDI file")
    ply.add_argument("--port", help="existing MIDI output port, name or a unique part of it (default: a new "
                                    "virtual port emsync:out)")
    ply.add_argument("--from", dest="start", type=SECONDS, default=0.0, metavar="SECONDS",
                     help=f"where to start, {SECONDS.range}")
    ply.add_argument("--to", dest="end", type=SECONDS, metavar="SECONDS", help=f"where to stop, {SECONDS.range} "
                     "(default: the end)")
    ply.add_argument("--track", help="play only this track (by name, e.g. piano; default: all)")
    ply.add_argument("--follow", metavar="INPUT", help="MIDI input port to follow: clock, start/continue/stop, "
                                                       "song position pointer (default: none, play at once)")
    ply.set_defaults(func=cmd_play)

    ev = sub.add_parser("eval", help="boundary alignment, emotion control, musical sanity, speed")
    ev.add_argument("--model", help="ONNX generator (default: the bundled model)")
    ev.add_argument("--data", help="built corpus folder, for the held-out comparison (default: none, skipped)")
    ev.add_argument("--quick", action="store_true", help="fewer and shorter pieces")
    ev.add_argument("--seed", type=SEED, default=0, help=f"random seed of the sampled pieces, {SEED.range}")
    ev.add_argument("--json-out", help="also write the report to this .json file (default: stdout only)")
    ev.set_defaults(func=cmd_eval, outputs=(Output("json_out", "--json-out", (".json",)),))

    from emsync.batch.command import add_parser as add_batch_parser

    add_batch_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_outputs(args, getattr(args, "outputs", ()))  # before any work: a bad path costs nothing
        args.func(args)
    except EmsyncError as exc:
        print(f"emsync: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emsync: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:  # an optional package of an extra that is not installed
        top = (exc.name or "").split(".")[0]
        if top not in EXTRA_OF_MODULE:
            raise
        extra = EXTRA_OF_MODULE[top]
        print(f"emsync: error: {args.command} needs the {extra!r} extra ({top} is not installed): "
              f"pip install 'emsync[{extra}]' (from a checkout: pip install '.[{extra}]')", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
