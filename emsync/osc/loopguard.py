"""The server never sends to its own socket. A reply or a push addressed to itself would come
back as a request, be answered with an error sent to itself, and so on for ever: one packet
would keep a core busy. Destinations are refused where a client chooses them
(/emsync/reply_port, /emsync/push/*), nothing is sent to the server's own address whatever
the route, and datagrams from that address are dropped unread."""
from __future__ import annotations

import ipaddress
import socket

WILDCARDS = ("0.0.0.0", "::", "")
LOCAL_CACHE = 256  # addresses remembered as this machine's or not


class OwnAddress:
    """The address a server's socket is bound to, and whether another address is the same socket."""

    def __init__(self, address: tuple[str, int]):
        self.host, self.port = address[0], address[1]
        self._local: dict[str, bool] = {}

    def _is_this_machine(self, host: str) -> bool:
        """Whether `host` (an IP address) is one of this machine's: binding to it succeeds."""
        local = self._local.get(host)  # read once: another thread may clear the cache meanwhile
        if local is None:
            try:
                family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
                with socket.socket(family, socket.SOCK_DGRAM) as probe:
                    probe.bind((host, 0))
                local = True
            except (ValueError, OSError):
                local = False
            if len(self._local) >= LOCAL_CACHE:
                self._local.clear()
            self._local[host] = local
        return local

    def matches(self, address: tuple) -> bool:
        """Whether a datagram to or from `address` (host, port) is to or from this very socket."""
        host, port = address[0], address[1]
        if port != self.port:
            return False
        if host == self.host or host in WILDCARDS:  # sent to 0.0.0.0, a datagram reaches this machine
            return True
        return self.host in WILDCARDS and self._is_this_machine(host)
