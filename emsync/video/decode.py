"""Decode a video file once, straight to the small RGB frames an analysis model needs.

Every frame is decoded a single time and scaled by libswscale to the target size as it
leaves the decoder (the full-resolution picture is never converted to RGB or kept), so a
1080p file costs one decode plus a tiny scale per frame. Timing comes from each frame's
presentation timestamp, so variable-frame-rate files (phones, screen recordings) give
the right seconds; rotation metadata (portrait phone video) is applied to the small
frames; files without audio, with a single frame or hours long are all fine (frames
are yielded one at a time, memory is the caller's choice).

The same pass can also hand out larger frames a few times a second (for face and picture
models) and the soundtrack as mono samples at a low rate, so analysing a film costs one
decode of each stream, never two.

PyAV (`av`) is the only dependency besides numpy; torch is never imported here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from emsync.core.errors import EmsyncError

# Scaler used for the big downscale (1920x1080 -> 48x27). BICUBIC is what the ffmpeg command
# line uses by default (`-s 48x27`), which is how TransNetV2's reference frames were made.
DEFAULT_INTERPOLATION = "BICUBIC"


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int              # displayed width, after rotation
    height: int             # displayed height, after rotation
    rotation: int           # degrees clockwise applied to the coded picture to display it (0/90/180/270)
    fps: float              # nominal frame rate from the container (average rate); see `frame_times`
    duration: float         # seconds, from the container (0.0 when unknown)
    frame_count: int        # frames announced by the container (0 when unknown)
    codec: str
    has_audio: bool


def _open(path: str | os.PathLike):
    import av  # noqa: PLC0415  (kept local so importing this module stays light)

    path = Path(path)
    if not path.exists():
        raise EmsyncError(f"{path}: video file not found")
    if path.is_dir():
        raise EmsyncError(f"{path}: is a folder, not a video file")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise EmsyncError(f"{path}: not a readable video file ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise EmsyncError(f"{path}: no video stream in this file")
    return container


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0].strip().rstrip(":")


def _rotation(stream, first_frame=None) -> int:
    """Clockwise display rotation in degrees, normalised to 0/90/180/270."""
    angle = None
    if first_frame is not None:
        try:
            angle = first_frame.rotation  # counter-clockwise degrees from the display matrix
        except Exception:  # noqa: BLE001 - older PyAV or no side data
            angle = None
    if not angle:
        tag = (stream.metadata or {}).get("rotate")
        if tag:
            try:
                return int(round(float(tag))) % 360 // 90 * 90
            except ValueError:
                return 0
        return 0
    # PyAV reports the display-matrix angle counter-clockwise; ffmpeg autorotates by its negation.
    return int(round(-float(angle))) % 360 // 90 * 90


def probe(path: str | os.PathLike) -> VideoInfo:
    """Container-level facts about a video (decodes one frame, for the rotation)."""
    import av  # noqa: PLC0415

    container = _open(path)
    stream = container.streams.video[0]
    first = None
    try:  # the display matrix (rotation) arrives with the first decoded frame
        first = next(container.decode(stream), None)
    except (av.FFmpegError, StopIteration):
        first = None
    try:
        return _info(container, Path(path), rotation=_rotation(stream, first))
    finally:
        container.close()


def _info(container, path: Path, rotation: int) -> VideoInfo:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    width, height = stream.codec_context.width, stream.codec_context.height
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(path=str(path), width=width, height=height, rotation=rotation, fps=fps, duration=duration,
                     frame_count=int(stream.frames or 0), codec=stream.codec_context.name,
                     has_audio=bool(container.streams.audio))


SEEK_BACK = 10.0  # seconds: how far before a range its seek aims, for containers that seek late


class SmallFrames:
    """Iterate `(rgb uint8 [height, width, 3], seconds)` over every frame of a video, decoded once.

    `width` x `height` is the size of the *displayed* picture handed out (rotation applied);
    the aspect ratio is not kept (TransNetV2 looks at the whole picture squeezed to 48x27).
    After iteration `info`, `times` and `end_time` describe what was read.

    From the same decoded frames, `on_large(rgb, seconds)` receives `large_width`-wide
    frames (aspect kept, never upscaled) about `large_fps` times a second, at most
    `large_max` of them (long files get a lower rate, so memory stays bounded whatever the
    caller keeps). `on_audio(samples)` receives the first audio stream as contiguous mono
    float32 chunks at `audio_rate` Hz; `audio_start` is then the time of its first sample
    in seconds from the first video frame (None: no audio in the file).

    `start` and `end` (seconds) decode only that stretch: the reader seeks to the keyframe
    before `start` and stops after `end`, so a few seconds of a long file (a timeline clip's
    source range) cost a few seconds of decoding. Times then count from the stream's declared
    start, which is the first frame's time in well-formed files.
    """

    def __init__(self, path: str | os.PathLike, width: int = 48, height: int = 27, *, threads: int = 0,
                 interpolation: str = DEFAULT_INTERPOLATION,
                 on_large: Callable[[np.ndarray, float], None] | None = None, large_width: int = 320,
                 large_fps: float = 2.0, large_max: int = 1800,
                 on_audio: Callable[[np.ndarray], None] | None = None, audio_rate: int = 16000,
                 start: float = 0.0, end: float | None = None):
        self.path = Path(path)
        self.start, self.end = max(0.0, float(start)), end
        self.width, self.height = int(width), int(height)
        self.threads = threads
        self.interpolation = interpolation
        self.on_large, self.large_width, self.large_fps, self.large_max = on_large, large_width, large_fps, large_max
        self.on_audio, self.audio_rate = on_audio, audio_rate
        self.times: list[float] = []
        self.end_time = 0.0
        self.info: VideoInfo | None = None
        self.audio_start: float | None = None
        self._audio_time: float | None = None   # container seconds of the first audio sample
        self._container = _open(self.path)
        self._stream = self._container.streams.video[0]
        audio = self._container.streams.audio
        self._audio_stream = audio[0] if audio and on_audio is not None else None

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        import av  # noqa: PLC0415
        from av.video.reformatter import VideoReformatter  # noqa: PLC0415

        container, stream = self._container, self._stream
        # One scaler for the whole file: libswscale keeps its context (filter tables) between frames,
        # where frame.to_ndarray(width=...) would build a new one per frame.
        scaler = VideoReformatter()
        ctx = stream.codec_context
        stream.thread_type = "AUTO"          # frame + slice threads
        ctx.thread_count = self.threads      # 0: one per core
        time_base = stream.time_base
        rate = stream.average_rate or stream.guessed_rate
        step = 1.0 / float(rate) if rate else 1.0 / 25.0
        last_pts = None
        rotation = None
        start = self._seek(container, stream)
        large = _LargeFrames(self) if self.on_large is not None else None
        streams = [stream] if self._audio_stream is None else [stream, self._audio_stream]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=self.audio_rate) if len(streams) > 1 else None
        try:
            for frame in self._frames(container, streams, resampler):
                if rotation is None:
                    rotation = _rotation(stream, frame)
                    self.info = _info(container, self.path, rotation)
                    scale_w, scale_h = ((self.height, self.width) if rotation in (90, 270)
                                        else (self.width, self.height))
                if frame.pts is not None and time_base is not None:
                    t = float(frame.pts * time_base)
                    if last_pts is not None and t <= last_pts:  # broken/duplicate timestamps
                        t = last_pts + step
                elif last_pts is not None:
                    t = last_pts + step
                else:
                    t = 0.0
                if start is None:
                    start = t
                if frame.duration and time_base is not None:
                    step = max(float(frame.duration * time_base), 1e-6)
                last_pts = t
                if self.end is not None and t - start >= self.end:
                    break
                if not self.times and self.start and t - start > self.start + step + 1e-6:
                    raise EmsyncError(f"{self.path}: seeking to {self.start:.2f} s landed at {t - start:.2f} s")
                if t - start + 1e-6 < self.start:   # decoded from the keyframe before the range
                    continue
                small = scaler.reformat(frame, width=scale_w, height=scale_h, format="rgb24",
                                        interpolation=self.interpolation, threads=1).to_ndarray()
                if rotation:
                    small = _rotate(small, rotation)
                if large is not None:
                    large.offer(frame, t - start, rotation)
                self.times.append(t - start)
                self.end_time = t - start + step
                yield small, t - start
        except av.FFmpegError as exc:
            if not self.times:
                raise EmsyncError(f"{self.path}: cannot decode video ({_reason(exc)})") from None
            # A truncated or damaged tail: keep what was decoded (editors do the same).
        finally:
            container.close()
        if not self.times and (self.start or self.end is not None):
            raise EmsyncError(f"{self.path}: no frames between {self.start:.2f} s and "
                              f"{self.end if self.end is not None else 'the end'} s")
        if not self.times:
            raise EmsyncError(f"{self.path}: the video stream holds no decodable frames")
        if self._audio_time is not None:
            self.audio_start = self._audio_time - start

    def _seek(self, container, stream) -> float | None:
        """Seek to the keyframe at or before SEEK_BACK seconds before `start` (MPEG-TS and other
        containers without an index land a keyframe late when asked for `start` itself); the
        time frames count from (None: from the first frame decoded, reading from the beginning)."""
        import av  # noqa: PLC0415

        if not self.start:
            return None
        base = stream.time_base
        origin = stream.start_time or 0
        if self.start <= SEEK_BACK:   # near the start: read from the first frame, no seek to land late
            return float(origin * base)
        try:
            container.seek(origin + int(max(0.0, self.start - SEEK_BACK) / base), stream=stream, backward=True,
                           any_frame=False)
        except av.FFmpegError as exc:
            raise EmsyncError(f"{self.path}: cannot seek to {self.start:.2f} s ({_reason(exc)})") from None
        return float(origin * base)

    def _frames(self, container, streams, resampler):
        """Decoded video frames, in file order; audio packets met on the way go to `on_audio`."""
        import av  # noqa: PLC0415

        for packet in container.demux(*streams):
            if packet.stream.type == "video":
                yield from packet.decode()
                continue
            try:  # a damaged audio packet costs its few milliseconds of sound, not the analysis
                decoded = packet.decode()
            except av.FFmpegError:
                continue
            for frame in decoded:
                if self._audio_time is None:
                    self._audio_time = float(frame.time or 0.0)
                for mono in resampler.resample(frame):
                    self.on_audio(mono.to_ndarray().reshape(-1))
        if resampler is not None and self._audio_time is not None:
            for mono in resampler.resample(None):
                self.on_audio(mono.to_ndarray().reshape(-1))


def _rotate(picture: np.ndarray, rotation: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(picture, k=-rotation // 90))  # clockwise


class _LargeFrames:
    """Picks and scales the frames `SmallFrames` hands to `on_large`: the first frame, then one
    whenever 1/rate seconds have passed, the rate lowered for long files to keep `large_max`."""

    def __init__(self, reader: SmallFrames):
        from av.video.reformatter import VideoReformatter  # noqa: PLC0415

        self.reader = reader
        self.scaler = VideoReformatter()   # its own scaler: switching sizes would rebuild the context
        self.next_time = 0.0
        self.step = 0.0
        self.size = (0, 0)

    def offer(self, frame, t: float, rotation: int) -> None:
        reader = self.reader
        if not self.step:
            duration = reader.info.duration if reader.info else 0.0
            rate = reader.large_fps if duration <= 0 else min(reader.large_fps, reader.large_max / duration)
            self.step = 1.0 / rate
            self.size = _large_size(frame.width, frame.height, reader.large_width, rotation)
        if t + 1e-9 < self.next_time:
            return
        self.next_time += self.step
        if self.next_time <= t:   # after a gap in the timestamps: restart the grid, no burst
            self.next_time = t + self.step
        picture = self.scaler.reformat(frame, width=self.size[0], height=self.size[1], format="rgb24",
                                       interpolation="AREA", threads=1).to_ndarray()
        reader.on_large(_rotate(picture, rotation) if rotation else picture, t)


def _large_size(coded_w: int, coded_h: int, width: int, rotation: int) -> tuple[int, int]:
    """Coded-orientation (width, height) whose displayed width is at most `width`, aspect kept, even."""
    shown_w, shown_h = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    scale = min(1.0, width / shown_w)
    out_w, out_h = max(2, round(shown_w * scale / 2) * 2), max(2, round(shown_h * scale / 2) * 2)
    return (out_h, out_w) if rotation in (90, 270) else (out_w, out_h)


def read_small_frames(path: str | os.PathLike, width: int = 48, height: int = 27, **kwargs
                      ) -> tuple[np.ndarray, np.ndarray, VideoInfo, float]:
    """All frames at once: (frames uint8 [N, height, width, 3], times [N] seconds from the first frame,
    info, end time in seconds). Fine for short files; long files should iterate `SmallFrames`."""
    reader = SmallFrames(path, width, height, **kwargs)
    frames = [f for f, _ in reader]
    return np.stack(frames), np.asarray(reader.times), reader.info, reader.end_time
