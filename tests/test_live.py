"""Live MIDI through real ports: a JACK server with the dummy driver (tests/conftest.py).

The player sends to a virtual input port this test opens; a host is played by a virtual
output port sending clock, Start/Continue/Stop and Song Position Pointer. The CLI and the
OSC server run in their own processes on the same JACK server.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import mido
import pytest

from conftest import REPO, Peer, Server, seeded_session
from emsync.core.midi_io import write_midi
from emsync.core.music import Note
from emsync.live import player as live
from emsync.live import ports

# Piano (channel 0) every quarter second, a bass note (channel 2) held for 2 s, a drum hit (channel 10).
NOTES = sorted([Note(0.25 * i, 0.25 * i + 0.2, 60 + i, 40 + 3 * i, 1) for i in range(16)]
               + [Note(0.0, 2.0, 40, 90, 3), Note(1.0, 1.1, 38, 120, 0)])


class Sink:
    """A virtual MIDI input port of this test: what arrives, with its arrival time."""

    def __init__(self, name: str):
        self.got: list[tuple[float, mido.Message]] = []
        self.port = ports.MidiInput(lambda m, at: self.got.append((at, m)), virtual=name, client_name="emsync-test")
        self.name = self.port.name

    def of(self, *types: str) -> list[tuple[float, mido.Message]]:
        return [(t, m) for t, m in list(self.got) if m.type in types]

    def notes_on(self) -> list[tuple[float, int, int, int]]:
        return [(t, m.channel, m.note, m.velocity) for t, m in self.of("note_on") if m.velocity]

    def close(self):
        self.port.close()


@pytest.fixture
def sink(jack_server, request):
    port = Sink(f"in-{request.node.name[:40]}")
    yield port
    port.close()


@pytest.fixture
def player(sink):
    port, label = ports.open_output(sink.name)
    assert label == sink.name
    running = live.Player(port, live.Performance.from_notes(NOTES, 120.0))
    yield running
    running.close()


def expected_onsets(start: float = 0.0) -> list[tuple[float, int, int, int]]:
    """(time, channel, pitch, velocity) as the exported SMF lays the notes out: track by track
    (drums, piano, ... on channels 10, 1, 2, 3, 4) at the same instant."""
    channel = {0: 9, 1: 0, 3: 2}
    ordered = sorted((n for n in NOTES if n.start >= start), key=lambda n: (n.start, n.instrument))
    return [(n.start, channel[n.instrument], n.pitch, n.velocity) for n in ordered]


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.jack
def test_notes_arrive_in_order_with_their_velocities_and_times(player, sink):
    started = time.monotonic()
    player.play(0.0)
    assert player.wait_stopped(10)
    time.sleep(0.1)
    programs = [(m.channel, m.program) for _, m in sink.of("program_change")]
    assert sorted(programs) == [(0, 0), (1, 25), (2, 33), (3, 48), (9, 0)]  # GM programs, drums on channel 10
    onsets = sink.notes_on()
    assert [o[1:] for o in onsets] == [e[1:] for e in expected_onsets()]
    lateness = [(t - started) - e[0] for (t, *_), e in zip(onsets, expected_onsets())]
    assert all(-0.002 < x < 0.05 for x in lateness), lateness  # correctness, not the jitter figure
    offs = [(m.channel, m.note) for _, m in sink.of("note_off")]
    assert sorted(offs) == sorted((e[1], e[2]) for e in expected_onsets())
    assert player.state == "stopped" and player.position == pytest.approx(3.95, abs=0.01)  # the last release


@pytest.mark.jack
def test_stop_releases_held_notes_and_nothing_follows(player, sink):
    player.play(0.0)
    wait_for(lambda: (0, 62) in {(c, p) for _, c, p, _ in sink.notes_on()})  # struck at 0.5 s (however loaded)
    player.stop()
    stopped_at, position = time.monotonic(), player.position
    time.sleep(0.4)
    held = {(2, 40), (0, 62)}  # the bass (0-2 s) and the piano note struck at 0.5 s
    released = [(t, (m.channel, m.note)) for t, m in sink.of("note_off")]
    assert held <= {key for _, key in released}
    all_off = {m.channel for _, m in sink.of("control_change") if m.control == live.ALL_NOTES_OFF}
    assert all_off == {0, 1, 2, 3, 9}
    assert not [t for t, *_ in sink.notes_on() if t > stopped_at], "no note after stop"
    assert 0.5 <= player.position == position < 1.0 and player.state == "stopped"


@pytest.mark.jack
def test_play_from_and_locate_resume_at_the_right_place(player, sink):
    player.play(1.3)  # program changes are chased, the bass struck at 0 is not re-struck
    time.sleep(0.3)
    first = sink.notes_on()
    assert [o[1:] for o in first] == [e[1:] for e in expected_onsets(1.3) if e[0] < 1.55]
    assert len(sink.of("program_change")) == 5
    sink.got.clear()
    located = time.monotonic()
    player.locate(3.0)
    time.sleep(0.4)
    after = sink.notes_on()
    assert [o[1:] for o in after][:2] == [e[1:] for e in expected_onsets(3.0)][:2]
    assert after[0][0] - located < 0.05 and 0.2 < after[1][0] - located < 0.3
    assert player.position == pytest.approx(3.0 + time.monotonic() - located, abs=0.02)


class Host:
    """A DAW on a virtual output port: clock at some tempo, transport messages."""

    def __init__(self, name: str):
        self.port = ports.midi_backend().open_output(name, client_name="emsync-host")
        self.name = f"emsync-host:{name}"
        self.ticking = threading.Event()
        self.thread = None

    def send(self, kind: str, **fields):
        self.port.send(mido.Message(kind, **fields))

    def clock(self, bpm: float):
        """Send clock at `bpm` on a thread until `halt()` (absolute deadlines: no drift)."""
        interval = 60.0 / bpm / live.CLOCKS_PER_BEAT
        self.ticking.set()

        def tick():
            due = time.monotonic()
            while self.ticking.is_set():
                self.send("clock")
                due += interval
                time.sleep(max(0.0, due - time.monotonic()))
        self.thread = threading.Thread(target=tick, daemon=True)
        self.thread.start()

    def halt(self):
        self.ticking.clear()
        if self.thread:
            self.thread.join(2)

    def close(self):
        self.halt()
        self.port.close()


@pytest.mark.jack
def test_following_clock_and_song_position_pointer(player, sink):
    host = Host("clock")
    try:
        assert player.follow(host.name) == host.name
        host.send("songpos", pos=8)  # 8 sixteenths = 2 beats = 1.0 s at the score's 120 bpm
        wait_for(lambda: player.position == pytest.approx(1.0))
        host.clock(240.0)  # the host runs twice as fast as the score
        time.sleep(0.2)
        assert player.state == "stopped" and not sink.notes_on(), "clock alone does not start the player"
        host.send("continue")
        wait_for(lambda: len(sink.notes_on()) >= 5)
        assert player.host_bpm == pytest.approx(240.0, rel=0.03)
        onsets = sink.notes_on()
        assert [o[1:] for o in onsets[:5]] == [e[1:] for e in expected_onsets(1.0)][:5]
        # Piano notes a quarter second apart in the score arrive an eighth apart at 240 bpm.
        piano = [t for t, channel, *_ in onsets if channel == 0]
        gaps = [b - a for a, b in zip(piano, piano[1:])]
        assert sum(gaps) / len(gaps) == pytest.approx(0.125, abs=0.02)
        host.send("stop")
        wait_for(lambda: player.state == "stopped")
        stopped = player.position
        struck = {(channel, pitch) for _, channel, pitch, _ in sink.notes_on()}
        wait_for(lambda: struck <= {(m.channel, m.note) for _, m in sink.of("note_off")})  # every struck note released
        host.send("start")  # from the top, at the next clock
        wait_for(lambda: player.state == "playing")
        wait_for(lambda: any(channel == 2 for _, channel, *_ in sink.notes_on()[len(onsets):]))
        assert 1.0 < stopped < 4.0
        host.halt()
        time.sleep(0.2)
        assert player.host_bpm == pytest.approx(240.0, rel=0.03)
    finally:
        player.follow(None)
        host.close()


FOLLOW_UNDER_CLOCK = """
import sys, threading, time, mido
from emsync.core.music import Note
from emsync.live import player as live
from emsync.live import ports
host = ports.midi_backend().open_output("clock", client_name="emsync-host")
notes = [Note(0.1 * i, 0.1 * i + 0.05, 60 + i % 12, 80, 1) for i in range(200)]
player = live.Player(mido.ports.BaseOutput(), live.Performance.from_notes(notes, 120.0))
ticking = threading.Event()
ticking.set()
def tick():
    while ticking.is_set():
        host.send(mido.Message("clock"))
        time.sleep(0.0025)
