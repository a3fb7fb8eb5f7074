"""Audio previews, stems and the piano-roll picture (emsync.preview.render, emsync.preview.pianoroll).

The WAV files are read back with scipy.io.wavfile (an independent reader) as well as the
stdlib `wave`; loudness is re-measured with pyloudnorm. The test score has chords exactly on
its cuts and only soft, sparse notes elsewhere, so the audio's onset envelope must peak there.
"""
from __future__ import annotations

import math
import wave
from importlib.util import find_spec
from pathlib import Path

import mido
import numpy as np
import pytest
from scipy.io import wavfile

from emsync.core.midi_io import read_midi_file
from emsync.preview import loudness, synth
from emsync.preview import render as R
from emsync.core.errors import EmsyncError
from emsync.core.midi_io import write_midi
from emsync.core.music import INSTRUMENTS, Note, Scene

PIANO, GUITAR, BASS, STRINGS, DRUMS = (INSTRUMENTS.index(n) for n in ("piano", "guitar", "bass", "strings", "drums"))
CUTS = [2.0, 4.5, 7.0]
FULL_SCALE = 2.0 ** 23


def cut_score() -> tuple[list[Note], list[tuple[float, str]]]:
    """Loud chords (piano, strings, bass, a kick) on each cut; two soft single notes between."""
    notes = []
    for t in CUTS:
        notes += [Note(t, t + 0.9, p, 112, PIANO) for p in (48, 55, 60, 64, 67)]
        notes += [Note(t, t + 1.2, p, 100, STRINGS) for p in (60, 64, 67)]
        notes += [Note(t, t + 0.9, 36, 110, BASS), Note(t, t + 0.1, 36, 120, DRUMS), Note(t, t + 0.1, 49, 100, DRUMS)]
    notes += [Note(1.0, 1.4, 72, 30, PIANO), Note(5.8, 6.2, 76, 30, PIANO), Note(3.3, 3.4, 42, 25, DRUMS)]
    markers = [(t, f"cut {i} | valence={v:+.2f} arousal={a:+.2f}")
               for i, (t, v, a) in enumerate(zip(CUTS, (0.4, -0.5, 0.1), (-0.3, 0.6, 0.0)), start=1)]
    return notes, markers


@pytest.fixture(scope="module")
def score_mid(tmp_path_factory) -> Path:
    notes, markers = cut_score()
    return write_midi(tmp_path_factory.mktemp("score") / "cuts.mid", notes, markers)


@pytest.fixture(scope="module")
def rendered(score_mid, tmp_path_factory):
    """The default render (-16 LUFS) with stems."""
    out = tmp_path_factory.mktemp("render")
    report = R.render(score_mid, out / "cuts.wav", stems_dir=out / "stems")
    return report


@pytest.fixture(scope="module")
def raw(score_mid, tmp_path_factory):
    """A render without normalisation, with stems."""
    out = tmp_path_factory.mktemp("raw")
    return R.render(score_mid, out / "cuts.wav", stems_dir=out / "stems", target_lufs=None)


def read(path: Path) -> np.ndarray:
    rate, data = wavfile.read(path)  # 24-bit comes back as int32 scaled to the top bits
    assert rate == synth.SAMPLE_RATE
    return data.astype(np.float64) / 2.0 ** 31


