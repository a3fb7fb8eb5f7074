"""Per-scene emotion of a video (emsync.video.analysis with its picture, sound and fusion
modules), the one-pass decode behind it (emsync.video.decode) and `emsync analyze` /
`emsync score VIDEO`.

Videos are made here with PyAV from the example script's generators
(examples/make_example_video.py): scenes made to differ in brightness, colour, motion and
sound, and the bundled 20 s example itself.
"""
from __future__ import annotations

import importlib.util
import json
import math
import sys
import threading
from dataclasses import replace

import numpy as np
import pytest

from conftest import REPO, run_cli
from emsync.core.emotions import EKMAN, nearest_word
from emsync.core.errors import EmsyncError
from emsync.core.generator import Cancelled
from emsync.video.analysis import DECODE_SHARE, analyze_video, spread
from emsync.video.decode import SmallFrames
from emsync.video.fusion import (EKMAN_NAMES, Evidence, SceneEmotion, face_evidence, fuse, pooled, smooth,
                                 soft_ekman)
from emsync.video.sound import SoundTrack

av = pytest.importorskip("av")

_spec = importlib.util.spec_from_file_location("make_example_video", REPO / "examples" / "make_example_video.py")
example = sys.modules.setdefault("make_example_video", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(example)
EXAMPLE = REPO / "examples" / "five_scenes.mp4"
LOOKS = {look.name: look for look in example.SCENES}


def film(path, *looks, audio=True, seconds=3.0):
    """A video of the given example looks, `seconds` each, hard cuts between them."""
    frames = int(seconds * example.FPS)
    pictures = [example.picture(LOOKS[name], k, frames) for k, name in enumerate(looks)]
    sounds = [example.sound(LOOKS[name], k, seconds) for k, name in enumerate(looks)]
    return example.encode(path, np.concatenate(pictures), np.concatenate(sounds) if audio else None)


def evidence(scene, source):
    return next(e for e in scene.details if e.source == source)


@pytest.fixture(scope="module")
def contrast_video(tmp_path_factory):
    """Dark, slow, desaturated and quiet, then bright, fast, saturated and loud."""
    return film(tmp_path_factory.mktemp("emotion") / "contrast.mp4", "dusk", "carnival")


@pytest.fixture(scope="module")
def contrast(contrast_video):
    return analyze_video(contrast_video, faces=False)


def test_analysis_reports_how_far_it_got_and_stops_when_cancelled(contrast_video):
    heard = []
    analysis = analyze_video(contrast_video, faces=False, progress=heard.append)
    assert heard == sorted(heard) and heard[-1] == 1.0
    assert any(0 < f < DECODE_SHARE for f in heard)  # during the decode pass, not only at the end
    assert len([f for f in heard if f > DECODE_SHARE]) == len(analysis.scenes)
    stop = threading.Event()

    def cancel_halfway(fraction):
        if fraction > 0.3:
            stop.set()

    with pytest.raises(Cancelled):
        analyze_video(contrast_video, faces=False, progress=cancel_halfway, cancel=stop)


@pytest.fixture(scope="module")
def example_report():
    result = run_cli("analyze", EXAMPLE, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ---------------------------------------------------------------- the decode pass

def test_one_pass_gives_small_large_frames_and_sound(tmp_path):
    path = film(tmp_path / "two.mp4", "dusk", "carnival", seconds=2.0)
    large, chunks = [], []
    reader = SmallFrames(path, on_large=lambda frame, t: large.append((t, frame)), large_fps=2.0,
                         on_audio=chunks.append)
    small = [frame for frame, _ in reader]
    plain = [frame for frame, _ in SmallFrames(path)]
    assert len(small) == len(plain) == 96 and all(np.array_equal(a, b) for a, b in zip(small, plain))
    times = [t for t, _ in large]
    assert times == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5], abs=1 / 24)
    assert large[0][1].shape == (180, 320, 3) and large[0][1].dtype == np.uint8   # 480x270 -> 320 wide
    sound = np.concatenate(chunks)
    assert len(sound) / 16000 == pytest.approx(4.0, abs=0.1) and reader.audio_start == pytest.approx(0.0, abs=0.05)
    loud = np.abs(sound[int(2.2 * 16000):]).mean() > 5 * np.abs(sound[:int(1.8 * 16000)]).mean()
    assert loud  # the carnival's drums, after the dusk's drone, in time


