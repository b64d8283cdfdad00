"""The proto names where each language's generated code lives: set once, since a change would move every
generated client's code (buf breaking lets these options be set; this pins them, see buf.yaml)."""

from __future__ import annotations

from taskservice.v1 import task_service_pb2 as pb

PINNED = {
    "csharp_namespace": "TaskService.V1",
    "go_package": "github.com/taskservice/taskservice/gen/go/taskservice/v1;taskservicev1",
    "java_multiple_files": True,
    "java_outer_classname": "TaskServiceProto",
    "java_package": "io.taskservice.v1",
    "objc_class_prefix": "TSX",
    "php_namespace": "TaskService\\V1",
    "ruby_package": "TaskService::V1",
}


def test_each_languages_options_are_set_and_never_change() -> None:
    options = pb.DESCRIPTOR.GetOptions()
    assert {name: getattr(options, name) for name in PINNED} == PINNED
    assert all(options.HasField(name) for name in PINNED), "set in the file, not defaults"
