"""OSC service that DAW/NLE plugins talk to: sessions, emotions, generation, clips, undo, export.

`serve(host, port, session_dir, model)` runs it; docs/osc.md is the address space. The server
is its own UDP loop (not python-osc's dispatcher, which drops unknown addresses without a
word, nor its socketserver, which can throw on a malformed datagram): python-osc only parses
and builds packets. Whatever arrives, the sender gets either the reply or an /emsync/error
naming the address, and the loop keeps serving.

Generation runs in one worker thread (onnxruntime releases the GIL, so status, scene edits
and chunk re-requests are answered while it samples). Every acknowledged change is on disk
first (plugin_host.session).
"""
from __future__ import annotations

import copy
import logging
import math
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pythonosc.osc_message import OscMessage
from pythonosc.parsing import osc_types

from emsync_core.emotions import find_emotion, nearest_word
from emsync_core.errors import EmsyncError
from emsync_core.score import Scene

from . import clips, dialects
from .session import SETTINGS, Session

log = logging.getLogger("emsync.osc")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
DEFAULT_SESSION = "emsync-session"
MAX_REQUEST_BYTES = 8192  # no request needs more; larger ones are refused with an error
MAX_BUNDLE_DEPTH = 4
MAX_BUNDLE_MESSAGES = 64
TYPE_TAGS = set("ifsbhdtTFN")  # what requests may carry; python-osc would skip others silently
PROGRESS_INTERVAL = 0.2  # seconds between /emsync/job/progress messages
TRANSFER_CACHE = 8  # versions whose clip chunks are kept built
PUSH_GAP = 0.005  # seconds between datagrams pushed to a DAW: AbletonOSC reads its socket once per Live tick


class RequestError(Exception):
    """A request the server refuses; becomes /emsync/error <address> <message>."""

    def __init__(self, address: str, message: str):
        super().__init__(message)
        self.address = address
        self.message = message


# ---- packets -----------------------------------------------------------------------------
SCENE_NAME_BYTES = 40


