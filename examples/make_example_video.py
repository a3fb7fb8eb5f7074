"""Render examples/five_scenes.mp4: a 20 s synthetic film whose scenes differ on purpose.

    python examples/make_example_video.py [-o examples/five_scenes.mp4]

480x270, 24 fps, H.264 + AAC mono, under 1 MB, made from nothing but numpy and PyAV (no
footage, no samples), so it carries no third-party rights: it is released with this
repository under its MIT licence. The README's `emsync score examples/five_scenes.mp4` and
tests/test_scene_emotion.py use it; the tests read SCENES and `cut_frames()` from here.

    scene        frames    picture                                   sound
    dusk         0-119     dark, grey-blue, slow drift               quiet low drone
    carnival     120-215   bright, saturated warm, fast discs         loud drums and chords
    fog          216-323   dim, desaturated, slow                    quiet wind
    parade       324-407   bright, saturated, fast                   loud drums and chords
    morning      408-479   bright pastel, warm, still                soft slow notes

dusk -> carnival, carnival -> fog and parade -> morning are hard cuts; fog -> parade is a
12-frame cross-dissolve centred on frame 324 (its cut counts at the middle).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FPS, WIDTH, HEIGHT, RATE = 24, 480, 270, 48000
DISSOLVE = 12          # frames, between scenes 2 and 3
OUT = Path(__file__).resolve().parent / "five_scenes.mp4"


@dataclass(frozen=True)
class Look:
    name: str
    frames: int
    top: tuple[int, int, int]          # gradient colours, RGB
    bottom: tuple[int, int, int]
    pan: float                         # texture pan, pixels per frame
    texture: float                     # texture contrast (share of the colour)
    discs: int                         # moving discs
    disc_speed: float                  # pixels per frame
    sound: str                         # "drone", "busy", "wind", "notes"
    level: float                       # peak amplitude of the sound


SCENES = (
    Look("dusk", 120, (38, 44, 58), (14, 16, 24), 0.4, 0.25, 1, 0.6, "drone", 0.03),
    Look("carnival", 96, (255, 196, 40), (235, 60, 30), 9.0, 0.5, 6, 9.0, "busy", 0.9),
    Look("fog", 108, (92, 96, 100), (54, 58, 62), 0.6, 0.15, 1, 0.5, "wind", 0.03),
    Look("parade", 84, (250, 70, 170), (255, 210, 30), 10.0, 0.5, 7, 10.0, "busy", 0.9),
    Look("morning", 72, (255, 226, 190), (238, 196, 150), 0.3, 0.08, 1, 0.4, "notes", 0.08),
)


def cut_frames() -> list[int]:
    """First frame of every scene after the first (the dissolve's at its middle)."""
    return np.cumsum([s.frames for s in SCENES[:-1]]).tolist()


def _texture(rng, frames: int, pan: float) -> np.ndarray:
    """Soft noise wide enough to pan across for the whole scene, -1..1."""
    width = WIDTH + int(abs(pan) * frames) + 64
    coarse = rng.normal(0, 1, (HEIGHT // 27 + 2, width // 27 + 2))
    fine = np.kron(coarse, np.ones((27, 27)))[:HEIGHT, :width]
    for axis in (0, 1):   # box blur twice: bilinear-looking blobs, cheap to encode
        for _ in range(2):
            fine = sum(np.roll(fine, k, axis=axis) for k in range(-6, 7)) / 13
    return np.clip(fine / (3 * fine.std() + 1e-6), -1, 1)


def picture(look: Look, seed: int, frames: int) -> np.ndarray:
    """uint8 [frames, HEIGHT, WIDTH, 3]: a gradient, a panning texture and bouncing discs."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, HEIGHT)[:, None, None]
    base = np.asarray(look.top, np.float32) * (1 - ramp) + np.asarray(look.bottom, np.float32) * ramp
    texture = _texture(rng, frames, look.pan)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    position = rng.uniform((0, 0), (WIDTH, HEIGHT), (look.discs, 2))
    angle = rng.uniform(0, 2 * np.pi, look.discs)
    velocity = look.disc_speed * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    colours = np.clip(np.asarray(look.top) * rng.uniform(0.5, 1.3, (look.discs, 3)), 0, 255)
    radius = rng.uniform(18, 40, look.discs)
    out = np.empty((frames, HEIGHT, WIDTH, 3), np.uint8)
    for i in range(frames):
        shift = int(round(i * look.pan))
        frame = base * (1 + look.texture * texture[:, shift:shift + WIDTH, None])
        for (x, y), r, colour in zip(position, radius, colours):
            frame[(xx - x) ** 2 + (yy - y) ** 2 < r * r] = colour
        out[i] = np.clip(frame, 0, 255)
        position += velocity
        for axis, limit in ((0, WIDTH), (1, HEIGHT)):   # bounce off the edges
            outside = (position[:, axis] < 0) | (position[:, axis] > limit)
            velocity[outside, axis] *= -1
    return out


def sound(look: Look, seed: int, seconds: float) -> np.ndarray:
    """float32 mono samples at RATE for one scene."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * RATE))) / RATE
    if look.sound == "drone":
        swell = 0.6 + 0.4 * np.sin(2 * np.pi * 0.2 * t)
        wave = swell * (np.sin(2 * np.pi * 55 * t) + 0.5 * np.sin(2 * np.pi * 82.4 * t)) / 1.5
    elif look.sound == "wind":
        noise = np.convolve(rng.normal(0, 1, len(t)), np.ones(64) / 8, "same")
        wave = noise / np.abs(noise).max() * (0.7 + 0.3 * np.sin(2 * np.pi * 0.3 * t))
    elif look.sound == "notes":   # a soft major arpeggio, one note every 1.5 s
        wave = np.zeros_like(t)
        for k, start in enumerate(np.arange(0, seconds, 1.5)):
            f = (261.6, 329.6, 392.0)[k % 3]
            env = np.where(t >= start, np.exp(-np.maximum(t - start, 0) * 1.5), 0.0)
            wave += env * np.sin(2 * np.pi * f * t)
        wave /= np.abs(wave).max()
    else:   # "busy": kick and noise snare on eighths at 150 bpm over a bright major chord
        wave = 0.3 * sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0, 523.2)) / 4
        for k, start in enumerate(np.arange(0, seconds, 0.2)):
            on = t >= start
            age = np.maximum(t - start, 0)
            if k % 2 == 0:   # a 60 Hz thump with a short click on top, as a beater gives
                wave += np.where(on, np.exp(-age * 30) * np.sin(2 * np.pi * 60 * age)
                                 + np.exp(-age * 300) * rng.normal(0, 0.5, len(t)), 0.0)
            else:
                wave += np.where(on, np.exp(-age * 40) * rng.normal(0, 0.6, len(t)), 0.0)
        wave /= np.abs(wave).max()
    return (look.level * wave).astype(np.float32)


def render() -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 [N, H, W, 3], mono samples float32) of the whole film."""
    pictures, sounds = [], []
    for k, look in enumerate(SCENES):
        extra = DISSOLVE // 2 if k in (2, 3) else 0   # the dissolve borrows frames from both sides
        pictures.append(picture(look, k, look.frames + extra))
        sounds.append(sound(look, k, (look.frames + extra) / FPS))
    half = DISSOLVE // 2
    fog, parade = pictures[2], pictures[3]
    w = np.linspace(0, 1, DISSOLVE + 2)[1:-1, None, None, None]
    mix = (fog[-DISSOLVE:] * (1 - w) + parade[:DISSOLVE] * w).round().astype(np.uint8)
    pictures[2:4] = [fog[:-DISSOLVE], mix, parade[DISSOLVE:]]
    n = half * RATE // FPS * 2
    a = np.linspace(0, 1, n, dtype=np.float32)
    sound_mix = sounds[2][-n:] * (1 - a) + sounds[3][:n] * a
    sounds[2:4] = [sounds[2][:-n], sound_mix, sounds[3][n:]]
    return np.concatenate(pictures), np.concatenate(sounds)


def encode(path: Path, frames, samples: np.ndarray | None = None) -> Path:
    """H.264 (+ AAC mono at RATE when `samples` is given) at FPS, written beside `path` and renamed."""
    import av  # noqa: PLC0415

    frames = np.asarray(frames)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    with av.open(str(tmp), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        video.options = {"crf": "26", "preset": "slow"}
        audio = out.add_stream("aac", rate=RATE, layout="mono") if samples is not None else None
        if audio is not None:
            audio.bit_rate = 64000
        for image in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        for start in range(0, len(samples) if audio is not None else 0, 1024):
            chunk = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = RATE, start
            for packet in audio.encode(chunk):
                out.mux(packet)
        for packet in audio.encode() if audio is not None else ():
            out.mux(packet)
    tmp.replace(path)
    return path


def write(path: Path) -> Path:
    return encode(path, *render())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    path = write(parser.parse_args().output)
    print(f"wrote {path}: {sum(s.frames for s in SCENES) / FPS:.1f} s, {path.stat().st_size / 1e6:.2f} MB, "
          f"cuts at frames {cut_frames()}")


if __name__ == "__main__":
    main()
