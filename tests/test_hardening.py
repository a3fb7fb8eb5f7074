"""Issue 20: the OSC service under attack, in its own process, over real UDP on 127.0.0.1.

Each attack of the reliability review is sent as a client would send it; after each the
server answers /emsync/status within a second, every refusal is one line naming the file or
field, and the session reopens as it was after a restart. Units that need no server (the
child-process reader, the request queue, a cancelled job) are checked in this process.
"""
from __future__ import annotations

import ctypes
import json
import os
import random
import time
from pathlib import Path

import pytest

from conftest import REPO, Peer, Server, run_cli, seeded_session
from emsync.core.errors import EmsyncError
from emsync.core.limits import (MAX_NESTING, MAX_SCENE_FILE_BYTES, MAX_SCENES, MAX_SCORE_SECONDS, MAX_TIMELINE_BYTES,
                                MAX_TRANSFER_NOTES)
from emsync.core.music import Note
from emsync.osc.host import ROUTES  # the host module fills the address table
from emsync.osc.wire import message_bytes
from test_osc import clips_of

NOTES = [Note(0.25 * i, 0.25 * i + 0.2, 60 + i % 12, 80, i % 5) for i in range(40)]
DURATION = 12.0


# ---- helpers ---------------------------------------------------------------------------------
def status_within(peer: Peer, seconds: float = 1.0) -> list:
    """The server's status, which must come back within `seconds`."""
    began = time.monotonic()
    answer = peer.ask("/emsync/status", reply="/emsync/status", timeout=seconds)
    assert time.monotonic() - began < seconds
    return answer


def refused(peer: Peer, address: str, *args, types: str | None = None) -> str:
    """Send a request that must be refused: its one-line error message."""
    peer.send(address, *args, types=types)
    message = peer.error_for(address, timeout=10.0)
    assert "\n" not in message and "Traceback" not in message
    return message


def settled(peer: Peer) -> list:
    """The status once every request `peer` sent has been served: status itself overtakes
    queued requests, so a queued one goes first, as a barrier, from a socket of its own (no
    late reply to an earlier request can be taken for its answer)."""
    fresh = Peer(peer.server[1])
    try:
        fresh.ask("/emsync/settings/get", reply="/emsync/settings", timeout=30)
        return status_within(fresh)
    finally:
        fresh.close()


def restarted(server: Server, before: list) -> Peer:
    """Stop and start the server on its session: it must open at the state `before`."""
    server.stop()
    server.start()
    peer = Peer(server.port)
    after = status_within(peer, 5.0)
    assert after[:8] == before[:8], "the session reopens as it was"
    return peer


def nested_otio(compositions: int) -> str:
    """An OTIO timeline whose one clip sits `compositions` tracks and stacks deep."""
    clip = {"OTIO_SCHEMA": "Clip.2", "name": "c", "media_references": {},
            "active_media_reference_key": "DEFAULT_MEDIA",
            "source_range": {"OTIO_SCHEMA": "TimeRange.1",
                             "start_time": {"OTIO_SCHEMA": "RationalTime.1", "rate": 24, "value": 0},
                             "duration": {"OTIO_SCHEMA": "RationalTime.1", "rate": 24, "value": 24}}}
    head = "".join('{"OTIO_SCHEMA": "Track.1", "kind": "Video", "children": [' if level % 2 == 0 else
                   '{"OTIO_SCHEMA": "Stack.1", "children": [' for level in range(compositions))
    inner = head + json.dumps(clip) + "]}" * compositions
    return '{"OTIO_SCHEMA": "Timeline.1", "tracks": {"OTIO_SCHEMA": "Stack.1", "children": [%s]}}' % inner


