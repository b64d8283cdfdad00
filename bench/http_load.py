"""Client scenarios of the HTTP face (run by bench.load in a process of their own): GetState latency over HTTP,
and watchers of Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from datetime import datetime
from typing import Any

import aiohttp

TERMINAL = {"TASK_STATE_SUCCESS", "TASK_STATE_FAILURE", "TASK_STATE_REVOKED", "TASK_STATE_TIMED_OUT",
            "TASK_STATE_LOST"}  # fmt: skip


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def http_latency(url: str, count: int) -> dict[str, Any]:
    """p50/p99 of `count` sequential GETs of `url` (one kept-alive connection), in milliseconds."""
    async with aiohttp.ClientSession() as session:
        for _ in range(50):
            async with session.get(url) as response:
                await response.read()
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
                assert response.status == 200
            samples.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": statistics.median(samples), "p99_ms": _percentile(samples, 0.99), "samples_ms": samples}


async def _watch(session: aiohttp.ClientSession, url: str) -> tuple[int, bool, float, list[float]]:
    """(events, ended, time of the last event, latencies in ms) of one SSE stream."""
    events, ended, last, latencies = 0, False, time.perf_counter(), []
    async with session.get(url) as response:
        async for raw in response.content:
            if not raw.startswith(b"data: "):
                continue
            event = json.loads(raw[6:])
            events += 1
            last = time.perf_counter()
            latencies.append((time.time() - datetime.fromisoformat(event["time"]).timestamp()) * 1000)
            if event["state"] in TERMINAL and "task" in event:
                ended = True
                break
    return events, ended, last, latencies


async def sse_watchers(base_url: str, task_ids: list[str], per_task: int) -> dict[str, Any]:
    """Watch each task with `per_task` event streams until it ends; events/s delivered across all of them."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        start = time.perf_counter()
        results = await asyncio.gather(
            *(_watch(session, f"{base_url}/v1/tasks/{t}/events") for t in task_ids for _ in range(per_task))
        )
    latencies = [lat for r in results for lat in r[3]]
    elapsed = max(r[2] for r in results) - start
    return {
        "messages_per_s": sum(r[0] for r in results) / elapsed,
        "streams": len(results),
        "streams_with_end": sum(1 for r in results if r[1]),
        "p99_latency_ms": _percentile(latencies, 0.99) if latencies else 0.0,
    }
