"""The OSC service in its own process, over real UDP on 127.0.0.1.

Peers: python-osc in this process (its builders and parser on a plain socket), and Debian's
liblo-tools (`oscsend`, `oscdump`) as an independent implementation when installed.
"""
from __future__ import annotations

import json
import os
import random
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import mido
import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from conftest import REPO, Peer, Server
from test_regenerate import assert_midi_identical_outside

SCENES = {"duration": 8.0, "scenes": [{"start": 0.0, "valence": 0.6, "arousal": 0.3, "name": "open"},
                                      {"start": 3.0, "valence": -0.4, "arousal": 0.5, "name": "chase"},
                                      {"start": 5.5, "valence": 0.2, "arousal": -0.3, "name": "end"}]}
MAX_DATAGRAM = 1400


def clips_of(messages) -> dict:
    """Reassemble a clip transfer: {"version", "crc", "tracks": {name: [(pitch, start, dur, vel)]}, "chunks"}."""
    begin = next(m for m in messages if m[0] == "/emsync/clips/begin")[1]
    version, total, crc = begin[0], begin[1], begin[5]
    chunks = {}
    for address, args, data in messages:
        if address == "/emsync/clip/notes" and args[0] == version:
            chunks[args[1]] = (args[2], args[3:], data)
    assert sorted(chunks) == list(range(total)), "a chunk went missing"
    tracks, bodies = {}, []
    for seq in range(total):
        track, flat, data = chunks[seq]
        tracks.setdefault(track, []).extend(tuple(flat[i:i + 4]) for i in range(0, len(flat), 4))
        bodies.append(notes_message(data))
    assert f"{zlib.crc32(b''.join(bodies)) & 0xFFFFFFFF:08x}" == crc
    return {"version": version, "crc": crc, "tracks": tracks, "chunks": {s: chunks[s][2] for s in chunks}}


def notes_message(bundle: bytes) -> bytes:
    index = 16
    while index < len(bundle):
        (size,) = struct.unpack(">i", bundle[index:index + 4])
        element = bundle[index + 4:index + 4 + size]
        if element.startswith(b"/emsync/clip/notes\0"):
            return element
        index += 4 + size
    raise AssertionError("bundle without /emsync/clip/notes")


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("scenes") / "scenes.json"
    path.write_text(json.dumps(SCENES))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("osc")
    running = Server(folder / "session", folder / "server.log")
    yield running
    running.stop()


def test_status_answers_the_sender_or_its_registered_port(server, peer):
    status = peer.ask("/emsync/status", reply="/emsync/status")
    assert status[0] == "idle" and status[9] == str((server.session).resolve())
    listener = Peer(server.port)
    try:
        peer.send("/emsync/reply_port", listener.sock.getsockname()[1])
        assert listener.until("/emsync/ok")[-1][1] == ["/emsync/reply_port", listener.sock.getsockname()[1]]
        peer.send("/emsync/status")
        assert listener.until("/emsync/status")[-1][1][0] == "idle"
    finally:
        peer.send("/emsync/reply_port", 0)  # both peers share 127.0.0.1: give replies back to senders
    assert peer.until("/emsync/ok")[-1][1] == ["/emsync/reply_port", 0]


def test_help_lists_every_address_in_small_bundles(server, peer):
    from emsync.osc.host import ROUTES

    peer.send("/emsync/help")
    entries = [m for m in peer.receive(0.5) if m[0] == "/emsync/help/address"]
    assert [m[1][0] for m in entries] == list(ROUTES)
    assert max(len(m[2]) for m in entries) <= MAX_DATAGRAM
    assert dict((m[1][0], m[1][1]) for m in entries)["/emsync/regenerate"] == "start:f end:f | start:f end:f seed:i"


