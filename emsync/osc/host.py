"""The OSC host: requests in, packets out, over one scoring service (emsync.service).

Whatever arrives, the sender gets either the reply or an /emsync/error naming the address
(except an /emsync/error itself: an error is never answered with an error). Three threads:

- the receive thread parses, checks the arguments and answers what needs no file and no
  lock at once (status, cancel, reply_port: within milliseconds whatever else is going on);
- the request thread (emsync.osc.worker) serves every other request in order: opening
  files, session saves, exports, scene lists and clips, long replies paced;
- a job thread runs slow work (video analysis, generation): onnxruntime releases the GIL,
  so requests are answered while it runs.

Every acknowledged change is on disk first (emsync.service.session). Nothing is ever sent
to the server's own address (emsync.osc.loopguard).
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from emsync.core.emotions import nearest_word
from emsync.core.errors import EmsyncError
from emsync.core.limits import MAX_REQUEST_BYTES, MAX_TRANSFER_NOTES, REPLY_BURST, REPLY_GAP_SECONDS
from emsync.core.music import Scene
from emsync.service.scoring import ScoringService, Take
from emsync.service.session import Session

from . import clips, handlers, playback  # noqa: F401  (handlers and playback fill the address table)
from .loopguard import OwnAddress
from .routes import ROUTES, RequestError
from .wire import guess_address, message_bytes, parse_packet, truncate_utf8
from .worker import RequestWorker

log = logging.getLogger("emsync.osc")

SCENE_NAME_BYTES = 40
PROGRESS_INTERVAL = 0.2  # seconds between /emsync/job/progress messages
TRANSFER_CACHE = 8  # versions whose clip chunks are kept built
ERROR_ADDRESS = "/emsync/error"


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
    """The service behind the sockets: requests in, packets out through `send(data, address)`;
    `own_address` is the socket's own, never sent to."""

    def __init__(self, session_dir: str | os.PathLike, model: str | os.PathLike | None = None,
                 send: Callable[[bytes, tuple[str, int]], None] | None = None,
                 own_address: tuple[str, int] = ("", 0)):
        self.service = ScoringService(Session(session_dir), model, isolated_reads=True)
        self.send_raw = send or (lambda data, address: None)
        self.own = OwnAddress(own_address)
        self.lock = threading.RLock()
        self.reply_ports: dict[str, int] = {}
        self.job: Job | None = None
        self.job_thread: threading.Thread | None = None
        self.next_job = 1
        self._transfers: OrderedDict[int, clips.Transfer] = OrderedDict()
        self.player = None  # emsync.live.player.Player on the chosen MIDI output, opened on first use
        self.output_label = ""
        self.live_track = ""  # the instrument track /emsync/play chose ("" all)
        self.requests = RequestWorker(self._serve)

    @property
    def session(self) -> Session:
        return self.service.session

    # ---- sending ---------------------------------------------------------------------
    def destination(self, client: tuple[str, int]) -> tuple[str, int]:
        port = self.reply_ports.get(client[0])
        return (client[0], port) if port else client

    def send(self, client: tuple[str, int], data: bytes) -> None:
        destination = self.destination(client)
        if self.own.matches(destination):
            log.debug("not sending to this server's own address %s", destination)
            return
        try:
            self.send_raw(data, destination)
        except OSError as exc:  # the client went away; nothing to tell it
            log.debug("send to %s failed: %s", client, exc)

    def send_all(self, client: tuple[str, int], datagrams) -> None:
        """Send a long reply paced: REPLY_BURST datagrams, then a pause, so a client's receive
        buffer keeps up (one request's reply never floods it)."""
        for index, data in enumerate(datagrams):
            if index and index % REPLY_BURST == 0:
                time.sleep(REPLY_GAP_SECONDS)
            self.send(client, data)

    def reply(self, client: tuple[str, int], address: str, *args) -> None:
        self.send(client, message_bytes(address, *args))

    def error(self, client: tuple[str, int], address: str, message: str) -> None:
        self.reply(client, "/emsync/error", truncate_utf8(address, 200), truncate_utf8(message, 400))

    # ---- requests --------------------------------------------------------------------
    @contextlib.contextmanager
    def _answering(self, client: tuple[str, int], address: str):
        """Whatever the block raises becomes the /emsync/error of `address`; a bug costs one
        request, never the service."""
        try:
            yield
        except RequestError as exc:
            self.error(client, exc.address, exc.message)
        except EmsyncError as exc:
            self.error(client, address, str(exc))
        except Exception:
            log.error("internal error on %s from %s:\n%s", address, client, traceback.format_exc())
            self.error(client, address, "internal error (see the server log)")

    def handle_datagram(self, data: bytes, client: tuple[str, int]) -> None:
        """One datagram from `client`: replies or an /emsync/error; never raises. A datagram
        from the server's own address (its own reply come back) or an error reply is dropped."""
        head = guess_address(data)
        if self.own.matches(client) or head == ERROR_ADDRESS:
            return
        with self._answering(client, head):
            if len(data) > MAX_REQUEST_BYTES:
                raise RequestError(head, f"request of {len(data)} bytes is larger than {MAX_REQUEST_BYTES}; refused")
            try:
                messages = parse_packet(data)
            except Exception as exc:  # python-osc and struct raise many kinds on garbage
                raise RequestError(head, f"malformed OSC packet ({exc})") from None
            for address, args in messages:
                self.handle(address, args, client)

    def handle(self, address: str, args: list, client: tuple[str, int]) -> None:
        """Check one request; answer it now when its route is immediate, else queue it for
        the request thread."""
        if address == ERROR_ADDRESS:  # someone's error reply: never answered with another
            return
        with self._answering(client, address):
            target = ROUTES.get(address)
            if target is None:
                raise RequestError(address, "unknown address (send /emsync/help for the list)")
            target.match(args)
            if target.immediate:
                target.handler(self, client, *args)
            else:
                self.requests.submit(address, args, client)

    def _serve(self, address: str, args: list, client: tuple[str, int]) -> None:
        """A queued request, on the request thread, with the host's lock."""
        with self._answering(client, address), self.lock:
            ROUTES[address].handler(self, client, *args)

    # ---- state -----------------------------------------------------------------------
    def busy(self, address: str) -> None:
        if self.job is not None:
            raise RequestError(address, f"busy: job {self.job.id} ({self.job.kind}) is running; "
                                        "wait for /emsync/job/done or send /emsync/cancel")

    def forget_transfers(self) -> None:
        self._transfers.clear()

    def transfer(self, version_id: int) -> clips.Transfer:
        if version_id in self._transfers:
            self._transfers.move_to_end(version_id)
            return self._transfers[version_id]
        version = self.session.version(version_id) if version_id else None
        notes, bpm = (version.notes, version.tempo().bpms[0]) if version else ([], 120.0)
        if len(notes) > MAX_TRANSFER_NOTES:
            raise EmsyncError(f"clips: version {version_id} has {len(notes)} notes, more than the "
                              f"{MAX_TRANSFER_NOTES} a clip transfer carries; use /emsync/export/midi")
        built = clips.build_transfer(version_id, notes, self.session.duration, bpm)
        self._transfers[version_id] = built
        while len(self._transfers) > TRANSFER_CACHE:
            self._transfers.popitem(last=False)
        return built

    def send_clips(self, client: tuple[str, int], version_id: int) -> None:
        self.send_all(client, self.transfer(version_id).datagrams())

    @staticmethod
    def scene_args(index: int, scene: Scene) -> list:
        return [index, float(scene.start), float(scene.end), float(scene.valence), float(scene.arousal),
                truncate_utf8(scene.name, SCENE_NAME_BYTES), nearest_word(scene.valence, scene.arousal),
                bool(scene.user_set)]

    def status_args(self) -> list:
        job, session = self.job, self.session
        state = "idle" if job is None else ("cancelling" if job.cancel.is_set() else "running")
        return [state, session.current_id, len(session.history), session.can_undo(), session.can_redo(),
                float(session.duration), len(session.scenes), job.id if job else 0,
                float(job.progress) if job else 0.0, str(session.dir.resolve())]

    # ---- jobs ------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the model in the background so the first generation starts at once."""
        def load():
            try:
                self.service.generator()
            except EmsyncError as exc:
                log.error("model: %s", exc)
        threading.Thread(target=load, name="emsync-warm-up", daemon=True).start()

    def start_job(self, client, address: str, kind: str, seed: int, work: Callable) -> Job:
        """Run `work(progress, cancel)` in the worker thread. It returns a Take (a new version) or
        a callable that applies a change of the scenes and returns the /emsync/opened arguments."""
        self.busy(address)
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
        from emsync.core.generator import Cancelled

        outcome: tuple = ("failed", "internal error (see the server log)")
        try:
            result = work(lambda f: self._progress(job, f), job.cancel)
            with self.lock:
                if job.cancel.is_set():
                    outcome = ("cancelled",)
                elif isinstance(result, Take):
                    outcome = ("done", self.service.commit(result))
                else:  # a job that changes the scenes, not the music: apply it now
                    outcome = ("opened", result())
        except Cancelled:
            outcome = ("cancelled",)
        except EmsyncError as exc:
            outcome = ("failed", str(exc))
        except Exception:
            log.error("job %d (%s) failed:\n%s", job.id, job.kind, traceback.format_exc())
        finally:
            with self.lock:
                self.job = None
        if outcome[0] == "failed" and job.cancel.is_set():  # what a cancelled job ran into is not news
            outcome = ("cancelled",)
        elapsed = float(time.monotonic() - job.started)
        if outcome[0] == "done":
            version = outcome[1]
            log.info("job %d (%s): version %d, %d notes", job.id, job.kind, version.id, len(version.notes))
            if job.sent_fraction < 1.0:
                self.reply(job.client, "/emsync/job/progress", job.id, 1.0, elapsed)
            self.reply(job.client, "/emsync/job/done", job.id, job.kind, version.id, len(version.notes), elapsed,
                       int(version.params.get("chosen_seed", job.seed)))
            with self._answering(job.client, f"/emsync/{job.kind}"), self.lock:
                playback.reload(self)
                self.send_clips(job.client, version.id)
        elif outcome[0] == "opened":
            if job.sent_fraction < 1.0:
                self.reply(job.client, "/emsync/job/progress", job.id, 1.0, elapsed)
            self.reply(job.client, "/emsync/opened", *outcome[1])
            self.reply(job.client, "/emsync/job/done", job.id, job.kind, self.session.current_id, 0, elapsed, job.seed)
        elif outcome[0] == "cancelled":
            self.reply(job.client, "/emsync/job/cancelled", job.id)
        else:
            self.reply(job.client, "/emsync/job/failed", job.id, truncate_utf8(outcome[1], 400))

    def close(self, timeout: float = 5.0) -> None:
        self.requests.close(timeout)
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
