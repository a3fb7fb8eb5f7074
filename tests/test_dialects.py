"""Pushing a version to other hosts: AbletonOSC clips and REAPER's transport plus the SMF.

The real `emsync serve` in its own process sends to liblo's `oscdump` (an independent OSC
implementation in another process); what it prints is decoded and compared, in beats, with
the notes stored in the session.
"""
from __future__ import annotations

import os
import select
import shlex
import shutil
import socket
import subprocess
import time

import pytest

from conftest import Peer, Server, seeded_session
from emsync.core.midi_io import read_midi
from emsync.core.music import INSTRUMENTS, Note
from emsync.core.tempo import Meter, TempoMap
from emsync.osc import dialects
from emsync.osc.wire import MAX_DATAGRAM

BPM = 90.0
DURATION = 9.0
NOTES = sorted([Note(0.0, 0.1, 36, 110, 0), Note(0.5, 0.6, 38, 96, 0)]
               + [Note(0.25 * i, 0.25 * i + 0.4, 60 + i % 12, 50 + i, 1) for i in range(30)]
               + [Note(2.0 + 0.125 * i, 2.1 + 0.125 * i, 40 + i % 5, 70, 3) for i in range(20)]
               + [Note(8.0, 9.5, 67, 80, 4)])  # strings ring past the programme's end

needs_oscdump = pytest.mark.skipif(not shutil.which("oscdump"),
                                   reason="liblo-tools (oscdump) not installed: apt-get install liblo-tools")


