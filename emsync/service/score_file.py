"""One input file scored to files: what `emsync score` does, and what each item of
`emsync batch` does on a Ray worker.

    service = ScoringService(Session(None))
    analysis = open_input(service, "film.mp4")    # a timeline by suffix, else a video (analysed)
    service.set_default_emotion(*default_emotion("joy", None, None))
    written = write_score(service, "film.mid", seed=1, audio=True, plot=True, timeline="film.otio")
    written.files                                 # film.mid, film.wav, film.png, film.otio
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

from emsync.core.errors import EmsyncError

from .scoring import ScoringService, Take
from .session import Version


def is_timeline(path: str | Path) -> bool:
    """Whether `path` names an editor timeline (by suffix); anything else is read as a video."""
    from emsync.timelines.suffixes import SUFFIXES

    return Path(path).suffix.lower() in SUFFIXES


def default_emotion(word: str | None, valence: float | None, arousal: float | None
                    ) -> tuple[float | None, float | None]:
    """The emotion asked for: a word sets both axes, `valence`/`arousal` each their own (None:
    not given). An unknown word is an EmsyncError naming the `emotion` field."""
    from emsync.core.emotions import emotion_for_word

    if word:
        found = emotion_for_word(word)
        if found is None:
            from emsync.core.emotions import MOODS

            raise EmsyncError(f"emotion: unknown emotion word {word!r}; known: {', '.join(MOODS)} "
                              "(and synonyms such as happy, sad, scary)")
        return found
    return valence, arousal


def open_input(service: ScoringService, path: str | Path, fps: float | None = None, transition: str = "mid",
               threshold: float = 0.5, known_as: str | Path | None = None, media: bool = True,
               progress: Callable[[float], None] | None = None):
    """Open a timeline's scenes (`media`: open scenes analysed from their media, see
    ScoringService.open_timeline), or analyse a video and open its scenes; the analysis (None
    for a timeline). `known_as`: the user's path for a file read from a copy (a batch item
    shipped to a remote worker), so a written edit refers to the user's video or the
    timeline's media, not to the copy. `progress` hears how far the video's analysis or the
    timeline's media got."""
    if is_timeline(path):
        service.open_timeline(path, fps, transition, known_as, media, progress)
        return None
    analysis = service.analyze_video(path, threshold, progress)
    if known_as is not None:
        analysis.path = str(known_as)
    service.open_analysis(analysis, threshold)
    return analysis


def no_progress(text: str) -> ContextManager[Callable[[float], None]]:
    """A `stage` for `write_score` that reports nothing."""
    return contextlib.nullcontext(lambda fraction: None)


@dataclass
class Written:
    """What `write_score` made: the version, how it was sampled, and the files in order."""

    version: Version
    take: Take
    files: list[Path] = field(default_factory=list)


def write_score(service: ScoringService, output: str | Path, seed: int | None, *, audio: bool = False,
                plot: bool = False, timeline: str | Path | None = None, soundfont: str | None = None,
                linked_from: Path | None = None, say: Callable[[str], None] = lambda line: None,
                stage: Callable[[str], ContextManager[Callable[[float], None]]] = no_progress) -> Written:
    """Generate for the opened scenes and write the MIDI file `output`, and beside it the WAV
    (`audio`, or for `timeline`) and piano roll (`plot`), and the edit with the music (`timeline`: a path whose
    suffix picks the format). Every file is written atomically and may replace an earlier one.
    `linked_from`: the folder the edit will find the MIDI and WAV in, when it is not where
    they are written now (a remote worker writes to a scratch folder). `say` hears one line
    per file; `stage(text)` is entered around each slow step and gives a callback that hears
    how far it got (0..1) where that is known."""
    with stage(f"generating {service.session.duration:.0f} s of music") as heard:
        version, take = service.generate(seed, heard)
    midi = service.export_midi(output, overwrite=True)
    written = Written(version, take, [midi])
    try:  # a later step's failure leaves none of this score's files behind
        scenes = service.session.scenes
        tempo = version.tempo()
        bpms = f"{min(tempo.bpms):.0f}" + (f"-{max(tempo.bpms):.0f}" if len(tempo.bpms) > 1 else "")
        say(f"wrote {midi}: {len(version.notes)} notes, {len(scenes) - 1} cut markers, {take.duration:.1f} s of "
            f"music in {take.seconds:.1f} s ({take.duration / max(take.seconds, 1e-9):.0f}x real time); "
            f"{tempo.meter} at {bpms} bpm, {len(tempo.bpms) - 1} tempo changes")
        wav = None
        if audio or timeline:  # the edit's music track plays the WAV: no NLE plays MIDI
            from emsync.preview.render import render

            wav = midi.with_suffix(".wav")
            with stage(f"rendering {wav}"):
                report = render(midi, wav, soundfont)
            say(report.summary())
            written.files.append(wav)
        if plot:
            from emsync.preview.pianoroll import plot as draw

            with stage(f"drawing {midi.with_suffix('.png')}"):
                written.files.append(draw(midi, midi.with_suffix(".png"), scenes))
            say(f"wrote {written.files[-1]}: piano roll with cuts and the emotion curve")
        if timeline:
            place = linked_from or midi.parent
            with stage(f"writing {timeline}"):
                written.files.append(service.export_timeline(timeline, place / midi.name, wav and place / wav.name,
                                                             overwrite=True))
            say(f"wrote {timeline}: the edit with a music track and a marker at every cut")
    except BaseException:
        for path in written.files:
            path.unlink(missing_ok=True)
        raise
    return written
