"""The OSC service's UDP loop: one socket in front of a Host (emsync.osc.host).

`serve(host, port, session_dir, model)` runs it; docs/osc.md is the address space. The loop
is its own (not python-osc's dispatcher, which drops unknown addresses without a word, nor its
socketserver, which can throw on a malformed datagram): python-osc only parses and builds
packets (emsync.osc.wire).
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from emsync.core.errors import EmsyncError

from .host import Host

log = logging.getLogger("emsync.osc")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
DEFAULT_SESSION = "emsync-session"


# ---- the UDP loop ------------------------------------------------------------------------
class OscServer:
    """A UDP socket and its receive loop in front of a Host."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 session_dir: str | os.PathLike | None = None, model: str | os.PathLike | None = None):
        if model is not None and not Path(model).exists():
            raise EmsyncError(f"{model}: generator model not found")
        if not 0 <= port <= 65535:  # checked first: the resolver would blame the host, or wrap the port
            raise EmsyncError(f"--port: {port} is outside 0..65535 (0 picks a free port)")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except (socket.gaierror, UnicodeError) as exc:
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
        self.host = Host(session_dir or DEFAULT_SESSION, model, send=self._send, own_address=self.address)
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

