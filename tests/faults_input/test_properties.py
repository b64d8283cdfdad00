"""Hostile input to every TaskService method: the answer is the contract's code, and the server does not care.

Every request message gets well-typed but hostile values (huge and odd unicode, every kind of bad task id,
deep and huge args with NaN and infinities, out-of-range Durations, unknown enum values, garbage page tokens,
huge label maps, sequence numbers and offsets near 2**64); every method also gets raw garbage bytes, and the TCP
port gets junk from other sockets while a normal client works. oracle.World decides what each answer must be
and checks that the server stays SERVING and stores nothing a rejected call asked for.

The tests at the end pin bugs this suite found (fixed in c13734e) as plain regression tests.
"""

from __future__ import annotations

import base64
import math
import random
import socket
import string
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.faults_input.harness import BackgroundServer, wait_for_state
from tests.faults_input.oracle import ID_CHARS, MAX_MESSAGE_BYTES, TALLY, World, send
from tests.faults_input.wire import length_delimited, struct_bytes, value_bytes, varint, varint_field
from tests.grpc.helpers import TERMINAL

Code = grpc.StatusCode

# Bounded, reproducible runs: the same examples on every machine, no example database.
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with BackgroundServer(tmp_path) as server:
        yield World(server)


# ---------------------------------------------------------------------------------------------- strategies


def repeated(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


SPECIAL_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\n",
    "x\n",
    "\r\n",
    "é",
    "😀",
    "\u202e",
    "\ufeff",
    "\U0010ffff",
    "-rf",
    "../..",
    "%s%n",
    "' OR 1=1 --",
    "NaN",
    "null",
]
small_text = st.one_of(st.sampled_from(SPECIAL_TEXT), st.text(max_size=24))
# 129 and 1025 sit just past the id and label limits; the rest are 100 KB and more.
huge_text = st.builds(repeated, st.text(min_size=1, max_size=3), st.sampled_from([129, 1025, 100_000, 250_000]))
hostile_text = st.one_of(small_text, small_text, huge_text)

ID_ALPHABET = sorted(ID_CHARS)
valid_ids = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=128)
invalid_ids = st.one_of(
    st.just(""),
    st.text(alphabet=ID_ALPHABET, min_size=129, max_size=160),
    st.builds(repeated, st.sampled_from(ID_ALPHABET), st.sampled_from([129, 100_000])),
    st.builds(
        lambda head, bad, tail: head + bad + tail,
        st.text(alphabet=ID_ALPHABET, max_size=8),
        st.text(min_size=1, max_size=3).filter(lambda s: any(c not in ID_CHARS for c in s)),
        st.text(alphabet=ID_ALPHABET, max_size=8),
    ),
    st.sampled_from(["id\n", "\nid", " id", "id ", "a/b", "a\x00b", "ümlaut", "😀", "a b", "id\r\n", "\x00", "*"]),
    huge_text.filter(lambda s: any(c not in ID_CHARS for c in s)),
)

SPECIAL_NUMBERS = [
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    0.0,
    5e-324,
    1.7976931348623157e308,
    2.0**53,
    2.0**53 + 2,
    -(2.0**63),
    1e300,
    0.5,
    10.0,
    10.5,
    -1.0,
]
numbers = st.one_of(st.sampled_from(SPECIAL_NUMBERS), st.floats(), st.integers(-(2**60), 2**60).map(float))
leaves = st.one_of(st.none(), st.booleans(), numbers, small_text)
trees = st.recursive(
    leaves, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(small_text, kids, max_size=4), max_leaves=12
)


@st.composite
def deep_trees(draw: st.DrawFn) -> Any:
    """A value nested 1-80 lists/objects deep: past the protobuf parser's limit (about 33 objects or 49 lists)."""
    kinds = draw(st.lists(st.sampled_from("ls"), min_size=1, max_size=80))
    key = draw(st.sampled_from(["", "a", "\x00", "ключ"]))
    value = draw(leaves)
    for kind in kinds:
        value = [value] if kind == "l" else {key: value}
    return value


