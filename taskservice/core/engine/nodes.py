"""A server's name on a board it shares (a node): whose claims, leases and fenced writes are whose."""

from __future__ import annotations

import os
import secrets
import socket


def node_name() -> str:
    """This server's name on the board: host, process, and a random part (a restarted process is another node)."""
    return f"{node_prefix(os.getpid())}{secrets.token_hex(3)}"


def node_prefix(pid: int) -> str:
    """How the names of the nodes process `pid` of this host runs begin."""
    return f"{socket.gethostname()}:{pid}:"
