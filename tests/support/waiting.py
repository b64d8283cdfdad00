"""Synchronise tests on conditions, with a deadline, instead of bare sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02, what: str = "") -> T:
    """Call `predicate` until it returns something truthy, and return that; AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate!r}")
        time.sleep(interval)


async def wait_async(
    predicate: Callable[[], Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """wait_until for a coroutine predicate: await it until it answers something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate!r}")
        await asyncio.sleep(interval)