def test_bad_requests_get_an_error_naming_the_address(server, peer):
    peer.send("/emsync/no/such/thing", 1)
    assert "unknown address" in peer.error_for("/emsync/no/such/thing")
    peer.send("/emsync/scene/emotion", "one", "joy")
    assert "wrong arguments" in peer.error_for("/emsync/scene/emotion")
    peer.send("/emsync/regenerate", 1.0)
    assert "expected" in peer.error_for("/emsync/regenerate")
    peer.send("/emsync/open/scenes", "x" * 9000)
    assert "larger than" in peer.error_for("/emsync/open/scenes")
    peer.raw(b"/emsync/status\0\0,c\0\0\0\0\0a")
    assert "type tag" in peer.error_for("/emsync/status")
    peer.raw(b"/emsync/undo\0\0\0\0,i\0\0\0\0")
    assert "malformed" in peer.error_for("/emsync/undo")
    peer.raw(b"#bundle\0" + bytes(8) + struct.pack(">i", 8) + b"garbage!")
    assert "malformed" in peer.error_for("#bundle")
    peer.raw(b"\x00\xff\x13garbage")
    assert "malformed" in peer.error_for("")
    peer.send("/emsync/open/scenes", "/nonexistent/scenes.json")
    assert "/nonexistent/scenes.json" in peer.error_for("/emsync/open/scenes")
    assert peer.ask("/emsync/status", reply="/emsync/status")[0] == "idle"


def test_open_list_and_set_emotions(server, peer, scene_file):
    opened = peer.ask("/emsync/open/scenes", str(scene_file), reply="/emsync/opened")
    assert opened[:5] == ["scenes", str(scene_file), 8.0, 3, 2]
    peer.send("/emsync/scenes/list")
    scenes = [m[1] for m in peer.until("/emsync/scene", predicate=lambda a: a[0] == 2) if m[0] == "/emsync/scene"]
    assert [s[5] for s in scenes] == ["open", "chase", "end"]
    assert scenes[1][1:3] == [3.0, 5.5]
    by_word = peer.ask("/emsync/scene/emotion", 1, "tense", reply="/emsync/scene")
    assert by_word[0] == 1 and by_word[6] == "tense" and by_word[7] is True
    by_numbers = peer.ask("/emsync/scene/emotion", 2, 0.25, -0.5, reply="/emsync/scene")
    assert by_numbers[3:5] == pytest.approx([0.25, -0.5])
    peer.send("/emsync/scene/emotion", 1, "zzz")
    assert "names no emotion" in peer.error_for("/emsync/scene/emotion")
    peer.send("/emsync/scene/emotion", 7, "joy")
    assert "index 7" in peer.error_for("/emsync/scene/emotion")
    peer.send("/emsync/scene/emotion", 0, 0.1, 1.5)
    assert "arousal" in peer.error_for("/emsync/scene/emotion")
    saved = json.loads((server.session / "scenes.json").read_text())
    assert saved["scenes"][1]["valence"] == pytest.approx(-0.35) and saved["scenes"][2]["arousal"] == -0.5
    assert peer.ask("/emsync/settings/set", "candidates", 2, reply="/emsync/settings") == ["candidates", 2]
    peer.send("/emsync/settings/set", "temperature", -1.0)
    assert "temperature" in peer.error_for("/emsync/settings/set")