finite_numbers = st.one_of(
    st.sampled_from([n for n in SPECIAL_NUMBERS if math.isfinite(n)]), st.floats(allow_nan=False, allow_infinity=False)
)
finite_trees = st.recursive(
    st.one_of(st.none(), st.booleans(), finite_numbers, small_text),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(small_text, kids, max_size=4),
    max_leaves=12,
)
valid_echo_args = st.one_of(st.just({}), st.builds(lambda v: {"value": v}, finite_trees))
valid_typed_args = st.fixed_dictionaries(
    {"i": st.integers(-(2**53), 2**53).map(float)},
    optional={
        "f": finite_numbers,
        "s": small_text,
        "b": st.booleans(),
        "items": st.one_of(st.none(), st.lists(st.integers(-(2**53), 2**53).map(float), max_size=4)),
        "options": st.one_of(st.none(), st.dictionaries(small_text, finite_trees, max_size=3)),
    },
)


@st.composite
def non_finite_inside(draw: st.DrawFn, tree: Any) -> Any:
    """`tree` with one number somewhere in it (or the whole value) replaced by NaN or an infinity."""
    bad = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    if isinstance(tree, list) and tree and draw(st.booleans()):
        index = draw(st.integers(0, len(tree) - 1))
        return [*tree[:index], draw(non_finite_inside(tree[index])), *tree[index + 1 :]]
    if isinstance(tree, dict) and tree and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(tree)))
        return {**tree, key: draw(non_finite_inside(tree[key]))}
    if isinstance(tree, list):
        return [*tree, bad]
    if isinstance(tree, dict):
        return {**tree, draw(small_text): bad}
    return bad


echo_args = st.one_of(
    st.builds(lambda v: {"value": v}, trees),
    st.builds(lambda v: {"value": v}, finite_trees.flatmap(non_finite_inside)),
    st.builds(lambda v: {"value": v}, finite_trees.flatmap(non_finite_inside)),
    st.builds(lambda v: {"value": v}, deep_trees()),
    st.just({}),
    st.dictionaries(small_text, trees, min_size=1, max_size=3),
    # Around the 1 MiB JSON limit ({"value":"..."} is 12 bytes more than the string; \u escapes are 6 or 12).
    st.builds(
        lambda unit, n: {"value": repeated(unit, n)},
        st.sampled_from(["x", "é", "😀", "\x00", "ab"]),
        st.sampled_from([100_000, 174_760, 1_048_564, 1_048_565]),
    ),
    st.builds(lambda n: {f"k{i}": float(i) for i in range(n)}, st.sampled_from([1000, 20_000])),
)
valid_labels = st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=6)
int_like = st.one_of(st.integers(-(2**53), 2**53).map(float), numbers, st.booleans(), small_text, st.none(), trees)
typed_args = st.builds(
    lambda known, unknown: {**known, **unknown},
    st.fixed_dictionaries(
        {},
        optional={
            "i": int_like,
            "f": st.one_of(numbers, st.booleans(), small_text),
            "s": st.one_of(small_text, numbers, st.none()),
            "b": st.one_of(st.booleans(), numbers),
            "items": st.one_of(st.none(), st.lists(int_like, max_size=4), trees),
            "options": st.one_of(st.none(), trees),
        },
    ),
    st.one_of(st.just({}), st.just({}), st.dictionaries(small_text, trees, max_size=2)),
)
durations = st.one_of(
    st.none(),
    st.tuples(st.integers(0, 3600), st.integers(0, 999_999_999)),
    st.tuples(st.integers(-315_576_000_000, 315_576_000_000), st.integers(-999_999_999, 999_999_999)),
    st.tuples(
        st.sampled_from([0, 1, -1, 31_622_399, 31_622_400, 31_622_401, 315_576_000_000, -315_576_000_000, 2**63 - 1]),
        st.sampled_from([0, 1, -1, 999_999_999, -999_999_999, 1_000_000_000, 2**31 - 1, -(2**31)]),
    ),
)
valid_durations = st.one_of(st.none(), st.tuples(st.integers(5, 3600), st.integers(0, 999_999_999)))
label_text = st.one_of(
    small_text, st.builds(repeated, st.sampled_from(["k", "é", "\x00"]), st.sampled_from([128, 129, 1024, 1025]))
)
label_maps = st.one_of(
    st.just({}),
    st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=6),
    st.dictionaries(label_text, label_text, max_size=4),
    st.builds(
        lambda n, v: {f"k{i}": v for i in range(n)}, st.sampled_from([64, 65, 1000, 10_000]), st.text(max_size=3)
    ),
    st.builds(lambda v: {"big": v}, st.builds(repeated, st.text(min_size=1, max_size=2), st.just(100_000))),
)
after_sequences = st.one_of(
    st.integers(0, 8), st.sampled_from([2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1]), st.integers(0, 2**64 - 1)
)