def test_large_frames_follow_rotation_and_length_cap(tmp_path):
    frame = np.zeros((96, 160, 3), np.uint8)
    frame[:, :80] = (250, 20, 20)
    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as out:   # a phone clip: coded landscape, displayed turned 90 degrees clockwise
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.set_display_rotation(-90)
        for _ in range(50):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    large = []
    reader = SmallFrames(path, on_large=lambda f, t: large.append(f), large_fps=10.0, large_max=4)
    list(reader)
    assert reader.audio_start is None
    assert len(large) == 4 and large[0].shape == (160, 96, 3)    # 2 s at most 4 frames; portrait
    assert large[0][:40].mean(axis=(0, 1))[0] > 150 > large[0][-40:].mean(axis=(0, 1))[0]  # red on top


def test_sound_features_do_not_depend_on_chunking():
    samples = example.sound(LOOKS["carnival"], 0, 3.0)[::3].copy()   # 16 kHz
    results = []
    for size in (341, 4096, len(samples)):
        track = SoundTrack()
        for start in range(0, len(samples), size):
            track.feed(samples[start:start + size])
        results.append(track.finish(0.0))
    for other in results[1:]:
        assert np.allclose(other.power, results[0].power, rtol=1e-4, atol=1e-10)
        assert np.array_equal(other.onsets, results[0].onsets)
    assert 3.5 <= len(results[0].onsets) / 3.0 <= 5.5   # drums on eighths at 150 bpm: 5 a second


# ---------------------------------------------------------------- emotion moves the right way

def test_features_and_emotion_move_the_right_way(contrast):
    assert [round(c * 24) for c in contrast.cuts] == [72]
    dark, bright = contrast.scenes
    for name in ("brightness", "saturation", "colourfulness", "warmth", "motion"):
        assert evidence(bright, "picture").features[name] > evidence(dark, "picture").features[name], name
    loud, quiet = evidence(bright, "sound").features, evidence(dark, "sound").features
    assert loud["loudness"] > quiet["loudness"] + 10 and loud["onset_rate"] > quiet["onset_rate"] + 2
    assert bright.arousal > 0 > dark.arousal and bright.arousal - dark.arousal > 0.5
    assert bright.valence > 0 > dark.valence and bright.valence - dark.valence > 0.5
    assert max(bright.emotions, key=bright.emotions.get) == "joy"
    assert max(dark.emotions, key=dark.emotions.get) == "sadness"
    for scene in (dark, bright):
        assert set(scene.emotions) == set(EKMAN_NAMES) and sum(scene.emotions.values()) == pytest.approx(1)
        assert set(scene.evidence) == {"picture", "sound", "neutral"} and 0 < scene.confidence < 1


def test_black_borders_are_not_picture():
    """Letterboxed, pillarboxed, windowed or a portrait clip in a landscape frame, the same
    picture gives the same colour and motion; a dark edge on one side, a dark frame and a lamp
    in the dark are picture, not borders."""
    from emsync.video.picture import PictureTrack

    rng = np.random.default_rng(4)

    def track_rows(frames):
        track = PictureTrack()
        for number, frame in enumerate(frames):
            track.add(frame, number / 25)
        return np.array(track.rows)

    def framed(shot, height, width, top, left):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[top:top + shot.shape[0], left:left + shot.shape[1]] = shot
        return frame

    for size, placings in (((20, 30), ((20, 48, 0, 9), (27, 48, 3, 9), (27, 30, 4, 0))),   # pillar-, window-, letterbox
                           ((27, 15), ((27, 48, 0, 16),))):                                   # portrait in landscape
        shots = [rng.integers(40, 230, (*size, 3)).astype(np.uint8) for _ in range(3)]
        alone = track_rows(shots)
        for height, width, top, left in placings:
            assert np.allclose(track_rows([framed(shot, height, width, top, left) for shot in shots]), alone,
                               atol=1e-6), (size, height, width)
    street = rng.integers(60, 200, (27, 48, 3)).astype(np.uint8)
    street[:10] = 6                                   # a dark sky over a lit street: one side only
    dark = rng.integers(0, 12, (27, 48, 3)).astype(np.uint8)
    lamp = dark.copy()
    lamp[10:16, 20:26] = 240
    whole = [float((frame @ np.array([0.299, 0.587, 0.114])).mean() / 255) for frame in (street, dark, lamp)]
    assert np.allclose(track_rows([street, dark, lamp])[:, 0], whole, atol=1e-5), "no border taken"