def test_generate_regenerate_undo_redo_and_export(server, peer, tmp_path):
    peer.send("/emsync/regenerate", 1.0, 2.0)
    assert "generate first" in peer.error_for("/emsync/regenerate")
    peer.send("/emsync/generate", 7)
    got = peer.until("/emsync/clips/end", timeout=40)
    addresses = [m[0] for m in got]
    assert addresses[0] == "/emsync/job/started" and "/emsync/job/progress" in addresses
    done = next(m[1] for m in got if m[0] == "/emsync/job/done")
    assert done[1:3] == ["generate", 1] and done[3] > 0
    first = clips_of(got)
    assert set(first["tracks"]) == {"drums", "piano", "guitar", "bass", "strings"}
    assert sum(map(len, first["tracks"].values())) == done[3]
    assert max(len(d) for d in peer.datagrams) <= MAX_DATAGRAM
    # A lost chunk is asked for again and comes back byte for byte.
    seq = len(first["chunks"]) // 2
    peer.send("/emsync/clips/chunk", 1, seq)
    again = peer.until("/emsync/clip/notes")
    assert again[-1][2] == first["chunks"][seq]
    peer.send("/emsync/clips/chunk", 1, 999)
    assert "seq" in peer.error_for("/emsync/clips/chunk")

    for name in ("one", "two", "undone"):  # same file name: the name is the conductor track's title
        (tmp_path / name).mkdir()
    one = tmp_path / "one" / "score.mid"
    assert peer.ask("/emsync/export/midi", str(one), reply="/emsync/exported") == ["midi", str(one), 1]
    assert peer.ask("/emsync/settings/set", "lock_mode", 1, reply="/emsync/settings")[0] == "lock_mode"
    assert peer.ask("/emsync/settings/set", "stay_in_key", 0, reply="/emsync/settings")[0] == "stay_in_key"
    peer.send("/emsync/regenerate", 3.0, 5.0, 3)
    got = peer.until("/emsync/clips/end", timeout=40)
    done = next(m[1] for m in got if m[0] == "/emsync/job/done")
    assert done[1:3] == ["regenerate", 2]
    versions = server.session / "versions"
    params = [json.loads((versions / f"v{i:06d}.json").read_text())["params"] for i in (1, 2)]
    assert [p["lock_mode"] for p in params] == [False, True]  # each version says how it was sampled
    assert [p["stay_in_key"] for p in params] == [True, False]
    second = clips_of(got)
    for track, notes in first["tracks"].items():  # the clips agree outside the range too
        outside = [n for n in notes if not 3.0 <= n[1] < 5.0]
        assert [n for n in second["tracks"][track] if not 3.0 <= n[1] < 5.0] == outside
    two = tmp_path / "two" / "score.mid"
    peer.ask("/emsync/export/midi", str(two), reply="/emsync/exported")
    assert one.read_bytes() != two.read_bytes()
    assert_midi_identical_outside(one.read_bytes(), two.read_bytes(), 3.0, 5.0)
    # Both versions are written on one tempo map (regenerating keeps it), and the file carries it.
    def tempo_map(version: int) -> tuple[list, list]:
        peer.send("/emsync/tempo", version)
        head = peer.until("/emsync/tempo")[-1][1]
        segments = [m[1] for m in peer.until("/emsync/tempo/segment", predicate=lambda a: a[0] == head[2] - 1)
                    if m[0] == "/emsync/tempo/segment"]
        return head, segments

    (first_head, first_map), (second_head, second_map) = tempo_map(1), tempo_map(2)
    assert first_head[:2] == [1, "4/4"] and second_head[:2] == [2, "4/4"] and first_map == second_map
    assert [s[0] for s in second_map] == list(range(second_head[2])) and second_map[0][1] == 0.0
    written = [mido.tempo2bpm(m.tempo) for m in mido.MidiFile(two).tracks[0] if m.type == "set_tempo"]
    assert written == pytest.approx([s[2] for s in second_map], rel=1e-4)
    for name, value, complaint in (("meter", "7/3", "meter"), ("bpm", 10.0, "bpm"), ("meter", 3, "meter")):
        peer.send("/emsync/settings/set", name, value)
        assert complaint in peer.error_for("/emsync/settings/set")
    assert peer.ask("/emsync/settings/set", "meter", "3/4", reply="/emsync/settings") == ["meter", "3/4"]
    assert peer.ask("/emsync/tempo", reply="/emsync/tempo")[1] == "4/4", "the current version keeps its meter"
    peer.until("/emsync/tempo/segment", predicate=lambda a: a[0] == second_head[2] - 1)
    peer.ask("/emsync/settings/set", "meter", "4/4", reply="/emsync/settings")

    undone = peer.ask("/emsync/undo", reply="/emsync/version")
    assert undone == [1, 0, 2, "generate"]
    assert clips_of(peer.until("/emsync/clips/end"))["crc"] == first["crc"]
    back = tmp_path / "undone" / "score.mid"
    peer.ask("/emsync/export/midi", str(back), reply="/emsync/exported")
    assert back.read_bytes() == one.read_bytes()
    assert peer.ask("/emsync/redo", reply="/emsync/version") == [2, 1, 2, "regenerate"]
    peer.until("/emsync/clips/end")
    peer.send("/emsync/redo")
    assert "nothing to redo" in peer.error_for("/emsync/redo")
    status = peer.ask("/emsync/status", reply="/emsync/status")
    assert status[:5] == ["idle", 2, 2, 2, 0]