def spectral_flux(mono: np.ndarray, rate: int, hop: int = 480, size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    frames = 1 + (len(mono) - size) // hop
    index = np.arange(size)[None, :] + hop * np.arange(frames)[:, None]
    spectrum = np.log1p(1000 * np.abs(np.fft.rfft(mono[index] * np.hanning(size), axis=1)))
    flux = np.maximum(np.diff(spectrum, axis=0), 0).sum(axis=1)
    times = (np.arange(1, frames) * hop + size / 2) / rate
    return times, flux


# --------------------------------------------------------------------------- the WAV

def test_wav_is_48k_24bit_stereo_of_the_midi_length(rendered, score_mid):
    with wave.open(str(rendered.wav)) as reader:
        assert (reader.getframerate(), reader.getsampwidth(), reader.getnchannels()) == (48000, 3, 2)
        frames = reader.getnframes()
    midi_seconds = mido.MidiFile(score_mid).length  # mido's own reading of the file's length
    assert abs(frames - midi_seconds * 48000) <= 64  # within one audio block
    audio = read(rendered.wav)
    assert audio.shape == (frames, 2)
    assert rendered.seconds == pytest.approx(midi_seconds, abs=64 / 48000)


def test_the_preview_ends_faded_not_with_a_click(rendered):
    """The strings are still sounding at the file's end; its last 10 ms must be below -40 dBFS."""
    audio = read(rendered.wav)
    tail = audio[-synth.SAMPLE_RATE // 100:]
    assert 20 * math.log10(max(np.sqrt(np.mean(tail ** 2)), 1e-12)) < -40
    before = audio[-synth.SAMPLE_RATE // 5:-synth.SAMPLE_RATE // 10]  # 200-100 ms before the end: still playing
    assert 20 * math.log10(np.sqrt(np.mean(before ** 2))) > -40


def test_wav_is_loud_enough_at_target_and_never_clips(rendered):
    import pyloudnorm

    audio = read(rendered.wav)
    rms_db = 20 * math.log10(np.sqrt(np.mean(audio ** 2)))
    assert rms_db > -40  # not silent
    assert np.abs(audio).max() < 10 ** (-1.0 / 20)  # no sample anywhere near full scale
    measured = pyloudnorm.Meter(48000).integrated_loudness(audio)
    loud = rendered.loudness
    assert measured == pytest.approx(loud.lufs, abs=0.1)  # the report tells the truth
    assert loud.target_lufs == -16.0
    if loud.reached:
        assert measured == pytest.approx(-16.0, abs=0.5)
    else:  # only when even 6 dB of peak limiting could not make room
        assert loud.limiting_db == pytest.approx(loudness.MAX_LIMITING_DB, abs=0.1) and measured < -16.0
    assert loudness.true_peak(audio) < loudness.TRUE_PEAK_MAX_DBTP
    assert loud.true_peak_dbtp < -1.0
    assert "LUFS" in rendered.summary() and "\n" not in rendered.summary()


def test_onset_envelope_peaks_at_the_cuts(rendered):
    audio = read(rendered.wav)
    times, flux = spectral_flux(audio.mean(axis=1), 48000)
    # the strongest onsets are the cut chords, each within 30 ms of its cut
    peaks = [i for i in range(1, len(flux) - 1) if flux[i] >= flux[i - 1] and flux[i] > flux[i + 1]]
    strongest = sorted(peaks, key=lambda i: -flux[i])[:len(CUTS)]
    assert sorted(times[i] for i in strongest) == pytest.approx(CUTS, abs=0.03)
    # and they stand well above everything away from the cuts (the soft notes included)
    away = np.array([min(abs(t - c) for c in CUTS) > 0.15 for t in times])
    assert flux[strongest].min() > 3 * flux[away].max()


# --------------------------------------------------------------------------- stems

@pytest.mark.parametrize("which", ["raw", "rendered"])
def test_stems_sum_to_the_mix(which, request):
    report = request.getfixturevalue(which)
    names = [p.name for p in report.stems]
    assert names == ["cuts-01-Drums.wav", "cuts-02-Piano.wav", "cuts-04-Bass.wav", "cuts-05-Strings.wav"]
    assert report.silent_tracks == ["Guitar"]  # no guitar notes: no silent stem, and the summary says so
    assert "no stem for 1 track(s) without notes: Guitar" in report.summary()
    mix = read(report.wav)
    stems = [read(p) for p in report.stems]
    assert all(s.shape == mix.shape for s in stems)  # same length, same start
    # every stem rounds to 24 bits on its own: the sum is off by at most half a step per stem
    assert np.abs(sum(stems) - mix).max() <= (len(stems) / 2 + 1) / FULL_SCALE
    level = {p.name.split("-")[-1][:-4]: np.abs(s).max() for p, s in zip(report.stems, stems)}
    assert min(level["Drums"], level["Piano"], level["Bass"], level["Strings"]) > 1e-3


def test_normalisation_is_one_gain_for_mix_and_stems(raw, rendered):
    """The normalised files are the raw ones times the loudness gain (the limiter may bite on peaks)."""
    before, after = read(raw.wav), read(rendered.wav)
    loud = rendered.loudness
    assert loud.before_lufs == pytest.approx(raw.loudness.lufs, abs=0.05)
    assert raw.loudness.gain_db <= 0
    ratio = 10 ** ((loud.gain_db - raw.loudness.gain_db) / 20)
    quiet = np.abs(before).max(axis=1) < 0.05  # far from any peak the limiter could touch
    assert np.abs(after[quiet] - before[quiet] * ratio).max() < 1e-4


def test_drums_use_channel_10_and_tracks_their_gm_programs(tmp_path):
    def one_note(name, channel, program, note=60):
        track = [mido.Message("program_change", channel=channel, program=program),
                 mido.Message("note_on", channel=channel, note=note, velocity=100),
                 mido.Message("note_off", channel=channel, note=note, velocity=0, time=480)]
        midi = mido.MidiFile(type=1)
        midi.tracks.append(mido.MidiTrack(track))
        midi.save(tmp_path / f"{name}.mid")
        R.render(tmp_path / f"{name}.mid", tmp_path / f"{name}.wav", target_lufs=None)
        return read(tmp_path / f"{name}.wav").mean(axis=1)

    def spectrum(x):
        s = np.abs(np.fft.rfft(x[:24000]))
        return s / np.linalg.norm(s)

    piano, strings = one_note("piano", 0, 0), one_note("strings", 0, 48)
    kick_on_10, kick_on_1 = one_note("kick10", 9, 0, 36), one_note("kick1", 0, 0, 36)
    assert np.dot(spectrum(piano), spectrum(strings)) < 0.9  # the program changes the instrument
    assert np.dot(spectrum(kick_on_10), spectrum(kick_on_1)) < 0.9  # channel 10 is the drum kit
    assert all(np.abs(x).max() > 1e-3 for x in (piano, strings, kick_on_10))


def test_one_worker_renders_the_same_audio(score_mid, raw, tmp_path):
    report = R.render(score_mid, tmp_path / "serial.wav", target_lufs=None, workers=1)
    assert np.array_equal(read(report.wav), read(raw.wav))


@pytest.mark.skipif(find_spec("midirenderer") is None, reason="midirenderer (the fallback synthesizer) not installed")
def test_fallback_synthesizer_midirenderer(score_mid, tmp_path):
    report = R.render(score_mid, tmp_path / "m.wav", stems_dir=tmp_path / "stems", engine="midirenderer")
    assert report.engine == "midirenderer"
    mix = read(report.wav)
    assert abs(len(mix) - mido.MidiFile(score_mid).length * 48000) <= 64
    assert np.abs(sum(read(p) for p in report.stems) - mix).max() <= 4 / FULL_SCALE
    times, flux = spectral_flux(mix.mean(axis=1), 48000)
    top = np.argsort(flux)[::-1]
    for cut in CUTS:  # a strong onset at every cut
        assert any(abs(times[i] - cut) < 0.03 for i in top[:10])


@pytest.mark.parametrize("pad_velocity,reached", [(60, True), (25, False)])
def test_peaky_score_is_limited_not_clipped(tmp_path, pad_velocity, reached):
    """A quiet pad under full-velocity drum hits: at -16 LUFS the hits would pass -1 dBTP."""
    notes = [Note(0.0, 6.0, p, pad_velocity, STRINGS) for p in (60, 64, 67)]
    notes += [Note(t, t + 0.1, 36 if t % 2 else 38, 127, DRUMS) for t in (1.0, 2.0, 3.0, 4.0, 5.0)]
    report = R.render(write_midi(tmp_path / "peaky.mid", notes), tmp_path / "p.wav", stems_dir=tmp_path / "st")
    loud, mix = report.loudness, read(report.wav)
    assert 0 < loud.limiting_db <= loudness.MAX_LIMITING_DB + 0.01
    assert loudness.true_peak(mix) < -1.0 and np.abs(mix).max() < 0.9
    assert loud.reached is reached
    if reached:  # the loudness the limiter took is made up
        assert loud.lufs == pytest.approx(-16.0, abs=0.15)
    else:  # no more than 6 dB of squashing: the mix stays quieter, and says so
        assert loud.limiting_db == pytest.approx(loudness.MAX_LIMITING_DB, abs=0.01) and loud.lufs < -16.5
        assert "not reached" in report.summary()
    import pyloudnorm

    assert pyloudnorm.Meter(48000).integrated_loudness(mix) == pytest.approx(loud.lufs, abs=0.05)
    assert np.abs(sum(read(p) for p in report.stems) - mix).max() <= 4 / FULL_SCALE  # one gain curve for all


def test_sustain_pedal_holds_notes_and_type_0_files_split_by_channel(tmp_path):
    def piano(pedal: bool) -> np.ndarray:
        events = [mido.Message("control_change", control=64, value=127 if pedal else 0),
                  mido.Message("note_on", note=60, velocity=100),
                  mido.Message("note_off", note=60, time=240),  # 0.25 s
                  mido.Message("control_change", control=64, value=0, time=960),  # pedal up at 1.25 s
                  mido.MetaMessage("end_of_track", time=480)]
        midi = mido.MidiFile(type=0)
        midi.tracks.append(mido.MidiTrack(events))
        midi.save(tmp_path / "p.mid")
        return read(R.render(tmp_path / "p.mid", tmp_path / "p.wav", target_lufs=None).wav)

    def level(x, start, stop):
        return np.sqrt(np.mean(x[int(start * 48000):int(stop * 48000)] ** 2))

    dry, held = piano(False), piano(True)
    assert level(held, 0.6, 1.2) > 10 * level(dry, 0.6, 1.2)  # the pedal keeps the note sounding
    assert level(held, 1.6, 1.75) < level(held, 0.6, 1.2) / 10  # and lets it go with the pedal

    events = [mido.Message("note_on", channel=c, note=n, velocity=100, time=0) for c, n in ((0, 60), (9, 38))]
    events += [mido.Message("note_off", channel=0, note=60, time=480), mido.Message("note_off", channel=9, note=38)]
    midi = mido.MidiFile(type=0)
    midi.tracks.append(mido.MidiTrack(events))
    midi.save(tmp_path / "t0.mid")
    report = R.render(tmp_path / "t0.mid", tmp_path / "t0.wav", stems_dir=tmp_path / "st")
    assert [p.name for p in report.stems] == ["t0-01-Channel_1.wav", "t0-02-Drums_channel_10.wav"]


def test_a_file_without_notes_renders_silence(tmp_path):
    midi = write_midi(tmp_path / "empty.mid", [], [(3.0, "cut 1")])
    report = R.render(midi, tmp_path / "empty.wav", stems_dir=tmp_path / "st")
    audio = read(report.wav)
    assert len(audio) == pytest.approx(3.0 * 48000, abs=64) and not audio.any()
    assert "silent" in report.summary() and report.stems == [] and len(report.silent_tracks) == 5
    assert not (tmp_path / "st").exists()  # no stems folder made for no stems


# --------------------------------------------------------------------------- errors

def assert_clean(error: EmsyncError, name: str, folder: Path, before: set) -> None:
    message = str(error)
    assert name in message and "\n" not in message
    assert set(folder.iterdir()) == before  # nothing written, no temporary left behind


@pytest.fixture()
def out(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("content,expected", [
    (None, "SoundFont not found"),
    (b"this is a text file, not a SoundFont\n", "not a SoundFont"),
    (b"RIFF\x00\x10\x00\x00WAVEfmt ", "not a SoundFont"),
    ("truncated", "not a usable SoundFont"),
])
def test_bad_soundfont_is_one_clean_line(score_mid, out, tmp_path, content, expected):
    font = tmp_path / "font.sf2"
    if content == "truncated":
        font.write_bytes(synth.default_soundfont().read_bytes()[:4000])  # right header, body cut off
    elif content is not None:
        font.write_bytes(content)
    before = set(out.iterdir())
    with pytest.raises(EmsyncError, match=expected) as caught:
        R.render(score_mid, out / "x.wav", soundfont=font, stems_dir=out / "stems")
    assert_clean(caught.value, str(font), out, before)


@pytest.mark.parametrize("content,expected", [(None, "file not found"), (b"MThd garbage", "not a readable MIDI file"),
                                              (b"", "not a readable MIDI file")])
def test_bad_midi_is_one_clean_line(out, tmp_path, content, expected):
    midi = tmp_path / "bad.mid"
    if content is not None:
        midi.write_bytes(content)
    before = set(out.iterdir())
    with pytest.raises(EmsyncError, match=expected) as caught:
        R.render(midi, out / "x.wav", stems_dir=out / "stems")
    assert_clean(caught.value, str(midi), out, before)


def test_unwritable_outputs_are_refused_before_rendering(score_mid, out):
    (out / "a-file").write_text("x")
    before = set(out.iterdir())
    cases = [(out / "missing" / "x.wav", None, "does not exist", "missing"),
             (out, None, "is a folder", str(out)),
             (out / "a-file" / "x.wav", None, "does not exist", "a-file"),
             (out / "x.wav", out / "a-file", "not a folder", "a-file"),
             (out / "x.wav", out / "missing" / "stems", "does not exist", "stems")]
    for wav, stems, expected, name in cases:
        with pytest.raises(EmsyncError, match=expected) as caught:
            R.render(score_mid, wav, stems_dir=stems)
        assert_clean(caught.value, name, out, before)


def test_stem_name_taken_by_a_folder(score_mid, out):
    (out / "stems" / "x-02-Piano.wav").mkdir(parents=True)
    before = set(out.iterdir())
    with pytest.raises(EmsyncError, match="is a folder") as caught:
        R.render(score_mid, out / "x.wav", stems_dir=out / "stems")
    assert_clean(caught.value, "x-02-Piano.wav", out, before)
    assert [p.name for p in (out / "stems").iterdir()] == ["x-02-Piano.wav"]


def test_failure_while_writing_leaves_nothing_behind(score_mid, out, monkeypatch):
    real = R.write_wav
    calls = []

    def failing(handle, audio, gain=None, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(handle, audio, gain, **kwargs)

    monkeypatch.setattr(R, "write_wav", failing)
    (out / "x.wav").write_bytes(b"an older render")
    before = set(out.iterdir())
    with pytest.raises(EmsyncError, match="No space left") as caught:
        R.render(score_mid, out / "x.wav", stems_dir=out / "stems")
    assert_clean(caught.value, "x-04-Bass.wav", out, before)  # the stems folder it made is gone too
    assert (out / "x.wav").read_bytes() == b"an older render"  # the old file is untouched


def test_default_soundfont_is_found_in_pretty_midi():
    path = synth.default_soundfont()
    assert path.name == "TimGM6mb.sf2" and "pretty_midi" in str(path)
    assert not (Path(synth.__file__).parents[2] / "TimGM6mb.sf2").exists()


# --------------------------------------------------------------------------- the picture

def test_plot_writes_a_readable_png(score_mid, tmp_path):
    from matplotlib.image import imread

    from emsync.preview.pianoroll import plot

    path = plot(score_mid, tmp_path / "roll.png")
    image = imread(path)
    assert image.shape[:2] == (900, 1600)
    grey = image[..., :3].mean(axis=2)
    assert (grey < 0.9).mean() > 0.02  # not blank: notes, lines, text
    red = (image[..., 0] - image[..., 1] > 0.25) & (image[..., 0] - image[..., 2] > 0.25)
    column = red.sum(axis=0)
    lines = np.flatnonzero(column[:-1] + column[1:] > 500)  # cut lines run down the figure (anti-aliased over 2 px)
    assert len([c for i, c in enumerate(lines) if i == 0 or c - lines[i - 1] > 3]) == len(CUTS)

    small = plot(score_mid, tmp_path / "small.png", scenes=[Scene(0, 2, 0.2, 0.1), Scene(2, 9, -0.5, 0.5, "chase")],
                 width=800, height=500)
    assert imread(small).shape[:2] == (500, 800)


def test_plot_reads_cuts_and_emotions_from_markers(score_mid):
    from emsync.preview.pianoroll import _cuts_and_emotion

    cuts, others, emotion = _cuts_and_emotion(read_midi_file(score_mid), None)
    assert [t for t, _ in cuts] == pytest.approx(CUTS, abs=1e-3)
    assert [label for _, label in cuts] == ["cut 1", "cut 2", "cut 3"] and others == []
    assert [(round(s, 3), v, a) for s, _, v, a in emotion] == [(2.0, 0.4, -0.3), (4.5, -0.5, 0.6), (7.0, 0.1, 0.0)]


def test_plot_errors_are_clean(score_mid, tmp_path):
    from emsync.preview.pianoroll import plot

    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi")
    for midi, png, expected in [(bad, tmp_path / "a.png", "not a readable MIDI"),
                                (score_mid, tmp_path / "nowhere" / "a.png", "does not exist"),
                                (score_mid, tmp_path, "is a folder")]:
        with pytest.raises(EmsyncError, match=expected) as caught:
            plot(midi, png)
        assert "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mid"]