def test_a_pillarboxed_film_reads_as_the_film(tmp_path, contrast):
    """The contrast film squeezed to 4:3 inside black bars of a 16:9 frame, as an editor's export
    of an old clip looks: each scene's picture reads within a few hundredths of the film's."""
    frames = int(3.0 * example.FPS)
    pictures = np.concatenate([example.picture(LOOKS[name], k, frames) for k, name in enumerate(("dusk", "carnival"))])
    inner = 4 * example.HEIGHT // 3 // 2 * 2
    squeezed = pictures[:, :, np.linspace(0, example.WIDTH - 1, inner).astype(int)]
    boxed = np.zeros_like(pictures)
    left = (example.WIDTH - inner) // 2
    boxed[:, :, left:left + inner] = squeezed
    sounds = np.concatenate([example.sound(LOOKS[name], k, 3.0) for k, name in enumerate(("dusk", "carnival"))])
    analysis = analyze_video(example.encode(tmp_path / "boxed.mp4", boxed, sounds), faces=False)
    assert [round(c * 24) for c in analysis.cuts] == [72]
    for boxed_scene, scene in zip(analysis.scenes, contrast.scenes):
        ours, film = evidence(boxed_scene, "picture").features, evidence(scene, "picture").features
        for name in ("brightness", "saturation", "warmth"):
            assert ours[name] == pytest.approx(film[name], abs=0.03), name
        assert np.sign(boxed_scene.valence) == np.sign(scene.valence)
        assert boxed_scene.valence == pytest.approx(scene.valence, abs=0.05)


def test_without_sound_the_picture_speaks(tmp_path, contrast):
    silent = analyze_video(film(tmp_path / "silent.mp4", "dusk", "carnival", audio=False), faces=False)
    assert not silent.has_audio
    dark, bright = silent.scenes
    assert set(bright.evidence) == {"picture", "neutral"}
    assert bright.arousal > dark.arousal and bright.valence > dark.valence
    # less evidence, less confidence, and nearer the neutral default
    assert bright.confidence < contrast.scenes[1].confidence
    assert abs(bright.arousal) < abs(contrast.scenes[1].arousal)


def _ekman(name):
    return {other: float(other == name) for other in EKMAN_NAMES}


def _top(emotions):
    return max(emotions, key=emotions.get)


@pytest.mark.parametrize("name", EKMAN_NAMES)
def test_a_point_is_read_by_its_direction_whatever_its_intensity(name):
    """Fused points are pulled towards neutral; the class must not change on the way. Under the
    nearest-mean rule anger's and fear's directions read as disgust half-way out, joy's as surprise."""
    mean = np.asarray(EKMAN[name])
    reads = [soft_ekman(*(scale * mean)) for scale in (0.2, 0.5, 1.0, 1.2)]
    assert all(_top(read) == name for read in reads)
    shares = [read[name] for read in reads]
    assert shares == sorted(shares)                      # the further out, the surer


def test_neutral_says_no_class_and_calm_points_lean_by_their_valence():
    assert all(p == pytest.approx(1 / 6) for p in soft_ekman(0.0, 0.0).values())
    assert _top(soft_ekman(0.3, -0.4)) == "joy"          # content, calm: the nearest mean was sadness's
    assert _top(soft_ekman(-0.3, -0.4)) == "sadness"
    high = soft_ekman(-0.3, 0.35)                        # anger and fear: 6 degrees apart
    assert abs(high["anger"] - high["fear"]) < 0.05 and min(high["anger"], high["fear"]) > high["disgust"]