def b64(text: str | bytes) -> str:
    return base64.urlsafe_b64encode(text.encode() if isinstance(text, str) else text).decode()


page_tokens = st.one_of(
    st.just(""),
    small_text,
    huge_text,
    st.builds(lambda n: b64(f"before:{n}"), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda n: b64(f"before:{n}"), st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1, 10**30])),
    st.builds(lambda n: b64(f"before:{n}"), st.integers(0, 10)),
    st.builds(lambda s: b64("before:" + s), st.text(max_size=8)),
    st.builds(b64, st.binary(max_size=30)),
    st.builds(lambda s: s + "=", st.text(alphabet=string.ascii_letters + "-_", max_size=20)),
)


def submit_bytes(
    task_type: str,
    args: dict[str, Any],
    task_id: str,
    duration: tuple[int, int] | None,
    priority: int,
    labels: dict[str, str],
) -> bytes:
    """A SubmitRequest whose args are written by hand (any depth, any number)."""
    message = pb.SubmitRequest(task_type=task_type, task_id=task_id, priority=priority, labels=labels)
    if duration is not None:
        message.time_limit.seconds, message.time_limit.nanos = duration
    return message.SerializeToString() + length_delimited(2, struct_bytes(args))


SUBMIT_FIELDS = ("task_type", "args", "task_id", "time_limit", "priority", "labels")


class Wire(bytes):
    """Request bytes whose repr stays short (hypothesis prints what it drew; these can be 16 MiB)."""

    def __repr__(self) -> str:
        return f"Wire({bytes(self[:120])!r}{'...' if len(self) > 120 else ''}, {len(self)} bytes)"


@st.composite
def submit_requests(draw: st.DrawFn, world: World, primary: str) -> Wire:
    """A Submit whose `primary` field is hostile, often alone (so each rule is met on its own), the others valid."""
    hostile = {primary} | draw(st.sets(st.sampled_from(SUBMIT_FIELDS), max_size=1), label="another hostile field")
    task_type = draw(hostile_text if "task_type" in hostile else st.sampled_from(["echo", "echo", "typed"]))
    if task_type == "typed":
        args = draw(typed_args if "args" in hostile else valid_typed_args)
    else:
        args = draw(echo_args if "args" in hostile else valid_echo_args)
    if "task_id" in hostile:
        task_id = draw(st.one_of(invalid_ids, st.sampled_from(world.ids())))
    else:
        task_id = draw(st.one_of(st.just(""), valid_ids))
    duration = draw(durations if "time_limit" in hostile else valid_durations)
    priority = draw(st.integers(-(2**31), 2**31 - 1) if "priority" in hostile else st.just(0))
    labels = draw(label_maps if "labels" in hostile else valid_labels)
    return Wire(submit_bytes(task_type, args, task_id, duration, priority, labels))


def ids_for(world: World, *, for_stop: bool = False) -> st.SearchStrategy[str]:
    return st.one_of(invalid_ids, valid_ids, st.sampled_from(world.ids(for_stop=for_stop)))


# ---------------------------------------------------------------------------------------------- typed requests


