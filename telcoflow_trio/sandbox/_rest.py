"""The REST plane (``/public/v1/...``) and the sandbox's admin endpoints (``/admin/...``).

Admin endpoints let another process drive a running sandbox: place calls, read what a
caller heard, send WhatsApp messages, set faults. They take the same credentials as REST.
The API reaches the sandbox through :class:`SandboxApi`, the few things it needs of it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

import attrs
import trio

from .._enums import ChannelType, CloseReason
from ..protocol import rest
from ..protocol._fields import dumps
from ._audio import AudioSource, Pcm, Silence, TestSignal, Tone, WavFile
from ._caller import ConnectBehaviour, SimulatedCall
from ._control import ControlConnection
from ._faults import Faults
from ._server import Credentials, HttpRequest, HttpResponse
from ._sessions import SessionRecord, WaOutbound

__all__ = ["RestApi", "SandboxApi", "audio_from_json"]

logger = logging.getLogger(__name__)

_CLOSE_RE = re.compile(r"^/public/v1/sessions/([^/]+)/close$")
_CALL_RE = re.compile(r"^/admin/calls/([^/]+)(?:/(hangup|error|say|drop-voice))?$")
_ADMIN_SESSION_CLOSE_RE = re.compile(r"^/admin/sessions/([^/]+)/close$")


class _BadRequest(Exception):
    pass


def _json(status: int, obj: object) -> HttpResponse:
    return HttpResponse(status, dumps(obj).encode())


def _error(status: int, code: str, message: str) -> HttpResponse:
    return HttpResponse(status, rest.encode_error_body(rest.ErrorBody(code, message)).encode())


def _body(req: HttpRequest) -> dict[str, Any]:
    if not req.body:
        return {}
    try:
        value = json.loads(req.body)
    except (ValueError, RecursionError):
        raise _BadRequest("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise _BadRequest("the body must be a JSON object")
    return value


def audio_from_json(spec: Any) -> AudioSource | None:
    """An audio source from its JSON description (admin API and command line).

    ``{"pcm": base64, "sampleRate": n?}``, ``{"wav": path}``, ``{"silence": seconds}``,
    ``{"tone": {"frequency", "seconds", "amplitude"}}``, ``{"signal": {"seconds", "seed"}}``.
    """
    if spec is None:
        return None
    if not isinstance(spec, dict) or len(spec.keys() - {"sampleRate"}) != 1:
        raise _BadRequest("audio must be an object with one of pcm, wav, silence, tone, signal")
    try:
        if "pcm" in spec:
            rate = spec.get("sampleRate")
            return Pcm(base64.b64decode(spec["pcm"], validate=True), rate)
        if "wav" in spec:
            return WavFile(str(spec["wav"]))
        if "silence" in spec:
            return Silence(float(spec["silence"]))
        if "tone" in spec:
            return Tone(**dict(spec["tone"]))
        if "signal" in spec:
            return TestSignal(**dict(spec["signal"]))
    except (binascii.Error, TypeError, ValueError) as exc:
        raise _BadRequest(f"bad audio description ({type(exc).__name__})") from None
    raise _BadRequest("audio must be one of pcm, wav, silence, tone, signal")


class SandboxApi(Protocol):
    """What the REST and admin endpoints use of the sandbox (:class:`Sandbox` has it all)."""

    @property
    def credentials(self) -> Credentials: ...

    @property
    def faults(self) -> Faults: ...

    @property
    def url(self) -> str: ...

    @property
    def sessions(self) -> Mapping[str, SessionRecord]: ...

    @property
    def calls(self) -> Mapping[str, SimulatedCall]: ...

    @property
    def wa_outbox(self) -> Sequence[WaOutbound]: ...

    @property
    def control_connections(self) -> Sequence[ControlConnection]: ...

    async def place_call(
        self,
        caller: str = ...,
        callee: str | None = ...,
        *,
        audio: AudioSource | None = ...,
        connect: ConnectBehaviour | None = ...,
    ) -> SimulatedCall: ...

    async def send_wa_message(
        self, remote_address: str, content: dict[str, Any], *, sender: str | None = ...
    ) -> str: ...

    async def close_session(self, session_id: str, reason: CloseReason = ...) -> bool: ...

    async def drop_control_connections(self, sm_ws_id: str | None = ...) -> int: ...


class RestApi:
    """Answers every plain HTTP request that reaches the sandbox's port."""

    def __init__(self, sandbox: SandboxApi) -> None:
        self.sandbox = sandbox

    async def __call__(self, req: HttpRequest) -> HttpResponse:
        await trio.lowlevel.checkpoint()  # most answers need no await
        reason = self.sandbox.credentials.check(req.headers, req.peer.cert_verified)
        if reason is not None:
            return _error(401, "UNAUTHORIZED", reason)
        try:
            if req.path.startswith("/admin/"):
                return await self._admin(req)
            return await self._public(req)
        except _BadRequest as exc:
            return _error(400, "INVALID_REQUEST", str(exc))

    # ── the REST plane ───────────────────────────────────────────────────────────────

    async def _public(self, req: HttpRequest) -> HttpResponse:
        await trio.lowlevel.checkpoint()  # most answers need no await
        sb = self.sandbox
        canned = self.sandbox.faults.rest_responses
        if canned:
            status, body = canned.pop(0)
            return HttpResponse(status, body)
        if req.path == rest.SESSIONS_PATH:
            if req.method != "GET":
                return _error(405, "INVALID_REQUEST", "use GET")
            query = {k: v[-1] for k, v in parse_qs(req.query).items()}
            channel = query.get("channel")
            if channel is not None and channel not in ChannelType._value2member_map_:
                return _error(400, "INVALID_REQUEST", "channel must be TELCO or WA")
            state = query.get("state")
            if state is not None and state not in ("OPEN", "CLOSED"):
                return _error(400, "INVALID_REQUEST", "state must be OPEN or CLOSED")
            remote = query.get("remoteAddress")
            items = [
                s.info()
                for s in sb.sessions.values()
                if (channel is None or s.channel.value == channel)
                and (state is None or s.state == state)
                and (remote is None or s.remote_address == remote)
            ]
            return HttpResponse(200, rest.encode_session_list(items).encode())
        match = _CLOSE_RE.match(req.path)
        if match:
            if req.method != "POST":
                return _error(405, "INVALID_REQUEST", "use POST")
            session = sb.sessions.get(unquote(match.group(1)))
            if session is None:
                return _error(404, "SESSION_NOT_FOUND", "no session has that id")
            if not await sb.close_session(session.id, CloseReason.SDK_REQUEST):
                return _error(404, "SESSION_CLOSED", "the session is already closed")
            assert session.closed_at is not None
            result = rest.CloseResult(session.closed_at, CloseReason.SDK_REQUEST.value)
            return HttpResponse(200, rest.encode_close_result(result).encode())
        return _error(404, "NOT_FOUND", f"no endpoint {req.method} {req.path}")

    # ── admin ────────────────────────────────────────────────────────────────────────

    async def _admin(self, req: HttpRequest) -> HttpResponse:
        await trio.lowlevel.checkpoint()  # most answers need no await
        sb = self.sandbox
        path, method = req.path, req.method
        if path == "/admin/calls" and method == "POST":
            body = _body(req)
            connect = body.get("connect")
            behaviour = None
            if connect is not None:
                if not isinstance(connect, dict):
                    raise _BadRequest("connect must be an object")
                try:
                    behaviour = ConnectBehaviour(
                        **{
                            k: v
                            for k, v in {
                                "outcome": connect.get("outcome"),
                                "answer_after": connect.get("answerAfter"),
                                "error_code": connect.get("errorCode"),
                                "error_message": connect.get("errorMessage"),
                            }.items()
                            if v is not None
                        }
                    )
                except (TypeError, ValueError):
                    raise _BadRequest("bad connect behaviour") from None
            placed = await sb.place_call(
                caller=str(body.get("caller", "+15557654321")),
                callee=body.get("callee") if isinstance(body.get("callee"), str) else None,
                audio=audio_from_json(body.get("audio")),
                connect=behaviour,
            )
            return _json(201, {"callId": placed.call_id, "sessionId": placed.session_id})
        if path == "/admin/calls" and method == "GET":
            return _json(200, {"items": [c.status() for c in sb.calls.values()]})
        match = _CALL_RE.match(path)
        if match:
            call = sb.calls.get(unquote(match.group(1)))
            if call is None:
                return _error(404, "NOT_FOUND", "no call has that id")
            action = match.group(2)
            if action is None and method == "GET":
                with_audio = "audio=1" in req.query.split("&")
                return _json(200, call.status(with_audio=with_audio))
            if method != "POST":
                return _error(405, "INVALID_REQUEST", "use POST")
            if action == "hangup":
                await call.hang_up()
            elif action == "error":
                body = _body(req)
                try:
                    await call.inject_error(
                        str(body.get("errorCode", "TTS_SESSION_ERROR")),
                        str(body.get("errorMessage", "simulated error")),
                    )
                except RuntimeError as exc:
                    return _error(409, "INVALID_REQUEST", str(exc))
            elif action == "say":
                source = audio_from_json(_body(req).get("audio"))
                if source is not None:
                    call.say(source)
            elif action == "drop-voice":
                await call.drop_voice()
            return _json(200, call.status())
        if path == "/admin/wa/messages" and method == "POST":
            body = _body(req)
            remote = body.get("remoteAddress")
            content = body.get("content", {})
            if not isinstance(remote, str) or not remote or not isinstance(content, dict):
                raise _BadRequest("need remoteAddress (string) and content (object)")
            sender = body.get("sender")
            session_id = await sb.send_wa_message(
                remote, content, sender=sender if isinstance(sender, str) else None
            )
            return _json(201, {"sessionId": session_id})
        if path == "/admin/wa/outbox" and method == "GET":
            return _json(200, {"items": [attrs.asdict(m) for m in sb.wa_outbox]})
        if path == "/admin/sessions" and method == "GET":
            items = []
            for s in sb.sessions.values():
                item = s.info().to_json_obj()
                item["boundSmWsId"] = s.bound_sm_ws_id
                item["ready"] = s.ready
                item["callId"] = s.call_id
                items.append(item)
            return _json(200, {"items": items})
        match = _ADMIN_SESSION_CLOSE_RE.match(path)
        if match and method == "POST":
            session = sb.sessions.get(unquote(match.group(1)))
            if session is None:
                return _error(404, "SESSION_NOT_FOUND", "no session has that id")
            reason = _body(req).get("reason", CloseReason.FORCE_CLOSE.value)
            try:
                close_reason = CloseReason(reason)
            except ValueError:
                raise _BadRequest("unknown reason") from None
            closed = await sb.close_session(session.id, close_reason)
            return _json(200, {"closed": closed})
        if path == "/admin/control/drop" and method == "POST":
            count = await sb.drop_control_connections()
            return _json(200, {"dropped": count})
        if path == "/admin/faults" and method == "POST":
            self._set_faults(_body(req))
            return _json(200, {"faults": _faults_json(sb)})
        if path == "/admin/state" and method == "GET":
            return _json(
                200,
                {
                    "url": sb.url,
                    "controlConnections": [c.sm_ws_id for c in sb.control_connections],
                    "faults": _faults_json(sb),
                },
            )
        return _error(404, "NOT_FOUND", f"no endpoint {method} {path}")

    def _set_faults(self, body: dict[str, Any]) -> None:
        faults = self.sandbox.faults
        names = {f.name for f in attrs.fields(type(faults))}
        for key, value in body.items():
            if key not in names:
                raise _BadRequest(f"unknown fault {key!r}")
            current = getattr(faults, key)
            try:
                if key == "rest_responses":
                    value = [(int(s), str(b).encode("latin-1")) for s, b in value]
                elif isinstance(current, set):
                    value = set(value)
                elif isinstance(current, dict):
                    value = {k: (v[0], v[1]) for k, v in dict(value).items()}
                elif isinstance(current, bool):
                    value = bool(value)
                else:
                    value = type(current)(value)
            except (TypeError, ValueError, IndexError, KeyError):
                raise _BadRequest(f"bad value for fault {key!r}") from None
            setattr(faults, key, value)


def _faults_json(sb: SandboxApi) -> dict[str, Any]:
    out = attrs.asdict(sb.faults)
    out["withhold_responses"] = sorted(out["withhold_responses"])
    out["withhold_command_responses"] = sorted(out["withhold_command_responses"])
    out["fail_requests"] = {k: list(v) for k, v in out["fail_requests"].items()}
    out["rest_responses"] = [[s, b.decode("latin-1")] for s, b in sb.faults.rest_responses]
    return out
