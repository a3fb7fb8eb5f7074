"""A long fuzz of `emsync serve` (issue 20): malformed packets and well-formed requests with
hostile values, over real UDP on 127.0.0.1, against a server in its own process.

The packets are the tests' own generators (tests/test_osc.py: garbage, bit flips, bad
bundles, wrong types; tests/test_hardening.py: special files, the session's own files, the
server's own port, numbers past every bound), here by the ten thousand, in batches sent
back to back; after each batch a /emsync/status round trip is timed while the batch is
still being served, then a barrier waits until it has been (so every request is served,
none refused as busy). Printed: packets a second, replies and errors by kind, the status
round trips, the server's memory and CPU, and whether the session reopens as it was.

    python benchmarks/fuzz_server.py [--packets 20000] [--seed 20] [--batch 50]
"""
from __future__ import annotations

import argparse
import collections
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from conftest import Peer, Server, seeded_session  # noqa: E402  (the tests' server and client)
from test_hardening import (DURATION, NOTES, cpu_seconds, hostile_paths, hostile_requests, scene_file,  # noqa: E402
                            settled)
from test_osc import _fuzz_packets  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def packets_for(folder: Path, session: Path, port: int, count: int, seed: int) -> list[bytes]:
    """Half garbage, half hostile requests, shuffled."""
    rng = random.Random(seed)
    packets = _fuzz_packets(rng, count // 2) + hostile_requests(rng, count - count // 2,
                                                                hostile_paths(folder, session), port)
    rng.shuffle(packets)
    return packets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--batch", type=int, default=50, help="packets sent back to back")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="emsync-fuzz-"))
    server = Server(seeded_session(folder / "session", NOTES, DURATION), folder / "server.log")
    try:
        peer = Peer(server.port)
        peer.ask("/emsync/open/scenes", str(scene_file(folder / "three.json", DURATION)), reply="/emsync/opened")
        packets = packets_for(folder, server.session, server.port, args.packets, args.seed)
        rss_before, cpu_before = rss_mib(server.proc.pid), cpu_seconds(server.proc.pid)
        replies, errors, latencies = collections.Counter(), collections.Counter(), []
        watcher = Peer(server.port)  # asks only for status: no fuzzed request's reply is taken for its answer
        began = time.monotonic()
        for start in range(0, len(packets), args.batch):
            for data in packets[start:start + args.batch]:
                peer.raw(data)
            asked = time.monotonic()  # the batch is still being served
            watcher.ask("/emsync/status", reply="/emsync/status", timeout=5)
            latencies.append(time.monotonic() - asked)
            settled(peer)
            for address, values, _ in peer.receive(0.002):
                replies[address] += 1
                if address == "/emsync/error":  # the cause, after the file it names
                    errors[(values[1].split(": ", 1)[-1] if values[1].startswith("/") else values[1])[:60]] += 1
        elapsed = time.monotonic() - began
        for address, values, _ in peer.receive(1.0):
            replies[address] += 1
        rss_after, cpu_after = rss_mib(server.proc.pid), cpu_seconds(server.proc.pid)
        alive, before = server.proc.poll() is None, settled(peer)
        peer.close()
        watcher.close()
        server.stop()
        server.start()
        peer = Peer(server.port)
        after = peer.ask("/emsync/status", reply="/emsync/status", timeout=10)
        log = server.log.read_text(errors="replace")

        print(f"packets: {len(packets)} in {elapsed:.1f} s ({len(packets) / elapsed:.0f} a second), seed {args.seed}")
        print(f"replies: {sum(replies.values())}; by address: {dict(replies.most_common(8))}")
        print("errors by cause (the file named left out):")
        for cause, count in errors.most_common(16):
            print(f"  {count:6d}  {cause}")
        print(f"status round trip during the flood: median {statistics.median(latencies) * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms over {len(latencies)} samples")
        print(f"server memory: {rss_before:.0f} -> {rss_after:.0f} MiB RSS; CPU {cpu_after - cpu_before:.1f} s")
        print(f"server alive throughout: {alive}; tracebacks in its log: "
              f"{log.count('Traceback')}; reopened as it was: {after[:8] == before[:8]}")
        peer.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