class Dump:
    """`oscdump` on a free UDP port; its lines decoded to (address, args)."""

    def __init__(self):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.proc = subprocess.Popen(["oscdump", "-L", str(self.port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.pending = b""
        time.sleep(0.3)

    def messages(self, count: int, timeout: float = 15.0) -> list[tuple[str, list]]:
        """The next `count` messages, and nothing more arrives within half a second."""
        out, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                _, address, *rest = shlex.split(line.decode())
                types, values = (rest[0], rest[1:]) if rest else ("", [])
                out.append((address, [_value(t, v) for t, v in zip(types, values)]))
            if len(out) >= count and deadline - time.monotonic() > 0.5:
                deadline = time.monotonic() + 0.5  # wait a little longer: nothing more may come
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                self.pending += os.read(self.proc.stdout.fileno(), 65536)
        assert len(out) == count, f"oscdump saw {len(out)} messages, expected {count}: {[m[0] for m in out][-5:]}"
        return out

    def close(self):
        self.proc.kill()
        self.proc.wait(5)


def _value(tag: str, text: str):
    return {"i": int, "f": float, "s": str, "T": lambda _: True, "F": lambda _: False}[tag](text)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dialects")
    running = Server(seeded_session(folder / "session", NOTES, DURATION, BPM), folder / "server.log")
    yield running
    running.stop()


@pytest.fixture
def dump():
    listener = Dump()
    yield listener
    listener.close()


def test_ableton_messages_stay_under_the_datagram_limit():
    many = [Note(i * 0.01, i * 0.01 + 0.2, 40 + i % 40, 64, 1) for i in range(1000)]
    datagrams = dialects.ableton_messages(many, TempoMap.constant(120.0), 10.0)
    assert max(map(len, datagrams)) <= MAX_DATAGRAM
    assert max(map(len, datagrams)) > MAX_DATAGRAM - 2 * dialects.ABLETON_NOTE_BYTES, "chunks are filled"
    assert dialects.clip_length_beats([], 10.0, TempoMap.constant(120.0)) == 20.0  # whole bars of 4/4
    assert dialects.clip_length_beats(many, 10.0, TempoMap.constant(120.0)) == 24.0, "the last note rings to 10.19 s"
    assert dialects.clip_length_beats([], 10.0, TempoMap.constant(120.0, Meter(3, 4))) == 21.0  # whole 3/4 bars
    changing = TempoMap((0.0, 4.0), (120.0, 60.0))
    notes = dialects.ableton_messages([Note(5.0, 6.0, 60, 90, 1)], changing, 8.0)
    added = [m for m in notes if m.startswith(b"/live/clip/add/notes")]
    assert b"/live/song/set/tempo" in notes[0] and len(added) == 1
    assert dialects.clip_length_beats([], 8.0, changing) == 12.0  # 8 beats, then 4 more at half the tempo


@needs_oscdump
def test_push_to_ableton_makes_one_clip_per_track_with_the_notes_in_beats(server, peer, dump):
    pushed = peer.ask("/emsync/push/ableton", "127.0.0.1", dump.port, 2, 1, reply="/emsync/pushed", timeout=15)
    assert pushed == ["ableton", "127.0.0.1", dump.port, 1, pushed[4]]
    got = dump.messages(pushed[4])  # every datagram the server said it sent, and no more
    assert got[0] == ("/live/song/set/tempo", [BPM])
    length = 4.0 * 4  # 9.5 s at 90 bpm is 14.25 beats: four bars
    for index, name in enumerate(INSTRUMENTS):
        track = 2 + index
        setup = [m for m in got if m[0].startswith(("/live/clip_slot/", "/live/clip/set/")) and m[1][0] == track]
        assert setup == [("/live/clip_slot/delete_clip", [track, 1]),
                         ("/live/clip_slot/create_clip", [track, 1, length]),
                         ("/live/clip/set/name", [track, 1, f"emsync v1 {name}"])]
        sent = []
        for address, args in got:
            if address == "/live/clip/add/notes" and args[0] == track:
                assert args[1] == 1 and (len(args) - 2) % 5 == 0
                sent += [tuple(args[i:i + 5]) for i in range(2, len(args), 5)]
        beat = BPM / 60
        expected = [(n.pitch, n.start * beat, (n.end - n.start) * beat, n.velocity, False)
                    for n in sorted(NOTES, key=lambda n: (n.start, n.pitch)) if n.instrument == index]
        assert len(sent) == len(expected), name
        for s, e in zip(sent, expected):
            assert s[0] == e[0] and s[3:] == e[3:] and s[1:3] == pytest.approx(e[1:3], abs=2e-6)


@needs_oscdump
def test_push_to_reaper_exports_the_smf_and_sets_tempo_and_cursor(server, peer, dump):
    peer.send("/emsync/push/reaper", "127.0.0.1", dump.port)
    replies = peer.until("/emsync/pushed", timeout=15)
    exported = next(args for address, args, _ in replies if address == "/emsync/exported")
    assert exported[0] == "midi" and exported[2] == 1
    path = server.session / "exports" / "v000001.mid"
    assert exported[1] == str(path.resolve())
    assert dump.messages(3) == [("/stop", []), ("/tempo/raw", [BPM]), ("/time", [0.0])]
    tick = 60 / BPM / 480
    back = read_midi(path)
    assert [(n.pitch, n.velocity, n.instrument) for n in back] == [(n.pitch, n.velocity, n.instrument) for n in NOTES]
    assert max(abs(a.start - b.start) for a, b in zip(back, NOTES)) <= tick / 2 + 1e-9
    assert not list((server.session / "exports").glob(".*.tmp"))


def test_push_errors_name_the_field(server, peer, tmp_path):
    peer.send("/emsync/push/ableton", "127.0.0.1", 0, 0, 0)
    assert peer.error_for("/emsync/push/ableton").startswith("port: 0")
    peer.send("/emsync/push/reaper", "no.such.host.invalid", 8000)
    assert peer.error_for("/emsync/push/reaper").startswith("host: cannot resolve")
    peer.send("/emsync/push/ableton", "127.0.0.1", 11000, -1, 0)
    assert "track/slot" in peer.error_for("/emsync/push/ableton")
    empty = Server(tmp_path / "empty", tmp_path / "server.log")
    try:
        other = Peer(empty.port)
        other.send("/emsync/push/reaper")
        assert "no music yet" in other.error_for("/emsync/push/reaper")
        other.close()
    finally:
        empty.stop()
