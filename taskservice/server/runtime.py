"""Garbage-collector settings for a long-running server with thousands of open streams.

A full (generation 2) collection stops every thread while it walks every tracked object. With a thousand
WatchProgress streams open that walk took 25-30 ms, ten times in ten seconds, and it was the whole of the
p99 latency of progress events (`make bench`, watchers). Two standard remedies:

- gc.freeze() once started: what start-up made (modules, classes, the registry, recovered tasks) stays
  alive for good, so collections stop walking it;
- a higher generation-0 threshold: collections run less often; each young collection has more to look
  at, but young objects are cheap to walk and most are gone by then.
"""

from __future__ import annotations

import gc

# CPython's defaults are (700, 10, 10).
THRESHOLDS = (20_000, 20, 20)


def settle_after_start() -> None:
    """Collect what start-up left behind, then keep the rest out of later collections."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
