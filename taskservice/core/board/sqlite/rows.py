"""Pieces of the SQLite dialect's statements that several of them share."""

from __future__ import annotations

from taskservice.core.board.sql.rows import TRANSITIONS_KEPT


def transition_sql(sequence: str, state: str) -> str:
    """The new value of `transitions` after a state change: the oldest out once TRANSITIONS_KEPT are kept."""
    return (
        f"json_insert(CASE WHEN json_array_length(transitions) >= {TRANSITIONS_KEPT} "
        f"THEN json_remove(transitions, '$[0]') ELSE transitions END, '$[#]', json_array({sequence}, {state}))"
    )


# A claimed task: RUNNING for the node of the first parameter, leased until the second, its progress cleared.
CLAIMED = f"""state = 'RUNNING', attempt = attempt + 1, started_at = NULL, run_after = NULL, owner = ?,
    lease_until = ?, stop_reason = NULL, progress_percent = 0, progress_message = '', progress_current = 0,
    progress_total = 0, progress_updated_at = NULL, sequence = sequence + 1,
    transitions = {transition_sql("sequence + 1", "'RUNNING'")}"""