def test_busy_and_cancel(server, peer):
    before = peer.ask("/emsync/status", reply="/emsync/status")
    peer.send("/emsync/generate")
    job = peer.until("/emsync/job/started")[-1][1][0]
    peer.until("/emsync/job/progress")
    peer.send("/emsync/generate")
    assert "busy" in peer.error_for("/emsync/generate")
    peer.send("/emsync/undo")
    assert "busy" in peer.error_for("/emsync/undo")
    assert peer.ask("/emsync/status", reply="/emsync/status")[0] in ("running", "cancelling")
    assert peer.ask("/emsync/cancel", reply="/emsync/job/cancelling") == [job]
    assert peer.until("/emsync/job/cancelled", timeout=10)[-1][1] == [job]
    after = peer.ask("/emsync/status", reply="/emsync/status")
    assert after[0] == "idle" and after[1:3] == before[1:3], "a cancelled job leaves the versions alone"
    peer.send("/emsync/cancel")
    assert "no such job" in peer.error_for("/emsync/cancel")


def _fuzz_packets(rng: random.Random, count: int) -> list[bytes]:
    from emsync.osc.host import ROUTES, RequestError

    def build(address, args, types):
        builder = OscMessageBuilder(address)
        for arg, kind in zip(args, types):
            builder.add_arg(arg, kind)
        return builder.build().dgram

    def value(kind):
        return {"i": rng.randint(-2**31, 2**31 - 1), "f": rng.uniform(-1e6, 1e6), "s": "".join(
            rng.choice("abc/\\é .*?[]{}") for _ in range(rng.randint(0, 40))), "b": rng.randbytes(rng.randint(1, 64)),
            "h": rng.randint(-2**63, 2**63 - 1), "d": rng.uniform(-1, 1), "T": True, "F": False, "N": None}[kind]

    read_only = [build("/emsync/status", [], ""), build("/emsync/scenes/list", [], ""),
                 build("/emsync/settings/get", [], ""), build("/emsync/clips/chunk", [1, 0], "ii"),
                 build("/emsync/scenes/list", [0], "i")]
    addresses = list(ROUTES)
    packets = []
    while len(packets) < count:
        kind = rng.randrange(8)
        if kind == 0:  # random bytes
            packets.append(rng.randbytes(rng.randint(0, 600)))
        elif kind == 1:  # an address, then garbage
            packets.append(rng.choice(addresses).encode() + rng.randbytes(rng.randint(0, 64)))
        elif kind == 2:  # bit flips and truncations of requests that change nothing
            data = bytearray(rng.choice(read_only))
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            packets.append(bytes(data[:rng.randint(1, len(data))]))
        elif kind == 3:  # real addresses with arguments of the wrong types
            address = rng.choice(addresses)
            types = "".join(rng.choice("ifsbhdTFN") for _ in range(rng.randint(0, 5)))
            args = [value(t) for t in types]
            try:
                ROUTES[address].match([float(a) if t == "d" else a for a, t in zip(args, types)])
                continue  # a valid request: not fuzz (it could change the session)
            except RequestError:
                packets.append(build(address, args, types))
        elif kind == 4:  # unknown addresses, some near real ones
            address = rng.choice(addresses) + rng.choice(["x", "/", "/a/b", "*", "?"])
            packets.append(build(address, [rng.random()], "f"))
        elif kind == 5:  # oversized
            packets.append(build(rng.choice(addresses), ["z" * rng.randint(8200, 20000)], "s"))
        elif kind == 6:  # bundles: garbage elements, bad sizes, deep nesting
            element = rng.choice([rng.randbytes(8), b"/x\0\0,i\0\0" + bytes(2), rng.choice(read_only)])
            size = rng.choice([len(element), len(element) + 4, -4, 2**30])
            bundle = b"#bundle\0" + rng.randbytes(8) + struct.pack(">i", size) + element
            for _ in range(rng.randint(0, 6)):
                bundle = b"#bundle\0" + bytes(8) + struct.pack(">i", len(bundle)) + bundle
            packets.append(bundle)
        else:  # type tags python-osc would skip or choke on
            tag = rng.choice(["c", "S", "I", "[", "]", "[i", "m", "r", "t", "\x00"])
            packets.append(rng.choice(addresses).encode().ljust(32, b"\0")[:32] + f",{tag}".encode().ljust(4, b"\0")
                           + rng.randbytes(rng.choice([0, 3, 4, 8])))
    return packets


