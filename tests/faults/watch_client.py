"""A separate client process holding WatchProgress streams, for tests that SIGSTOP or SIGKILL it.

    python -m tests.faults.watch_client ADDRESS TASK_ID [TASK_ID ...] --streams N --channels C [--small-window]

Opens N streams spread over the tasks and over C channels (C TCP connections), reads the first event (the
snapshot) of each, then prints `READY <n>` and waits for a line on stdin. A test may SIGKILL it then (the
streams vanish without a goodbye) or SIGSTOP it (the streams stop reading). After the line it reads every
stream to its end and prints one JSON line per stream: its states (of the events that carry the task), its
sequences, the number of events and the final status code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import grpc

from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("task_ids", nargs="+")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--channels", type=int, default=1)
    # Keep the HTTP/2 flow-control window at its 64 KiB default (no BDP probing, which grows it to megabytes):
    # a client that stops reading then blocks the server's sends after ~64 KiB instead of after seconds.
    parser.add_argument("--small-window", action="store_true")
    args = parser.parse_args(argv)
    # A subchannel pool per channel, so that each channel is its own TCP connection.
    options = [("grpc.use_local_subchannel_pool", 1)]
    if args.small_window:
        options.append(("grpc.http2.bdp_probe", 0))
    channels = [grpc.aio.insecure_channel(args.address, options=options) for _ in range(args.channels)]
    calls = []
    for i in range(args.streams):
        stub = pb_grpc.TaskServiceStub(channels[i % len(channels)])
        calls.append(stub.WatchProgress(pb.WatchProgressRequest(task_id=args.task_ids[i % len(args.task_ids)])))
    firsts = await asyncio.gather(*(call.read() for call in calls))
    print(f"READY {len(calls)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    async def rest(call: grpc.aio.UnaryStreamCall, first: pb.WatchProgressResponse) -> dict[str, object]:
        events = [first]
        try:
            while (event := await call.read()) is not grpc.aio.EOF:
                events.append(event)
            code = (await call.code()).name
        except grpc.aio.AioRpcError as err:
            code = err.code().name
        return {
            "states": [pb.TaskState.Name(e.state) for e in events if e.HasField("task")],
            "sequences": [e.sequence for e in events],
            "events": len(events),
            "code": code,
        }

    for result in await asyncio.gather(*(rest(call, first) for call, first in zip(calls, firsts, strict=True))):
        print(json.dumps(result), flush=True)
    for channel in channels:
        await channel.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