@PROPERTY
@given(data=st.data())
def test_get_state_of_any_id(world: World, data: st.DataObject) -> None:
    task_id = data.draw(ids_for(world), label="task_id")
    world.check("GetState", pb.GetStateRequest(task_id=task_id).SerializeToString())


@settings(PROPERTY, max_examples=100)
@given(data=st.data())
def test_stop_with_any_id_and_reason(world: World, data: st.DataObject) -> None:
    target = data.draw(st.one_of(ids_for(world, for_stop=True), st.none()), label="target (None: a fresh RUNNING task)")
    if target is None:
        target = world.add_stoppable(f"stop-{len(world.known)}").task_id
    reason = data.draw(hostile_text, label="reason")
    world.check("Stop", pb.StopRequest(task_id=target, reason=reason).SerializeToString())


@settings(PROPERTY, max_examples=200)
@given(data=st.data())
def test_watch_progress_of_any_id_after_any_sequence(world: World, data: st.DataObject) -> None:
    task_id = data.draw(ids_for(world), label="task_id")
    after = data.draw(after_sequences, label="after_sequence")
    world.check("WatchProgress", pb.WatchProgressRequest(task_id=task_id, after_sequence=after).SerializeToString())


@PROPERTY
@given(data=st.data())
def test_watch_logs_of_any_id_from_any_offset(world: World, data: st.DataObject) -> None:
    task_id = data.draw(ids_for(world), label="task_id")
    known = world.known.get(task_id)
    if known is not None and known.log is not None:
        size = len(known.log)
        offsets = st.one_of(st.sampled_from([0, 1, size - 1, size, size + 1]), st.integers(0, 2**40))
    else:
        offsets = st.just(0)
    offsets = st.one_of(offsets, st.integers(0, 2**64 - 1), st.sampled_from([2**44, 2**63 - 1, 2**63, 2**64 - 1]))
    offset = data.draw(offsets, label="offset")
    follow = data.draw(st.booleans(), label="follow")
    request = pb.WatchLogsRequest(task_id=task_id, offset=offset, follow=follow)
    world.check("WatchLogs", request.SerializeToString())


@settings(PROPERTY, max_examples=200)
@given(data=st.data())
def test_list_tasks_with_any_filter_and_page(world: World, data: st.DataObject) -> None:
    page_size = data.draw(
        st.one_of(st.sampled_from([0, 1, 2, 5, 1000, 1001, -1, 2**31 - 1, -(2**31)]), st.integers(-(2**31), 2**31 - 1)),
        label="page_size",
    )
    states = data.draw(
        st.one_of(
            st.lists(st.integers(1, 8), max_size=3),
            st.lists(st.one_of(st.integers(0, 9), st.sampled_from([-1, 100, 2**31 - 1, -(2**31)])), max_size=4),
            st.builds(lambda n: list(range(1, 9)) * n, st.sampled_from([1, 10_000])),
        ),
        label="states",
    )
    task_type = data.draw(st.one_of(st.just(""), st.sampled_from(["echo", "gate", "fail"]), hostile_text))
    labels = data.draw(
        st.one_of(
            st.just({}),
            st.sampled_from([{"team": "a"}, {"team": "b"}, {"k\x00ey": "v\x00al"}, {"team": "a", "live": "yes"}]),
            st.dictionaries(label_text, label_text, max_size=4),
            st.builds(lambda n: {f"k{i}": "v" for i in range(n)}, st.sampled_from([64, 65, 1000, 5000])),
        ),
        label="labels",
    )
    token = data.draw(page_tokens, label="page_token")
    request = pb.ListTasksRequest(page_size=page_size, page_token=token, task_type=task_type, labels=labels)
    request.states.extend(states)  # type: ignore[arg-type]  # unknown enum numbers on purpose
    world.check("ListTasks", request.SerializeToString())


