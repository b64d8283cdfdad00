"""Protobuf wire format written by hand, so that tests can send what a client library would refuse to build.

python protobuf will not build a Struct nested deeper than its parser's limit (Struct.update() fails), so
args of any depth, with NaN and infinities anywhere, are encoded here from plain Python values.
"""

from __future__ import annotations

import struct
from typing import Any

from google.protobuf import struct_pb2


def varint(value: int) -> bytes:
    """Unsigned varint; negative values as their 64-bit two's complement (as protobuf encodes int32/int64)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def length_delimited(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def varint_field(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def value_bytes(value: Any) -> bytes:
    """A google.protobuf.Value for a JSON-like Python value (dict, list, str, bool, int, float, None)."""
    if value is None:
        return varint_field(1, 0)
    if isinstance(value, bool):
        return varint_field(4, int(value))
    if isinstance(value, int | float):
        return varint(2 << 3 | 1) + struct.pack("<d", float(value))
    if isinstance(value, str):
        return length_delimited(3, value.encode())
    if isinstance(value, dict):
        return length_delimited(5, struct_bytes(value))
    if isinstance(value, list):
        return length_delimited(6, b"".join(length_delimited(1, value_bytes(item)) for item in value))
    raise TypeError(f"not a JSON-like value: {type(value).__name__}")


def struct_bytes(fields: dict[str, Any]) -> bytes:
    """A google.protobuf.Struct; keys in the order given."""
    return b"".join(
        length_delimited(1, length_delimited(1, key.encode()) + length_delimited(2, value_bytes(item)))
        for key, item in fields.items()
    )


def from_value(value: struct_pb2.Value) -> Any:
    """A decoded Value as Python, every number a float (what the server sees)."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return from_struct(value.struct_value)
    if kind == "list_value":
        return [from_value(item) for item in value.list_value.values]
    return None


def from_struct(message: struct_pb2.Struct) -> dict[str, Any]:
    return {key: from_value(item) for key, item in message.fields.items()}


def proto_depth(value: Any) -> int:
    """Message levels below a Value holding `value` (a Value itself counts 1)."""
    if isinstance(value, dict):
        return 1 + 2 + max((proto_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + 1 + max((proto_depth(item) for item in value), default=0)
    return 1
