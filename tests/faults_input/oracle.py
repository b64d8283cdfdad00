"""What the server must answer to any request bytes, given the tasks it holds.

A World is a fresh server with a known set of tasks. plan() turns the bytes of one request into the status
codes the contract allows and the checks an OK answer must pass; check() sends the bytes, asserts, and then
asserts the server is still healthy and stored nothing it should not have. The rules are written from the
contract (docs/contract.md, README, the proto), not from the server's code; limits come from the server's modules
so the oracle follows them when they change.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import math
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import grpc
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from taskservice.core.engine.validation import (
    MAX_LABEL_KEY,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_LABELS_BYTES,
    MAX_STOP_REASON,
    label_bytes,
)
from taskservice.core.handlers.registry import MAX_ARGS_BYTES
from taskservice.server.convert import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from taskservice.server.servicer import MAX_BATCH
from taskservice.server.settings import Settings
from taskservice.v1 import task_service_pb2 as pb
from tests.faults_input.harness import SERVICE, UNARY_METHODS, BackgroundServer, wait_for_state
from tests.faults_input.wire import from_struct, from_value
from tests.grpc.helpers import TERMINAL

Code = grpc.StatusCode
CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

MAX_MESSAGE_BYTES = Settings().max_message_bytes
MAX_TIME_LIMIT = Fraction(366 * 24 * 3600)
ID_CHARS = frozenset(string.ascii_letters + string.digits + "._:-")
STATES = frozenset(range(1, 9))  # TASK_STATE_PENDING .. TASK_STATE_LOST; UNSPECIFIED is no state to filter on
MAX_SAFE_INTEGER = 2**53
REQUEST_TYPES = {
    "Submit": pb.SubmitRequest,
    "SubmitBatch": pb.SubmitBatchRequest,
    "GetState": pb.GetStateRequest,
    "Stop": pb.StopRequest,
    "WatchProgress": pb.WatchProgressRequest,
    "ListTasks": pb.ListTasksRequest,
    "WatchLogs": pb.WatchLogsRequest,
}

# Inputs sent, by (method, status code name): the "bad inputs tried" of the report.
TALLY: collections.Counter[tuple[str, str]] = collections.Counter()


def is_valid_id(task_id: str) -> bool:
    return 1 <= len(task_id) <= 128 and all(c in ID_CHARS for c in task_id)


def has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(has_non_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(has_non_finite(item) for item in value)
    return False


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), allow_nan=False))


def shown(data: bytes, method: str, limit: int = 600) -> str:
    """A readable, bounded description of request bytes, for failure messages."""
    try:
        message = REQUEST_TYPES[method].FromString(data)
    except DecodeError:
        return f"undecodable {len(data)} bytes {data[:80]!r}"
    text = text_format.MessageToString(message, as_one_line=True, print_unknown_fields=True)
    return f"{len(data)} bytes: {text[:limit]}{'...' if len(text) > limit else ''}"


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    responses: list[bytes]
    cancelled_open: bool = False  # a stream we cancelled after reading what we needed


def send(
    channel: grpc.Channel, method: str, data: bytes, *, timeout: float = 30.0, max_responses: int | None = None
) -> Outcome:
    """Send raw request bytes (no serializer) and collect raw response bytes and the final status."""
    data = bytes(data)  # grpc takes exactly bytes, not a subclass
    if method in UNARY_METHODS:
        try:
            return Outcome(Code.OK, "", [channel.unary_unary(SERVICE + method)(data, timeout=timeout)])
        except grpc.RpcError as error:
            return Outcome(error.code(), error.details() or "", [])  # type: ignore[attr-defined]
    call = channel.unary_stream(SERVICE + method)(data, timeout=timeout)
    responses: list[bytes] = []
    try:
        for item in call:
            responses.append(item)
            if max_responses is not None and len(responses) >= max_responses:
                call.cancel()
                return Outcome(Code.OK, "", responses, cancelled_open=True)
    except grpc.RpcError as error:
        return Outcome(error.code(), error.details() or "", responses)  # type: ignore[attr-defined]
    return Outcome(Code.OK, "", responses)


@dataclass
class Known:
    """A task the world created, as the oracle expects the server to show it."""

    task_id: str
    task_type: str
    seq: int  # submission order, 1-based in a fresh database
    state: int = pb.TASK_STATE_UNSPECIFIED
    labels: dict[str, str] = field(default_factory=dict)
    sequence: int = 0  # latest event sequence
    # The sequence when a watcher first attached while the task was unfinished: the server keeps its events from
    # there on for replay. None when nobody watched it before it ended (then nothing can be replayed).
    followed_from: int | None = None
    log: bytes | None = None
    error_message: str = ""
    # Kept RUNNING on purpose (its gate stays shut): streams on it stay open.
    live: bool = False
    # A RUNNING task a Stop test may stop.
    stoppable: bool = False
    # For a Submit that names this id again: what was asked (task_type, args, time limit, priority, labels),
    # and the bytes it was asked with.
    request: tuple[Any, ...] | None = None
    payload: bytes = b""


@dataclass
class Plan:
    codes: set[grpc.StatusCode]
    why: str
    verify: Callable[[Outcome], None] | None = None
    max_responses: int | None = None
    timeout: float = 30.0
    # A stream that must stay open without sending anything: DEADLINE_EXCEEDED with no responses is right.
    open_without_events: bool = False
    stored: int = 0  # tasks the call adds to the store when it answers OK
    after: Callable[[Outcome], None] | None = None


class World:
    """A started BackgroundServer with known tasks, and the expected answer to any request."""

    def __init__(self, server: BackgroundServer) -> None:
        self.server = server
        self.known: dict[str, Known] = {}
        self.next_seq = server.max_order() + 1
        assert self.next_seq == 1, "a World needs a fresh database"
        # True while the world holds only tasks whose seq, labels and state it knows exactly.
        self.exact_listing = True
        self._populate()

    # ------------------------------------------------------------------ set-up

    @property
    def stub(self) -> Any:
        return self.server.stub

    def _add(self, request: pb.SubmitRequest, wait_for: set[int]) -> Known:
        response = self.stub.Submit(request, timeout=10)
        known = Known(response.task.task_id, request.task_type, self.next_seq, labels=dict(request.labels))
        known.request = (request.task_type, from_struct(request.args), None, request.priority, dict(request.labels))
        known.payload = request.SerializeToString()
        self.next_seq += 1
        self.known[known.task_id] = known
        task = wait_for_state(self.stub, known.task_id, wait_for)
        known.state = task.state
        known.error_message = task.error.message
        return known

    def _learn_sequence(self, known: Known) -> None:
        """Watch from 0 for the latest sequence; a watch of an unfinished task starts its replay record."""
        request = pb.WatchProgressRequest(task_id=known.task_id).SerializeToString()
        first = send(self.server.channel, "WatchProgress", request, timeout=10, max_responses=1)
        assert first.code == Code.OK and first.responses, f"no snapshot of {known.task_id}: {first.details}"
        snapshot = pb.WatchProgressResponse.FromString(first.responses[0])
        known.sequence = snapshot.sequence
        if snapshot.state not in TERMINAL and known.followed_from is None:
            known.followed_from = snapshot.sequence

    def _populate(self) -> None:
        args = pb.SubmitRequest
        gates = self.server.gates
        self._add(args(task_type="echo", labels={"team": "a"}), {pb.TASK_STATE_SUCCESS})
        self._add(args(task_type="echo", labels={"team": "b", "k\x00ey": "v\x00al"}), {pb.TASK_STATE_SUCCESS})
        self._add(args(task_type="fail", labels={"team": "a"}), {pb.TASK_STATE_FAILURE})
        gates.open("chatty")
        chatty = args(task_type="chatty", labels={"log": "yes"})
        chatty.args.update({"name": "chatty", "lines": 6})
        logged = self._add(chatty, {pb.TASK_STATE_SUCCESS})
        held = args(task_type="gate", labels={"live": "yes"})
        held.args.update({"name": "held"})
        self._add(held, {pb.TASK_STATE_RUNNING}).live = True
        revoked = args(task_type="gate")
        revoked.args.update({"name": "revoked"})
        victim = self._add(revoked, {pb.TASK_STATE_RUNNING})
        self.stub.Stop(pb.StopRequest(task_id=victim.task_id, reason="set-up"), timeout=10)
        task = wait_for_state(self.stub, victim.task_id, {pb.TASK_STATE_REVOKED})
        victim.state, victim.error_message = task.state, task.error.message
        self._add(args(task_type="echo", task_id="client.chosen:id-1", priority=-5), {pb.TASK_STATE_SUCCESS})
        logged.log = b"".join(f"line {i}\n".encode() for i in range(6))  # what chatty writes with ctx.log()
        for known in self.known.values():
            self._learn_sequence(known)
        listed = self.stub.ListTasks(pb.ListTasksRequest(), timeout=10)
        self.set_up_tasks = len(self.known)
        newest_first = sorted(self.known.values(), key=lambda k: -k.seq)
        assert [t.task_id for t in listed.tasks] == [k.task_id for k in newest_first]

    def add_stoppable(self, name: str) -> Known:
        """A fresh RUNNING gate task for a Stop to hit (its gate never opens)."""
        request = pb.SubmitRequest(task_type="gate")
        request.args.update({"name": name})
        known = self._add(request, {pb.TASK_STATE_RUNNING})
        known.stoppable = True
        self._learn_sequence(known)
        return known

    @property
    def finished(self) -> list[Known]:
        return [k for k in self.known.values() if k.state in TERMINAL]

    def ids(self, *, for_stop: bool = False) -> list[str]:
        """Ids of the tasks made at set-up (a fixed list, so that hypothesis draws stay reproducible); never
        the held task for a Stop (it must stay RUNNING)."""
        return [k.task_id for k in self.known.values() if k.seq <= self.set_up_tasks and not (for_stop and k.live)]

    # ------------------------------------------------------------------ checking

    def check(self, method: str, data: bytes) -> Outcome:
        """Send one request; assert the code, the answer, the store and the server's health."""
        before = self.server.count()
        plan = self.plan(method, data)
        outcome = send(self.server.channel, method, data, timeout=plan.timeout, max_responses=plan.max_responses)
        TALLY[(method, outcome.code.name)] += 1

        def context() -> str:  # only on failure: formatting a 16 MiB request takes a while
            return f"{method} {shown(data, method)} -> {outcome.code.name}: {outcome.details[:400]!r} ({plan.why})"

        open_stream = plan.open_without_events and outcome.code == Code.DEADLINE_EXCEEDED and not outcome.responses
        if not open_stream and outcome.code not in plan.codes:
            raise AssertionError(f"expected {sorted(c.name for c in plan.codes)}: {context()}")
        if outcome.code == Code.OK and plan.verify is not None:
            try:
                plan.verify(outcome)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\nwhile checking {context()}") from None
        if plan.after is not None:
            plan.after(outcome)
        stored = plan.stored if outcome.code == Code.OK else 0
        if self.server.count() != before + stored:
            raise AssertionError(f"the store went from {before} to {self.server.count()} tasks: {context()}")
        self.server.assert_healthy()
        return outcome

    def plan(self, method: str, data: bytes) -> Plan:
        if len(data) > MAX_MESSAGE_BYTES:
            return Plan({Code.RESOURCE_EXHAUSTED}, f"{len(data)} bytes is over the {MAX_MESSAGE_BYTES} limit")
        request_type = REQUEST_TYPES[method]
        try:
            request = request_type.FromString(data)
        except DecodeError:
            name = request_type.DESCRIPTOR.full_name
            plan = Plan({Code.INVALID_ARGUMENT}, "the bytes are not a valid request")
            plan.after = lambda outcome: _assert_in(f"not a valid {name}", outcome.details)
            return plan
        if method == "Submit":
            return self._plan_Submit(request, data)
        return getattr(self, f"_plan_{method}")(request)

    # ------------------------------------------------------------------ per method

    def _id_plan(self, task_id: str) -> Plan | Known:
        if not is_valid_id(task_id):
            return Plan({Code.INVALID_ARGUMENT}, "invalid task id")
        known = self.known.get(task_id)
        if known is None:
            return Plan({Code.NOT_FOUND}, "well-formed unknown id")
        return known

    def _plan_GetState(self, request: pb.GetStateRequest) -> Plan:
        target = self._id_plan(request.task_id)
        if isinstance(target, Plan):
            return target

        def verify(outcome: Outcome) -> None:
            task = pb.GetStateResponse.FromString(outcome.responses[0]).task
            assert (task.task_id, task.task_type) == (target.task_id, target.task_type)
            assert task.state == target.state, pb.TaskState.Name(task.state)
            assert dict(task.labels) == target.labels

        return Plan({Code.OK}, "known task", verify=verify)

    def _plan_Stop(self, request: pb.StopRequest) -> Plan:
        target = self._id_plan(request.task_id)
        if isinstance(target, Plan):
            return target
        if not target.stoppable:

            def unchanged(outcome: Outcome) -> None:
                task = pb.StopResponse.FromString(outcome.responses[0]).task
                assert task.task_id == target.task_id
                assert task.state == target.state, f"{pb.TaskState.Name(task.state)}: a finished task changed"
                assert task.error.message == target.error_message

            return Plan({Code.OK}, "a finished task comes back unchanged", verify=unchanged)
        reason = request.reason[:MAX_STOP_REASON]
        expected_message = f"stopped by a client: {reason}" if reason else "stopped by a client"

        def stopping(outcome: Outcome) -> None:
            task = pb.StopResponse.FromString(outcome.responses[0]).task
            assert task.state in (pb.TASK_STATE_STOPPING, pb.TASK_STATE_REVOKED), pb.TaskState.Name(task.state)

        def revoked(outcome: Outcome) -> None:
            if outcome.code != Code.OK:
                return
            task = wait_for_state(self.stub, target.task_id, {pb.TASK_STATE_REVOKED})
            assert task.error.message == expected_message, (task.error.message[:200], expected_message[:200])
            target.state, target.error_message, target.stoppable = task.state, task.error.message, False

        return Plan({Code.OK}, "a RUNNING task stops", verify=stopping, after=revoked)

    def _plan_WatchProgress(self, request: pb.WatchProgressRequest) -> Plan:
        target = self._id_plan(request.task_id)
        if isinstance(target, Plan):
            return target
        after = request.after_sequence
        latest = target.sequence

        def events(outcome: Outcome) -> list[pb.WatchProgressResponse]:
            parsed = [pb.WatchProgressResponse.FromString(data) for data in outcome.responses]
            assert all(e.task_id == target.task_id for e in parsed)
            sequences = [e.sequence for e in parsed]
            assert sequences == sorted(set(sequences)), f"sequences do not only grow: {sequences}"
            return parsed

        if after > latest:
            return Plan({Code.OUT_OF_RANGE}, f"after_sequence {after} is past the latest event {latest}")
        if target.state in TERMINAL and after == latest:
            # A watcher that got the terminal event but lost the stream's end resumes here: nothing more, OK.
            return Plan({Code.OK}, "nothing after the terminal event", verify=_no_events)
        if after and (target.followed_from is None or after < target.followed_from):
            return Plan({Code.OUT_OF_RANGE}, "events from before anyone watched the task are not kept")
        if target.state in TERMINAL:

            def ends_terminal(outcome: Outcome) -> None:
                parsed = events(outcome)
                assert parsed, "no event"
                assert (parsed[-1].state, parsed[-1].sequence) == (target.state, latest)
                assert all(e.sequence > after for e in parsed)
                if after == 0:
                    assert len(parsed) == 1 and parsed[0].task.task_id == target.task_id, "one terminal snapshot"

            return Plan({Code.OK}, "finished task", verify=ends_terminal)
        if after == latest:
            # Nothing to replay; the stream waits for the next event, which never comes while the gate is shut.
            return Plan(set(), "live task, nothing newer", timeout=0.3, open_without_events=True)

        def first_event(outcome: Outcome) -> None:
            parsed = events(outcome)
            assert outcome.cancelled_open and len(parsed) == 1
            assert parsed[0].sequence > after
            if after == 0:
                assert (parsed[0].state, parsed[0].sequence) == (target.state, latest), "snapshot of now"

        return Plan({Code.OK}, "live task", verify=first_event, max_responses=1, timeout=10)

    def _plan_WatchLogs(self, request: pb.WatchLogsRequest) -> Plan:
        target = self._id_plan(request.task_id)
        if isinstance(target, Plan):
            return target
        log = target.log or b""
        offset = request.offset
        if target.live and request.follow:
            return Plan(set(), "following a live task without output", timeout=0.3, open_without_events=True)

        def the_log_from_offset(outcome: Outcome) -> None:
            chunks = [pb.WatchLogsResponse.FromString(data) for data in outcome.responses]
            position = offset
            for chunk in chunks:
                assert chunk.task_id == target.task_id
                assert chunk.offset == position, (chunk.offset, position)
                assert chunk.data, "an empty chunk"
                position += len(chunk.data)
            assert b"".join(c.data for c in chunks) == log[offset:]

        return Plan({Code.OK}, f"a log of {len(log)} bytes from {offset}", verify=the_log_from_offset)

    def _plan_ListTasks(self, request: pb.ListTasksRequest) -> Plan:
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            return Plan({Code.INVALID_ARGUMENT}, "page_size out of range")
        bad_states = [s for s in request.states if s not in STATES]
        if bad_states:
            return Plan({Code.INVALID_ARGUMENT}, f"no such states {bad_states[:5]}")
        before = page_token_seq(request.page_token) if request.page_token else None
        if before is False or (before is not None and not -(2**63) <= before < 2**63):
            return Plan({Code.INVALID_ARGUMENT}, "a page token this server never gave out (or a seq beyond int64)")
        size = request.page_size or DEFAULT_PAGE_SIZE
        states = set(request.states)
        labels = dict(request.labels)

        def matches(known: Known) -> bool:
            return (
                (before is None or known.seq < before)
                and (not states or known.state in states)
                and (not request.task_type or known.task_type == request.task_type)
                and all(known.labels.get(key) == value for key, value in labels.items())
            )

        def the_page(outcome: Outcome) -> None:
            response = pb.ListTasksResponse.FromString(outcome.responses[0])
            assert len(response.tasks) <= size
            for task in response.tasks:
                assert not states or task.state in states
                assert not request.task_type or task.task_type == request.task_type
                assert all(task.labels.get(key) == value for key, value in labels.items())
            if self.exact_listing:
                expected = [k for k in sorted(self.known.values(), key=lambda k: -k.seq) if matches(k)]
                assert [t.task_id for t in response.tasks] == [k.task_id for k in expected[:size]]
                assert bool(response.next_page_token) == (len(expected) > size)

        return Plan({Code.OK}, f"a page of up to {size} tasks", verify=the_page)

    def _plan_Submit(self, request: pb.SubmitRequest, data: bytes) -> Plan:
        invalid: list[str] = []  # reasons the contract says INVALID_ARGUMENT
        unsure: list[str] = []  # reasons the contract leaves open (OK or INVALID_ARGUMENT)
        args = from_struct(request.args)
        if request.task_type not in self.server.task_types:
            invalid.append(f"task type {request.task_type[:40]!r} is not registered")
        if has_non_finite(args):
            invalid.append("NaN or an infinity in args")
        elif json_size(args) > MAX_ARGS_BYTES:
            invalid.append(f"args are {json_size(args)} bytes of JSON")
        if request.task_type == "echo":
            invalid += [f"unknown arg {key[:40]!r}" for key in args if key != "value"]
        elif request.task_type == "typed":
            invalid += typed_problems(args)
        elif request.task_type in self.server.task_types:
            unsure.append(f"args of {request.task_type!r} are not modelled")
        if request.task_id and not is_valid_id(request.task_id):
            invalid.append("invalid task id")
        limit: float | None = None
        if request.HasField("time_limit"):
            verdict, limit = time_limit_verdict(request.time_limit.seconds, request.time_limit.nanos)
            if verdict == "invalid":
                invalid.append(f"time limit of {limit} s")
            elif verdict == "unsure":
                unsure.append(f"time limit of {limit} s (an unnormalised Duration, or at the 366-day bound)")
        if len(request.labels) > MAX_LABELS:
            invalid.append(f"{len(request.labels)} labels")
        for key, value in request.labels.items():
            if not key or len(key) > MAX_LABEL_KEY or len(value) > MAX_LABEL_VALUE:
                invalid.append(f"label {key[:20]!r}: key of {len(key)}, value of {len(value)} characters")
        if label_bytes(dict(request.labels)) > MAX_LABELS_BYTES:
            invalid.append(f"labels of {label_bytes(dict(request.labels))} bytes")
        if invalid:
            plan = Plan({Code.INVALID_ARGUMENT}, "; ".join(invalid[:5]))
            plan.after = lambda outcome: self._nothing_stored(request.task_id)
            return plan
        # Integral numbers compare equal whatever their Python type, as the server compares requests.
        asked = (request.task_type, args, limit, request.priority, dict(request.labels))
        existing = self.known.get(request.task_id) if request.task_id else None
        codes = {Code.OK, Code.INVALID_ARGUMENT} if unsure else {Code.OK}
        if existing is not None:
            if existing.request is None or existing.request != asked:
                codes = (codes - {Code.OK}) | {Code.ALREADY_EXISTS}
                return Plan(codes, "the id is taken by a different request")
            return Plan(codes, "the same request again", verify=lambda outcome: self._verify_submit(
                request, args, limit, outcome, created=False))  # fmt: skip
        plan = Plan(codes, "; ".join(unsure) or "a valid request", stored=1)
        plan.verify = lambda outcome: self._verify_submit(
            request, args, limit, outcome, created=True, asked=asked, payload=data
        )
        plan.after = lambda outcome: None if outcome.code == Code.OK else self._nothing_stored(request.task_id)
        return plan

    def _plan_SubmitBatch(self, request: pb.SubmitBatchRequest) -> Plan:
        count = len(request.requests)
        if count > MAX_BATCH:
            return Plan({Code.INVALID_ARGUMENT}, f"{count} requests, more than {MAX_BATCH}")
        plan = Plan({Code.OK}, f"a batch of {count}")

        def each_as_submit(outcome: Outcome) -> None:
            """Every result is what Submit would have answered, taking the requests in order."""
            response = pb.SubmitBatchResponse.FromString(outcome.responses[0])
            assert len(response.results) == count, f"{len(response.results)} results for {count} requests"
            plan.stored = 0
            for index, (item, result) in enumerate(zip(request.requests, response.results, strict=True)):
                expected = self._plan_Submit(item, item.SerializeToString())
                code = CODE_BY_NUMBER.get(result.error_code)
                where = f"requests[{index}] -> {code} {result.error_message[:200]!r} ({expected.why})"
                assert code in expected.codes, f"expected {sorted(c.name for c in expected.codes)}: {where}"
                if code != Code.OK:
                    assert result.error_message and not result.HasField("task"), where
                    continue
                if expected.verify is not None:
                    single = pb.SubmitResponse(task=result.task, created=result.created).SerializeToString()
                    expected.verify(Outcome(Code.OK, "", [single]))
                plan.stored += int(result.created)

        plan.verify = each_as_submit
        return plan

    def _nothing_stored(self, task_id: str) -> None:
        if is_valid_id(task_id) and task_id not in self.known:
            with_id = pb.GetStateRequest(task_id=task_id).SerializeToString()
            code = send(self.server.channel, "GetState", with_id, timeout=10).code
            assert code == Code.NOT_FOUND, f"a rejected Submit left task {task_id!r} behind ({code.name})"

    def _verify_submit(
        self,
        request: pb.SubmitRequest,
        args: dict[str, Any],
        limit: float | None,
        outcome: Outcome,
        *,
        created: bool,
        asked: tuple[Any, ...] | None = None,
        payload: bytes = b"",
    ) -> None:
        response = pb.SubmitResponse.FromString(outcome.responses[0])
        task = response.task
        known: Known | None = None
        if created and response.created and task.task_id not in self.known:
            # Recorded before any check, so that hypothesis's replays of a failing example meet a world that
            # knows everything the server accepted.
            known = Known(task.task_id, request.task_type, self.next_seq, labels=dict(request.labels), request=asked)
            known.payload = payload
            self.next_seq += 1
            self.known[known.task_id] = known
            if request.task_type not in ("echo", "typed"):
                self.exact_listing = False  # its state is not modelled
        assert response.created is created
        if request.task_id:
            assert task.task_id == request.task_id
        else:
            assert is_valid_id(task.task_id) and known is not None, f"{task.task_id!r} is not a new, valid id"
        assert task.task_type == request.task_type
        assert dict(task.labels) == dict(request.labels)
        assert task.priority == request.priority
        if limit is None:
            assert not task.HasField("time_limit")
        else:
            got = task.time_limit.seconds + task.time_limit.nanos / 1e9
            assert math.isclose(got, limit, rel_tol=1e-9, abs_tol=2e-9), (got, limit)
        if request.task_type == "echo":
            assert task.args == request.args
        if known is None or request.task_type not in ("echo", "typed"):
            return
        # It runs: an echo returns its value, `typed` its normalised args; a tiny time limit may win the race.
        ends = {pb.TASK_STATE_SUCCESS} | ({pb.TASK_STATE_TIMED_OUT} if limit is not None and limit < 5 else set())
        final = wait_for_state(self.stub, task.task_id, TERMINAL)
        assert final.state in ends, f"{pb.TaskState.Name(final.state)}: {final.error.message[:300]}"
        known.state, known.error_message = final.state, final.error.message
        self._learn_sequence(known)
        if final.state == pb.TASK_STATE_SUCCESS:
            assert from_value(final.result) == expected_result(request.task_type, args)