threading.Thread(target=tick, daemon=True).start()
for cycle in range(int(sys.argv[1])):
    player.follow("emsync-host:clock")
    host.send(mido.Message("continue"))
    time.sleep(0.05 + 0.01 * (cycle % 7))
    player.follow(None)
ticking.clear()
print("followed", player.host_bpm is not None)
"""


@pytest.mark.jack
def test_following_stops_while_clock_is_arriving(jack_server):
    """Closing an input while messages arrive once deadlocked the process (rtmidi's callback thread
    waited for the GIL that the closing thread held), so this runs in its own process with a timeout."""
    try:
        result = subprocess.run([sys.executable, "-c", FOLLOW_UNDER_CLOCK, "60"], cwd=REPO, capture_output=True,
                                text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("following and un-following under clock hung")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["followed", "True"]


@pytest.mark.jack
def test_an_input_outlives_a_failing_callback_and_a_second_close(jack_server):
    got = []

    def record(msg, at):
        got.append((msg, at))
        if len(got) == 1:
            raise RuntimeError("a handler bug")
    port = ports.MidiInput(record, virtual="robust", client_name="emsync-test")
    sender = ports.midi_backend().open_output(port.name)
    try:
        for note in (60, 61):
            sender.send(mido.Message("note_on", note=note, velocity=90))
        sender.send(mido.Message("active_sensing"))
        sender.send(mido.Message("clock"))
        wait_for(lambda: len(got) == 3)
        assert [m.type for m, _ in got] == ["note_on", "note_on", "clock"], "active sensing is dropped"
        assert str(port.error) == "a handler bug"
        assert all(a <= b for (_, a), (_, b) in zip(got, got[1:])) and got[-1][1] <= time.monotonic()
    finally:
        sender.close()
        port.close()
        port.close()


def clock_at(player: live.Player, bpm: float, count: int, start: float) -> float:
    """Feed `count` clocks at `bpm` straight to the player from `start`; the next one's due time."""
    interval = 60.0 / bpm / live.CLOCKS_PER_BEAT
    for i in range(count):
        player.on_midi(mido.Message("clock"), start + i * interval)
    return start + count * interval


