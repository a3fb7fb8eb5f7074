"""Notes as editable clips over OSC: one clip per instrument track, in numbered UDP-safe bundles.

A transfer of version V is

    /emsync/clips/begin  i:V i:chunks i:notes f:duration f:bpm s:crc
    chunk 0 .. chunks-1, each one OSC bundle (one datagram) holding
        /emsync/clip/chunk i:V i:seq i:chunks s:track i:track_index i:first i:count i:track_notes
        /emsync/clip/notes i:V i:seq s:track  (i:pitch f:start f:duration i:velocity) x count
    /emsync/clips/end    i:V i:chunks s:crc

Every datagram is at most MAX_DATAGRAM bytes (under a 1500-byte Ethernet MTU, so no IP
fragmentation on a LAN either). Chunks of one version are always built the same way, so a
client that misses sequence number k asks for `/emsync/clips/chunk V k` and gets the same
bytes again. Every track has at least one chunk (count 0 for an empty track), so a client
can clear clips that lost all their notes. `crc` is the CRC-32 (8 hex digits) of the
concatenated /emsync/clip/notes messages in sequence order, for clients that want to check
that the reassembled clip is complete and from one version.

Times are seconds from the start of the programme (float32); `bpm` is the first tempo of the
version's tempo map (`/emsync/tempo` gives the whole map, to place the notes on bars and beats).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

from emsync.core.limits import MAX_DATAGRAM
from emsync.core.music import INSTRUMENTS, Note

from .wire import bundle_bytes, message_bytes

NOTE_BYTES = 4 * 4 + 4  # four 32-bit arguments and their four type tags


@dataclass
class Transfer:
    version: int
    chunks: list[bytes]  # one bundle datagram per sequence number
    notes: int
    duration: float
    bpm: float
    crc: str

    def begin(self) -> bytes:
        return message_bytes("/emsync/clips/begin", self.version, len(self.chunks), self.notes, float(self.duration),
                             float(self.bpm), self.crc)

    def end(self) -> bytes:
        return message_bytes("/emsync/clips/end", self.version, len(self.chunks), self.crc)

    def datagrams(self) -> list[bytes]:
        return [self.begin(), *self.chunks, self.end()]


def _chunk(version: int, seq: int, total: int, track: str, track_index: int, first: int, notes: Sequence[Note],
           track_notes: int) -> tuple[bytes, bytes]:
    header = message_bytes("/emsync/clip/chunk", version, seq, total, track, track_index, first, len(notes),
                           track_notes)
    args: list = [version, seq, track]
    for note in notes:
        args += [int(note.pitch), float(note.start), float(max(0.0, note.end - note.start)), int(note.velocity)]
    body = message_bytes("/emsync/clip/notes", *args)
    return header, body


def build_transfer(version: int, notes: Sequence[Note], duration: float, bpm: float,
                   max_datagram: int = MAX_DATAGRAM) -> Transfer:
    """Split a version's notes into per-track bundles no larger than `max_datagram` bytes."""
    by_track: list[list[Note]] = [[] for _ in INSTRUMENTS]
    for note in sorted(notes, key=lambda n: (n.start, n.pitch, n.end)):
        by_track[note.instrument].append(note)
    # Overhead of a bundle with the two messages and no notes, measured on the largest header.
    empty_header, empty_body = _chunk(version, 99999, 99999, max(INSTRUMENTS, key=len), 9, 99999, [], 99999)
    overhead = 16 + 8 + len(empty_header) + len(empty_body) + 8  # + type-tag padding slack
    per_chunk = max(1, (max_datagram - overhead) // NOTE_BYTES)
    plan: list[tuple[int, int, list[Note]]] = []  # (track index, first note index, notes)
    for index, track_notes in enumerate(by_track):
        if not track_notes:
            plan.append((index, 0, []))
        for first in range(0, len(track_notes), per_chunk):
            plan.append((index, first, track_notes[first:first + per_chunk]))
    total = len(plan)
    chunks, bodies = [], []
    for seq, (index, first, part) in enumerate(plan):
        header, body = _chunk(version, seq, total, INSTRUMENTS[index], index, first, part, len(by_track[index]))
        dgram = bundle_bytes([header, body])
        if len(dgram) > max_datagram:  # cannot happen with the overhead above; keep the promise anyway
            raise AssertionError(f"clip chunk of {len(dgram)} bytes exceeds {max_datagram}")
        chunks.append(dgram)
        bodies.append(body)
    crc = f"{zlib.crc32(b''.join(bodies)) & 0xFFFFFFFF:08x}"
    return Transfer(version, chunks, sum(len(t) for t in by_track), duration, bpm, crc)
