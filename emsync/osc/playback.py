"""The live addresses: play the current version to a MIDI port (emsync.live), follow a host's
clock, and push the music to a DAW in its own dialect (AbletonOSC clips, REAPER's tempo)."""
from __future__ import annotations

import socket
import threading
import time

from emsync.core.errors import EmsyncError
from emsync.core.limits import MAX_LIVE_INDEX
from emsync.service.exports import EXPORTS_FOLDER

from . import dialects
from .routes import route
from .wire import chunked_messages, message_bytes, truncate_utf8

PUSH_GAP = 0.005  # seconds between datagrams pushed to a DAW: AbletonOSC reads its socket once per Live tick


def _performance(host, track: str):
    from emsync.live.player import Performance

    version = host.session.current()
    if version is None:  # nothing to play yet
        return Performance.from_notes([], 120.0, track or None)
    return Performance.from_notes(version.notes, version.tempo(), track or None)


def reload(host) -> None:
    """A new current version reaches the player at once, at the same position."""
    if host.player is not None:
        host.player.load(_performance(host, host.live_track))


def _player(host):
    """The player, on a virtual port emsync:out unless /emsync/midi/output chose one."""
    if host.player is None:
        _open_output(host, None, False)
    return host.player


def _open_output(host, name: str | None, virtual: bool) -> None:
    from emsync.live.player import Player
    from emsync.live.ports import open_output

    port, label = open_output(name, virtual)
    old = host.player
    host.player, host.output_label = Player(port, _performance(host, host.live_track)), label
    if old is not None:
        host.player.follow(old.input.name if old.input else None)
        old.close()


def _transport(host, client) -> None:
    player = host.player
    state, position = (player.state, player.position) if player else ("stopped", 0.0)
    host.reply(client, "/emsync/transport", state, float(position), host.output_label, host.live_track or "all",
               host.session.current_id)


@route("/emsync/midi/ports", "", reply="a bundle: /emsync/midi/ports s:api i:outputs i:inputs, then "
       "/emsync/midi/port s:direction s:name per port", summary="MIDI ports to play to (out) and follow (in)")
def on_midi_ports(host, client):
    from emsync.live.ports import port_names

    api, outputs, inputs = port_names()
    items = [message_bytes("/emsync/midi/ports", api, len(outputs), len(inputs))]
    items += [message_bytes("/emsync/midi/port", kind, truncate_utf8(name, 200))
              for kind, names in (("out", outputs), ("in", inputs)) for name in names]
    host.send_all(client, chunked_messages(items))


@route("/emsync/midi/output", "", "port:s", "port:s virtual:b", reply="/emsync/midi/output s:port",
       summary="where /emsync/play sends: an existing port (name or unique part), or virtual port emsync:NAME")
def on_midi_output(host, client, name="", virtual=False):
    _open_output(host, name or None, bool(virtual))
    host.reply(client, "/emsync/midi/output", host.output_label)


@route("/emsync/play", "", "from:f", "from:f track:s", "from:f track:s end:f",
       reply="/emsync/transport s:state f:position s:port s:track i:version",
       summary="play the current version (or one instrument track) to the MIDI output, from a time")
def on_play(host, client, start=None, track="", end=0.0):
    host.service.current_version("play")
    duration = host.session.duration
    if start is not None and not 0 <= start <= duration:
        raise EmsyncError(f"from: {start} is outside the score [0, {duration}]")
    if end and start is not None and end <= start:
        raise EmsyncError(f"end: {end} must be after from ({start}), or 0 for the end of the score")
    score = _performance(host, track)
    player = _player(host)
    host.live_track = track
    player.load(score)
    player.play(start, end or None)
    _transport(host, client)


@route("/emsync/stop", "", reply="/emsync/transport ...", summary="stop playing; held notes are released")
def on_stop(host, client):
    if host.player is not None:
        host.player.stop()
    _transport(host, client)


@route("/emsync/locate", "seconds:f", reply="/emsync/transport ...",
       summary="move the play position (playing goes on from there)")
