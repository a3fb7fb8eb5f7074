"""The session and music addresses: status, opening sources, scenes and settings, generate,
regenerate, cancel, undo/redo, clips and exports. Each handler is thin over the scoring
service (`host.service`), which checks the request; what a handler adds is the reply, and
for the slow ones a job."""
from __future__ import annotations

from pathlib import Path

from emsync.core.emotions import find_emotion
from emsync.core.errors import EmsyncError
from emsync.service.session import SETTINGS

from . import playback
from .routes import ROUTES, route
from .wire import bundle_bytes, chunked_messages, message_bytes

SCENES_PER_BUNDLE = 12  # an /emsync/scene message is at most 108 bytes in a bundle (names cut to 40 bytes)


def _opened(opened) -> tuple:
    return (opened.kind, opened.path, opened.duration, opened.scenes, opened.cuts, opened.hits, opened.fps)


@route("/emsync/status", "", reply="/emsync/status s:state i:version i:versions i:undo i:redo f:duration "
       "i:scenes i:job f:progress s:session", summary="state of the service and the session", immediate=True)
def on_status(host, client):
    host.reply(client, "/emsync/status", *host.status_args())


@route("/emsync/reply_port", "port:i", reply="/emsync/ok s:address i:port",
       summary="send replies for this host's requests to this UDP port (0: back to the sending port)", immediate=True)
def on_reply_port(host, client, port):
    if not 0 <= port <= 65535:
        raise EmsyncError(f"port: {port} is outside 0..65535")
    if host.own.matches((client[0], port)):
        raise EmsyncError(f"port: {client[0]}:{port} is this server's own address; replies there would come back "
                          "as requests")
    if port:
        host.reply_ports[client[0]] = port
    else:
        host.reply_ports.pop(client[0], None)
    host.reply(client, "/emsync/ok", "/emsync/reply_port", port)


@route("/emsync/help", "", reply="bundles of /emsync/help/address s:address s:arguments s:reply s:summary",
       summary="this address table")
def on_help(host, client):
    entries = [message_bytes("/emsync/help/address", r.address, r.usage(), r.reply, r.summary)
               for r in ROUTES.values()]
    host.send_all(client, chunked_messages(entries))


@route("/emsync/open/timeline", "path:s", "path:s fps:f", "path:s fps:f transition:s",
       reply="/emsync/opened s:kind s:path f:duration i:scenes i:cuts i:hits f:fps; when clips' media is to be "
       "read, first /emsync/job/started i:job s:\"open\" i:0 and progress, then /emsync/opened and /emsync/job/done",
       summary="scenes, cuts, emotions and hits from an editor timeline (OTIO, EDL, FCP7 XML, FCPXML, AAF); "
       "open scenes read their clip's media on disk (a job)")
def on_open_timeline(host, client, path, fps=0.0, transition="mid"):
    from emsync.service.media import media_to_read, with_media_emotions

    host.busy("/emsync/open/timeline")
    timeline = host.service.read_edit(path, fps, transition)

    def adopt() -> tuple:
        opened = host.service.adopt_timeline(timeline, fps, transition)
        host.forget_transfers()
        return _opened(opened)

    if not media_to_read(timeline):
        host.reply(client, "/emsync/opened", *adopt())
        return

    def work(progress, cancel):
        timeline.scenes = with_media_emotions(timeline, progress, cancel)
        return adopt

    host.start_job(client, "/emsync/open/timeline", "open", 0, work)


@route("/emsync/open/video", "path:s", "path:s threshold:f",
       reply="/emsync/job/started i:job s:\"open\" i:0, /emsync/job/progress as it reads, then /emsync/opened "
       "s:\"video\" s:path f:duration i:scenes i:cuts i:hits f:fps and /emsync/job/done",
       summary="cuts and per-scene emotions analysed from "
       "a video (a job: faces, picture and sound)")
def on_open_video(host, client, path, threshold=0.5):
    host.service.check_video(path, threshold)

    def work(progress, cancel):
        analysis = host.service.analyze_video(path, threshold, progress, cancel)

        def apply() -> tuple:
            opened = host.service.open_analysis(analysis, threshold)
            host.forget_transfers()
            return _opened(opened)

        return apply

    host.start_job(client, "/emsync/open/video", "open", 0, work)