def _assert_in(needle: str, haystack: str) -> None:
    assert needle in haystack, f"{needle!r} not in {haystack[:300]!r}"


def page_token_seq(token: str) -> int | bool:
    """The seq a page token stands for; False when it is not in the server's token format."""
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if text.startswith("before:"):
            return int(text[len("before:") :])
    except (binascii.Error, UnicodeError, ValueError):
        pass
    return False


def _no_events(outcome: Outcome) -> None:
    assert outcome.responses == [], f"{len(outcome.responses)} events after the terminal one"


def time_limit_verdict(seconds: int, nanos: int) -> tuple[str, float]:
    """'ok', 'invalid' or 'unsure' for a Duration, and its value in seconds.

    A Duration whose nanos are out of range or of the other sign than its seconds is not a valid Duration; the
    contract does not say whether the server must refuse it or may read it as seconds + nanos / 1e9.
    """
    value = Fraction(seconds) + Fraction(nanos, 10**9)
    if value <= 0 or value > MAX_TIME_LIMIT + 1:
        return "invalid", float(value)
    normal = abs(nanos) < 10**9 and (seconds == 0 or nanos == 0 or (seconds > 0) == (nanos > 0))
    if not normal or abs(value - MAX_TIME_LIMIT) <= 1:
        return "unsure", float(value)
    return ("ok" if value <= MAX_TIME_LIMIT else "invalid"), float(value)