def _faces_read(**probabilities):
    from emsync.video.faces import LABELS, FaceEvidence

    read = {label: probabilities.get(label, 0.0) for label in LABELS}
    return face_evidence(FaceEvidence(read, faces=3, frames_with_faces=6, frames=6, confidence=0.875))


def test_a_face_read_with_doubt_is_neutral_not_unpleasant():
    """Face classes count above chance: EMSYNC's weighted mean made six equal probabilities
    valence -0.20, arousal +0.40 (four of the six means are negative)."""
    doubt = _faces_read(**dict.fromkeys(("angry", "disgust", "fear", "happy", "sad", "surprise"), 1 / 6))
    assert (doubt.valence, doubt.arousal) == pytest.approx((0.0, 0.0), abs=1e-9)
    assert doubt.confidence == 0.875 and doubt.emotions["joy"] == pytest.approx(1 / 6)
    sure = _faces_read(sad=1.0)
    assert (sure.valence, sure.arousal) == pytest.approx(EKMAN["sadness"])
    smiling = _faces_read(happy=0.4, angry=0.2, sad=0.2, fear=0.2)      # joy on top, the rest spread
    assert smiling.valence > 0.1                                       # was -0.05
    held_back = _faces_read(happy=0.5, neutral=0.5)
    assert (held_back.valence, held_back.arousal) == pytest.approx(tuple(0.5 * np.asarray(EKMAN["joy"])))


def test_a_grin_in_a_frightening_scene_does_not_outvote_the_rest():
    """Faces that disagree with what the other sources agree on lose weight (temper_faces): a
    confident grin against screams and a dark picture no longer makes the scene positive; a
    face that agrees keeps nearly all its weight; the output says which cue decided."""
    grin = Evidence("faces", 0.76, 0.48, 0.8, {}, _ekman("joy"))
    screams = Evidence("events", -0.64, 0.6, 0.6, {}, _ekman("fear"))
    dark = Evidence("picture", -0.4, 0.3, 0.5)
    scene = fuse(0.0, 5.0, [grin, screams, dark])
    assert scene.valence < -0.1 and scene.emotions["fear"] > scene.emotions["joy"]
    assert scene.decided_by == "events" and grin.features["tempered"] < 0.5
    assert scene.to_dict()["decided_by"] == "events"
    smile = Evidence("faces", 0.76, 0.48, 0.8, {}, _ekman("joy"))
    agreeing = fuse(0.0, 5.0, [smile, Evidence("picture", 0.5, 0.4, 0.5)])
    assert smile.features["tempered"] > 0.9 and agreeing.decided_by == "faces" and agreeing.valence > 0.5
    alone = Evidence("faces", 0.76, 0.48, 0.8, {}, _ekman("joy"))
    fuse(0.0, 5.0, [alone])
    assert alone.features["tempered"] == 1.0


def test_a_smiling_face_lifts_the_valence(tmp_path):
    data = pytest.importorskip("skimage.data", reason="pip install scikit-image (the test extra)")
    fog = example.picture(LOOKS["fog"], 0, 48)
    portrait = data.astronaut()[16:256, 104:344]   # the head and shoulders, 240 px square
    with_face = fog.copy()
    with_face[:, 15:255, 120:360] = portrait
    path = example.encode(tmp_path / "face.mp4", np.concatenate([with_face, fog]))
    analysis = analyze_video(path)
    assert analysis.faces == "used", f"the committed face model is unusable: {analysis.faces}"
    smiling, plain = analysis.scenes
    assert "faces" in smiling.evidence and "faces" not in plain.evidence
    faces = evidence(smiling, "faces")
    assert faces.valence > 0.3 and max(faces.emotions, key=faces.emotions.get) == "joy"
    assert smiling.valence > plain.valence + 0.2


def test_long_scenes_show_the_face_model_a_spread_of_their_frames():
    assert spread(np.arange(5), 12).tolist() == [0, 1, 2, 3, 4]
    chosen = spread(np.arange(10, 70), 12)
    assert len(chosen) == 12 and chosen[0] == 10 and chosen[-1] == 69 and np.all(np.diff(chosen) >= 5)


# ---------------------------------------------------------------- smoothing and overrides

def _scene(start, end, valence, arousal, confidence):
    return SceneEmotion(start, end, dict.fromkeys(EKMAN_NAMES, 1 / 6), valence, arousal, confidence, {})