def scene_file(path: Path, duration: float, count: int = 3, step: float | None = None) -> Path:
    """A JSON scene file of `count` scenes `step` seconds apart (default: spread over `duration`)."""
    step = duration / count if step is None else step
    path.write_text(json.dumps({"duration": duration, "scenes": [
        {"start": step * i, "valence": 0.1, "arousal": -0.1, "name": f"s{i}"} for i in range(count)]}))
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server on a session with one version of music (no model needed) and three scenes."""
    folder = tmp_path_factory.mktemp("hardening")
    running = Server(seeded_session(folder / "session", NOTES, DURATION), folder / "server.log")
    peer = Peer(running.port)
    peer.ask("/emsync/open/scenes", str(scene_file(folder / "three.json", DURATION)), reply="/emsync/opened")
    peer.close()
    yield running
    running.stop()
    assert "Traceback" not in running.log.read_text(errors="replace")


@pytest.fixture
def peer(server):
    client = Peer(server.port)
    yield client
    client.close()


# ---- hostile timelines -------------------------------------------------------------------------
def test_deeply_nested_timelines_are_refused_not_crashed_on(server, peer, tmp_path):
    deep = tmp_path / "deep.otio"
    deep.write_text(nested_otio(20000))  # about 3 MB: segfaulted OpenTimelineIO's C++ reader
    assert f"{deep}: nests deeper than the {MAX_NESTING} levels a timeline may have (at least 40006); refused " \
           "before parsing" == refused(peer, "/emsync/open/timeline", str(deep))
    nested = tmp_path / "nested.otio"
    nested.write_text(nested_otio(90))  # shallow enough to parse, too deep to walk
    assert refused(peer, "/emsync/open/timeline", str(nested)) == \
        f"{nested}: cannot lay out the timeline (stacks and tracks nested deeper than 64)"
    xml = tmp_path / "deep.xml"
    xml.write_text('<?xml version="1.0"?><xmeml version="4">' + "<a>" * 5000 + "</a>" * 5000 + "</xmeml>")
    assert "nests deeper than the 200 levels" in refused(peer, "/emsync/open/timeline", str(xml))
    before = status_within(peer)
    assert before[6] == 3, "a refused file leaves the scenes as they were"
    for path in (deep, nested):  # the command line says the same in one line
        result = run_cli("cuts", path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith(f"emsync: error: {path}: ")
    restarted(server, before).close()


def fail(message: str) -> None:
    raise EmsyncError(message)


def test_a_reader_that_crashes_or_hangs_is_one_error():
    from emsync.timelines.isolated import run_in_child

    with pytest.raises(EmsyncError, match=r"^x\.otio: the reader crashed \(SIGSEGV\) on this file; refused$"):
        run_in_child(ctypes.string_at, (0,), "x.otio")
    with pytest.raises(EmsyncError, match=r"^y\.otio: reading took longer than 0\.5 s; refused$"):
        run_in_child(time.sleep, (10,), "y.otio", seconds=0.5)
    with pytest.raises(EmsyncError, match=r"^z\.otio: the reader failed \(MemoryError\)$"):
        run_in_child(bytearray, (1 << 36,), "z.otio")
    with pytest.raises(EmsyncError, match=r"^fps: 0 is not a rate$"):
        run_in_child(fail, ("fps: 0 is not a rate",), "w.otio")  # its own errors come back as they are
    assert run_in_child(len, ([],), "fine.otio") is None


# ---- files that are not files, files too large ---------------------------------------------------
def test_fifos_devices_and_oversized_files_are_refused_at_once(server, peer, tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    for address in ("/emsync/open/scenes", "/emsync/open/timeline", "/emsync/open/video"):
        began = time.monotonic()
        assert f"{fifo}: not a regular file (a FIFO)" in refused(peer, address, str(fifo))
        assert time.monotonic() - began < 1.0, "a FIFO is refused, not waited on"
        assert status_within(peer)[:2] == ["idle", 1], "no job was started"
    assert refused(peer, "/emsync/open/scenes", "/dev/zero") == \
        "/dev/zero: not a regular file (a character device); scene files are read from regular files only"
    assert "(a character device)" in refused(peer, "/emsync/open/timeline", "/dev/stdin")
    assert refused(peer, "/emsync/open/scenes", str(tmp_path)) == \
        f"{tmp_path}: not a regular file (a folder); scene files are read from regular files only"
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:  # sparse: nothing is written, the size is what counts
        handle.truncate(MAX_SCENE_FILE_BYTES + 1)
    assert refused(peer, "/emsync/open/scenes", str(big)) == \
        f"{big}: {MAX_SCENE_FILE_BYTES + 1} bytes, more than the {MAX_SCENE_FILE_BYTES} allowed for scene files"
    huge = tmp_path / "huge.otio"
    with open(huge, "wb") as handle:
        handle.truncate(MAX_TIMELINE_BYTES + 1)
    assert f"more than the {MAX_TIMELINE_BYTES} allowed for timelines" in \
        refused(peer, "/emsync/open/timeline", str(huge))
    restarted(server, settled(peer)).close()


# ---- numbers at the door ---------------------------------------------------------------------------
def test_numbers_out_of_bounds_leave_the_session_as_it_was(server, peer, tmp_path):
    scenes = server.session / "scenes.json"
    state, before = scenes.read_bytes(), status_within(peer)
    poison = scene_file(tmp_path / "poison.json", 1e300, step=1.0)
    assert refused(peer, "/emsync/open/scenes", str(poison)) == \
        f"{poison}: duration: 1e+300 is outside [0.0, {MAX_SCORE_SECONDS}]"
    long = scene_file(tmp_path / "long.json", 1e9, step=1.0)  # a 1e9 s score generated without limit
    assert "duration: 1000000000.0 is outside" in refused(peer, "/emsync/open/scenes", str(long))
    many = scene_file(tmp_path / "many.json", 20000.0, MAX_SCENES + 1)
    assert refused(peer, "/emsync/open/scenes", str(many)) == \
        f"{many}: {MAX_SCENES + 1} scenes, more than the {MAX_SCENES} a session may have"
    (tmp_path / "nan.json").write_text('{"duration": 10, "scenes": [{"start": 0, "valence": NaN}]}')
    assert refused(peer, "/emsync/open/scenes", str(tmp_path / "nan.json")) == \
        f"{tmp_path / 'nan.json'}: scenes[0].valence: nan is outside [-1, 1]"
    four_hours = tmp_path / "four_hours.otio"
    four_hours.write_text(nested_otio(1).replace('"value": 24}}', f'"value": {24 * 4 * 3600}}}}}', 1))
    assert refused(peer, "/emsync/open/timeline", str(four_hours)) == \
        f"{four_hours}: duration: 14400.0 is outside [0.0, {MAX_SCORE_SECONDS}]"
    assert "seconds: 1e+300 is outside" in refused(peer, "/emsync/locate", 1e300, types="d")
    assert "track/slot: 0/100000 must be 0..9999" in refused(peer, "/emsync/push/ableton", "127.0.0.1", 9, 0, 100000)
    assert scenes.read_bytes() == state and status_within(peer) == before
    for flags, message in ((["--duration", "1e9"], "duration: 1000000000.0 is outside"),
                           (["--duration", "20", "--cuts", ",".join(["1"] * MAX_SCENES)],
                            f"cuts: {MAX_SCENES} cuts, more than the {MAX_SCENES - 1} a score may have")):
        result = run_cli("generate", *flags, "-o", tmp_path / "x.mid")
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1
    restarted(server, before).close()


def test_a_poisoned_session_opens_with_its_scenes_set_aside(tmp_path):
    folder = seeded_session(tmp_path / "session", NOTES, DURATION)
    (folder / "scenes.json").unlink()  # written as emsync 0.1 did, before scenes.json and the bounds
    state = json.loads((folder / "session.json").read_text())
    state.update(format_version=1, duration=1e300, hits=[], source={"kind": "scenes", "path": "/x.json"},
                 scenes=[{"start": 0.0, "end": 1e300, "valence": 0.0, "arousal": 0.0, "name": "all"}])
    state["settings"]["temperature"] = 1e300
    (folder / "session.json").write_text(json.dumps(state))
    poisoned = (folder / "session.json").read_bytes()
    server = Server(folder, tmp_path / "server.log")
    try:
        peer = Peer(server.port)
        status = status_within(peer)
        assert status[:7] == ["idle", 1, 1, 1, 0, 0.0, 0], "music kept, scenes set aside"
        log = server.log.read_text()
        assert "session.json: duration: 1e+300 is outside [0.0, 10800.0]; its scenes are set aside" in log
        assert (folder / "session.json.set-aside").read_bytes() == poisoned, "the file as it was is kept"
        assert "temperature: 1e+300 is outside [0.05, 3.0]; the setting is back to its default 1.0" in log
        peer.send("/emsync/scenes/list")
        assert peer.until("/emsync/scenes/chunk")[-1][1] == [0, 1, 0, 0, 0]
        peer.send("/emsync/clips/get")
        assert clips_of(peer.until("/emsync/clips/end"))["version"] == 1
        restarted(server, status).close()
        peer.close()
    finally:
        server.stop()


# ---- exports ---------------------------------------------------------------------------------------
def test_exports_never_destroy_what_emsync_did_not_write(server, peer, tmp_path):
    session = server.session
    version = (session / "versions" / "v000001.json").read_bytes()
    peer.send("/emsync/clips/get")
    crc = clips_of(peer.until("/emsync/clips/end"))["crc"]
    for inside in (session / "versions" / "v000001.json", session / "session.json", session / "scenes.json",
                   session / "new.mid"):
        assert refused(peer, "/emsync/export/midi", str(inside), True) == \
            f"{inside}: inside the session folder {session.resolve()}, whose files only the session writes; " \
            "export somewhere else"
    user = tmp_path / "notes.txt"
    user.write_text("the user's own words")
    assert refused(peer, "/emsync/export/midi", str(user)) == \
        f"{user}: exists and emsync did not write it; add overwrite true to the request to replace it"
    fifo = tmp_path / "pipe.mid"
    os.mkfifo(fifo)
    link = tmp_path / "link.mid"
    link.symlink_to(user)
    for target, kind in ((fifo, "a FIFO"), (tmp_path, "a folder"), (link, "a symbolic link")):
        assert refused(peer, "/emsync/export/midi", str(target), True) == \
            f"{target}: not a regular file ({kind}); exports replace regular files only"
    assert user.read_text() == "the user's own words"
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    assert refused(peer, "/emsync/export/midi", str(tmp_path / "loop1" / "x.mid"), True).startswith(
        f"{tmp_path / 'loop1' / 'x.mid'}: cannot write (")
    score = tmp_path / "score.mid"
    for _ in range(2):  # writing its own file again needs no overwrite
        assert peer.ask("/emsync/export/midi", str(score), reply="/emsync/exported") == ["midi", str(score), 1]
    assert peer.ask("/emsync/export/midi", str(user), True, reply="/emsync/exported")[1] == str(user)
    assert user.read_bytes().startswith(b"MThd"), "overwrite true replaces the user's file"
    score.write_bytes(score.read_bytes() + b"\0")  # changed since: the user's now
    assert "emsync did not write it" in refused(peer, "/emsync/export/midi", str(score))
    # The timeline export checks both of its files before it writes either.
    edit = tmp_path / "edit.otio"
    edit.write_text(nested_otio(1))
    assert peer.ask("/emsync/open/timeline", str(edit), reply="/emsync/opened")[:2] == ["timeline", str(edit)]
    assert "edit.otio: exists and emsync did not write it" in refused(peer, "/emsync/export/timeline", str(edit))
    assert refused(peer, "/emsync/export/timeline", "") == "path: empty"
    assert not edit.with_suffix(".mid").exists()
    peer.send("/emsync/export/timeline", str(edit), "", True)
    assert peer.until("/emsync/exported", predicate=lambda a: a[0] == "timeline")[-1][1][1] == str(edit)
    peer.ask("/emsync/open/scenes", str(scene_file(tmp_path / "three.json", DURATION)), reply="/emsync/opened")
    assert (session / "versions" / "v000001.json").read_bytes() == version
    before = status_within(peer)
    peer = restarted(server, before)
    peer.send("/emsync/clips/get")
    assert clips_of(peer.until("/emsync/clips/end"))["crc"] == crc, "the music is the acknowledged music"
    assert peer.ask("/emsync/export/midi", str(edit.with_suffix(".mid")), reply="/emsync/exported")[0] == "midi", \
        "the ledger of what emsync wrote survives a restart"
    peer.close()


def test_what_a_session_and_a_bundle_hold_is_bounded_too(tmp_path):
    import zipfile

    from emsync.core.limits import MAX_HITS, MAX_SESSION_FILE_BYTES, MAX_VERSION_FILE_BYTES
    from emsync.core.scenes import check_scene_list
    from emsync.service.session import Session
    from emsync.timelines import read_timeline

    folder = seeded_session(tmp_path / "session", NOTES, DURATION)
    version = folder / "versions" / "v000001.json"
    data = json.loads(version.read_text())
    data["notes"][3] = [1.0, 1e300, 60, 80, 1]
    version.write_text(json.dumps(data))
    with pytest.raises(EmsyncError, match=r"v000001\.json: not a readable version file \(note \[1\.0, 1e\+300, 60, "
                                          r"80, 1\] is out of bounds\)$"):
        Session(folder).version(1)
    with open(version, "wb") as handle:
        handle.truncate(MAX_VERSION_FILE_BYTES + 1)
    with pytest.raises(EmsyncError, match=f"more than the {MAX_VERSION_FILE_BYTES} allowed for version files$"):
        Session(folder).version(1)
    with open(folder / "session.json", "wb") as handle:
        handle.truncate(MAX_SESSION_FILE_BYTES + 1)
    with pytest.raises(EmsyncError, match=f"session.json: {MAX_SESSION_FILE_BYTES + 1} bytes, more than the "
                                          f"{MAX_SESSION_FILE_BYTES} allowed for emsync sessions$"):
        Session(folder)
    with pytest.raises(EmsyncError, match=f"^edit.otio: {MAX_HITS + 1} hits, more than the {MAX_HITS} a session may "
                                          "have$"):
        check_scene_list(10.0, [], [1.0] * (MAX_HITS + 1), "edit.otio")
    bundle = tmp_path / "bomb.otioz"  # a small zip whose content unpacks past the limit
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("content.otio", b" " * (MAX_TIMELINE_BYTES + 1))
    with pytest.raises(EmsyncError, match=f"bomb.otioz: content.otio unpacks to {MAX_TIMELINE_BYTES + 1} bytes, "
                                          f"more than the {MAX_TIMELINE_BYTES} allowed for timelines$"):
        read_timeline(bundle)


def test_start_up_removes_only_the_temporary_files_emsync_named(tmp_path):
    from emsync.service.session import Session

    folder = tmp_path / "session"
    Session(folder)
    mine = [folder / ".emsync-session.json.abcd_123.tmp", folder / "versions" / ".emsync-v000001.json.x1y2z3w4.tmp"]
    theirs = [folder / ".notes.tmp", folder / ".session.json.abcd1234.tmp", folder / ".emsync-other.txt.abcd1234.tmp",
              folder / "versions" / ".v000001.json.abcd1234.tmp"]
    for path in mine + theirs:
        path.write_text("x")
    Session(folder)
    assert [p.exists() for p in mine] == [False, False] and all(p.exists() for p in theirs)


# ---- sending to itself -------------------------------------------------------------------------------
def test_the_server_never_sends_to_itself(server, peer):
    assert refused(peer, "/emsync/reply_port", server.port) == \
        f"port: 127.0.0.1:{server.port} is this server's own address; replies there would come back as requests"
    for address, args in (("/emsync/push/ableton", ("127.0.0.1", server.port)),
                          ("/emsync/push/reaper", ("localhost", server.port))):
        assert refused(peer, address, *args) == \
            f"port: 127.0.0.1:{server.port} is this server's own address, not a DAW's"
    assert refused(peer, "/emsync/push/ableton", "0.0.0.0", server.port) == \
        f"port: 0.0.0.0:{server.port} is this server's own address, not a DAW's"  # 0.0.0.0 reaches this machine
    peer.raw(message_bytes("/emsync/error", "/x", "an error is never answered with an error"))
    peer.raw(b"/emsync/error\0\0\0,s\0\0broken")
    assert peer.receive(0.5) == []
    spent = cpu_seconds(server.proc.pid)
    time.sleep(1.0)
    assert cpu_seconds(server.proc.pid) - spent < 0.3, "nothing is spinning"
    restarted(server, settled(peer)).close()


# ---- bounded replies, and status never waits ------------------------------------------------------------
def test_long_lists_are_paced_large_versions_refused_and_status_answers_meanwhile(tmp_path):
    many = [Note(0.05 * i, 0.05 * i + 0.1, 40 + i % 40, 70, i % 5) for i in range(MAX_TRANSFER_NOTES + 1)]
    server = Server(seeded_session(tmp_path / "session", many, 3000.0), tmp_path / "server.log")
    try:
        peer = Peer(server.port)
        assert refused(peer, "/emsync/clips/get") == \
            f"clips: version 1 has {MAX_TRANSFER_NOTES + 1} notes, more than the {MAX_TRANSFER_NOTES} a clip " \
            "transfer carries; use /emsync/export/midi"
        listing = scene_file(tmp_path / "scenes.json", 3000.0, MAX_SCENES)
        assert peer.ask("/emsync/open/scenes", str(listing), reply="/emsync/opened", timeout=30)[3] == MAX_SCENES
        scenes_file = server.session / "scenes.json"
        written = scenes_file.stat().st_mtime_ns
        for seed in range(20):  # settings rewrite the small session file, never the scenes
            peer.ask("/emsync/settings/set", "seed", seed, reply="/emsync/settings")
        assert scenes_file.stat().st_mtime_ns == written and (server.session / "session.json").stat().st_size < 4096
        chunks, other = -(-MAX_SCENES // 12), Peer(server.port)
        peer.send("/emsync/scenes/list")
        status_within(other)  # answered while the list is built and sent
        got = peer.until("/emsync/scenes/chunk", timeout=30, predicate=lambda a: a[0] == chunks - 1)
        assert len([m for m in got if m[0] == "/emsync/scenes/chunk"]) == chunks, "paced: none lost"
        other.close()
        assert refused(peer, "/emsync/scenes/list", chunks) == f"seq: {chunks} is outside 0..{chunks - 1}"
        worst = 0.0
        for seed in range(10):  # the request thread busy with saves: status still answers at once
            peer.send("/emsync/settings/set", "seed", seed)
            began = time.monotonic()
            status_within(peer)
            worst = max(worst, time.monotonic() - began)
        assert worst < 1.0, f"status took {worst:.3f} s"
        restarted(server, settled(peer)).close()
        peer.close()
    finally:
        server.stop()


def test_a_flood_of_requests_is_refused_as_busy_beyond_the_queue(tmp_path):
    from emsync.core.limits import MAX_QUEUED_REQUESTS
    from emsync.osc.host import Host

    sent = []
    host = Host(tmp_path / "session", send=lambda data, address: sent.append(data), own_address=("127.0.0.1", 9))
    try:
        with host.lock:  # the request thread waits on the lock: requests queue up
            for _ in range(MAX_QUEUED_REQUESTS + 5):
                host.handle_datagram(message_bytes("/emsync/settings/get"), ("127.0.0.1", 5000))
            host.handle_datagram(message_bytes("/emsync/status"), ("127.0.0.1", 5000))
            busy = [d for d in sent if d.startswith(b"/emsync/error")]
            assert len(busy) >= 4 and b"busy: 256 requests are waiting; send this again after their replies" in busy[0]
            assert sent[-1].startswith(b"/emsync/status"), "status is answered while the queue is full"
    finally:
        host.close()


def test_a_cancelled_job_is_reported_cancelled_whatever_it_ran_into(tmp_path):
    from emsync.osc.host import Host

    sent = []
    host = Host(tmp_path / "session", send=lambda data, address: sent.append(data))

    def work(progress, cancel):  # an analysis that fails once it is cancelled (a FIFO did so)
        cancel.wait(5)
        raise EmsyncError("video: unreadable")

    try:
        job = host.start_job(("127.0.0.1", 5000), "/emsync/open/video", "open", 0, work)
        host.handle_datagram(message_bytes("/emsync/cancel"), ("127.0.0.1", 5000))
        host.job_thread.join(5)
        assert [d.split(b"\0")[0] for d in sent] == [b"/emsync/job/started", b"/emsync/job/cancelling",
                                                     b"/emsync/job/cancelled"]
        assert job.cancel.is_set() and host.job is None
    finally:
        host.close()


def test_ports_out_of_range_are_named_in_one_line(tmp_path):
    for port in ("70000", "-1"):
        result = run_cli("serve", "--port", port, "--session", tmp_path / "s")
        assert result.returncode == 2
        assert result.stderr == f"emsync: error: --port: {port} is outside 0..65535 (0 picks a free port)\n"


# ---- fuzz: well-formed requests with hostile values ------------------------------------------------------
def hostile_requests(rng: random.Random, count: int, paths: list[str], own_port: int) -> list[bytes]:
    """`count` requests to real addresses, each of a signature the route takes, with values an
    attacker would choose: special files, the session's own files (as paths: all absolute),
    the server's own port, numbers at and far past every bound. Requests that start
    generation or touch MIDI ports are left out (they are slow, not hostile), and so are
    reply_port (it would send the replies elsewhere: its attack has a test of its own) and
    undo (the music must stay for the exports and pushes to be attacked)."""
    values = {"s": ["", "x" * 300, "127.0.0.1", "joy", "valence=9 arousal=-9", "7/3", "temperature"],
              "path": paths + [""], "i": [0, -1, 1, 7, 12, own_port, 65535, 65536, 2**31 - 1, -2**31],
              "f": [0.0, -0.0, 0.5, -1.0, 3.0, 1e6, 3.4e38, -3.4e38, 1e-30],
              "b": [True, False], "*": [1, 0.5, "x", True, 1e30]}
    skip = ("/emsync/generate", "/emsync/regenerate", "/emsync/open/video", "/emsync/midi/", "/emsync/play",
            "/emsync/stop", "/emsync/locate", "/emsync/transport", "/emsync/reply_port", "/emsync/undo")
    routes = [r for r in ROUTES.values() if not r.address.startswith(skip)]
    packets = []
    while len(packets) < count:
        target = rng.choice(routes)
        signature = rng.choice(target.signatures)
        # paths from `paths` only: a relative one would be written into the server's working folder
        args = [rng.choice(values["path" if name in ("path", "midi") else kind])
                for name, kind in (p.split(":") for p in signature)]
        packets.append(message_bytes(target.address, *args))
    return packets


def hostile_paths(folder: Path, session: Path) -> list[str]:
    """Absolute paths an attacker would name: a FIFO, devices, a 20,000-level timeline, a
    poisoned scene file, the session's own files and folder, and plain files to write."""
    fifo = folder / "fifo"
    os.mkfifo(fifo)
    (folder / "deep.otio").write_text(nested_otio(20000))
    return [str(p) for p in (fifo, folder / "deep.otio", session / "session.json", session / "scenes.json",
                             session / "versions" / "v000001.json", session, folder / "out.mid", folder / "out.otio",
                             scene_file(folder / "poison.json", 1e300, step=1.0))] + \
        ["/dev/zero", "/dev/stdin", "/nonexistent/x.json"]


def test_seeded_fuzz_of_hostile_values(server, peer, tmp_path):
    session = server.session
    version = (session / "versions" / "v000001.json").read_bytes()
    here = sorted(REPO.iterdir())
    packets = hostile_requests(random.Random(20), 400, hostile_paths(tmp_path, session), server.port)
    began = time.monotonic()
    for index, data in enumerate(packets):
        peer.raw(data)
        if index % 20 == 19:  # each batch served (not refused as busy), status answered meanwhile
            peer.receive(0.005)
            settled(peer)
    assert time.monotonic() - began < 90 and server.proc.poll() is None
    assert (session / "versions" / "v000001.json").read_bytes() == version
    assert sorted(REPO.iterdir()) == here, "nothing written where the server runs"
    assert "Traceback" not in server.log.read_text(errors="replace")
    restarted(server, settled(peer)).close()