@pytest.mark.parametrize("primary", SUBMIT_FIELDS)
@settings(PROPERTY, max_examples=60)
@given(data=st.data())
def test_submit_anything(world: World, primary: str, data: st.DataObject) -> None:
    resend = [k for k in world.known.values() if k.payload and k.request is not None]
    if resend and data.draw(st.integers(0, 9), label="resend?") == 0:
        # An id in use, with the same request again (created=false) or another priority (ALREADY_EXISTS); a
        # later field overrides an earlier one on the wire.
        known = resend[data.draw(st.integers(0, 2**16), label="resent") % len(resend)]
        priority = known.request[3]  # type: ignore[index]
        payload = known.payload + length_delimited(3, known.task_id.encode())
        if data.draw(st.booleans(), label="other priority"):
            payload += varint_field(5, priority ^ 1)
    else:
        payload = data.draw(submit_requests(world, primary), label="request")
    world.check("Submit", payload)


@st.composite
def batches(draw: st.DrawFn, world: World) -> Wire:
    """0-4 hostile Submits in one SubmitBatch; some repeat an earlier item, as is or with another priority."""
    items: list[bytes] = []
    for _ in range(draw(st.integers(0, 4), label="batch size")):
        if items and draw(st.integers(0, 3)) == 0:
            earlier = items[draw(st.integers(0, len(items) - 1))]
            items.append(earlier + (varint_field(5, 7) if draw(st.booleans()) else b""))
        else:
            primary = draw(st.sampled_from(SUBMIT_FIELDS))
            items.append(draw(submit_requests(world, primary)))
    return Wire(b"".join(length_delimited(1, item) for item in items))


@settings(PROPERTY, max_examples=80)
@given(data=st.data())
def test_submit_batch_of_anything(world: World, data: st.DataObject) -> None:
    world.check("SubmitBatch", data.draw(batches(world), label="batch"))


@pytest.mark.parametrize("count", [10_000, 10_001])
def test_submit_batch_at_its_size_limit(world: World, count: int) -> None:
    """10,000 requests: one result each (here all refused, nothing stored); 10,001: INVALID_ARGUMENT."""
    item = length_delimited(1, pb.SubmitRequest(task_type="no such type").SerializeToString())
    outcome = world.check("SubmitBatch", item * count)
    assert outcome.code == (Code.OK if count == 10_000 else Code.INVALID_ARGUMENT)


@pytest.mark.parametrize("extra", [-64, 1, 4_000_000], ids=["just-under", "one-byte-over", "4MB-over"])
def test_submit_at_the_message_size_limit(world: World, extra: int) -> None:
    """Just under 16 MiB: an answer about the args (too large); over it: RESOURCE_EXHAUSTED. Nothing stored."""
    target = MAX_MESSAGE_BYTES + extra
    filler = target
    for _ in range(3):  # the length prefixes grow with the filler: converge on the exact size
        payload = submit_bytes("echo", {"value": "x" * filler}, "size-limit", None, 0, {})
        filler += target - len(payload)
    assert len(payload) == target
    outcome = world.check("Submit", payload)
    assert outcome.code == (Code.INVALID_ARGUMENT if extra < 0 else Code.RESOURCE_EXHAUSTED)


# ---------------------------------------------------------------------------------------------- raw bytes

_SEED_SUBMIT = pb.SubmitRequest(task_type="echo", task_id="seed", labels={"a": "b"}).SerializeToString() + (
    length_delimited(2, struct_bytes({"value": [1.0, "x", None, {"k": True}]}))
)
SEED_MESSAGES = {
    "Submit": _SEED_SUBMIT,
    "SubmitBatch": length_delimited(1, _SEED_SUBMIT) + length_delimited(1, b"\x0a\x04echo"),
    "GetState": pb.GetStateRequest(task_id="seed").SerializeToString(),
    "Stop": pb.StopRequest(task_id="seed", reason="because").SerializeToString(),
    "WatchProgress": pb.WatchProgressRequest(task_id="seed", after_sequence=3).SerializeToString(),
    "ListTasks": pb.ListTasksRequest(page_size=3, states=[1, 2], labels={"a": "b"}).SerializeToString(),
    "WatchLogs": pb.WatchLogsRequest(task_id="seed", offset=7, follow=True).SerializeToString(),
}


