"""Free TCP ports for the servers tests start, that nothing takes before the server binds.

A port the kernel hands out for `bind(0)` comes from its ephemeral range, the same range
every outgoing connection draws from: between the choice and the server's bind, a client
connection elsewhere in the suite (six workers make thousands) could take it, and the
server failed with "Address already in use". These ports come from below that range, a
stripe of its own for each pytest-xdist worker, each checked free and not handed out twice
by a process.
"""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path

FIRST = 10_000  # below any ephemeral range in use (Linux: 32768 up, unless lowered)
STRIPE = 1_000  # ports per worker
WORKERS = 20  # stripes: FIRST + WORKERS * STRIPE must stay below the ephemeral range
_handed_out = itertools.count()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _worker() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) % WORKERS if name.startswith("gw") and name[2:].isdigit() else 0


def free_port() -> int:
    """A port on 127.0.0.1 free now, outside the kernel's ephemeral range when it can be."""
    base = FIRST + _worker() * STRIPE
    if base + STRIPE > _ephemeral_low():  # a machine whose ephemeral range starts low
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(STRIPE):
        port = base + next(_handed_out) % STRIPE
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken (another program on this machine): the next one
        return port
    raise RuntimeError(f"no free port in {base}-{base + STRIPE - 1}")