def test_fuzz_thousands_of_bad_packets(server, peer):
    session_file = server.session / "session.json"
    before = peer.ask("/emsync/status", reply="/emsync/status")
    state = session_file.read_bytes()
    versions = sorted(p.name for p in (server.session / "versions").iterdir())
    packets = _fuzz_packets(random.Random(1234), 3000)
    errors, started = 0, time.monotonic()
    for batch in range(0, len(packets), 50):
        for data in packets[batch:batch + 50]:
            peer.raw(data)
        errors += sum(1 for m in peer.receive(0.02) if m[0] == "/emsync/error")
        assert time.monotonic() - started < 30, "fuzzing took too long"
    errors += sum(1 for m in peer.receive(0.3) if m[0] == "/emsync/error")
    assert server.proc.poll() is None, "the server died"
    assert errors > 2000, f"only {errors} errors for {len(packets)} bad packets"
    assert peer.ask("/emsync/status", reply="/emsync/status") == before
    assert session_file.read_bytes() == state, "bad packets changed the session"
    assert sorted(p.name for p in (server.session / "versions").iterdir()) == versions
    assert not list(server.session.glob(".*.tmp"))
    assert "Traceback" not in server.log.read_text(errors="replace")


def test_open_a_timeline_and_export_it_with_the_score(server, peer, tmp_path):
    import opentimelineio as otio

    from emsync.timelines.timeline import read_timeline

    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    for name, frames in (("a", 72), ("b", 60), ("c", 60)):
        ref = otio.schema.ExternalReference(target_url=f"file:///media/{name}.mov",
                                            available_range=tr(rt(0, 24), rt(10000, 24)))
        track.append(otio.schema.Clip(name=name, media_reference=ref, source_range=tr(rt(0, 24), rt(frames, 24))))
    timeline = otio.schema.Timeline(name="edit")
    timeline.tracks.append(track)
    timeline.tracks.markers.append(otio.schema.Marker(name="tense", marked_range=tr(rt(80, 24), rt(0, 24))))
    edit = tmp_path / "edit.otio"
    otio.adapters.write_to_file(timeline, str(edit))

    opened = peer.ask("/emsync/open/timeline", str(edit), reply="/emsync/opened")
    assert opened[:6] == ["timeline", str(edit), 8.0, 3, 2, 0] and opened[6] == 24.0
    peer.send("/emsync/scenes/list")
    scenes = [m[1] for m in peer.until("/emsync/scene", predicate=lambda a: a[0] == 2) if m[0] == "/emsync/scene"]
    assert [s[6] for s in scenes][1] == "tense" and [s[7] for s in scenes] == [False, True, False]
    peer.ask("/emsync/scene/emotion", 2, "joy", reply="/emsync/scene")
    out = tmp_path / "scored.otio"
    peer.send("/emsync/export/timeline", str(out))
    exported = [m[1] for m in peer.until("/emsync/exported", predicate=lambda a: a[0] == "timeline")
                if m[0] == "/emsync/exported"]
    assert exported[0][:2] == ["midi", str(tmp_path / "scored.mid")] and exported[1][:2] == ["timeline", str(out)]
    back = read_timeline(out)
    assert back.cuts == [3.0, 5.5]
    assert [(round(s.valence, 2), s.user_set) for s in back.scenes][1:] == [(-0.35, True), (0.76, True)]
    peer.send("/emsync/open/timeline", str(tmp_path / "missing.otio"))
    assert "missing.otio" in peer.error_for("/emsync/open/timeline")