@route("/emsync/open/scenes", "path:s", reply="/emsync/opened s:kind s:path f:duration i:scenes i:cuts i:hits f:fps",
       summary='a JSON scene file ({"duration", "scenes": [{"start", "valence", "arousal", "name"}]})')
def on_open_scenes(host, client, path):
    host.busy("/emsync/open/scenes")
    opened = host.service.open_scene_file(path)
    host.forget_transfers()
    host.reply(client, "/emsync/opened", *_opened(opened))


@route("/emsync/scenes/list", "", "seq:i", reply="bundles [/emsync/scenes/chunk i:seq i:chunks i:first i:count "
       "i:scenes, /emsync/scene ... x count]", summary="every scene (or chunk seq again)")
def on_scenes_list(host, client, seq=None):
    scenes = host.session.scenes
    per = SCENES_PER_BUNDLE
    groups = [range(i, min(i + per, len(scenes))) for i in range(0, len(scenes), per)] or [range(0)]
    if seq is not None and not 0 <= seq < len(groups):
        raise EmsyncError(f"seq: {seq} is outside 0..{len(groups) - 1}")

    def bundle(number: int) -> bytes:  # built as sent: a long list never sits in memory twice
        group = groups[number]
        items = [message_bytes("/emsync/scenes/chunk", number, len(groups), group.start, len(group), len(scenes))]
        items += [message_bytes("/emsync/scene", *host.scene_args(index, scenes[index])) for index in group]
        return bundle_bytes(items)

    host.send_all(client, (bundle(number) for number in ([seq] if seq is not None else range(len(groups)))))


@route("/emsync/scene/emotion", "index:i emotion:s", "index:i valence:f arousal:f",
       reply="/emsync/scene i:index f:start f:end f:valence f:arousal s:name s:word T/F:user_set",
       summary="set a scene's emotion: a word (joy, tense, calm...), 'valence=.. arousal=..', or two numbers")
def on_scene_emotion(host, client, index, *value):
    if len(value) == 1:
        found = find_emotion(value[0], field="emotion")
        if found is None:
            raise EmsyncError(f"emotion: {value[0][:60]!r} names no emotion this server knows")
        valence, arousal = found
    else:
        valence, arousal = float(value[0]), float(value[1])
    scene = host.service.set_emotion(index, valence, arousal)
    host.reply(client, "/emsync/scene", *host.scene_args(index, scene))


@route("/emsync/settings/set", "name:s value:*", reply="/emsync/settings s:name value",
       summary="one of: " + ", ".join(SETTINGS))
def on_settings_set(host, client, name, value):
    value = host.service.set_setting(name, value)
    host.reply(client, "/emsync/settings", name, value)


@route("/emsync/settings/get", "", reply="a bundle of /emsync/settings s:name value", summary="every setting")
def on_settings_get(host, client):
    items = [message_bytes("/emsync/settings", name, value) for name, value in host.session.settings.items()]
    host.send_all(client, chunked_messages(items))


@route("/emsync/tempo", "", "version:i", reply="/emsync/tempo i:version s:meter i:segments, then bundles of "
       "/emsync/tempo/segment i:index f:seconds f:bpm", summary="the tempo map a version is written on (the "
       "current one by default; before any music, the map the next would get): its bars and beats")
def on_tempo(host, client, *given):
    version_id = given[0] if given else host.session.current_id
    _known_version(host, version_id)
    tempo = host.session.version(version_id).tempo() if version_id else host.service.tempo_map()
    changes = tempo.changes()
    host.reply(client, "/emsync/tempo", version_id, str(tempo.meter), len(changes))
    segments = [message_bytes("/emsync/tempo/segment", index, float(start), float(bpm))
                for index, (start, bpm) in enumerate(changes)]
    host.send_all(client, chunked_messages(segments))


@route("/emsync/generate", "", "seed:i", reply="/emsync/job/started i:job s:kind i:seed, then "
       "/emsync/job/progress, /emsync/job/done (or failed/cancelled) and the clips",
       summary="music for the whole session (a new version)")
def on_generate(host, client, *seed):
    request = host.service.generate_request(*seed)
    generator = host.service.generator
    host.start_job(client, "/emsync/generate", "generate", request.seed,
                   lambda progress, cancel: request.run(generator(), progress, cancel))


