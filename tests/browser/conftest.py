"""The browser the dashboard's tests drive, one per test module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.chromium import launch


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()
