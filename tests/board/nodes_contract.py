"""The board's contract for the servers on it (announce, nodes, retire), run on every board by test_boards.py."""

from __future__ import annotations

from taskservice.core.board.base import Board
from taskservice.core.model.nodes import NodeInfo
from tests.support.waiting import wait_until

NOW = 1_000_000.0


def test_a_server_says_what_it_claims_and_its_load_and_is_gone_once_retired_or_silent(board: Board) -> None:
    gpu = NodeInfo("gpu:1:a", ("render",), (("zone", "eu"),), NOW, NOW, workers=8, busy=3, abandoned=1)
    cpu = NodeInfo("cpu:2:b", ("echo", "sleep"), (), NOW, NOW + 5, workers=4)
    board.announce(gpu)
    board.announce(cpu)
    wait_until(lambda: board.nodes(NOW - 1) == [cpu, gpu], what="both servers, by name, as they said")
    assert board.nodes(NOW) == [cpu], "one not heard of since is left out"
    # Each announcement replaces what the server last said: its load, and how many handlers it left running.
    calmer = NodeInfo("gpu:1:a", ("render",), (("zone", "eu"),), NOW, NOW + 10, workers=8, busy=0, abandoned=0)
    board.announce(calmer)
    wait_until(lambda: board.nodes(NOW - 1) == [cpu, calmer], what="the server's new announcement")
    board.retire("cpu:2:b")
    wait_until(lambda: board.nodes(NOW - 1) == [calmer], what="the retired server gone")
