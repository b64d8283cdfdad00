"""Per-task event sequences, fan-out to watchers, replay after a reconnect.

Watchers never slow a worker: publishing appends to each watcher's small buffer and never blocks on
the consumer. A watcher that falls behind has its pending progress coalesced (latest wins) while every
state change stays queued, so its buffer holds at most two events per state change. A task gets a
channel when its first watcher attaches; the events of tasks nobody follows are never made.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable

from taskservice.core.model.errors import SequenceOutOfRange
from taskservice.core.model.models import TaskEvent

# State changes a channel keeps for replay. A task has a handful (PENDING, RUNNING, STOPPING, an end,
# and one PENDING/RUNNING pair per retry), so this bound is only reached by pathological retry counts.
MAX_STATE_EVENTS_KEPT = 256
# Channels of finished tasks kept so that a watcher reconnecting just after the end can still replay.
FINISHED_CHANNELS_KEPT = 4096


class Watcher:
    """One consumer's buffer of events. push() runs on the publishing thread and never blocks on the reader.

    `notify` is called (from the publishing thread) when the buffer turns non-empty, so an asyncio
    consumer can wake itself with call_soon_threadsafe; a thread can use get() instead.
    """

    def __init__(self, notify: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._events: deque[TaskEvent] = deque()
        self._notify = notify
        self.closed = False
        # How many progress events were replaced by a newer one before this watcher read them.
        self.coalesced = 0
        # The sequence of the newest event taken: an older or equal one is dropped (a snapshot read while the
        # same change was being published delivers it once).
        self.last_sequence = 0
        # While not None, events are set aside here: the watcher waits for its snapshot (see hold()).
        self._held: list[TaskEvent] | None = None

    def hold(self) -> None:
        """Set events aside until release(): for a watcher attached before its snapshot is read."""
        with self._lock:
            self._held = []

    def release(self, first: TaskEvent | None) -> None:
        """Deliver `first` (the snapshot, if any), then what was set aside that is newer."""
        with self._lock:
            held, self._held = self._held or [], None
        for event in [first, *held] if first is not None else held:
            self.push(event)

    def push(self, event: TaskEvent) -> None:
        with self._lock:
            if self.closed:
                return
            if self._held is not None:
                self._held.append(event)
                return
            if event.sequence <= self.last_sequence:
                return
            self.last_sequence = event.sequence
            was_empty = not self._events
            if not event.is_state_change and self._events and not self._events[-1].is_state_change:
                self._events[-1] = event
                self.coalesced += 1
            else:
                self._events.append(event)
            self._ready.notify()
        if was_empty and self._notify is not None:
            self._notify()

    def drain(self) -> list[TaskEvent]:
        """All buffered events, oldest first, without waiting."""
        with self._lock:
            events = list(self._events)
            self._events.clear()
            return events

    def get(self, timeout: float | None = None) -> TaskEvent | None:
        """The next event, waiting up to `timeout` seconds; None on timeout (for threads and tests)."""
        with self._lock:
            if not self._events:
                self._ready.wait(timeout)
            return self._events.popleft() if self._events else None

    def pending(self) -> int:
        with self._lock:
            return len(self._events)


class _Channel:
    """The events of one task: watchers and what a reconnecting watcher may replay."""

    __slots__ = ("first_sequence", "last_sequence", "latest_progress", "state_events", "watchers")

    def __init__(self, first_sequence: int) -> None:
        # The lowest sequence this channel can vouch for: replay after N works for N >= first_sequence - 1.
        self.first_sequence = first_sequence
        # The newest sequence published (or known when the channel opened).
        self.last_sequence = first_sequence - 1
        self.state_events: deque[TaskEvent] = deque(maxlen=MAX_STATE_EVENTS_KEPT)
        self.latest_progress: TaskEvent | None = None
        self.watchers: set[Watcher] = set()

    def replay_after(self, after_sequence: int) -> list[TaskEvent]:
        events = [e for e in self.state_events if e.sequence > after_sequence]
        if self.latest_progress is not None and self.latest_progress.sequence > after_sequence:
            events.append(self.latest_progress)
            events.sort(key=lambda e: e.sequence)
        return events


class EventHub:
    """Fan-out of task events to watchers. Thread-safe; publishing never waits on a watcher."""

    def __init__(self, finished_channels_kept: int = FINISHED_CHANNELS_KEPT) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, _Channel] = {}
        self._finished: OrderedDict[str, _Channel] = OrderedDict()
        self._finished_kept = finished_channels_kept

    def followed(self, task_id: str) -> bool:
        """Whether a task has a channel (a watcher attached while it ran). Events of other tasks reach nobody
        and no reconnecting watcher can ask for them, so publishers need not even make them."""
        with self._lock:
            return task_id in self._live

    def publish(self, event: TaskEvent) -> None:
        """Deliver an event to the task's watchers. Callers publish a task's events in sequence order."""
        with self._lock:
            channel = self._live.get(event.task_id)
            if channel is None:
                # The engine publishes only to followed tasks; a channel opened here serves direct callers.
                channel = self._live[event.task_id] = _Channel(event.sequence)
            if event.is_state_change:
                channel.state_events.append(event)
            else:
                channel.latest_progress = event
            channel.last_sequence = max(channel.last_sequence, event.sequence)
            watchers = list(channel.watchers)
            if event.is_terminal:
                channel.watchers.clear()
                del self._live[event.task_id]
                self._finished[event.task_id] = channel
                while len(self._finished) > self._finished_kept:
                    self._finished.popitem(last=False)
        for watcher in watchers:
            watcher.push(event)

    def subscribe(
        self, task_id: str, watcher: Watcher, after_sequence: int, live_sequence: int | None = None
    ) -> list[TaskEvent] | None:
        """Attach a watcher; return the events after `after_sequence` it missed.

        `live_sequence` is the latest sequence of a task that has not ended (None for an ended one): its
        channel starts there if it has published nothing yet. Returns None when the hub has no channel for
        an ended task (ended long ago, or unknown): the caller falls back to the stored task. Raises
        SequenceOutOfRange when the events are no longer kept. With after_sequence=0 nothing is replayed:
        the caller sends a snapshot first.
        """
        with self._lock:
            channel = self._live.get(task_id)
            if channel is None and live_sequence is not None:
                channel = self._live[task_id] = _Channel(live_sequence + 1)
            finished = channel is None or live_sequence is None
            if channel is None:
                channel = self._finished.get(task_id)
                if channel is None:
                    return None
            replay = channel.replay_after(after_sequence) if after_sequence else []
            if after_sequence and after_sequence < channel.first_sequence - 1:
                raise SequenceOutOfRange(
                    f"events after sequence {after_sequence} of task {task_id!r} are no longer kept "
                    f"(oldest kept: {channel.first_sequence}); watch again from 0 for a fresh snapshot"
                )
            if not finished:
                channel.watchers.add(watcher)
        for event in replay:
            watcher.push(event)
        return replay

    def unsubscribe(self, task_id: str, watcher: Watcher) -> None:
        with self._lock:
            channel = self._live.get(task_id)
            if channel is not None:
                channel.watchers.discard(watcher)
        with watcher._lock:
            watcher.closed = True

    def forget(self, task_ids: list[str]) -> None:
        """Drop the replayable events of deleted tasks."""
        with self._lock:
            for task_id in task_ids:
                self._finished.pop(task_id, None)

    def close_all(self) -> list[Watcher]:
        """Detach every watcher (server shutdown); returns them so the caller can end their streams."""
        with self._lock:
            watchers = [w for channel in self._live.values() for w in channel.watchers]
            for channel in self._live.values():
                channel.watchers.clear()
        return watchers

    def followed_at(self) -> dict[str, int]:
        """The tasks someone follows, each with the newest sequence its watchers were given."""
        with self._lock:
            return {task_id: channel.last_sequence for task_id, channel in self._live.items() if channel.watchers}

    def watcher_count(self) -> int:
        with self._lock:
            return sum(len(channel.watchers) for channel in self._live.values())
