"""Other hosts' OSC dialects: the datagrams that hand a version of the music to a DAW.

Plain functions from notes (seconds) to OSC datagrams (bytes), built with the same message
encoder as emsync's own clips and under the same 1400-byte limit; osc_server sends them.

- AbletonOSC (Ableton Live's remote script, listening on UDP 11000): its own addresses, one
  plain message per datagram (it parses each datagram as a single message, no bundles).
- REAPER's default OSC pattern config ("Default.ReaperOSC"): transport and tempo only, since
  REAPER's OSC has no message that creates a MIDI item; the notes travel as an SMF file.
"""
from __future__ import annotations

import math
from typing import Sequence

from emsync.core.limits import MAX_DATAGRAM
from emsync.core.music import INSTRUMENTS, Note
from emsync.core.tempo import TempoMap

from emsync.osc.wire import message_bytes

ABLETON_PORT = 11000
REAPER_PORT = 8000  # REAPER's usual "local listen port" for an OSC control surface
ABLETON_NOTE_BYTES = 4 * 4 + 5  # pitch, start, duration, velocity (32 bits each), mute (T/F, no data); 5 tags


def clip_length_beats(notes: Sequence[Note], duration: float, tempo: TempoMap) -> float:
    """Whole bars (in quarter notes, Live's beats) covering the programme and every note's release."""
    end = max([duration, *(n.end for n in notes)])
    bar = tempo.meter.beats * tempo.meter.quarters_per_beat
    return float(max(1, math.ceil(tempo.quarters_at(end) / bar - 1e-9)) * bar)


def ableton_messages(notes: Sequence[Note], tempo: TempoMap, duration: float, first_track: int = 0, slot: int = 0,
                     name: str = "emsync") -> list[bytes]:
    """Datagrams that make the notes Session-view clips in Live through AbletonOSC, in beats of
    the music's tempo map (a Session clip has no tempo changes: Live plays it at the first
    tempo, which this sets with the time signature; the bars and beats are the music's).

    The tempo, then per instrument (drums, piano, guitar, bass, strings on tracks
    first_track .. first_track+4, always all five so a track keeps its role across pushes):
    delete the clip in `slot` (AbletonOSC logs an error for an empty slot and goes on), create
    one as long as the music in whole bars, name it, add its notes in groups of five
    (pitch, start beats, duration beats, velocity, mute) packed under MAX_DATAGRAM bytes.
    """
    length = clip_length_beats(notes, duration, tempo)
    out = [message_bytes("/live/song/set/tempo", float(tempo.bpms[0])),
           message_bytes("/live/song/set/signature_numerator", tempo.meter.beats),
           message_bytes("/live/song/set/signature_denominator", tempo.meter.unit)]
    for index, instrument in enumerate(INSTRUMENTS):
        track = first_track + index
        out += [message_bytes("/live/clip_slot/delete_clip", track, slot),
                message_bytes("/live/clip_slot/create_clip", track, slot, length),
                message_bytes("/live/clip/set/name", track, slot, f"{name} {instrument}")]
        mine = sorted((n for n in notes if n.instrument == index), key=lambda n: (n.start, n.pitch))
        # Each note adds its 16 data bytes and 5 type tags; the tag string pads by at most 3.
        per = (MAX_DATAGRAM - len(message_bytes("/live/clip/add/notes", track, slot)) - 3) // ABLETON_NOTE_BYTES
        for first in range(0, len(mine), per):
            args: list = [track, slot]
            for note in mine[first:first + per]:
                start = tempo.quarters_at(note.start)
                args += [int(note.pitch), start, max(0.0, tempo.quarters_at(note.end) - start), int(note.velocity),
                         False]
            out.append(message_bytes("/live/clip/add/notes", *args))
    return out


def reaper_messages(bpm: float, position: float = 0.0) -> list[bytes]:
    """Stop, set the first tempo and put the edit cursor at `position` seconds, where REAPER's
    Insert > Media file places the exported SMF, whose tempo map REAPER imports with it
    (Default.ReaperOSC: STOP t/stop, TEMPO f/tempo/raw, TIME f/time)."""
    return [message_bytes("/stop"), message_bytes("/tempo/raw", float(bpm)), message_bytes("/time", float(position))]