def test_open_a_video_as_a_job_then_the_users_emotion_wins(server, peer, tmp_path):
    """The bundled film: its cuts and analysed emotions become the session's scenes (status
    answers while the analysis runs); a scene emotion set over OSC replaces the analysed one."""
    video = REPO / "examples" / "five_scenes.mp4"
    peer.send("/emsync/open/video", str(video))
    started = peer.until("/emsync/job/started")[-1][1]
    assert started[1] == "open"
    assert peer.ask("/emsync/status", reply="/emsync/status")[0] == "running"
    messages = peer.until("/emsync/job/done", timeout=120)
    fractions = [args[1] for address, args, _ in messages if address == "/emsync/job/progress"]
    assert any(0 < f < 1 for f in fractions) and fractions == sorted(fractions), fractions  # the analysis's own
    opened = [args for address, args, _ in messages if address == "/emsync/opened"][0]
    assert opened[:2] == ["video", str(video.resolve())] and opened[2] == pytest.approx(20.0, abs=0.1)
    assert opened[3:6] == [5, 4, 0] and opened[6] == pytest.approx(24.0)
    peer.send("/emsync/scenes/list")
    scenes = [m[1] for m in peer.until("/emsync/scene", predicate=lambda a: a[0] == 4) if m[0] == "/emsync/scene"]
    assert not any(s[7] for s in scenes), "analysed, not set by the user"
    assert scenes[1][3] > scenes[0][3] and scenes[1][4] > scenes[0][4], "carnival is happier and livelier than dusk"
    changed = peer.ask("/emsync/scene/emotion", 1, "sad", reply="/emsync/scene")
    assert changed[3] < 0 and changed[7] is True
    assert changed[5] == changed[6], "a scene named by its mood word is renamed with it"
    # The video written back as an edit: the film cut at its scenes, a music track, the cuts read back.
    edit = tmp_path / "film.otio"
    peer.send("/emsync/generate", 3)
    peer.until("/emsync/clips/end", timeout=60)
    peer.send("/emsync/export/timeline", str(edit))
    written = peer.until("/emsync/exported", predicate=lambda a: a[0] == "timeline")[-1][1]
    assert written[1] == str(edit.resolve()) and edit.with_suffix(".mid").exists()
    from emsync.timelines import read_timeline

    assert read_timeline(edit).cuts == pytest.approx([scene[1] for scene in scenes[1:]], abs=0.05)
    peer.send("/emsync/open/video", str(tmp_path / "missing.mp4"))  # refused at the door: no job
    assert "missing.mp4: file not found" in peer.error_for("/emsync/open/video")
    (tmp_path / "text.mp4").write_text("not a video")
    peer.send("/emsync/open/video", str(tmp_path / "text.mp4"))  # only the analysis finds out
    assert "text.mp4" in peer.until("/emsync/job/failed")[-1][1][1]


def test_kill_9_during_generation_keeps_the_acknowledged_state(tmp_path, scene_file):
    server = Server(tmp_path / "session", tmp_path / "server.log")
    try:
        peer = Peer(server.port)
        peer.ask("/emsync/open/scenes", str(scene_file), reply="/emsync/opened")
        peer.ask("/emsync/settings/set", "seed", 5, reply="/emsync/settings")
        peer.send("/emsync/generate", 1)
        acknowledged = clips_of(peer.until("/emsync/clips/end", timeout=40))
        peer.ask("/emsync/scene/emotion", 0, "sad", reply="/emsync/scene")
        peer.send("/emsync/regenerate", 0.0, 6.0)
        peer.until("/emsync/job/progress", predicate=lambda a: a[1] > 0)
        server.kill()
        peer.close()

        server.start()
        peer = Peer(server.port)
        status = peer.ask("/emsync/status", reply="/emsync/status")
        assert status[:5] == ["idle", 1, 1, 1, 0]
        peer.send("/emsync/scenes/list")
        first = next(m[1] for m in peer.until("/emsync/scene", predicate=lambda a: a[0] == 2)
                     if m[0] == "/emsync/scene" and m[1][0] == 0)
        assert first[6] == "sadness"
        peer.send("/emsync/clips/get")
        assert clips_of(peer.until("/emsync/clips/end"))["crc"] == acknowledged["crc"]
        assert peer.ask("/emsync/settings/get", reply="/emsync/settings") == ["seed", 5]
        assert not list((tmp_path / "session").rglob(".*.tmp"))

        # Kill while changes stream in: what reopens is the last acknowledged change or the one
        # in flight, never less and never a broken file.
        acked = -1
        killer = threading.Timer(0.4, server.kill)
        killer.start()
        for k in range(100000):
            peer.send("/emsync/scene/emotion", 0, k / 100000, 0.0)
            try:
                peer.until("/emsync/scene", timeout=1.0)
            except AssertionError:
                break
            acked = k
        killer.join()
        assert acked > 5, "too few changes acknowledged before the kill to mean anything"
        peer.close()
        server.start()
        peer = Peer(server.port)
        peer.send("/emsync/scenes/list")
        valence = next(m[1][3] for m in peer.until("/emsync/scene", predicate=lambda a: a[0] == 2)
                       if m[0] == "/emsync/scene" and m[1][0] == 0)
        assert valence == pytest.approx(acked / 100000, abs=1e-7) or \
            valence == pytest.approx((acked + 1) / 100000, abs=1e-7)
        peer.close()
    finally:
        server.stop()


