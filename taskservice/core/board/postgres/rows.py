"""Task rows of the PostgreSQL dialect, both ways; JSON values travel as text, so each side decides its own
parsing."""

from __future__ import annotations

from taskservice.core.board.sql.rows import TRANSITIONS_KEPT, dumps
from taskservice.core.board.task_rows import task_from_row

__all__ = ["CLAIMED", "COLUMNS", "TRANSITIONS_KEPT", "T_COLUMNS", "dumps", "task_from_row", "transition_sql"]

# In the order task_from_row reads.
COLUMNS = (
    "submit_order, task_id, task_type, args::text, state, priority, labels::text, time_limit, submitted_at, "
    "started_at, ended_at, attempt, progress_percent, progress_message, progress_current, progress_total, "
    "progress_updated_at, result::text, error_type, error_message, error_traceback, event_sequence, request_digest, "
    "run_after, retention, after_ids::text, trace_context, parent_id, detached"
)
# The same, of a table aliased `t` (in UPDATE ... FROM ... RETURNING).
T_COLUMNS = ", ".join(f"t.{column.strip()}" for column in COLUMNS.split(","))


def transition_sql(sequence: str, state: str) -> str:
    """The new value of `transitions` after a state change (SQL expressions for its sequence and state): the
    oldest one out once TRANSITIONS_KEPT are kept, the new one in."""
    return (
        f"(CASE WHEN jsonb_array_length(t.transitions) >= {TRANSITIONS_KEPT} THEN t.transitions - 0 "
        f"ELSE t.transitions END || jsonb_build_array(jsonb_build_array({sequence}, {state})))"
    )


# A claimed task, of a table aliased `t`: RUNNING for node %(node)s, leased until %(lease)s, its progress cleared.
CLAIMED = f"""state = 'RUNNING', attempt = t.attempt + 1, started_at = NULL, run_after = NULL, owner = %(node)s,
    lease_until = %(lease)s, stop_reason = NULL, progress_percent = 0, progress_message = '', progress_current = 0,
    progress_total = 0, progress_updated_at = NULL, event_sequence = t.event_sequence + 1,
    transitions = {transition_sql("t.event_sequence + 1", "'RUNNING'")}"""