def test_host_tempo_is_fitted_not_taken_from_two_clocks():
    player = live.Player(mido.ports.BaseOutput())
    try:
        due = clock_at(player, 240.0, 99, 10.0)
        player.on_midi(mido.Message("clock"), due + 0.006)
        # One beat's first-to-last span would be 6 ms too long in 250 ms: 2.4 % slow; the fit, 0.15 %.
        assert player.host_bpm == pytest.approx(240.0, rel=0.004)
    finally:
        player.close()


def test_host_tempo_starts_afresh_after_a_pause_and_follows_a_change():
    player = live.Player(mido.ports.BaseOutput())
    try:
        resume = clock_at(player, 120.0, 60, 0.0) + 1.0
        changed = clock_at(player, 180.0, 6, resume)  # a quarter beat after the pause
        assert player.host_bpm == pytest.approx(180.0, rel=1e-6)
        clock_at(player, 150.0, live.TEMPO_WINDOW + 1, changed)  # a change without a pause: gone in two beats
        assert player.host_bpm == pytest.approx(150.0, rel=1e-6)
    finally:
        player.close()


@pytest.mark.jack
def test_cli_plays_a_file_to_a_named_port(sink, tmp_path):
    score = tmp_path / "score.mid"
    write_midi(score, NOTES)
    result = subprocess.run([sys.executable, "-m", "emsync.cli", "play", str(score), "--port", sink.name,
                             "--from", "2.9", "--track", "piano"], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"playing 3.95 s to {sink.name} from 2.90 s" in result.stdout
    assert [o[1:] for o in sink.notes_on()] == [e[1:] for e in expected_onsets(2.9) if e[1] == 0]
    result = subprocess.run([sys.executable, "-m", "emsync.cli", "play", str(score), "--port", "nowhere"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("emsync: error: port: no MIDI output ports match")
    assert sink.name in result.stderr, "the error lists the ports there are"


@pytest.mark.skipif(Path("/dev/snd/seq").exists(), reason="this machine has an ALSA sequencer: ports always exist")
def test_no_port_system_is_one_clear_line(tmp_path):
    score = tmp_path / "score.mid"
    write_midi(score, NOTES)
    env = {**os.environ, "JACK_DEFAULT_SERVER": f"emsync-absent-{os.getpid()}"}
    result = subprocess.run([sys.executable, "-m", "emsync.cli", "play", str(score)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("emsync: error: no MIDI port system: the ALSA sequencer (/dev/snd/seq) is "
                                    "missing and no JACK server named 'emsync-absent-")
    assert "jackd -d dummy" in result.stderr

    server = Server(tmp_path / "session", tmp_path / "server.log", env=env)
    try:
        peer = Peer(server.port)
        peer.send("/emsync/midi/ports")
        assert peer.error_for("/emsync/midi/ports").startswith("no MIDI port system")
        assert peer.ask("/emsync/status", reply="/emsync/status")[0] == "idle", "the server keeps serving"
        peer.close()
    finally:
        server.stop()


@pytest.mark.jack
def test_osc_transport_plays_the_session_to_a_port(sink, tmp_path):
    server = Server(seeded_session(tmp_path / "session", NOTES, 4.0), tmp_path / "server.log")
    try:
        peer = Peer(server.port)
        peer.send("/emsync/midi/ports")
        listed = [args for address, args, _ in peer.until("/emsync/midi/port", predicate=lambda a: a[1] == sink.name)]
        assert listed[0][0] == "UNIX_JACK" and ["out", sink.name] in listed
        assert peer.ask("/emsync/midi/output", sink.name, reply="/emsync/midi/output") == [sink.name]
        playing = peer.ask("/emsync/play", 0.9, "piano", reply="/emsync/transport")
        assert playing[0] == "playing" and playing[2:] == [sink.name, "piano", 1]
        wait_for(lambda: len(sink.notes_on()) >= 3)
        assert [o[1:] for o in sink.notes_on()[:3]] == [e[1:] for e in expected_onsets(0.9) if e[1] == 0][:3]
        located = peer.ask("/emsync/locate", 3.5, reply="/emsync/transport")
        assert located[0] == "playing" and located[1] == pytest.approx(3.5, abs=0.05)
        wait_for(lambda: sink.notes_on()[-1][2] == 74)  # the piano note at 3.5 s
        stopped = peer.ask("/emsync/stop", reply="/emsync/transport")
        assert stopped[0] == "stopped" and 3.5 <= stopped[1] <= 4.0
        wait_for(lambda: any(m.control == live.ALL_NOTES_OFF for _, m in sink.of("control_change")))
        peer.send("/emsync/locate", 99.0)
        assert peer.error_for("/emsync/locate").startswith("seconds: 99.0 is outside")
        peer.send("/emsync/play", 0.0, "kazoo")
        assert "no track named 'kazoo'" in peer.error_for("/emsync/play")
        peer.send("/emsync/midi/follow", "no-such-input")
        assert peer.error_for("/emsync/midi/follow").startswith("input: no MIDI input ports match")
        peer.close()
    finally:
        server.stop()
