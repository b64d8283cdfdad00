"""Client-side load, run in its own process so the server under test has the machine to itself.

python -m bench.load SCENARIO 'JSON-PARAMS'   ->  prints one JSON object with the measurements
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import struct
import sys
import time
from typing import Any

import grpc

from bench.http_load import http_latency, sse_watchers
from taskservice.server.app import server_options
from taskservice.server.settings import Settings
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc

TERMINAL = {
    pb.TASK_STATE_SUCCESS,
    pb.TASK_STATE_FAILURE,
    pb.TASK_STATE_REVOKED,
    pb.TASK_STATE_TIMED_OUT,
    pb.TASK_STATE_LOST,
}


def _channel(address: str, *, own_connection: bool = False) -> grpc.aio.Channel:
    """A channel; `own_connection`: one TCP connection of its own (channels to one address share one otherwise),
    as separate clients have: a server of several processes (--procs) spreads connections, not calls."""
    options = [*server_options(Settings()), *([("grpc.use_local_subchannel_pool", 1)] if own_connection else [])]
    return grpc.aio.insecure_channel(address, options=options)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def unary_rate(address: str, method: str, request_b64: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """Calls/s with `concurrency` calls always in flight, for `seconds`."""
    request = base64.b64decode(request_b64)
    async with _channel(address) as channel:
        call = channel.unary_unary(method)
        await call(request)  # warm the connection
        done = errors = 0
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < stop_at:
                try:
                    await call(request, timeout=30)
                    done += 1
                except grpc.aio.AioRpcError:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {"calls_per_s": done / elapsed, "calls": done, "errors": errors}


async def unary_latency(address: str, method: str, request_b64: str, count: int) -> dict[str, Any]:
    """p50/p99 of `count` sequential calls, in milliseconds."""
    request = base64.b64decode(request_b64)
    async with _channel(address) as channel:
        call = channel.unary_unary(method)
        for _ in range(50):
            await call(request)
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            await call(request, timeout=30)
            samples.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": statistics.median(samples), "p99_ms": percentile(samples, 0.99), "calls": count,
            "samples_ms": samples}  # fmt: skip


async def stop_latency(address: str, samples: int) -> dict[str, Any]:
    """Milliseconds from sending Stop to receiving REVOKED, for a handler reporting progress every 10 ms."""
    timings = []
    async with _channel(address) as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        for _ in range(samples):
            request = pb.SubmitRequest(task_type="demo")
            request.args.update({"steps": 100_000, "step_seconds": 0.01})
            task_id = (await stub.Submit(request)).task.task_id
            watch = stub.WatchProgress(pb.WatchProgressRequest(task_id=task_id), timeout=60)
            async for event in watch:
                if event.state == pb.TASK_STATE_RUNNING and not event.HasField("task"):
                    break  # a progress event: the handler is reporting
            start = time.perf_counter()
            await stub.Stop(pb.StopRequest(task_id=task_id))
            async for event in watch:
                if event.state == pb.TASK_STATE_REVOKED:
                    timings.append((time.perf_counter() - start) * 1000)
                    break
            watch.cancel()
    return {"p50_ms": statistics.median(timings), "p99_ms": percentile(timings, 0.99), "samples": len(timings)}


async def _count_stream(call: Any, is_end: Any, sent_at: Any) -> tuple[int, int, float, list[float]]:
    """(messages, state changes, time of the last message, latencies in ms) of one stream."""
    messages = changes = 0
    last = time.perf_counter()
    latencies: list[float] = []
    async for message in call:
        messages += 1
        last = time.perf_counter()
        latencies.append((time.time() - sent_at(message)) * 1000)
        if is_end(message) is not None:
            changes += 1
            if is_end(message):
                break
    return messages, changes, last, latencies


async def task_watchers(address: str, task_ids: list[str], per_task: int) -> dict[str, Any]:
    """Watch each task with `per_task` streams until it ends; events/s delivered across all streams."""
    async with _channel(address) as channel:
        stub = pb_grpc.TaskServiceStub(channel)

        def is_end(event: pb.WatchProgressResponse) -> bool | None:
            return event.state in TERMINAL if event.HasField("task") else None

        def sent_at(event: pb.WatchProgressResponse) -> float:
            return event.time.ToNanoseconds() / 1e9

        start = time.perf_counter()
        results = await asyncio.gather(
            *(
                _count_stream(stub.WatchProgress(pb.WatchProgressRequest(task_id=t), timeout=300), is_end, sent_at)
                for t in task_ids
                for _ in range(per_task)
            )
        )
    return _stream_summary(results, start)


async def tick_watchers(address: str, groups: int, per_group: int, count: int, hz: float, size: int) -> dict[str, Any]:
    """The baseline: `groups` x `per_group` bare streams of `count` messages at `hz`, the streams of a group
    ticking together (like the watchers of one task); each message starts with its send time."""
    run = os.urandom(4).hex()  # group names of their own: the server keeps each group's start time
    requests = [json.dumps({"count": count, "hz": hz, "size": size, "group": f"{run}-{g}"}).encode()
                for g in range(groups)]  # fmt: skip
    async with _channel(address) as channel:
        call = channel.unary_stream("/bench.Echo/Ticks")
        start = time.perf_counter()
        results = await asyncio.gather(
            *(
                _count_stream(call(request, timeout=300), lambda m: None, lambda m: struct.unpack("<d", m[:8])[0])
                for request in requests
                for _ in range(per_group)
            )
        )
    return _stream_summary(results, start)


def _stream_summary(results: list[tuple[int, int, float, list[float]]], start: float) -> dict[str, Any]:
    messages = sum(r[0] for r in results)
    elapsed = max(r[2] for r in results) - start
    latencies = [lat for r in results for lat in r[3]]
    return {
        "messages": messages,
        "messages_per_s": messages / elapsed,
        "streams": len(results),
        "streams_with_end": sum(1 for r in results if r[1] > 0),
        "seconds": elapsed,
        "p50_latency_ms": percentile(latencies, 0.5) if latencies else 0.0,
        "p90_latency_ms": percentile(latencies, 0.9) if latencies else 0.0,
        "p99_latency_ms": percentile(latencies, 0.99) if latencies else 0.0,
        "max_latency_ms": max(latencies) if latencies else 0.0,
    }


async def _until_all_done(stub: pb_grpc.TaskServiceStub, deadline: float) -> None:
    """Poll ListTasks until no task is PENDING, RUNNING or STOPPING: completion seen through the public API."""
    unfinished = [pb.TASK_STATE_PENDING, pb.TASK_STATE_RUNNING, pb.TASK_STATE_STOPPING]
    while (await stub.ListTasks(pb.ListTasksRequest(page_size=1, states=unfinished))).tasks:
        if time.perf_counter() > deadline:
            raise TimeoutError("tasks did not finish in time")
        await asyncio.sleep(0.02)


async def single_tasks(
    address: str | list[str],
    count: int,
    concurrency: int,
    timeout: float,
    task_type: str = "noop",
    args: dict[str, Any] | None = None,
    wait: str = "poll",
    connections: int = 1,
) -> dict[str, Any]:
    """`count` single Submits, `concurrency` in flight over `connections` connections per address; tasks/s until
    all are finished.

    wait="poll": completion seen through ListTasks once all are submitted; wait="watch": each Submit is followed
    by one WatchProgress of its task to the end (what a client that wants each result does); wait="watch_tasks":
    one WatchTasks stream of them all, once all are submitted, to its end (what wait_all() does).
    """
    request = pb.SubmitRequest(task_type=task_type)
    request.args.update(args or {})
    addresses = address if isinstance(address, list) else [address]
    channels = [_channel(a, own_connection=connections > 1) for _ in range(connections) for a in addresses]
    try:
        stubs = [pb_grpc.TaskServiceStub(c) for c in channels]
        stub = stubs[0]
        left = [count]
        submitted_ids: list[str] = []
        start = time.perf_counter()

        async def submitter(index: int) -> None:
            own = stubs[index % len(stubs)]  # Submits spread over the servers
            while left[0] > 0:
                left[0] -= 1
                task_id = (await own.Submit(request, timeout=60)).task.task_id
                submitted_ids.append(task_id)
                if wait == "watch":
                    async for event in own.WatchProgress(pb.WatchProgressRequest(task_id=task_id), timeout=60):
                        if event.HasField("task") and event.state in TERMINAL:
                            break

        await asyncio.gather(*(submitter(i) for i in range(concurrency)))
        submitted = time.perf_counter()
        if wait == "watch_tasks":
            for first in range(0, len(submitted_ids), 10_000):
                watched = pb.WatchTasksRequest(task_ids=submitted_ids[first : first + 10_000])
                async for _ in stub.WatchTasks(watched, timeout=timeout):
                    pass
        await _until_all_done(stub, start + timeout)
        elapsed = time.perf_counter() - start
    finally:
        for channel in channels:
            await channel.close()
    return {"tasks_per_s": count / elapsed, "submit_seconds": submitted - start, "seconds": elapsed}


async def bulk_tasks(
    address: str | list[str], count: int, batch: int, in_flight: int, timeout: float
) -> dict[str, Any]:
    """`count` no-op tasks through SubmitBatch (`batch` each, `in_flight` calls at once, spread over the servers
    given); tasks/s until all done."""
    request = pb.SubmitRequest(task_type="noop")
    message = pb.SubmitBatchRequest(requests=[request] * batch)
    addresses = address if isinstance(address, list) else [address]
    channels = [_channel(a) for a in addresses]
    try:
        stubs = [pb_grpc.TaskServiceStub(c) for c in channels]
        calls = [count // batch]
        refused = [0]
        start = time.perf_counter()

        async def sender(index: int) -> None:
            own = stubs[index % len(stubs)]
            while calls[0] > 0:
                calls[0] -= 1
                response = await own.SubmitBatch(message, timeout=120)
                refused[0] += sum(1 for r in response.results if r.error_code)

        await asyncio.gather(*(sender(i) for i in range(in_flight)))
        submitted = time.perf_counter()
        await _until_all_done(stubs[0], start + timeout)
        elapsed = time.perf_counter() - start
    finally:
        for channel in channels:
            await channel.close()
    return {"tasks_per_s": count / elapsed, "submit_seconds": submitted - start, "seconds": elapsed,
            "refused": refused[0]}  # fmt: skip


async def idle_watchers(address: str, task_ids: list[str], per_task: int, ready_file: str) -> dict[str, Any]:
    """Hold per_task streams on each task (which sit idle), say when all are open, count terminal events."""
    async with _channel(address) as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        opened = [0]
        total = len(task_ids) * per_task

        async def hold(task_id: str) -> bool:
            call = stub.WatchProgress(pb.WatchProgressRequest(task_id=task_id), timeout=600)
            first = True
            async for event in call:
                if first:
                    first = False
                    opened[0] += 1
                    if opened[0] == total:
                        with open(ready_file, "w") as ready:
                            ready.write("ready\n")
                if event.HasField("task") and event.state in TERMINAL:
                    return True
            return False

        ends = await asyncio.gather(*(hold(t) for t in task_ids for _ in range(per_task)))
    return {"streams": total, "streams_with_end": sum(ends)}


async def stop_across(
    submit_at: str, watch_at: str, stop_at: str, samples: int, fresh_connections: bool = False
) -> dict[str, Any]:
    """Milliseconds from a Stop sent to one server to the REVOKED event on a watch held on another, of a task that
    a third may run (progress every 10 ms); and from each progress report to its arrival on the watch.
    `fresh_connections`: the watch and the Stop of each sample on connections of their own, which a server of
    several processes (--procs) hands to any of them."""
    stops: list[float] = []
    progress: list[float] = []
    async with _channel(submit_at) as a, _channel(watch_at) as b, _channel(stop_at) as c:
        submitter, watcher, stopper = (pb_grpc.TaskServiceStub(x) for x in (a, b, c))
        for _ in range(samples):
            if fresh_connections:
                b, c = _channel(watch_at, own_connection=True), _channel(stop_at, own_connection=True)
                watcher, stopper = pb_grpc.TaskServiceStub(b), pb_grpc.TaskServiceStub(c)
            request = pb.SubmitRequest(task_type="demo")
            request.args.update({"steps": 100_000, "step_seconds": 0.01})
            task_id = (await submitter.Submit(request)).task.task_id
            watch = watcher.WatchProgress(pb.WatchProgressRequest(task_id=task_id), timeout=60)
            seen = 0
            async for event in watch:
                if event.state == pb.TASK_STATE_RUNNING and not event.HasField("task"):
                    progress.append((time.time() - event.progress.updated_at.ToNanoseconds() / 1e9) * 1000)
                    seen += 1
                    if seen >= 10:
                        break
            start = time.perf_counter()
            await stopper.Stop(pb.StopRequest(task_id=task_id))
            async for event in watch:
                if event.state == pb.TASK_STATE_REVOKED:
                    stops.append((time.perf_counter() - start) * 1000)
                    break
            watch.cancel()
            if fresh_connections:
                await b.close()
                await c.close()
    return {"stop_p50_ms": statistics.median(stops), "stop_p99_ms": percentile(stops, 0.99),
            "progress_p50_ms": statistics.median(progress), "progress_p99_ms": percentile(progress, 0.99),
            "samples": len(stops)}  # fmt: skip


SCENARIOS = {
    "stop_across": stop_across,
    "single_tasks": single_tasks,
    "bulk_tasks": bulk_tasks,
    "idle_watchers": idle_watchers,
    "unary_rate": unary_rate,
    "unary_latency": unary_latency,
    "stop_latency": stop_latency,
    "task_watchers": task_watchers,
    "tick_watchers": tick_watchers,
    "http_latency": http_latency,
    "sse_watchers": sse_watchers,
}

if __name__ == "__main__":
    scenario, params = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(asyncio.run(SCENARIOS[scenario](**params))))
