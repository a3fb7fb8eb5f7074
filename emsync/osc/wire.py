"""The OSC wire format: parsing requests strictly, building replies with explicit types.

python-osc does the byte work; this module decides what a request may be (no unknown type
tags, bounded bundles) and how text is cut to fit a datagram.
"""
from __future__ import annotations

import math
import struct
from typing import Iterable, Sequence

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from emsync.core.limits import MAX_BUNDLE_DEPTH, MAX_BUNDLE_MESSAGES, MAX_DATAGRAM

TYPE_TAGS = set("ifsbhdtTFN")  # what requests may carry; python-osc would skip others silently


def truncate_utf8(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8, cut on a character boundary."""
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def guess_address(data: bytes) -> str:
    """The address at the head of a datagram, printable, for naming it in an error."""
    if data.startswith(b"#bundle"):
        return "#bundle"
    if not data.startswith(b"/"):
        return ""
    head = data[:128].split(b"\0", 1)[0]
    text = head.decode("utf-8", "replace")
    return "".join(c if c.isprintable() else "?" for c in text)[:64]


def parse_message(data: bytes) -> tuple[str, list]:
    address, index = osc_types.get_string(data, 0)
    if not address.startswith("/"):
        raise ValueError(f"address {address[:32]!r} does not start with '/'")
    if index < len(data):
        tags, _ = osc_types.get_string(data, index)
        if not tags.startswith(","):
            raise ValueError("type tag string does not start with ','")
        unknown = set(tags[1:]) - TYPE_TAGS
        if unknown:
            raise ValueError(f"unsupported OSC type tag {sorted(unknown)[0]!r}")
    message = OscMessage(data)
    return message.address, list(message.params)


def parse_packet(data: bytes, depth: int = 0) -> list[tuple[str, list]]:
    """Messages of a datagram, bundles flattened in order (time tags are not waited for).

    Raises ValueError (or python-osc's ParseError) for anything that is not well-formed OSC.
    """
    if not data:
        raise ValueError("empty packet")
    if not data.startswith(b"#bundle\0"):
        return [parse_message(data)]
    if depth >= MAX_BUNDLE_DEPTH:
        raise ValueError(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
    if len(data) < 16:
        raise ValueError("bundle shorter than its header")
    messages: list[tuple[str, list]] = []
    index = 16
    while index < len(data):
        if index + 4 > len(data):
            raise ValueError("truncated bundle element size")
        (size,) = struct.unpack(">i", data[index:index + 4])
        index += 4
        if size <= 0 or size % 4 or index + size > len(data):
            raise ValueError(f"bad bundle element size {size}")
        messages += parse_packet(data[index:index + size], depth + 1)
        index += size
        if len(messages) > MAX_BUNDLE_MESSAGES:
            raise ValueError(f"more than {MAX_BUNDLE_MESSAGES} messages in one bundle")
    return messages


def fits(kind: str, value) -> bool:
    """Whether a request argument is of a route's kind: i, f (an int too), s, b (T/F or 0/1), * (any)."""
    if kind == "i":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "f":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "s":
        return isinstance(value, str)
    if kind == "b":
        return isinstance(value, bool) or (isinstance(value, int) and value in (0, 1))
    if kind == "*":
        return isinstance(value, (bool, str)) or (isinstance(value, (int, float)) and math.isfinite(value))
    raise ValueError(kind)


def type_name(value) -> str:
    return {bool: "T/F", int: "i", float: "f", str: "s", bytes: "b"}.get(type(value), type(value).__name__)


def message(address: str, *args) -> OscMessageBuilder:
    """An OSC message with explicit types: bool T/F, int i, float f, str s, bytes b."""
    builder = OscMessageBuilder(address)
    for arg in args:
        if isinstance(arg, bool):
            builder.add_arg(arg, "T" if arg else "F")
        elif isinstance(arg, int):
            builder.add_arg(arg, "i" if -2**31 <= arg < 2**31 else "h")
        elif isinstance(arg, float):
            builder.add_arg(arg, "f")
        elif isinstance(arg, bytes):
            builder.add_arg(arg, "b")
        else:
            builder.add_arg(str(arg), "s")
    return builder


def message_bytes(address: str, *args) -> bytes:
    return message(address, *args).build().dgram


def bundle_bytes(messages: Iterable[bytes]) -> bytes:
    builder = OscBundleBuilder(IMMEDIATELY)
    for dgram in messages:
        builder.add_content(OscMessage(dgram))
    return builder.build().dgram


def chunked_messages(messages: Sequence[bytes], max_datagram: int = MAX_DATAGRAM) -> list[bytes]:
    """Pack small messages into as few bundles of at most `max_datagram` bytes as possible."""
    bundles, current, size = [], [], 16
    for dgram in messages:
        if current and size + 4 + len(dgram) > max_datagram:
            bundles.append(bundle_bytes(current))
            current, size = [], 16
        current.append(dgram)
        size += 4 + len(dgram)
    if current:
        bundles.append(bundle_bytes(current))
    return bundles
