"""PgQueuer doing the bench's no-op jobs, run by bench/cluster.py in PgQueuer's own environment.

python pgqueuer_peer.py DSN one_by_one|batched COUNT CONCURRENCY  ->  {"jobs_per_s": ...}

Enqueued one by one with CONCURRENCY in flight (a connection each), or 100 per enqueue; a worker process drains the
queue meanwhile; completion is seen in the database (the queue table empty). Timed from the first enqueue.
"""

import asyncio
import json
import subprocess
import sys
import time
from datetime import timedelta

import psycopg
from pgqueuer import PsycopgDriver, Queries, QueueManager


async def worker(dsn: str) -> None:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    manager = QueueManager(Queries(PsycopgDriver(conn)))

    @manager.entrypoint("noop")
    async def noop(job: object) -> None:
        return None

    await manager.run(batch_size=100, dequeue_timeout=timedelta(seconds=1))


async def drive(dsn: str, mode: str, count: int, concurrency: int) -> float:
    """Jobs/s, or an error when the worker died (never a wait for ever)."""
    setup = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await Queries(PsycopgDriver(setup)).install()
    runner = subprocess.Popen([sys.executable, __file__, dsn, "worker", "0", "0"])
    try:
        await asyncio.sleep(1.0)  # the worker is listening
        start = time.perf_counter()
        if mode == "batched":
            queries = Queries(PsycopgDriver(setup))
            for first in range(0, count, 100):
                size = min(100, count - first)
                await queries.enqueue(["noop"] * size, [None] * size, [0] * size)
        else:
            left = [count]

            async def one() -> None:
                conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
                queries = Queries(PsycopgDriver(conn))
                while left[0] > 0:
                    left[0] -= 1
                    await queries.enqueue("noop", None)
                await conn.close()

            await asyncio.gather(*(one() for _ in range(concurrency)))
        deadline = time.monotonic() + 300
        while True:
            row = await (await setup.execute("SELECT count(*) FROM pgqueuer")).fetchone()
            if row is not None and row[0] == 0:
                break
            if runner.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the PgQueuer worker ended (code {runner.returncode}) or took too long")
            await asyncio.sleep(0.02)
        return count / (time.perf_counter() - start)
    finally:
        runner.terminate()
        runner.wait(10)


if __name__ == "__main__":
    dsn, mode, count, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if mode == "worker":
        asyncio.run(worker(dsn))
    else:
        print(json.dumps({"jobs_per_s": asyncio.run(drive(dsn, mode, count, concurrency))}))
