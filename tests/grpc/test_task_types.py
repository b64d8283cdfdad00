"""ListTaskTypes: every registered type with the args its handler takes, as forms and `taskctl types` need them."""

from __future__ import annotations

from google.protobuf import json_format

from taskservice.server.app import RunningServer
from taskservice.v1 import task_service_pb2 as pb
from taskservice.v1 import task_service_pb2_grpc as pb_grpc


async def test_every_type_is_listed_by_name_with_its_args(stub: pb_grpc.TaskServiceStub) -> None:
    types = {t.name: t for t in (await stub.ListTaskTypes(pb.ListTaskTypesRequest())).task_types}
    assert list(types) == sorted(types), "by name"
    typed = {a.name: (a.kind, a.required) for a in types["typed"].args}
    assert typed == {"i": ("integer", True), "f": ("number", False), "s": ("string", False), "b": ("boolean", False),
                     "items": ("array", False), "options": ("object", False)}  # fmt: skip
    defaults = {a.name: json_format.MessageToDict(a.default_value) for a in types["typed"].args
                if a.HasField("default_value")}  # fmt: skip
    assert "i" not in defaults, "a required arg has no default"
    assert set(defaults) == {"f", "s", "b", "items", "options"}, defaults
    write = {a.name: a for a in types["write_output"].args}
    assert write["output_fpath"].path_role == "output" and write["text"].kind == "string"
    assert not write["text"].required
    steps = {a.name: a for a in types["demo"].args}["steps"]
    assert steps.description == "How many steps.", "what the handler's docstring says of the arg"
    assert types["demo"].description.startswith("Work through `steps` steps"), "the docstring's first paragraph"


async def test_each_type_names_the_servers_that_claim_it(stub: pb_grpc.TaskServiceStub, server: RunningServer) -> None:
    listed = {t.name: t for t in (await stub.ListTaskTypes(pb.ListTaskTypesRequest())).task_types}
    assert [node.node for node in listed["echo"].nodes] == [server.manager.node]
    assert listed["echo"].nodes[0].last_seen.seconds > 0 and not listed["echo"].nodes[0].only_labels