def test_startup_errors_are_one_line_and_exit_2(tmp_path, server):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "emsync.cli", "serve", *map(str, args)], cwd=REPO,
                              capture_output=True, text=True, timeout=60)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "session.json").write_text("{not json")
    result = run("--port", "0", "--session", broken)
    assert result.returncode == 2 and "session.json: not a readable emsync session" in result.stderr
    assert (broken / "session.json").read_text() == "{not json", "a session it cannot read is left alone"
    result = run("--port", server.port, "--session", tmp_path / "other")
    assert result.returncode == 2 and f"cannot listen on 127.0.0.1:{server.port}" in result.stderr
    result = run("--port", "0", "--session", tmp_path / "third", "--model", tmp_path / "none.onnx")
    assert result.returncode == 2 and "none.onnx: generator model not found" in result.stderr


@pytest.mark.skipif(not (shutil.which("oscsend") and shutil.which("oscdump")),
                    reason="liblo-tools (oscsend, oscdump) not installed: apt-get install liblo-tools")
def test_liblo_tools_as_an_independent_peer(tmp_path, scene_file):
    server = Server(tmp_path / "session", tmp_path / "server.log")
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    listen = probe.getsockname()[1]
    probe.close()
    dump = subprocess.Popen(["oscdump", "-L", str(listen)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        time.sleep(0.3)

        def send(*args):
            subprocess.run(["oscsend", "127.0.0.1", str(server.port), *map(str, args)], check=True, timeout=10)

        lines, pending = [], [b""]

        def expect(address, timeout=10.0):
            """The next line oscdump prints for `address` (read unbuffered: select sees the pipe)."""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                while b"\n" in pending[0]:
                    line, pending[0] = pending[0].split(b"\n", 1)
                    lines.append(line.decode(errors="replace"))
                    if f" {address} " in lines[-1]:
                        return lines[-1]
                ready, _, _ = select.select([dump.stdout], [], [], 0.1)
                if ready:
                    pending[0] += os.read(dump.stdout.fileno(), 65536)
            raise AssertionError(f"oscdump saw no {address}: {lines[-5:]}")

        send("/emsync/reply_port", "i", listen)  # oscsend uses a new source port each time
        assert '"/emsync/reply_port"' in expect("/emsync/ok")
        send("/emsync/status")
        assert '"idle"' in expect("/emsync/status")
        send("/emsync/open/scenes", "s", scene_file)
        assert '"scenes"' in expect("/emsync/opened")
        send("/emsync/scene/emotion", "is", 1, "joy")
        assert '"joy" #T' in expect("/emsync/scene")
        send("/emsync/scene/emotion", "iff", 2, 0.5, -0.25)
        assert "0.500000 -0.250000" in expect("/emsync/scene")
        send("/emsync/scene/emotion", "ss", 1, "joy")
        assert '"/emsync/scene/emotion" "wrong arguments' in expect("/emsync/error")
        send("/emsync/bogus", "T")
        assert '"/emsync/bogus"' in expect("/emsync/error")
        send("/emsync/clips/get")
        expect("/emsync/clips/begin")
        expect("/emsync/clips/end")
        tracks = [line.split('"')[1] for line in lines if " /emsync/clip/notes " in line]
        assert tracks == ["drums", "piano", "guitar", "bass", "strings"], "five empty clips before any generation"
    finally:
        dump.kill()
        dump.wait(5)
        server.stop()
