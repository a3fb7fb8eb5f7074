"""How deeply a timeline file nests, measured before any parser sees it.

OpenTimelineIO's C++ JSON reader recurses once per level and overflows the C stack on a file
nested some ten thousand levels deep (a segfault, not an exception), and the XML adapters
recurse in Python. These scans are linear and never recurse: JSON loses its escaped
backslashes and quotes (bytes.replace, left to right as a parser reads them), is reduced to
its quotes and brackets, and numpy counts the brackets outside strings; XML is counted by
expat, which streams.
"""
from __future__ import annotations

import xml.parsers.expat
from pathlib import Path

import numpy as np

from emsync.core.errors import EmsyncError
from emsync.core.limits import MAX_NESTING

_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_QUOTE, _OPENING = ord('"'), np.frombuffer(b"[{", np.uint8)


class _TooDeep(Exception):
    pass


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text (0 for a bare value; a string left
    open runs to the end)."""
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = np.frombuffer(unescaped.translate(None, _NOT_STRUCTURE), np.uint8)
    quotes = marks == _QUOTE
    brackets = marks[~quotes & (np.cumsum(quotes) % 2 == 0)]
    if not len(brackets):
        return 0
    return int(np.cumsum(np.where(np.isin(brackets, _OPENING), 1, -1), dtype=np.int64).max())


def xml_depth(data: bytes, limit: int = MAX_NESTING) -> int:
    """The deepest element nesting in XML, counted up to `limit + 1` (the scan stops there);
    malformed XML is measured as far as it parses (the adapter then says what is wrong)."""
    parser = xml.parsers.expat.ParserCreate()
    depth = deepest = 0

    def start(*_):
        nonlocal depth, deepest
        depth += 1
        deepest = max(deepest, depth)
        if depth > limit:
            raise _TooDeep

    def end(*_):
        nonlocal depth
        depth -= 1

    parser.StartElementHandler, parser.EndElementHandler = start, end
    try:
        parser.Parse(data, True)
    except (_TooDeep, xml.parsers.expat.ExpatError):
        pass
    return deepest


def check_nesting(path: Path, data: bytes, syntax: str) -> None:
    """EmsyncError naming `path` when its `syntax` ("json" or "xml") nests deeper than MAX_NESTING."""
    depth = json_depth(data) if syntax == "json" else xml_depth(data)
    if depth > MAX_NESTING:
        raise EmsyncError(f"{path}: nests deeper than the {MAX_NESTING} levels a timeline may have (at least {depth}); "
                          "refused before parsing")
