"""A log of every frame the sandbox sent and received, for assertions in tests."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Literal

import attrs
import trio

__all__ = ["Direction", "FrameLog", "FrameRecord", "Plane"]

Plane = Literal["control", "voice"]
Direction = Literal["in", "out"]


@attrs.frozen
class FrameRecord:
    """One WebSocket message as the sandbox saw it.

    ``direction`` is from the sandbox's side: ``"in"`` came from the client, ``"out"`` went
    to it. ``time`` is simulated seconds. ``data`` is the text or bytes on the wire; it may
    hold a voice token (``call.in``), so it is left out of ``repr``.
    """

    seq: int
    time: float
    plane: Plane
    connection: str
    direction: Direction
    data: str | bytes = attrs.field(repr=lambda d: f"<{len(d)} {type(d).__name__}>")

    @property
    def is_text(self) -> bool:
        return isinstance(self.data, str)

    @property
    def json(self) -> Any:
        """The decoded JSON of a text frame, or ``None`` for binary or invalid JSON."""
        if not isinstance(self.data, str):
            return None
        try:
            return json.loads(self.data)
        except (ValueError, RecursionError):
            return None

    @property
    def type(self) -> str | None:
        """The ``type`` of a JSON text frame, if it has a string one."""
        obj = self.json
        if isinstance(obj, dict) and isinstance(obj.get("type"), str):
            return str(obj["type"])
        return None


class FrameLog:
    """Bounded, append-only log of :class:`FrameRecord`; the oldest entries drop off first."""

    def __init__(self, limit: int = 100_000) -> None:
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        self._records: deque[FrameRecord] = deque(maxlen=limit)
        self._seq = 0
        self._changed = trio.Event()

    def append(
        self,
        time: float,
        plane: Plane,
        connection: str,
        direction: Direction,
        data: str | bytes,
    ) -> FrameRecord:
        record = FrameRecord(self._seq, time, plane, connection, direction, data)
        self._seq += 1
        self._records.append(record)
        self._changed.set()
        self._changed = trio.Event()
        return record

    def __iter__(self) -> Iterator[FrameRecord]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def select(
        self,
        *,
        plane: Plane | None = None,
        connection: str | None = None,
        direction: Direction | None = None,
        type: str | None = None,
        binary: bool | None = None,
    ) -> list[FrameRecord]:
        """The records matching every given filter, oldest first."""
        out = []
        for r in self._records:
            if plane is not None and r.plane != plane:
                continue
            if connection is not None and r.connection != connection:
                continue
            if direction is not None and r.direction != direction:
                continue
            if binary is not None and r.is_text == binary:
                continue
            if type is not None and r.type != type:
                continue
            out.append(r)
        return out

    def types(self, **filters: Any) -> list[str | None]:
        """The ``type`` of each matching record (``None`` for binary or untyped frames)."""
        return [r.type for r in self.select(**filters)]

    async def wait_for(
        self, predicate: Callable[[FrameRecord], bool], *, after: int = -1
    ) -> FrameRecord:
        """Wait for the first record with ``seq > after`` that satisfies ``predicate``.

        Records already in the log count, so nothing between a trigger and this call is
        missed. Bound it with ``trio.fail_after``.
        """
        checked = after
        while True:
            for r in list(self._records):
                if r.seq > checked:
                    checked = r.seq
                    if predicate(r):
                        return r
            await self._changed.wait()

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest record, or -1; pass it as ``after`` to wait for new ones."""
        return self._seq - 1