def on_locate(host, client, seconds):
    if not 0 <= seconds <= host.session.duration:
        raise EmsyncError(f"seconds: {seconds} is outside the score [0, {host.session.duration}]")
    _player(host).locate(seconds)
    _transport(host, client)


@route("/emsync/transport", "", reply="/emsync/transport s:state f:position s:port s:track i:version",
       summary="where the player is: playing, stopped or armed (waiting for the host's clock)")
def on_transport(host, client):
    _transport(host, client)


@route("/emsync/midi/follow", "input:s", reply="/emsync/midi/follow s:input",
       summary="follow a host's MIDI clock, Start/Continue/Stop and Song Position Pointer (\"\": stop)")
def on_midi_follow(host, client, name):
    player = _player(host) if name else host.player
    followed = player.follow(name) if player is not None else None
    host.reply(client, "/emsync/midi/follow", followed or "")


def _daw(host, host_name: str, port: int) -> tuple[str, int]:
    """The DAW's IPv4 address and port, checked before anything is written or sent: never the
    server's own (a push to itself would answer itself for ever)."""
    if not host_name:
        raise EmsyncError("host: empty")
    if not 0 < port <= 65535:
        raise EmsyncError(f"port: {port} is outside 1..65535")
    try:
        daw = socket.getaddrinfo(host_name, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4][:2]
    except (socket.gaierror, UnicodeError) as exc:
        raise EmsyncError(f"host: cannot resolve {host_name!r} ({exc})") from None
    if host.own.matches(daw):
        raise EmsyncError(f"port: {daw[0]}:{daw[1]} is this server's own address, not a DAW's")
    return daw


def _push(host, client, kind: str, daw: tuple[str, int], datagrams: list[bytes], version: int) -> None:
    """Send to the DAW paced (off the request thread), then tell the client."""
    def send_all():
        try:
            for data in datagrams:
                host.send_raw(data, daw)
                time.sleep(PUSH_GAP)
        except OSError as exc:
            host.error(client, f"/emsync/push/{kind}", f"host: cannot send to {daw[0]}:{daw[1]} "
                                                       f"({exc.strerror or exc})")
            return
        host.reply(client, "/emsync/pushed", kind, daw[0], daw[1], version, len(datagrams))

    threading.Thread(target=send_all, name=f"emsync-push-{kind}", daemon=True).start()


@route("/emsync/push/ableton", "", "host:s port:i", "host:s port:i track:i slot:i",
       reply="/emsync/pushed s:\"ableton\" s:host i:port i:version i:messages",
       summary="the current version as Session clips in Live through AbletonOSC (tracks track..track+4)")
def on_push_ableton(host, client, host_name="127.0.0.1", port=dialects.ABLETON_PORT, track=0, slot=0):
    version = host.service.current_version("push")
    daw = _daw(host, host_name, port)
    if not (0 <= track <= MAX_LIVE_INDEX and 0 <= slot <= MAX_LIVE_INDEX):
        raise EmsyncError(f"track/slot: {track}/{slot} must be 0..{MAX_LIVE_INDEX}")
    datagrams = dialects.ableton_messages(version.notes, version.tempo(), host.session.duration,
                                          track, slot, name=f"emsync v{version.id}")
    _push(host, client, "ableton", daw, datagrams, version.id)


@route("/emsync/push/reaper", "", "host:s port:i",
       reply="/emsync/exported s:\"midi\" s:path i:version, then /emsync/pushed s:\"reaper\" s:host i:port "
       "i:version i:messages", summary="export the SMF into the session folder, set REAPER's tempo and cursor")
def on_push_reaper(host, client, host_name="127.0.0.1", port=dialects.REAPER_PORT):
    version = host.service.current_version("push")
    daw = _daw(host, host_name, port)
    folder = host.session.dir / EXPORTS_FOLDER
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise EmsyncError(f"{folder}: cannot create ({exc.strerror or exc})") from None
    written = host.service.export_midi(folder / f"v{version.id:06d}.mid", overwrite=True)  # the session's own folder
    host.reply(client, "/emsync/exported", "midi", str(written.resolve()), version.id)
    _push(host, client, "reaper", daw, dialects.reaper_messages(version.tempo().bpms[0]), version.id)