def _cut(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8, cut on a character boundary."""
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def _guess_address(data: bytes) -> str:
    """The address at the head of a datagram, printable, for naming it in an error."""
    if data.startswith(b"#bundle"):
        return "#bundle"
    if not data.startswith(b"/"):
        return ""
    head = data[:128].split(b"\0", 1)[0]
    text = head.decode("utf-8", "replace")
    return "".join(c if c.isprintable() else "?" for c in text)[:64]


def parse_message(data: bytes) -> tuple[str, list]:
    address, index = osc_types.get_string(data, 0)
    if not address.startswith("/"):
        raise ValueError(f"address {address[:32]!r} does not start with '/'")
    if index < len(data):
        tags, _ = osc_types.get_string(data, index)
        if not tags.startswith(","):
            raise ValueError("type tag string does not start with ','")
        unknown = set(tags[1:]) - TYPE_TAGS
        if unknown:
            raise ValueError(f"unsupported OSC type tag {sorted(unknown)[0]!r}")
    message = OscMessage(data)
    return message.address, list(message.params)


def parse_packet(data: bytes, depth: int = 0) -> list[tuple[str, list]]:
    """Messages of a datagram, bundles flattened in order (time tags are not waited for).

    Raises ValueError (or python-osc's ParseError) for anything that is not well-formed OSC.
    """
    if not data:
        raise ValueError("empty packet")
    if not data.startswith(b"#bundle\0"):
        return [parse_message(data)]
    if depth >= MAX_BUNDLE_DEPTH:
        raise ValueError(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
    if len(data) < 16:
        raise ValueError("bundle shorter than its header")
    messages: list[tuple[str, list]] = []
    index = 16
    while index < len(data):
        if index + 4 > len(data):
            raise ValueError("truncated bundle element size")
        (size,) = struct.unpack(">i", data[index:index + 4])
        index += 4
        if size <= 0 or size % 4 or index + size > len(data):
            raise ValueError(f"bad bundle element size {size}")
        messages += parse_packet(data[index:index + size], depth + 1)
        index += size
        if len(messages) > MAX_BUNDLE_MESSAGES:
            raise ValueError(f"more than {MAX_BUNDLE_MESSAGES} messages in one bundle")
    return messages


# ---- argument checking -------------------------------------------------------------------
def _fits(kind: str, value) -> bool:
    if kind == "i":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "f":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "s":
        return isinstance(value, str)
    if kind == "b":
        return isinstance(value, bool) or (isinstance(value, int) and value in (0, 1))
    if kind == "*":
        return isinstance(value, (bool, str)) or (isinstance(value, (int, float)) and math.isfinite(value))
    raise ValueError(kind)


def _osc_type(value) -> str:
    return {bool: "T/F", int: "i", float: "f", str: "s", bytes: "b"}.get(type(value), type(value).__name__)


@dataclass
class Route:
    address: str
    handler: Callable
    signatures: list[tuple[str, ...]]  # each a tuple of "name:type"
    reply: str
    summary: str

    def match(self, args: list) -> list:
        for signature in self.signatures:
            if len(signature) == len(args) and all(_fits(p.split(":")[1], a) for p, a in zip(signature, args)):
                return args
        got = ",".join(_osc_type(a) for a in args) or "nothing"
        wanted = " or ".join("(" + " ".join(s) + ")" if s else "()" for s in self.signatures)
        raise RequestError(self.address, f"wrong arguments: got ({got}); expected {wanted}")

    def usage(self) -> str:
        return " | ".join(" ".join(s) if s else "-" for s in self.signatures)


ROUTES: "OrderedDict[str, Route]" = OrderedDict()


def route(address: str, *signatures: str, reply: str, summary: str):
    def register(function):
        ROUTES[address] = Route(address, function, [tuple(s.split()) for s in signatures], reply, summary)
        return function
    return register


SAMPLING_SETTINGS = ("temperature", "top_p", "hit_cuts", "emotion_guidance", "lock_mode")


def _sampling(settings: dict) -> dict:
    """The session settings that go to the sampler as they are (and into the version's params)."""
    return {name: settings[name] for name in SAMPLING_SETTINGS}


# ---- jobs --------------------------------------------------------------------------------
@dataclass
class Job:
    id: int
    kind: str
    client: tuple[str, int]
    seed: int
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)
    progress: float = 0.0
    last_sent: float = 0.0
    sent_fraction: float = -1.0


class Host:
    """The service behind the sockets: requests in, packets out through `send(data, address)`."""

    def __init__(self, session_dir: str | os.PathLike, model: str | os.PathLike | None = None,
                 send: Callable[[bytes, tuple[str, int]], None] | None = None):
        self.session = Session(session_dir)
        self.model = model
        self.send_raw = send or (lambda data, address: None)
        self.lock = threading.RLock()
        self.reply_ports: dict[str, int] = {}
        self.job: Job | None = None
        self.job_thread: threading.Thread | None = None
        self.next_job = 1
        self._generator = None
        self._generator_lock = threading.Lock()
        self._transfers: OrderedDict[int, clips.Transfer] = OrderedDict()
        self._timeline = None  # TimelineScenes of the opened timeline, for export
        self.player = None  # plugin_host.live.Player on the chosen MIDI output, opened on first use
        self.output_label = ""
        self.live_track = ""  # the instrument track /emsync/play chose ("" all)

    # ---- sending ---------------------------------------------------------------------
    def destination(self, client: tuple[str, int]) -> tuple[str, int]:
        port = self.reply_ports.get(client[0])
        return (client[0], port) if port else client

    def send(self, client: tuple[str, int], data: bytes) -> None:
        try:
            self.send_raw(data, self.destination(client))
        except OSError as exc:  # the client went away; nothing to tell it
            log.debug("send to %s failed: %s", client, exc)

    def reply(self, client: tuple[str, int], address: str, *args) -> None:
        self.send(client, clips.message_bytes(address, *args))

    def error(self, client: tuple[str, int], address: str, message: str) -> None:
        self.reply(client, "/emsync/error", _cut(address, 200), _cut(message, 400))

    # ---- requests --------------------------------------------------------------------
    def handle_datagram(self, data: bytes, client: tuple[str, int]) -> None:
        """One datagram from `client`: replies or an /emsync/error; never raises."""
        try:
            if len(data) > MAX_REQUEST_BYTES:
                raise RequestError(_guess_address(data), f"request of {len(data)} bytes is larger than "
                                                         f"{MAX_REQUEST_BYTES}; refused")
            try:
                messages = parse_packet(data)
            except Exception as exc:  # python-osc and struct raise many kinds on garbage
                raise RequestError(_guess_address(data), f"malformed OSC packet ({exc})") from None
            for address, args in messages:
                self.handle(address, args, client)
        except RequestError as exc:
            self.error(client, exc.address, exc.message)
        except Exception:  # a bug must cost one request, not the service
            log.error("internal error on a packet from %s:\n%s", client, traceback.format_exc())
            self.error(client, _guess_address(data), "internal error (see the server log)")

    def handle(self, address: str, args: list, client: tuple[str, int]) -> None:
        try:
            target = ROUTES.get(address)
            if target is None:
                raise RequestError(address, "unknown address (send /emsync/help for the list)")
            target.match(args)
            with self.lock:
                target.handler(self, client, *args)
        except RequestError as exc:
            self.error(client, exc.address, exc.message)
        except EmsyncError as exc:
            self.error(client, address, str(exc))
        except Exception:
            log.error("internal error on %s from %s:\n%s", address, client, traceback.format_exc())
            self.error(client, address, "internal error (see the server log)")

    # ---- state helpers ---------------------------------------------------------------
    def _busy(self, address: str) -> None:
        if self.job is not None:
            raise RequestError(address, f"busy: job {self.job.id} ({self.job.kind}) is running; "
                                        "wait for /emsync/job/done or send /emsync/cancel")

    def _need_scenes(self, address: str) -> None:
        if not self.session.scenes:
            raise RequestError(address, "no scenes: open a timeline (/emsync/open/timeline) or a scene file "
                                        "(/emsync/open/scenes) first")

    def transfer(self, version_id: int) -> clips.Transfer:
        if version_id in self._transfers:
            self._transfers.move_to_end(version_id)
            return self._transfers[version_id]
        notes = self.session.version(version_id).notes if version_id else []
        built = clips.build_transfer(version_id, notes, self.session.duration, self.session.settings["bpm"])
        self._transfers[version_id] = built
        while len(self._transfers) > TRANSFER_CACHE:
            self._transfers.popitem(last=False)
        return built

    def send_clips(self, client: tuple[str, int], version_id: int) -> None:
        for data in self.transfer(version_id).datagrams():
            self.send(client, data)

    def scene_args(self, index: int, scene: Scene) -> list:
        return [index, float(scene.start), float(scene.end), float(scene.valence), float(scene.arousal),
                _cut(scene.name, SCENE_NAME_BYTES), nearest_word(scene.valence, scene.arousal), bool(scene.user_set)]

    def status_args(self) -> list:
        job = self.job
        state = "idle" if job is None else ("cancelling" if job.cancel.is_set() else "running")
        return [state, self.session.current_id, len(self.session.history), self.session.can_undo(),
                self.session.can_redo(), float(self.session.duration), len(self.session.scenes),
                job.id if job else 0, float(job.progress) if job else 0.0, str(self.session.dir.resolve())]

    # ---- generator and jobs ----------------------------------------------------------
    def generator(self):
        with self._generator_lock:
            if self._generator is None:
                from emsync_core.generator import MusicGenerator

                self._generator = MusicGenerator(self.model)
            return self._generator

    def warm_up(self) -> None:
        """Load the model in the background so the first generation starts at once."""
        def load():
            try:
                self.generator()
            except EmsyncError as exc:
                log.error("model: %s", exc)
        threading.Thread(target=load, name="emsync-warm-up", daemon=True).start()

    def start_job(self, client, address: str, kind: str, seed: int, work: Callable) -> Job:
        self._busy(address)
        job = Job(self.next_job, kind, client, seed)
        self.next_job += 1
        self.job = job
        self.reply(client, "/emsync/job/started", job.id, kind, seed)
        thread = threading.Thread(target=self._run_job, args=(job, work), name=f"emsync-job-{job.id}", daemon=True)
        self.job_thread = thread
        thread.start()
        return job

    def _progress(self, job: Job, fraction: float) -> None:
        job.progress = fraction
        now = time.monotonic()
        if now - job.last_sent >= PROGRESS_INTERVAL and fraction != job.sent_fraction:
            job.last_sent, job.sent_fraction = now, fraction
            self.reply(job.client, "/emsync/job/progress", job.id, float(fraction), float(now - job.started))

    def _run_job(self, job: Job, work: Callable) -> None:
        from emsync_core.generator import Cancelled

        outcome: tuple = ("failed", "internal error (see the server log)")
        try:
            result = work(self.generator(), lambda f: self._progress(job, f), job.cancel)
            with self.lock:
                if job.cancel.is_set():
                    outcome = ("cancelled",)
                elif callable(result):  # a job that changes the scenes, not the music: apply it now
                    outcome = ("opened", result())
                else:
                    notes, parent, params = result
                    params = {**params, "seconds": round(time.monotonic() - job.started, 3)}
                    version = self.session.add_version(job.kind, notes, parent, params)
                    outcome = ("done", version)
        except Cancelled:
            outcome = ("cancelled",)
        except EmsyncError as exc:
            outcome = ("failed", str(exc))
        except Exception:
            log.error("job %d (%s) failed:\n%s", job.id, job.kind, traceback.format_exc())
        finally:
            with self.lock:
                self.job = None
        if outcome[0] == "done":
            version = outcome[1]
            log.info("job %d (%s): version %d, %d notes", job.id, job.kind, version.id, len(version.notes))
            if job.sent_fraction < 1.0:
                self.reply(job.client, "/emsync/job/progress", job.id, 1.0, float(time.monotonic() - job.started))
            self.reply(job.client, "/emsync/job/done", job.id, job.kind, version.id, len(version.notes),
                       float(time.monotonic() - job.started), int(version.params.get("chosen_seed", job.seed)))
            with self.lock:
                self.send_clips(job.client, version.id)
                self._reload_live()
        elif outcome[0] == "opened":
            self.reply(job.client, "/emsync/opened", *outcome[1])
            self.reply(job.client, "/emsync/job/done", job.id, job.kind, self.session.current_id, 0,
                       float(time.monotonic() - job.started), job.seed)
        elif outcome[0] == "cancelled":
            self.reply(job.client, "/emsync/job/cancelled", job.id)
        else:
            self.reply(job.client, "/emsync/job/failed", job.id, _cut(outcome[1], 400))

    def close(self, timeout: float = 5.0) -> None:
        with self.lock:
            job, thread = self.job, self.job_thread
            if job is not None:
                job.cancel.set()
        if thread is not None:
            thread.join(timeout)
        with self.lock:
            if self.player is not None:
                self.player.close()
                self.player = None

    def _seed(self, given: list) -> int:
        if given:
            if not 0 <= given[0] < 2**31:
                raise EmsyncError(f"seed: {given[0]} is outside [0, 2^31)")
            return int(given[0])
        return (self.session.settings["seed"] + self.session.next_version) % 2**31

    # ---- handlers (called with self.lock held) ---------------------------------------
    @route("/emsync/status", "", reply="/emsync/status s:state i:version i:versions i:undo i:redo f:duration "
           "i:scenes i:job f:progress s:session", summary="state of the service and the session")
    def on_status(self, client):
        self.reply(client, "/emsync/status", *self.status_args())

    @route("/emsync/reply_port", "port:i", reply="/emsync/ok s:address i:port",
           summary="send replies for this host's requests to this UDP port (0: back to the sending port)")
    def on_reply_port(self, client, port):
        if not 0 <= port <= 65535:
            raise EmsyncError(f"port: {port} is outside 0..65535")
        if port:
            self.reply_ports[client[0]] = port
        else:
            self.reply_ports.pop(client[0], None)
        self.reply(client, "/emsync/ok", "/emsync/reply_port", port)

    @route("/emsync/help", "", reply="bundles of /emsync/help/address s:address s:arguments s:reply s:summary",
           summary="this address table")
    def on_help(self, client):
        entries = [clips.message_bytes("/emsync/help/address", r.address, r.usage(), r.reply, r.summary)
                   for r in ROUTES.values()]
        for data in clips.chunked_messages(entries):
            self.send(client, data)

    @route("/emsync/open/timeline", "path:s", "path:s fps:f", "path:s fps:f transition:s",
           reply="/emsync/opened s:kind s:path f:duration i:scenes i:cuts i:hits f:fps",
           summary="scenes, cuts, emotions and hits from an editor timeline (OTIO, EDL, FCP7 XML, FCPXML, AAF)")
    def on_open_timeline(self, client, path, fps=0.0, transition="mid"):
        from otio_adapters.timeline import read_timeline

        self._busy("/emsync/open/timeline")
        if not path:
            raise EmsyncError("path: empty")
        if fps < 0:
            raise EmsyncError(f"fps: {fps} must be positive (0: find it)")
        timeline = read_timeline(path, fps=fps or None, transition=transition)
        source = {"kind": "timeline", "path": str(Path(path).resolve()), "fps": float(fps), "transition": transition}
        self.session.set_scenes(timeline.duration, timeline.scenes, timeline.hits, source)
        self._timeline = timeline
        self._transfers.clear()
        self.reply(client, "/emsync/opened", "timeline", source["path"], float(timeline.duration),
                   len(timeline.scenes), len(timeline.cuts), len(timeline.hits), float(timeline.fps))

    @route("/emsync/open/video", "path:s", "path:s threshold:f",
           reply="/emsync/job/started i:job s:\"open\" i:0, then /emsync/opened s:\"video\" s:path f:duration "
           "i:scenes i:cuts i:hits f:fps and /emsync/job/done", summary="cuts and per-scene emotions analysed from "
           "a video (a job: faces, picture and sound; roughly a fifth of the video's length on 2 cores)")
    def on_open_video(self, client, path, threshold=0.5):
        from emsync_core.scene_emotion import analyze_video

        if not path:
            raise EmsyncError("path: empty")
        if not 0 < threshold < 1:
            raise EmsyncError(f"threshold: {threshold} is outside (0, 1)")

        def work(generator, progress, cancel):
            analysis = analyze_video(path, threshold)
            scenes = [scene.to_scene() for scene in analysis.scenes]
            source = {"kind": "video", "path": str(Path(path).resolve()), "threshold": float(threshold)}

            def apply() -> tuple:
                self.session.set_scenes(analysis.duration, scenes, [], source)
                self._timeline = None
                self._transfers.clear()
                return ("video", source["path"], float(analysis.duration), len(scenes), len(analysis.cuts), 0,
                        float(analysis.fps))

            return apply

        self.start_job(client, "/emsync/open/video", "open", 0, work)

    @route("/emsync/open/scenes", "path:s", reply="/emsync/opened s:kind s:path f:duration i:scenes i:cuts i:hits f:fps",
           summary='a JSON scene file ({"duration", "scenes": [{"start", "valence", "arousal", "name"}]})')
    def on_open_scenes(self, client, path):
        from emsync_core.scenes import load_scene_file

        self._busy("/emsync/open/scenes")
        if not path:
            raise EmsyncError("path: empty")
        duration, scenes = load_scene_file(path)
        source = {"kind": "scenes", "path": str(Path(path).resolve())}
        self.session.set_scenes(duration, scenes, [], source)
        self._timeline = None
        self._transfers.clear()
        self.reply(client, "/emsync/opened", "scenes", source["path"], float(duration), len(scenes),
                   len(scenes) - 1, 0, 0.0)

    @route("/emsync/scenes/list", "", "seq:i", reply="bundles [/emsync/scenes/chunk i:seq i:chunks i:first i:count "
           "i:scenes, /emsync/scene ... x count]", summary="every scene (or chunk seq again)")
    def on_scenes_list(self, client, seq=None):
        scenes = self.session.scenes
        per = 12  # an /emsync/scene message is at most 108 bytes in a bundle (names cut to 40 bytes)
        groups = [list(range(i, min(i + per, len(scenes)))) for i in range(0, len(scenes), per)] or [[]]
        if seq is not None and not 0 <= seq < len(groups):
            raise EmsyncError(f"seq: {seq} is outside 0..{len(groups) - 1}")
        for number, group in enumerate(groups):
            if seq is not None and number != seq:
                continue
            items = [clips.message_bytes("/emsync/scenes/chunk", number, len(groups), group[0] if group else 0,
                                         len(group), len(scenes))]
            for index in group:
                items.append(clips.message_bytes("/emsync/scene", *self.scene_args(index, scenes[index])))
            self.send(client, clips.bundle_bytes(items))

    @route("/emsync/scene/emotion", "index:i emotion:s", "index:i valence:f arousal:f",
           reply="/emsync/scene i:index f:start f:end f:valence f:arousal s:name s:word T/F:user_set",
           summary="set a scene's emotion: a word (joy, tense, calm...), 'valence=.. arousal=..', or two numbers")
    def on_scene_emotion(self, client, index, *value):
        self._need_scenes("/emsync/scene/emotion")
        if len(value) == 1:
            found = find_emotion(value[0], field="emotion")
            if found is None:
                raise EmsyncError(f"emotion: {value[0][:60]!r} names no emotion this server knows")
            valence, arousal = found
        else:
            valence, arousal = float(value[0]), float(value[1])
        scene = self.session.set_emotion(index, valence, arousal)
        self.reply(client, "/emsync/scene", *self.scene_args(index, scene))

    @route("/emsync/settings/set", "name:s value:*", reply="/emsync/settings s:name value",
           summary="one of: " + ", ".join(SETTINGS))
    def on_settings_set(self, client, name, value):
        value = self.session.set_setting(name, value)
        if name == "bpm":
            self._transfers.clear()
            self._reload_live()
        self.reply(client, "/emsync/settings", name, value)

    @route("/emsync/settings/get", "", reply="a bundle of /emsync/settings s:name value",
           summary="every setting")
    def on_settings_get(self, client):
        items = [clips.message_bytes("/emsync/settings", name, value) for name, value in self.session.settings.items()]
        for data in clips.chunked_messages(items):
            self.send(client, data)

    @route("/emsync/generate", "", "seed:i", reply="/emsync/job/started i:job s:kind i:seed, then "
           "/emsync/job/progress, /emsync/job/done (or failed/cancelled) and the clips",
           summary="music for the whole session (a new version)")
    def on_generate(self, client, *given):
        from emsync_core.conditions import EmotionCurve

        self._need_scenes("/emsync/generate")
        seed = self._seed(list(given))
        session = self.session
        duration, boundaries = session.duration, session.boundaries()
        curve = EmotionCurve.from_scenes(copy.deepcopy(session.scenes))
        sampling = _sampling(session.settings)
        parent = session.current_id

        def work(generator, progress, cancel):
            result = generator.generate(duration, boundaries, curve, seed=seed, **sampling, progress=progress,
                                        cancel=cancel)
            params = {"seed": seed, "duration": duration, **sampling, "tokens": result.stats["tokens"]}
            return result.notes, parent, params

        self.start_job(client, "/emsync/generate", "generate", seed, work)

    @route("/emsync/regenerate", "start:f end:f", "start:f end:f seed:i",
           reply="as /emsync/generate", summary="new music for [start, end) seconds; everything outside is kept")
    def on_regenerate(self, client, start, end, *given):
        from emsync_core.conditions import EmotionCurve
        from emsync_core.regenerate import MIN_RANGE_SECONDS, regenerate

        self._need_scenes("/emsync/regenerate")
        session = self.session
        base = session.current()
        if base is None:
            raise EmsyncError("regenerate: no music yet (send /emsync/generate first)")
        if not 0 <= start < session.duration:
            raise EmsyncError(f"start: {start} is outside the score [0, {session.duration})")
        if not start + MIN_RANGE_SECONDS <= end <= session.duration + 0.005:
            raise EmsyncError(f"end: {end} must be at least {MIN_RANGE_SECONDS} s after start and at most "
                              f"the duration {session.duration}")
        seed = self._seed(list(given))
        duration, boundaries, notes = session.duration, session.boundaries(), list(base.notes)
        curve = EmotionCurve.from_scenes(copy.deepcopy(session.scenes))
        settings = dict(session.settings)
        sampling = _sampling(settings)

        def work(generator, progress, cancel):
            result = regenerate(generator, notes, duration, start, end, boundaries, curve, seed=seed,
                                candidates=settings["candidates"], **sampling,
                                seam_seconds=settings["seam_seconds"], progress=progress, cancel=cancel)
            params = {"seed": seed, "chosen_seed": result.seed, "start": result.start, "end": result.end,
                      **sampling, "candidates": result.stats["candidates"]}
            return result.notes, base.id, params

        self.start_job(client, "/emsync/regenerate", "regenerate", seed, work)

    @route("/emsync/cancel", "", "job:i", reply="/emsync/job/cancelling i:job, then /emsync/job/cancelled i:job",
           summary="stop the running job; the session stays as it was")
    def on_cancel(self, client, *given):
        job = self.job
        if job is None or (given and given[0] != job.id):
            raise EmsyncError("cancel: no such job running" + (f" (job {given[0]})" if given else ""))
        job.cancel.set()
        self.reply(client, "/emsync/job/cancelling", job.id)

    def _moved(self, client, version_id: int) -> None:
        kind = self.session.version(version_id).kind if version_id else "empty"
        self.reply(client, "/emsync/version", version_id, self.session.position, len(self.session.history), kind)
        self.send_clips(client, version_id)
        self._reload_live()

    @route("/emsync/undo", "", reply="/emsync/version i:version i:position i:versions s:kind, then the clips",
           summary="back to the previous version (0: no music)")
    def on_undo(self, client):
        self._busy("/emsync/undo")
        self._moved(client, self.session.undo())

    @route("/emsync/redo", "", reply="as /emsync/undo", summary="forward again after undo")
    def on_redo(self, client):
        self._busy("/emsync/redo")
        self._moved(client, self.session.redo())

    @route("/emsync/clips/get", "", "version:i", reply="/emsync/clips/begin, chunk bundles, /emsync/clips/end",
           summary="the clips of the current version (or of any version in the history)")
    def on_clips_get(self, client, *given):
        version_id = given[0] if given else self.session.current_id
        if version_id and version_id not in self.session.history:
            raise EmsyncError(f"version: {version_id} is not in this session")
        self.send_clips(client, version_id)

    @route("/emsync/clips/chunk", "version:i seq:i", reply="the chunk bundle, byte for byte as first sent",
           summary="send one chunk again (after a gap in the sequence numbers)")
    def on_clips_chunk(self, client, version_id, seq):
        if version_id and version_id not in self.session.history:
            raise EmsyncError(f"version: {version_id} is not in this session")
        transfer = self.transfer(version_id)
        if not 0 <= seq < len(transfer.chunks):
            raise EmsyncError(f"seq: {seq} is outside 0..{len(transfer.chunks) - 1}")
        self.send(client, transfer.chunks[seq])

    def _markers(self) -> list[tuple[float, str]]:
        from emsync_core.scenes import cut_markers

        return cut_markers(self.session.scenes) + [(t, "hit") for t in self.session.hits]

    def _write_midi(self, path: str) -> Path:
        from emsync_core.midi_io import write_midi

        if not path:
            raise EmsyncError("path: empty")
        if self.session.current() is None:
            raise EmsyncError("export: no music yet (send /emsync/generate first)")
        return write_midi(path, self.session.current_notes(), self._markers(), bpm=self.session.settings["bpm"])

    @route("/emsync/export/midi", "path:s", reply="/emsync/exported s:kind s:path i:version",
           summary="the current version as a type 1 Standard MIDI File (one track per instrument, cut markers)")
    def on_export_midi(self, client, path):
        written = self._write_midi(path)
        self.reply(client, "/emsync/exported", "midi", str(written.resolve()), self.session.current_id)

    @route("/emsync/export/timeline", "path:s", "path:s midi:s",
           reply="/emsync/exported s:kind s:path i:version (midi, then timeline)",
           summary="the opened timeline with a music track playing the exported MIDI and emotion markers")
    def on_export_timeline(self, client, path, midi=""):
        from otio_adapters.timeline import read_timeline, write_timeline

        source = self.session.source or {}
        if source.get("kind") != "timeline":
            raise EmsyncError("export: the session was not opened from a timeline (/emsync/open/timeline)")
        if not path:
            raise EmsyncError("path: empty")
        if self._timeline is None:
            self._timeline = read_timeline(source["path"], fps=source.get("fps") or None,
                                           transition=source.get("transition", "mid"))
        timeline = copy.copy(self._timeline)
        timeline.scenes = copy.deepcopy(self.session.scenes)
        timeline.hits = list(self.session.hits)
        midi_path = self._write_midi(midi or str(Path(path).with_suffix(".mid")))
        self.reply(client, "/emsync/exported", "midi", str(midi_path.resolve()), self.session.current_id)
        written = write_timeline(timeline, path, midi_path.resolve())
        self.reply(client, "/emsync/exported", "timeline", str(Path(written).resolve()), self.session.current_id)


    # ---- live MIDI and other hosts (plugin_host.live, plugin_host.dialects) ----------------
    def _live_score(self, track: str):
        from .live import Score

        return Score.from_notes(self.session.current_notes(), self.session.settings["bpm"], track or None)

    def _reload_live(self) -> None:
        """A new current version (or bpm) reaches the player at once, at the same position."""
        if self.player is not None:
            self.player.load(self._live_score(self.live_track))

    def _live(self):
        """The player, on a virtual port emsync:out unless /emsync/midi/output chose one."""
        if self.player is None:
            self._open_output(None, False)
        return self.player

    def _open_output(self, name: str | None, virtual: bool) -> None:
        from .live import Player, open_output

        port, label = open_output(name, virtual)
        old = self.player
        self.player, self.output_label = Player(port, self._live_score(self.live_track)), label
        if old is not None:
            self.player.follow(old.input.name if old.input else None)
            old.close()

    def _transport(self, client) -> None:
        player = self.player
        state, position = (player.state, player.position) if player else ("stopped", 0.0)
        self.reply(client, "/emsync/transport", state, float(position), self.output_label, self.live_track or "all",
                   self.session.current_id)

    def _need_music(self, address: str):
        version = self.session.current()
        if version is None:
            raise RequestError(address, f"{address.rsplit('/', 1)[-1]}: no music yet (send /emsync/generate first)")
        return version

    @route("/emsync/midi/ports", "", reply="a bundle: /emsync/midi/ports s:api i:outputs i:inputs, then "
           "/emsync/midi/port s:direction s:name per port", summary="MIDI ports to play to (out) and follow (in)")
    def on_midi_ports(self, client):
        from .live import port_names

        api, outputs, inputs = port_names()
        items = [clips.message_bytes("/emsync/midi/ports", api, len(outputs), len(inputs))]
        items += [clips.message_bytes("/emsync/midi/port", kind, _cut(name, 200))
                  for kind, names in (("out", outputs), ("in", inputs)) for name in names]
        for data in clips.chunked_messages(items):
            self.send(client, data)

    @route("/emsync/midi/output", "", "port:s", "port:s virtual:b", reply="/emsync/midi/output s:port",
           summary="where /emsync/play sends: an existing port (name or unique part), or virtual port emsync:NAME")
    def on_midi_output(self, client, name="", virtual=False):
        self._open_output(name or None, bool(virtual))
        self.reply(client, "/emsync/midi/output", self.output_label)

    @route("/emsync/play", "", "from:f", "from:f track:s", "from:f track:s end:f",
           reply="/emsync/transport s:state f:position s:port s:track i:version",
           summary="play the current version (or one instrument track) to the MIDI output, from a time")
    def on_play(self, client, start=None, track="", end=0.0):
        self._need_music("/emsync/play")
        if start is not None and not 0 <= start <= self.session.duration:
            raise EmsyncError(f"from: {start} is outside the score [0, {self.session.duration}]")
        if end and start is not None and end <= start:
            raise EmsyncError(f"end: {end} must be after from ({start}), or 0 for the end of the score")
        score = self._live_score(track)
        player = self._live()
        self.live_track = track
        player.load(score)
        player.play(start, end or None)
        self._transport(client)

    @route("/emsync/stop", "", reply="/emsync/transport ...", summary="stop playing; held notes are released")
    def on_stop(self, client):
        if self.player is not None:
            self.player.stop()
        self._transport(client)

    @route("/emsync/locate", "seconds:f", reply="/emsync/transport ...",
           summary="move the play position (playing goes on from there)")
    def on_locate(self, client, seconds):
        if not 0 <= seconds <= self.session.duration:
            raise EmsyncError(f"seconds: {seconds} is outside the score [0, {self.session.duration}]")
        self._live().locate(seconds)
        self._transport(client)

    @route("/emsync/transport", "", reply="/emsync/transport s:state f:position s:port s:track i:version",
           summary="where the player is: playing, stopped or armed (waiting for the host's clock)")
    def on_transport(self, client):
        self._transport(client)

    @route("/emsync/midi/follow", "input:s", reply="/emsync/midi/follow s:input",
           summary="follow a host's MIDI clock, Start/Continue/Stop and Song Position Pointer (\"\": stop)")
    def on_midi_follow(self, client, name):
        player = self._live() if name else self.player
        followed = player.follow(name) if player is not None else None
        self.reply(client, "/emsync/midi/follow", followed or "")

    @staticmethod
    def _daw(host: str, port: int) -> tuple[str, int]:
        """The DAW's IPv4 address and port, checked before anything is written or sent."""
        if not host:
            raise EmsyncError("host: empty")
        if not 0 < port <= 65535:
            raise EmsyncError(f"port: {port} is outside 1..65535")
        try:
            return socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4][:2]
        except (socket.gaierror, UnicodeError) as exc:
            raise EmsyncError(f"host: cannot resolve {host!r} ({exc})") from None

    def _push(self, client, kind: str, daw: tuple[str, int], datagrams: list[bytes], version: int) -> None:
        """Send to the DAW paced (off this thread), then tell the client."""
        def send_all():
            try:
                for data in datagrams:
                    self.send_raw(data, daw)
                    time.sleep(PUSH_GAP)
            except OSError as exc:
                self.error(client, f"/emsync/push/{kind}", f"host: cannot send to {daw[0]}:{daw[1]} "
                                                           f"({exc.strerror or exc})")
                return
            self.reply(client, "/emsync/pushed", kind, daw[0], daw[1], version, len(datagrams))

        threading.Thread(target=send_all, name=f"emsync-push-{kind}", daemon=True).start()

    @route("/emsync/push/ableton", "", "host:s port:i", "host:s port:i track:i slot:i",
           reply="/emsync/pushed s:\"ableton\" s:host i:port i:version i:messages",
           summary="the current version as Session clips in Live through AbletonOSC (tracks track..track+4)")
    def on_push_ableton(self, client, host="127.0.0.1", port=dialects.ABLETON_PORT, track=0, slot=0):
        version = self._need_music("/emsync/push/ableton")
        daw = self._daw(host, port)
        if track < 0 or slot < 0:
            raise EmsyncError(f"track/slot: {track}/{slot} must be 0 or more")
        datagrams = dialects.ableton_messages(version.notes, self.session.settings["bpm"], self.session.duration,
                                              track, slot, name=f"emsync v{version.id}")
        self._push(client, "ableton", daw, datagrams, version.id)

    @route("/emsync/push/reaper", "", "host:s port:i",
           reply="/emsync/exported s:\"midi\" s:path i:version, then /emsync/pushed s:\"reaper\" s:host i:port "
           "i:version i:messages", summary="export the SMF into the session folder, set REAPER's tempo and cursor")
    def on_push_reaper(self, client, host="127.0.0.1", port=dialects.REAPER_PORT):
        version = self._need_music("/emsync/push/reaper")
        daw = self._daw(host, port)
        folder = self.session.dir / "exports"
        try:
            folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise EmsyncError(f"{folder}: cannot create ({exc.strerror or exc})") from None
        written = self._write_midi(str(folder / f"v{version.id:06d}.mid"))
        self.reply(client, "/emsync/exported", "midi", str(written.resolve()), version.id)
        self._push(client, "reaper", daw, dialects.reaper_messages(self.session.settings["bpm"]), version.id)

# ---- the UDP loop ------------------------------------------------------------------------
class OscServer:
    """A UDP socket and its receive loop in front of a Host."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 session_dir: str | os.PathLike | None = None, model: str | os.PathLike | None = None):
        if model is not None and not Path(model).exists():
            raise EmsyncError(f"{model}: generator model not found")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except (socket.gaierror, OverflowError) as exc:
            raise EmsyncError(f"--host: cannot resolve {host!r} ({exc})") from None
        # "localhost" may resolve to ::1 first; plugins mostly send to 127.0.0.1.
        family, _, _, _, address = next((i for i in infos if i[0] == socket.AF_INET), infos[0])
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        except OSError:
            pass
        try:
            self.sock.bind(address)
        except OSError as exc:
            self.sock.close()
            raise EmsyncError(f"--port: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        self.sock.settimeout(0.25)
        self.host = Host(session_dir or DEFAULT_SESSION, model, send=self._send)
        self._stop = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    def _send(self, data: bytes, address: tuple[str, int]) -> None:
        self.sock.sendto(data, address)

    def serve_forever(self) -> None:
        while not self._stop.is_set():
            try:
                data, client = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError as exc:
                if self._stop.is_set():
                    break
                log.debug("receive failed: %s", exc)
                continue
            self.host.handle_datagram(data, client[:2])

    def shutdown(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self.host.close()
        self.sock.close()


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, session_dir: str | os.PathLike | None = None,
          model: str | os.PathLike | None = None) -> None:
    """Run the OSC service until Ctrl-C or SIGTERM.

    Listens on UDP `host`:`port` (127.0.0.1 by default: anyone who can reach the port can
    read and write files as this user through /emsync/open and /emsync/export), keeps the
    session in `session_dir` (default ./emsync-session; created if missing, reopened where
    it was if present) and generates with `model` (default: the bundled ONNX generator).
    Prints one line with the address it listens on (port 0 picks a free port). Raises
    EmsyncError for a port it cannot bind, an unreadable session or a missing model.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="emsync serve: %(message)s", stream=sys.stderr)
    server = OscServer(host, port, session_dir, model)
    bound_host, bound_port = server.address
    if not (host in ("localhost", "::1") or host.startswith("127.")):
        log.warning("listening on %s, not loopback: anyone who can reach this port controls the session and can "
                    "write files as this user", host)
    print(f"emsync: serving OSC on udp://{bound_host}:{bound_port}, session {server.host.session.dir.resolve()}",
          flush=True)
    server.host.warm_up()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()

