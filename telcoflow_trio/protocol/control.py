"""Control plane (SM-WS) frames and their codec. No I/O: text in, frames out, and back.

Client → server: :class:`Setup`, :class:`SessionOpen`, :class:`SessionCreate`,
:class:`CallFlowSetup`, :class:`WaMsgOut` (requests, carrying ``reqId``) and
:class:`SessionReady`. Server → client: :class:`SetupDone`, :class:`Response`,
:class:`SessionNotify`, :class:`CallIn`, :class:`WaMsgIn`, :class:`SessionClosed`.

:func:`decode_server_frame` is what a client calls on every text it receives and
:func:`decode_client_frame` what a server calls; neither ever raises.

The frames are defined by sender, in ``_control_client`` and ``_control_server``; every
name is importable from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from .._enums import ChannelType
from ._control_client import (
    SAMPLE_RATES,
    CallFlowSetup,
    SampleRate,
    SessionCreate,
    SessionOpen,
    SessionReady,
    Setup,
    WaMsgOut,
)
from ._control_server import (
    CallIn,
    CreatedSession,
    OpenedSession,
    Response,
    SessionClosed,
    SessionNotify,
    SetupDone,
    WaMsgIn,
)
from ._fields import (
    FieldError,
    JSONObject,
    Unrecognised,
    choice,
    decode_text,
    dumps,
    new_id,
    opt_bool,
    opt_int,
    opt_str,
    req_obj,
    req_str,
)

__all__ = [
    "CONTROL_PATH",
    "SAMPLE_RATES",
    "CallFlowSetup",
    "CallIn",
    "ClientControlFrame",
    "ControlRequest",
    "CreatedSession",
    "OpenedSession",
    "Response",
    "SampleRate",
    "ServerControlFrame",
    "SessionClosed",
    "SessionCreate",
    "SessionNotify",
    "SessionOpen",
    "SessionReady",
    "Setup",
    "SetupDone",
    "WaMsgIn",
    "WaMsgOut",
    "decode_client_frame",
    "decode_created_session",
    "decode_opened_session",
    "decode_server_frame",
    "encode_frame",
    "new_id",
]

CONTROL_PATH: Final = "/v1/agent/session-manager"


ClientControlFrame = Setup | SessionOpen | SessionCreate | CallFlowSetup | WaMsgOut | SessionReady
ControlRequest = SessionOpen | SessionCreate | CallFlowSetup | WaMsgOut
"""The client frames that carry a ``reqId`` and get a :class:`Response`."""
ServerControlFrame = SetupDone | Response | SessionNotify | CallIn | WaMsgIn | SessionClosed

_CLIENT: Final[dict[str, Callable[[JSONObject], ClientControlFrame]]] = {
    c.TYPE: c.from_json_obj
    for c in (Setup, SessionOpen, SessionCreate, CallFlowSetup, WaMsgOut, SessionReady)
}
_SERVER: Final[dict[str, Callable[[JSONObject], ServerControlFrame]]] = {
    c.TYPE: c.from_json_obj
    for c in (SetupDone, Response, SessionNotify, CallIn, WaMsgIn, SessionClosed)
}


def encode_frame(frame: ClientControlFrame | ServerControlFrame) -> str:
    """The JSON text of a control frame."""
    return dumps(frame.to_json_obj())


def decode_server_frame(data: str | bytes) -> ServerControlFrame | Unrecognised:
    """Decode what a server sent on the control plane. Never raises."""
    result: ServerControlFrame | Unrecognised = decode_text(
        data, _SERVER, "control plane", "server"
    )
    return result


def decode_client_frame(data: str | bytes) -> ClientControlFrame | Unrecognised:
    """Decode what a client sent on the control plane (the sandbox's side). Never raises."""
    result: ClientControlFrame | Unrecognised = decode_text(
        data, _CLIENT, "control plane", "client"
    )
    return result


# ── typed response contents ─────────────────────────────────────────────────────────────


def _content(content: object, parse: Callable[[JSONObject], Any]) -> Any:
    try:
        if not isinstance(content, dict):
            raise FieldError("response content must be an object")
        return parse(content)
    except FieldError as exc:
        return Unrecognised(str(exc))
    except (TypeError, ValueError) as exc:
        return Unrecognised(f"invalid field value ({type(exc).__name__})")


def _opened(content: JSONObject) -> OpenedSession:
    s = req_obj(content, "session")
    return OpenedSession(
        req_str(s, "id"),
        choice(s, "channel", ChannelType),
        opt_str(s, "remoteAddress"),
        opt_str(s, "localAddress"),
        opt_int(s, "openedAt"),
    )


def decode_opened_session(content: object) -> OpenedSession | Unrecognised:
    """Decode the content of an ok ``session.open`` response. Never raises."""
    result: OpenedSession | Unrecognised = _content(content, _opened)
    return result


def decode_created_session(content: object) -> CreatedSession | Unrecognised:
    """Decode the content of an ok ``session.create`` response. Never raises."""
    result: CreatedSession | Unrecognised = _content(
        content, lambda c: CreatedSession(req_str(c, "sessionId"), opt_bool(c, "created", True))
    )
    return result
