"""GetStats' minutes: the settled ones are counted once and kept, the rest read again, and the answer is what a
count of every minute gives."""

from __future__ import annotations

from taskservice.core.board.sql.stats_store import SETTLE_SECONDS, Counted, SettledMinutes
from taskservice.core.model.stats import per_minute

# Starts and ends, a few in each minute of two hours (Unix minute numbers from 1000).
STARTS = {minute: minute % 7 + 1 for minute in range(1000, 1120)}
ENDS = {(minute, state): minute % 5 for minute in range(1000, 1120) for state in ("SUCCESS", "FAILURE")}


class Board:
    """Answers counts since a time, as the queries do, and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def read_since(self, since: float) -> Counted:
        self.asked.append(since)
        first = int(since // 60)
        return ({m: n for m, n in STARTS.items() if m >= first}, {k: n for k, n in ENDS.items() if k[0] >= first})


def test_settled_minutes_are_read_once_and_the_answer_is_a_full_count() -> None:
    board, settled = Board(), SettledMinutes()
    for now in (1070 * 60 + 5, 1070 * 60 + 40, 1071 * 60 + 50, 1075 * 60 + 1, 1119 * 60 + 59):
        assert settled.counts(now, board.read_since) == per_minute(STARTS, ENDS, now), now
    # The first call reads the hour; later ones only from the first minute not settled (SETTLE_SECONDS past its end)
    # when the one before them asked.
    assert SETTLE_SECONDS == 30
    assert board.asked == [m * 60 for m in (1070 - 59, 1069, 1070, 1071, 1074)]


def test_a_clock_that_goes_back_or_a_long_silence_count_everything_again() -> None:
    board, settled = Board(), SettledMinutes()
    settled.counts(1100 * 60, board.read_since)
    assert settled.counts(1080 * 60, board.read_since) == per_minute(STARTS, ENDS, 1080 * 60)
    assert board.asked[-1] == (1080 - 59) * 60
    assert settled.counts(1200 * 60, board.read_since) == per_minute(STARTS, ENDS, 1200 * 60)
    assert board.asked[-1] == (1200 - 59) * 60, "more than an hour later: nothing kept is of use"