def test_smoothing_pulls_short_uncertain_scenes_not_long_confident_ones():
    scenes = [_scene(0, 10, 0.6, 0.5, 0.9), _scene(10, 10.5, -0.6, -0.5, 0.3), _scene(10.5, 20, 0.6, 0.5, 0.9)]
    out = smooth(scenes)
    assert out[1].valence > -0.2 and out[1].arousal > -0.2          # the blip leans to its neighbours
    assert out[0].valence == pytest.approx(0.6, abs=0.02) and out[2].arousal == pytest.approx(0.5, abs=0.02)
    apart = [_scene(0, 10, 0.6, 0.5, 0.9), _scene(10, 20, -0.6, -0.5, 0.9)]
    far = smooth(apart)
    assert far[0].valence > 0.5 and far[1].valence < -0.5             # two long scenes stay themselves
    user = [scenes[0], replace(scenes[1], user_set=True), scenes[2]]
    assert smooth(user)[1].valence == -0.6                             # the editor's scene does not move


def test_the_users_emotion_wins_over_the_analysis(contrast):
    from emsync.core.scenes import user_emotion, with_default_emotion

    dark, bright = [s.to_scene() for s in contrast.scenes]
    assert not dark.user_set and dark.name == nearest_word(dark.valence, dark.arousal)
    chosen = user_emotion(bright, -0.6, -0.3)
    assert (chosen.valence, chosen.arousal, chosen.user_set) == (-0.6, -0.3, True)
    assert chosen.name == nearest_word(-0.6, -0.3)  # a scene named by its emotion is renamed with it
    axis = with_default_emotion([dark, chosen], valence=0.5)
    assert axis[0].valence == 0.5 and axis[0].arousal == dark.arousal and axis[0].user_set
    assert axis[1] is chosen  # the flags never replace what the user chose
    assert with_default_emotion([dark]) == [dark]


def test_the_whole_video_is_its_scenes_by_length_and_confidence():
    """A 20 s scene read surely outweighs two short unsure ones; sources count by what they carried."""
    long_sad = replace(_scene(0, 20, -0.5, -0.3, 0.8), emotions={**dict.fromkeys(EKMAN_NAMES, 0.0), "sadness": 1.0},
                       evidence={"picture": 0.3, "events": 0.5, "neutral": 0.2})
    flashes = [replace(_scene(20 + k, 21 + k, 0.8, 0.6, 0.3), emotions={**dict.fromkeys(EKMAN_NAMES, 0.0), "joy": 1.0},
                       evidence={"faces": 0.9, "neutral": 0.1}) for k in range(2)]
    whole = pooled([long_sad, *flashes])
    share = 0.3 / (16 + 0.6)                         # each flash: 1 s x 0.3 against 20 s x 0.8
    assert (whole.start, whole.end) == (0, 22)
    assert whole.valence == pytest.approx(-0.5 + 2 * share * 1.3)
    assert whole.emotions["joy"] == pytest.approx(2 * share) and sum(whole.emotions.values()) == pytest.approx(1)
    assert whole.decided_by == "events" and list(whole.evidence)[0] == "events"
    assert whole.confidence == pytest.approx((20 * 0.8 + 2 * 0.3) / 22)
    unsure = pooled([_scene(0, 3, 0.6, 0.0, 0.0), _scene(3, 4, -0.6, 0.0, 0.0)])   # length alone
    assert unsure.valence == pytest.approx(0.3)


# ---------------------------------------------------------------- the CLI on the example