def raw_payloads(method: str) -> st.SearchStrategy[bytes]:
    seed = SEED_MESSAGES[method]
    return st.one_of(
        st.binary(max_size=64),
        st.binary(min_size=64, max_size=4096),
        st.builds(lambda cut: seed[:cut], st.integers(0, len(seed) - 1)),  # truncated
        st.builds(lambda junk: seed + junk, st.binary(min_size=1, max_size=16)),
        st.builds(  # a field of the wrong wire type, or an end-group without a start
            lambda field, wire_type, payload: varint(field << 3 | wire_type) + payload,
            st.integers(1, 20),
            st.integers(0, 7),
            st.binary(max_size=12),
        ),
        st.builds(lambda n: length_delimited(1, b"\xff" * 4) + varint(0x7FFFFFFF) * n, st.integers(1, 3)),
        st.builds(  # a length prefix that promises more than there is
            lambda field, size: varint(field << 3 | 2) + varint(size) + b"abc", st.integers(1, 6), st.integers(4, 2**62)
        ),
        st.builds(  # invalid UTF-8 in a string field
            lambda junk: length_delimited(1, junk), st.binary(min_size=1, max_size=8).filter(_not_utf8)
        ),
        st.builds(lambda depth: length_delimited(2, nested_struct(depth)), st.sampled_from([40, 50, 200, 2000])),
    )


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False


def nested_struct(depth: int) -> bytes:
    """A Struct nested `depth` lists deep (the args of a Submit; other messages see an unknown field 2)."""
    value = value_bytes("x")
    for _ in range(depth):
        value = length_delimited(6, length_delimited(1, value))
    return struct_bytes({}) + length_delimited(1, length_delimited(1, b"v") + length_delimited(2, value))


@pytest.mark.parametrize("method", list(SEED_MESSAGES))
@settings(PROPERTY, max_examples=120)
@given(data=st.data())
def test_raw_garbage_bytes_as_the_request(world: World, method: str, data: st.DataObject) -> None:
    world.check(method, data.draw(raw_payloads(method).map(Wire), label="payload"))


# ---------------------------------------------------------------------------------------------- junk on the port


def _junk_payloads(rng: random.Random) -> Iterator[tuple[str, bytes]]:
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    settings_frame = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    while True:
        size = rng.choice([1, 7, 64, 1024, 65_536])
        noise = rng.randbytes(size)
        yield from [
            ("random", noise),
            ("http2 preface + random", preface + noise),
            ("http2 preface + settings + random frames", preface + settings_frame + noise),
            ("http1", b"GET /taskservice.v1.TaskService/GetState HTTP/1.1\r\nHost: x\r\n\r\n" + noise[:64]),
            ("preface cut", preface[: rng.randrange(1, len(preface))]),
            ("huge frame header", preface + settings_frame + b"\xff\xff\xff\x00\x00\x00\x00\x00\x01"),
            ("tls hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + noise[:32]),
        ]


def _blast(port: int, stop: threading.Event, rng: random.Random, sent: list[str]) -> None:
    payloads = _junk_payloads(rng)
    while not stop.is_set():
        name, payload = next(payloads)
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            if rng.random() < 0.3:  # end with a reset instead of a FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            try:
                sock.sendall(payload)
                if rng.random() < 0.5:
                    sock.settimeout(0.2)
                    sock.recv(1024)  # read what the server says (a GOAWAY), or time out
            except OSError:
                pass  # the server may close on us: that is its right
        sent.append(name)


def test_junk_on_the_port_does_not_disturb_a_working_client(tmp_path: Path) -> None:
    with BackgroundServer(tmp_path) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]  # open, say nothing
        stop = threading.Event()
        sent: list[str] = []
        blasters = [
            threading.Thread(target=_blast, args=(server.port, stop, random.Random(seed), sent), daemon=True)
            for seed in range(4)
        ]
        for blaster in blasters:
            blaster.start()
        try:
            stub = server.stub
            deadline = time.monotonic() + 3.0
            rounds = 0
            while time.monotonic() < deadline or rounds < 20:
                task = stub.Submit(pb.SubmitRequest(task_type="echo", args=_struct(value=rounds)), timeout=5).task
                events = list(stub.WatchProgress(pb.WatchProgressRequest(task_id=task.task_id), timeout=5))
                assert events[-1].state == pb.TASK_STATE_SUCCESS
                assert stub.GetState(pb.GetStateRequest(task_id=task.task_id), timeout=5).task.result.number_value == (
                    rounds
                )
                rounds += 1
        finally:
            stop.set()
            for blaster in blasters:
                blaster.join(timeout=10)
            for sock in idle:
                sock.close()
        assert len(sent) > 100, f"only {len(sent)} junk connections were made"
        TALLY[("tcp junk", "connections")] += len(sent)
        server.assert_healthy()
        assert server.count() == rounds


