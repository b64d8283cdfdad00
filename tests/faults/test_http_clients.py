"""HTTP clients that misbehave, against a real server: streams nobody reads, headers that never end, more
connections than the server will hold, and a server short of file descriptors. None of them may grow memory
without bound, hold a connection for ever, or take what other clients and tasks need."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from taskservice.client import TaskClient, TaskState, Unavailable
from taskservice.server.app import RunningServer
from taskservice.server.http import HttpServer, build_app, start_http
from taskservice.server.settings import Settings
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc
from tests.faults.helpers import submit, wait_state
from tests.grpc.helpers import eventually
from tests.support.fault_task_types import Probe
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

FLOOD_SECONDS = 15.0


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@contextlib.asynccontextmanager
async def http_face(server: RunningServer, **settings: object) -> AsyncIterator[tuple[HttpServer, str]]:
    header_seconds = float(settings.pop("header_seconds", 10.0))  # type: ignore[arg-type]
    app = build_app(server.servicer)
    http = await start_http(app, Settings(http_listen="127.0.0.1:0", **settings), header_seconds=header_seconds)  # type: ignore[arg-type]
    try:
        yield http, f"127.0.0.1:{http.port}"
    finally:
        await http.close()


def open_socket(address: str, *, receive_buffer: int = 0) -> socket.socket:
    host, port = address.rsplit(":", 1)
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((host, int(port)))
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed `sock` (what it sent before, such as a 503, is read and dropped)."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.slow
async def test_event_streams_nobody_reads_hold_the_latest_progress_not_every_event(
    server: RunningServer, stub: pb_grpc.TaskServiceStub, probe: Probe
) -> None:
    task_id = await submit(stub, "flood", name="flood", message_bytes=1000, burst=20)
    await wait_state(stub, task_id, {pb.TASK_STATE_RUNNING})
    async with http_face(server) as (_, address):
        frozen = []
        for _ in range(3):  # they ask for the stream, then never read a byte of it
            sock = open_socket(address, receive_buffer=4096)
            sock.sendall(f"GET /v1/events?taskIds={task_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            frozen.append(sock)
        try:
            await eventually(lambda: server.manager.stats().watchers >= 3, what="the three streams watch the task")
            # For 15 s the handler floods ~1 KB progress reports: without a bound, every one of them would wait in
            # the server for the clients (about 1,000 a second a stream, 45 MB in all).
            rss_before, reports_before = rss_bytes(), probe.count("flood:reports")
            flooded_until = time.monotonic() + FLOOD_SECONDS
            await eventually(lambda: time.monotonic() >= flooded_until, timeout=FLOOD_SECONDS + 5, what="the flood")
            growth, reports = rss_bytes() - rss_before, probe.count("flood:reports") - reports_before
            print(f"rss +{growth / 2**20:.1f} MiB over {reports} reports with 3 streams nobody reads")
            assert reports > 10_000, "the handler flooded"
            assert growth < 10 * 2**20, f"memory grew by {growth / 2**20:.1f} MiB while three clients did not read"

            events_url = f"http://{address}/v1/events"
            async with aiohttp.ClientSession() as http, http.get(events_url, params={"taskIds": task_id}) as response:
                await stub.Stop(pb.StopRequest(task_id=task_id, reason="enough"))  # a client that reads sees the end
                text = (await asyncio.wait_for(response.read(), timeout=20)).decode()
            assert "TASK_STATE_REVOKED" in text
        finally:
            for sock in frozen:
                sock.close()
    await eventually(lambda: server.manager.stats().watchers == 0, what="the frozen streams' watchers detached")


async def test_a_client_that_never_finishes_its_headers_is_closed(server: RunningServer) -> None:
    async with http_face(server, header_seconds=1.0) as (_, address):
        silent = [open_socket(address) for _ in range(20)]
        partial = [open_socket(address) for _ in range(20)]
        for sock in partial:
            sock.sendall(b"GET /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line: headers never end
        trickling = open_socket(address)
        trickling.sendall(b"GET /v1/tasks HTTP/1.1\r\n")
        started = time.monotonic()
        try:
            async with aiohttp.ClientSession() as http, http.get(f"http://{address}/v1/tasks") as response:
                assert response.status == 200  # meanwhile others are served
            while not closed_by_server(trickling):  # one header line at a time, never the end
                assert time.monotonic() - started < 10, "a client trickling its headers was not closed"
                trickling.sendall(b"X-Slow: 1\r\n")
                await asyncio.sleep(0.2)
            await eventually(lambda: all(closed_by_server(sock) for sock in silent + partial), timeout=10,
                             what="every connection that never finished its headers closed by the server")  # fmt: skip
        finally:
            for sock in [*silent, *partial, trickling]:
                sock.close()


async def test_past_the_connection_cap_a_new_connection_gets_503_and_the_server_recovers(
    server: RunningServer,
) -> None:
    async with http_face(server, http_max_connections=10, header_seconds=30.0) as (http, address):
        held = [open_socket(address) for _ in range(10)]
        try:
            await eventually(lambda: len(http.runner.server.connections) == 10, what="ten connections open")  # type: ignore[union-attr]
            extra = open_socket(address)
            extra.setblocking(False)  # the server runs in this event loop: never block it
            answer = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(extra, 4096), timeout=5)
            assert answer.startswith(b"HTTP/1.1 503"), answer
            assert b"too many open HTTP connections" in answer
            extra.close()
        finally:
            for sock in held:
                sock.close()
        await eventually(lambda: len(http.runner.server.connections) == 0, what="the held connections gone")  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as session, session.get(f"http://{address}/v1/tasks") as response:
            assert response.status == 200


class LimitedServer(ServerProcess):
    """The server process with an open files limit of `files` (soft and hard), as prlimit sets it."""

    def __init__(self, *args: object, files: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.files = files

    def command(self) -> list[str]:
        return ["prlimit", f"--nofile={self.files}:{self.files}", *super().command()]


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[LimitedServer]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.bin").write_bytes(b"x" * 1000)
    with LimitedServer(tmp_path / "t.db", files=256, extra_args=["--data-root", str(data)]) as server:
        server.start()
        yield server


def test_http_clients_cannot_take_the_descriptors_tasks_need_and_a_shortage_is_unavailable(
    limited: LimitedServer,
) -> None:
    address = limited.http_url.removeprefix("http://")
    with TaskClient(limited.address) as client:
        # 400 connections that never send a request: at most a quarter of the 256 descriptors are let in.
        idle = [open_socket(address) for _ in range(400)]
        try:
            wait_until(lambda: sum(closed_by_server(sock) for sock in idle) >= 400 - 64, timeout=20,
                       what="connections past the cap closed")  # fmt: skip
            task = client.submit("file.checksum", {"input_fpath": "in.bin"}).task
            assert client.wait(task.task_id, timeout=30).state is TaskState.SUCCESS
        finally:
            for sock in idle:
                sock.close()
        # gRPC connections are not capped: take every descriptor with bare ones, then ask for a file task.
        hogs = [open_socket(limited.address) for _ in range(300)]
        try:
            # The kernel completes the connections before the server accepts them: wait until it has.
            assert limited.proc is not None
            fds = Path(f"/proc/{limited.proc.pid}/fd")
            wait_until(lambda: len(list(fds.iterdir())) >= limited.files - 4, timeout=20,
                       what="the server's descriptors all taken")  # fmt: skip
            with pytest.raises(Unavailable) as refused:
                client.submit("file.checksum", {"input_fpath": "in.bin"})
            assert "file descriptor" in str(refused.value)
        finally:
            for sock in hogs:
                sock.close()
        task = wait_until(lambda: _submitted(client), timeout=20, what="Submits work again once descriptors free")
        assert client.wait(task, timeout=30).state is TaskState.SUCCESS
    log = limited.log_path.read_text()
    assert log.count("out of file descriptors") <= 3, "the shortage is logged once per interval, not per call"


def _submitted(client: TaskClient) -> str | None:
    try:
        return client.submit("file.checksum", {"input_fpath": "in.bin"}).task.task_id
    except Unavailable:
        return None
