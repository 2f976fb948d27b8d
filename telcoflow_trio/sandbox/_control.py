"""The control plane (SM-WS): one agent connection's handshake and frames.

It decodes what the agent sends and passes it on to the switchboard as events through
``feed``; frames for the agent come back through :meth:`ControlConnection.send_frame` and
:meth:`ControlConnection.reply`. Fault injection on this plane happens here.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any, Final

import trio

from .._enums import AudioMode
from ..protocol import Unrecognised, control
from ..protocol._fields import FieldError, parse_object
from ._events import AgentConnected, AgentDisconnected, Event, PeerId, Received
from ._faults import Faults
from ._link import Link

__all__ = ["ControlConnection"]

logger = logging.getLogger(__name__)

_REQUEST_TYPES: Final = frozenset(
    {
        control.SessionOpen.TYPE,
        control.SessionCreate.TYPE,
        control.CallFlowSetup.TYPE,
        control.WaMsgOut.TYPE,
    }
)


class ControlConnection:
    """One agent's control connection, from upgrade to close; ``feed`` takes its events."""

    def __init__(self, link: Link, faults: Faults, feed: Callable[[Event], object]) -> None:
        self.link = link
        self.faults = faults
        self._feed = feed
        self.peer: PeerId = PeerId(link.name)
        self.sm_ws_id: str = "smws-" + secrets.token_hex(8)
        self.setup: control.Setup | None = None
        self.setup_done: bool = False
        self._nursery: trio.Nursery | None = None

    @property
    def name(self) -> str:
        return self.link.name

    def __repr__(self) -> str:
        return f"<ControlConnection {self.name} {self.sm_ws_id}>"

    def send_frame(self, frame: control.ServerControlFrame) -> None:
        self.link.send(control.encode_frame(frame))

    async def run(self) -> None:
        """Serve the connection until the client goes or the link is closed."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self.link.run_writer)
                while (data := await self.link.receive()) is not None:
                    self._handle(data)
                nursery.cancel_scope.cancel()
        finally:
            self._feed(AgentDisconnected(self.peer))
            logger.info("control connection %s (%s) ended", self.name, self.sm_ws_id)

    # ── frames from the agent ────────────────────────────────────────────────────────

    def _handle(self, data: str | bytes) -> None:
        frame = control.decode_client_frame(data)
        if isinstance(frame, Unrecognised):
            self._handle_unrecognised(frame, data)
            return
        if isinstance(frame, control.Setup):
            self._handle_setup(frame)
            return
        if not self.setup_done:
            logger.warning("%s: %s before setup.done", self.name, frame.TYPE)
            if not isinstance(frame, control.SessionReady):
                self._fail(frame.TYPE, frame.req_id, "INVALID_REQUEST")
            return
        if not isinstance(frame, control.SessionReady):
            failure = self.faults.fail_requests.pop(frame.TYPE, None)
            if failure is not None:
                self._fail(frame.TYPE, frame.req_id, *failure)
                return
        self._feed(Received(self.peer, frame))

    def _handle_unrecognised(self, frame: Unrecognised, data: str | bytes) -> None:
        logger.warning("%s: ignoring a malformed control frame: %s", self.name, frame.reason)
        # A request we cannot read still gets an answer if it says who is waiting for it,
        # so a client's bug shows up as an error instead of a 30 s timeout.
        try:
            obj = parse_object(data, "control plane")
        except FieldError:
            return
        req_id = obj.get("reqId")
        if obj["type"] in _REQUEST_TYPES and isinstance(req_id, str) and req_id:
            code = "INVALID_PAYLOAD" if obj["type"] == control.WaMsgOut.TYPE else "INVALID_REQUEST"
            self._fail(obj["type"], req_id, code, {"message": frame.reason})

    def _handle_setup(self, frame: control.Setup) -> None:
        if self.setup is not None:
            logger.warning("%s: a second setup frame; ignored", self.name)
            return
        self.setup = frame
        if self.faults.take_count("abort_before_setup_done"):
            logger.info("%s: cutting the connection before setup.done (fault injection)", self.name)
            assert self._nursery is not None
            self._nursery.start_soon(self.link.abort)
            return
        if self.faults.withhold_setup_done:
            logger.info("%s: withholding setup.done (fault injection)", self.name)
            return
        delay = self.faults.setup_done_delay
        if delay > 0:
            assert self._nursery is not None
            self._nursery.start_soon(self._finish_setup_later, delay)
        else:
            self._finish_setup()

    async def _finish_setup_later(self, delay: float) -> None:
        await trio.sleep(delay)
        self._finish_setup()

    def _finish_setup(self) -> None:
        if not self.link.is_open:
            return
        setup = self.setup
        assert setup is not None
        self.setup_done = True
        self.send_frame(control.SetupDone(self.sm_ws_id))
        isolated = setup.audio_mode is AudioMode.ISOLATED
        self._feed(AgentConnected(self.peer, self.sm_ws_id, setup.sample_rate, isolated))

    # ── responses ────────────────────────────────────────────────────────────────────

    def _fail(self, request_type: str, req_id: str, code: str, content: Any = None) -> None:
        self.reply(request_type, control.Response(req_id, False, None, code, content))

    def reply(self, request_type: str, response: control.Response) -> None:
        """Answer a request of ``request_type``, unless a fault withholds or delays it."""
        if self.faults.withholds_response(request_type):
            logger.info(
                "%s: withholding the %s response (fault injection)", self.name, request_type
            )
            return
        delay = self.faults.response_delay
        if delay > 0 and self._nursery is not None:
            self._nursery.start_soon(self._send_later, delay, response)
        else:
            self.send_frame(response)

    async def _send_later(self, delay: float, frame: control.ServerControlFrame) -> None:
        await trio.sleep(delay)
        self.send_frame(frame)