def _struct(**values: Any) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


# ---------------------------------------------------------------------------------------------- known bugs


@pytest.fixture
def plain_server(tmp_path: Path) -> Iterator[BackgroundServer]:
    with BackgroundServer(tmp_path) as server:
        yield server


# Regression (fixed in c13734e): error messages echo request fields unbounded (unknown task_type, arg names, arg
# paths); past ~8 KiB of grpc-message + BadRequest trailer a default client drops the answer and sees
# RESOURCE_EXHAUSTED 'received metadata size exceeds ... limit' instead of INVALID_ARGUMENT
@pytest.mark.parametrize(
    "payload",
    [
        submit_bytes("x" * 100_000, {}, "", None, 0, {}),
        submit_bytes("😀" * 5_000, {}, "", None, 0, {}),
        submit_bytes("typed", {"i": 1.0, "k" * 20_000: 1.0}, "", None, 0, {}),
        submit_bytes("echo", {"value": {"k" * 20_000: math.nan}}, "", None, 0, {}),
        submit_bytes("echo", {f"unknown-{i}": 1.0 for i in range(2_000)}, "", None, 0, {}),
    ],
    ids=["huge-task-type", "emoji-task-type", "huge-arg-name", "nan-under-a-huge-key", "2000-unknown-args"],
)
def test_errors_fit_a_default_client(plain_server: BackgroundServer, payload: bytes) -> None:
    with grpc.insecure_channel(plain_server.address) as channel:  # default options, like every real client
        outcome = send(channel, "Submit", payload, timeout=10)
    assert outcome.code == Code.INVALID_ARGUMENT, f"{outcome.code.name}: {outcome.details[:200]}"
    assert len(outcome.details.encode()) <= 4096, f"{len(outcome.details)} characters of error message"


# Regression (fixed in c13734e): a page token 'before:<n>' with n beyond int64 reaches SQLite, which raises
# OverflowError: ListTasks answers INTERNAL instead of INVALID_ARGUMENT
@pytest.mark.parametrize("seq", [2**63, 10**30, -(2**63) - 1])
def test_page_token_beyond_int64_is_invalid_argument(plain_server: BackgroundServer, seq: int) -> None:
    outcome = send(
        plain_server.channel, "ListTasks", pb.ListTasksRequest(page_token=b64(f"before:{seq}")).SerializeToString()
    )
    assert outcome.code == Code.INVALID_ARGUMENT, f"{outcome.code.name}: {outcome.details}"