def test_analyze_json_finds_the_scenes_the_script_made(example_report):
    report = example_report
    assert report["duration"] == pytest.approx(20.0, abs=1e-6) and report["has_audio"]
    frames = [c * 24 for c in report["cuts"]]
    assert len(frames) == 4 and all(abs(f - t) <= 2 for f, t in zip(frames, example.cut_frames()))
    assert len(report["transitions"]) == 1
    scenes = {look.name: s for look, s in zip(example.SCENES, report["scenes"])}
    for s in report["scenes"]:
        assert set(s) >= {"start", "end", "emotions", "valence", "arousal", "confidence", "evidence"}
        assert "sound" in s["evidence"] and "picture" in s["evidence"]
    for lively in ("carnival", "parade"):
        for still in ("dusk", "fog", "morning"):
            assert scenes[lively]["arousal"] > scenes[still]["arousal"] + 0.3, (lively, still)
        for gloomy in ("dusk", "fog"):
            assert scenes[lively]["valence"] > scenes[gloomy]["valence"] + 0.3, (lively, gloomy)
    assert scenes["morning"]["valence"] > 0 > scenes["morning"]["arousal"]   # bright, still, soft: calm
    assert scenes["dusk"]["valence"] < 0 and scenes["dusk"]["arousal"] < 0
    whole = report["whole"]
    lengths = [s["end"] - s["start"] for s in report["scenes"]]
    assert (whole["start"], whole["end"]) == (0, report["scenes"][-1]["end"])
    assert min(s["valence"] for s in report["scenes"]) < whole["valence"] < max(s["valence"] for s in report["scenes"])
    assert whole["decided_by"] in whole["evidence"] and whole["word"] and sum(lengths) == pytest.approx(20)


def test_score_video_end_to_end(tmp_path, example_report):
    from test_cli import _check_smf

    midi, edit = tmp_path / "five.mid", tmp_path / "five.otio"
    result = run_cli("score", EXAMPLE, "-o", midi, "--otio", edit, "--seed", 1)
    assert result.returncode == 0, result.stderr
    listed = [line for line in result.stdout.splitlines() if "decided by" in line]
    assert len(listed) == 6 and listed[-1].split()[:2] == ["whole", "video"]   # five scenes, then the video
    cuts = example_report["cuts"]
    _check_smf(midi, cuts)
    back = json.loads(run_cli("cuts", edit, "--json").stdout)
    assert [c["time"] for c in back["cuts"]] == pytest.approx(cuts, abs=1e-6)
    assert [s["valence"] for s in back["scenes"]] == pytest.approx([s["valence"] for s in example_report["scenes"]],
                                                                   abs=0.006)


def test_score_video_emotion_flags_win(tmp_path, contrast_video, contrast):
    import mido

    def labels(*flags):
        midi = tmp_path / "flags.mid"
        result = run_cli("score", contrast_video, "-o", midi, "--seed", 1, *flags)
        assert result.returncode == 0, result.stderr
        return [m.text for m in mido.MidiFile(midi).tracks[0] if m.type == "marker"]

    assert labels("--emotion", "sad") == ["cut 1 sadness | valence=-0.63 arousal=-0.27"]
    kept = contrast.scenes[1].arousal   # one axis flag: the other axis stays the analysis's
    assert labels("--valence", "-0.5") == [f"cut 1 {nearest_word(-0.5, kept)} | valence=-0.50 arousal={kept:+.2f}"]


@pytest.mark.parametrize("kind", ["text", "truncated", "missing"])
def test_unreadable_video_is_one_line_naming_it(tmp_path, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "text":
        path.write_text("not a video\n" * 20)
    elif kind == "truncated":
        path.write_bytes(EXAMPLE.read_bytes()[:400])
    for command in (["analyze", path], ["score", path, "-o", tmp_path / "a.mid"]):
        result = run_cli(*command)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and str(path) in lines[0], result.stderr
    assert not (tmp_path / "a.mid").exists()
    with pytest.raises(EmsyncError, match=kind):
        analyze_video(path)


def test_example_is_small_and_short():
    assert EXAMPLE.stat().st_size < 2e6
    assert math.isclose(sum(s.frames for s in example.SCENES) / example.FPS, 20.0)


def test_pipeline_module_still_offers_what_callers_import():
    """The CLI and the service import the pipeline from emsync.video.analysis; the names that moved
    to fusion and sound stay importable from there."""
    from emsync.video import analysis, fusion, sound

    assert analysis.SceneEmotion is fusion.SceneEmotion and analysis.smooth is fusion.smooth
    assert analysis.EKMAN_NAMES == EKMAN_NAMES and analysis.SoundTrack is sound.SoundTrack
    assert {"VideoAnalysis", "analyze_video"} <= set(analysis.__all__)