def _integer_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, float):
        return f"{type(value).__name__} is not an integer"
    if not math.isfinite(value) or value != int(value) or abs(value) > MAX_SAFE_INTEGER:
        return f"{value} is not an exact integer"
    return None


TYPED_PARAMS = {"i", "f", "s", "b", "items", "options"}


def typed_problems(args: dict[str, Any]) -> list[str]:
    """Why args do not fit `typed(i: int, f: float = 0.0, s: str = "", b: bool = False, items: list[int] | None,
    options: dict | None)`, a test task type."""
    problems = [f"unknown arg {key[:20]!r}" for key in args if key not in TYPED_PARAMS]
    if "i" not in args:
        problems.append("i is missing")
    elif (problem := _integer_problem(args["i"])) is not None:
        problems.append(f"i: {problem}")
    if "f" in args and (isinstance(args["f"], bool) or not isinstance(args["f"], float)):
        problems.append("f is not a number")
    if "s" in args and not isinstance(args["s"], str):
        problems.append("s is not a string")
    if "b" in args and not isinstance(args["b"], bool):
        problems.append("b is not a boolean")
    items = args.get("items")
    if items is not None and (not isinstance(items, list) or any(_integer_problem(x) for x in items)):
        problems.append("items is not a list of integers")
    options = args.get("options")
    if options is not None and not isinstance(options, dict):
        problems.append("options is not an object")
    return problems


def expected_result(task_type: str, args: dict[str, Any]) -> Any:
    if task_type == "echo":
        return args.get("value")
    return {
        "i": args["i"],
        "f": args.get("f", 0.0),
        "s": args.get("s", ""),
        "b": args.get("b", False),
        "items": args.get("items"),
        "options": args.get("options"),
    }
