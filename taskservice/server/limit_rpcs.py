"""The limit RPCs of TaskService: CreateLimit, GetLimit, ListLimits, UpdateLimit, DeleteLimit (their board calls
run on the read threads)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from taskservice.core.engine.manager import WorkerManager
from taskservice.core.model.errors import InvalidRequest
from taskservice.core.model.limits import LIMIT_ID_PATTERN
from taskservice.server import convert
from taskservice.server.convert_limits import limit_spec_from_proto, limit_to_proto
from taskservice.server.convert_schedules import decode_id_page_token, encode_id_page_token
from taskservice.server.rpc_errors import unary
from taskservice.v1 import task_service_pb2 as pb

T = TypeVar("T")


class LimitRpcs:
    _manager: WorkerManager

    if TYPE_CHECKING:  # the servicer's: runs `function` on its read threads

        async def _read(self, function: Callable[..., T], *args: Any) -> T: ...

    @unary
    async def CreateLimit(self, request: pb.CreateLimitRequest, context: Any) -> pb.CreateLimitResponse:
        spec = limit_spec_from_proto(request.limit)
        limit, created = await self._read(self._manager.limits.create, spec)
        return pb.CreateLimitResponse(limit=limit_to_proto(limit), created=created)

    @unary
    async def GetLimit(self, request: pb.GetLimitRequest, context: Any) -> pb.GetLimitResponse:
        limit = await self._read(self._manager.limits.get, _limit_id(request.limit_id))
        return pb.GetLimitResponse(limit=limit_to_proto(limit))

    @unary
    async def ListLimits(self, request: pb.ListLimitsRequest, context: Any) -> pb.ListLimitsResponse:
        page_size = convert.page_size_from_proto(request.page_size)
        found, next_after = await self._read(self._manager.limits.list, page_size,
                                             decode_id_page_token(request.page_token))  # fmt: skip
        return pb.ListLimitsResponse(limits=[limit_to_proto(limit) for limit in found],
                                     next_page_token=encode_id_page_token(next_after))  # fmt: skip

    @unary
    async def UpdateLimit(self, request: pb.UpdateLimitRequest, context: Any) -> pb.UpdateLimitResponse:
        spec = limit_spec_from_proto(request.limit)
        limit = await self._read(self._manager.limits.update, spec)
        return pb.UpdateLimitResponse(limit=limit_to_proto(limit))

    @unary
    async def DeleteLimit(self, request: pb.DeleteLimitRequest, context: Any) -> pb.DeleteLimitResponse:
        limit = await self._read(self._manager.limits.delete, _limit_id(request.limit_id))
        return pb.DeleteLimitResponse(limit=limit_to_proto(limit))


def _limit_id(limit_id: str) -> str:
    if not LIMIT_ID_PATTERN.fullmatch(limit_id):
        raise InvalidRequest("invalid limit id", [("limit_id", "must be 1-100 characters from A-Z a-z 0-9 . _ : -")])
    return limit_id