# Regression (fixed in c13734e): WatchLogs seeks the log file to the requested offset; past the file system's largest
# file (2**44 on ext4) or int64 the seek raises OSError/ValueError outside the servicer's error mapping: UNKNOWN with
# the Python exception text, instead of OK with no data (an offset past the end)
@pytest.mark.parametrize("offset", [2**44, 2**63 - 1, 2**63, 2**64 - 1])
def test_watch_logs_from_an_offset_far_past_the_end(plain_server: BackgroundServer, offset: int) -> None:
    plain_server.gates.open("c")
    request = pb.SubmitRequest(task_type="chatty")
    request.args.update({"name": "c", "lines": 2})
    task_id = plain_server.stub.Submit(request, timeout=10).task.task_id
    wait_for_state(plain_server.stub, task_id, TERMINAL)
    assert plain_server.stub.GetState(pb.GetStateRequest(task_id=task_id)).task.state == pb.TASK_STATE_SUCCESS
    data = pb.WatchLogsRequest(task_id=task_id, offset=offset).SerializeToString()
    outcome = send(plain_server.channel, "WatchLogs", data)
    assert (outcome.code, outcome.responses) == (Code.OK, []), f"{outcome.code.name}: {outcome.details}"


# Regression (fixed in c13734e): each ListTasks label filter adds an EXISTS term to one SQL WHERE; ~1000 of them pass
# SQLite's expression depth limit (1000): INTERNAL instead of an answer (or INVALID_ARGUMENT)
def test_list_tasks_with_a_thousand_label_filters(plain_server: BackgroundServer) -> None:
    request = pb.ListTasksRequest(labels={f"k{i}": "v" for i in range(1000)})
    outcome = send(plain_server.channel, "ListTasks", request.SerializeToString())
    assert outcome.code in (Code.OK, Code.INVALID_ARGUMENT), f"{outcome.code.name}: {outcome.details}"
    plain_server.assert_healthy()


# Regression (fixed in c13734e): ListTasks fills a page by count only; ten tasks with (allowed) 1 MB args and results
# make the default page of 100 larger than the 16 MiB message limit: RESOURCE_EXHAUSTED for every lister
def test_list_tasks_default_page_with_large_tasks(plain_server: BackgroundServer) -> None:
    stub = plain_server.stub
    for _ in range(10):
        task_id = stub.Submit(pb.SubmitRequest(task_type="echo", args=_struct(value="x" * 1_000_000)), timeout=20)
        wait_for_state(stub, task_id.task.task_id, TERMINAL)
    outcome = send(plain_server.channel, "ListTasks", pb.ListTasksRequest().SerializeToString())
    assert outcome.code == Code.OK, f"{outcome.code.name}: {outcome.details}"
    page = pb.ListTasksResponse.FromString(outcome.responses[0])
    assert page.tasks and (len(page.tasks) == 10 or page.next_page_token), "a short page must say there is more"


# Regression (fixed in c13734e): SubmitBatch stores the valid requests, then builds an answer whose refusals echo each
# bad request (a 6 MB task_type comes back as ~18 MB); past 16 MiB the server cannot send it and the client gets
# RESOURCE_EXHAUSTED for a batch whose valid tasks were stored (acknowledgement lost; a retry duplicates them)
def test_submit_batch_answer_fits_or_stores_nothing(plain_server: BackgroundServer) -> None:
    good = pb.SubmitRequest(task_type="echo").SerializeToString()
    bad = pb.SubmitRequest(task_type="x" * 6_000_000).SerializeToString()
    outcome = send(plain_server.channel, "SubmitBatch", length_delimited(1, good) + length_delimited(1, bad))
    stored = plain_server.count()
    assert outcome.code == Code.OK or stored == 0, f"{outcome.code.name} ({outcome.details[:100]}), {stored} stored"
    assert outcome.code == Code.OK, f"{outcome.code.name}: {outcome.details[:100]}"


def test_client_stubs_agree_with_raw_calls(plain_server: BackgroundServer) -> None:
    """The raw (serializer-less) calls the properties use see what a generated stub sees."""
    stub = pb_grpc.TaskServiceStub(plain_server.channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetState(pb.GetStateRequest(task_id="no-such-task"), timeout=5)
    raw = send(plain_server.channel, "GetState", pb.GetStateRequest(task_id="no-such-task").SerializeToString())
    assert caught.value.code() == raw.code == Code.NOT_FOUND  # type: ignore[attr-defined]
