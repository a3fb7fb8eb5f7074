"""Every bound emsync puts on what it is given, in one place: the OSC service, the CLI, the
preview and docs/osc.md share these numbers. Anything beyond one is refused with one line
naming the file or field, before it can hold a thread, fill memory or reach a parser."""
from __future__ import annotations

MIB = 1 << 20

# ---- scores -------------------------------------------------------------------------------
MAX_SCORE_SECONDS = 3 * 3600.0  # a score, and a preview of one: three hours
MAX_SCENES = 10_000  # scenes of a session (a three-hour film cut every 1.1 s)
MAX_CUTS = MAX_SCENES - 1
MAX_HITS = 10_000  # hit markers of a session
MAX_CANDIDATES = 8  # takes sampled per regeneration (the `candidates` setting)
EMOTION_AXIS = (-1, 1)  # valence and arousal (Russell's circumplex, as EMSYNC conditions on it)
CUT_THRESHOLD = (0.0, 1.0)  # a video's cut detection threshold lies strictly between these

# ---- MIDI files read (render, plot, play, the corpus) ---------------------------------------
# A three-hour score as emsync writes it: about 300,000 notes (the model's densest music, as
# MAX_TRANSFER_NOTES below), two events each, some 3 MiB. Parsing takes about 7 s a million events.
MAX_MIDI_FILE_BYTES = 4 * MIB
MAX_MIDI_EVENTS = 700_000  # channel and meta events of all tracks together
MAX_MIDI_NOTES = 300_000
MAX_HELD_NOTE_SECONDS = 60.0  # a preview releases a note held longer: its sound, not its written length
NOTE_RELEASE_SECONDS = 2.0  # a preview runs on this long after its last release (then ends, faded)

# ---- files read -----------------------------------------------------------------------------
# Only regular files are read (a FIFO, a device or /dev/zero is refused), at most this large.
MAX_SCENE_FILE_BYTES = 16 * MIB  # a JSON scene file, and a session's scenes.json
MAX_TIMELINE_BYTES = 64 * MIB  # an editor timeline (each file of an .otiod/.fcpxmld bundle, an .otioz's content)
MAX_SESSION_FILE_BYTES = 16 * MIB  # a session's session.json
MAX_VERSION_FILE_BYTES = 64 * MIB  # one version of the music (a three-hour score is about 12 MiB)
MAX_NESTING = 200  # levels of JSON or XML a timeline file may nest: checked before a parser sees it
MAX_COMPOSITION_DEPTH = 64  # stacks and tracks inside each other that the timeline walks follow
TIMELINE_READ_SECONDS = 60.0  # the OSC service reads a timeline in a child process, for at most this long
TIMELINE_READ_MEMORY = 4096 * MIB  # ... within this much address space

# ---- the OSC service --------------------------------------------------------------------------
MAX_REQUEST_BYTES = 8192  # no request needs more; larger ones are refused with an error
MAX_BUNDLE_DEPTH = 4
MAX_BUNDLE_MESSAGES = 64
MAX_DATAGRAM = 1400  # replies stay under a 1500-byte Ethernet MTU: no IP fragmentation on a LAN
MAX_QUEUED_REQUESTS = 256  # requests waiting for the request thread; more are refused as busy
MAX_TRANSFER_NOTES = 50_000  # notes of a version sent as clips (about half an hour of the model's music)
MAX_LIVE_INDEX = 9999  # the highest Live track or clip slot a push to AbletonOSC names
REPLY_BURST = 16  # datagrams of a long reply (scene list, clips, help) sent back to back ...
REPLY_GAP_SECONDS = 0.002  # ... before this pause: at most 8,000 datagrams (11 MB) a second
