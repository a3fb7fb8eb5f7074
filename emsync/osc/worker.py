"""The request thread: requests wait here, in the order they came, for the one thread that
reads files, writes the session and sends long replies, so the receive thread is always
free to answer /emsync/status and /emsync/cancel. The queue is bounded: a client that sends
faster than the requests can be served is told so, not queued without end."""
from __future__ import annotations

import queue
import threading
from typing import Callable

from emsync.core.limits import MAX_QUEUED_REQUESTS

from .routes import RequestError


class RequestWorker:
    """One thread running `serve(address, args, client)` for each request submitted."""

    def __init__(self, serve: Callable[[str, list, tuple], None], limit: int = MAX_QUEUED_REQUESTS):
        self._serve = serve
        self._waiting: queue.Queue = queue.Queue(limit)
        self._thread = threading.Thread(target=self._run, name="emsync-requests", daemon=True)
        self._thread.start()

    def submit(self, address: str, args: list, client: tuple) -> None:
        """Queue a request, or RequestError (busy) when `limit` requests are waiting already."""
        try:
            self._waiting.put_nowait((address, args, client))
        except queue.Full:
            raise RequestError(address, f"busy: {self._waiting.maxsize} requests are waiting; send this again "
                                        "after their replies") from None

    def _run(self) -> None:
        while True:
            request = self._waiting.get()
            if request is None:
                return
            self._serve(*request)

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the request being served; those still waiting were never acknowledged
        and are dropped."""
        try:
            while True:
                self._waiting.get_nowait()
        except queue.Empty:
            pass
        self._waiting.put(None)
        self._thread.join(timeout)
