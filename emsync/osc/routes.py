"""The address table: each OSC address, the argument lists it takes, its handler, and the
words `/emsync/help` and docs/osc.md give it."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from .wire import fits, type_name


class RequestError(Exception):
    """A request the server refuses; becomes /emsync/error <address> <message>."""

    def __init__(self, address: str, message: str):
        super().__init__(message)
        self.address = address
        self.message = message


@dataclass
class Route:
    address: str
    handler: Callable  # handler(host, client, *args): on the request thread with the host's lock held
    signatures: list[tuple[str, ...]]  # each a tuple of "name:type"
    reply: str
    summary: str
    immediate: bool = False  # answered on the receive thread, ahead of queued requests: no lock, no file

    def match(self, args: list) -> list:
        for signature in self.signatures:
            if len(signature) == len(args) and all(fits(p.split(":")[1], a) for p, a in zip(signature, args)):
                return args
        got = ",".join(type_name(a) for a in args) or "nothing"
        wanted = " or ".join("(" + " ".join(s) + ")" if s else "()" for s in self.signatures)
        raise RequestError(self.address, f"wrong arguments: got ({got}); expected {wanted}")

    def usage(self) -> str:
        return " | ".join(" ".join(s) if s else "-" for s in self.signatures)


ROUTES: "OrderedDict[str, Route]" = OrderedDict()


def route(address: str, *signatures: str, reply: str, summary: str, immediate: bool = False):
    """Register the decorated handler for `address`; each signature is "name:type ..." ("" for none)."""
    def register(function):
        ROUTES[address] = Route(address, function, [tuple(s.split()) for s in signatures], reply, summary,
                                immediate)
        return function
    return register