@route("/emsync/regenerate", "start:f end:f", "start:f end:f seed:i",
       reply="as /emsync/generate", summary="new music for [start, end) seconds; everything outside is kept")
def on_regenerate(host, client, start, end, *seed):
    request = host.service.regenerate_request(start, end, *seed)
    generator = host.service.generator
    host.start_job(client, "/emsync/regenerate", "regenerate", request.seed,
                   lambda progress, cancel: request.run(generator(), progress, cancel))


@route("/emsync/cancel", "", "job:i", reply="/emsync/job/cancelling i:job, then /emsync/job/cancelled i:job",
       summary="stop the running job (any client's); the session stays as it was", immediate=True)
def on_cancel(host, client, *given):
    job = host.job
    if job is None or (given and given[0] != job.id):
        raise EmsyncError("cancel: no such job running" + (f" (job {given[0]})" if given else ""))
    job.cancel.set()
    host.reply(client, "/emsync/job/cancelling", job.id)


def _moved(host, client, version_id: int) -> None:
    session = host.session
    kind = session.version(version_id).kind if version_id else "empty"
    host.reply(client, "/emsync/version", version_id, session.position, len(session.history), kind)
    playback.reload(host)
    host.send_clips(client, version_id)


@route("/emsync/undo", "", reply="/emsync/version i:version i:position i:versions s:kind, then the clips",
       summary="back to the previous version (0: no music)")
def on_undo(host, client):
    host.busy("/emsync/undo")
    _moved(host, client, host.service.undo())


@route("/emsync/redo", "", reply="as /emsync/undo", summary="forward again after undo")
def on_redo(host, client):
    host.busy("/emsync/redo")
    _moved(host, client, host.service.redo())


def _known_version(host, version_id: int) -> None:
    if version_id and version_id not in host.session.history:
        raise EmsyncError(f"version: {version_id} is not in this session")


@route("/emsync/clips/get", "", "version:i", reply="/emsync/clips/begin, chunk bundles, /emsync/clips/end",
       summary="the clips of the current version (or of any version in the history)")
def on_clips_get(host, client, *given):
    version_id = given[0] if given else host.session.current_id
    _known_version(host, version_id)
    host.send_clips(client, version_id)


@route("/emsync/clips/chunk", "version:i seq:i", reply="the chunk bundle, byte for byte as first sent",
       summary="send one chunk again (after a gap in the sequence numbers)")
def on_clips_chunk(host, client, version_id, seq):
    _known_version(host, version_id)
    transfer = host.transfer(version_id)
    if not 0 <= seq < len(transfer.chunks):
        raise EmsyncError(f"seq: {seq} is outside 0..{len(transfer.chunks) - 1}")
    host.send(client, transfer.chunks[seq])


@route("/emsync/export/midi", "path:s", "path:s overwrite:b", reply="/emsync/exported s:kind s:path i:version",
       summary="the current version as a type 1 Standard MIDI File (one track per instrument, cut markers); "
       "overwrite: replace a file emsync did not write")
def on_export_midi(host, client, path, overwrite=False):
    written = host.service.export_midi(path, bool(overwrite))
    host.reply(client, "/emsync/exported", "midi", str(written.resolve()), host.session.current_id)


@route("/emsync/export/timeline", "path:s", "path:s midi:s", "path:s midi:s overwrite:b",
       reply="/emsync/exported s:kind s:path i:version (midi, then timeline)",
       summary="the opened timeline (or video) with a music track playing the exported MIDI and emotion markers "
       "(midi \"\": beside it); overwrite: replace files emsync did not write")
def on_export_timeline(host, client, path, midi="", overwrite=False):
    host.service.check_timeline_export(path)
    midi = midi or str(Path(path).with_suffix(".mid"))
    for target in (path, midi):  # both checked before either is written
        host.service.exports.check(target, bool(overwrite))
    midi_path = host.service.export_midi(midi, bool(overwrite))
    host.reply(client, "/emsync/exported", "midi", str(midi_path.resolve()), host.session.current_id)
    written = host.service.export_timeline(path, midi_path, overwrite=bool(overwrite))
    host.reply(client, "/emsync/exported", "timeline", str(written.resolve()), host.session.current_id)
