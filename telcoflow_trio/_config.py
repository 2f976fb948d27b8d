"""Configuration: audio settings, the session manager's endpoint and credentials, call flows.

Every class validates on construction: a bad value raises ``ValueError`` (or ``TypeError``
for a value of the wrong type) whose message names the field. No ``repr`` or ``str`` shows
an API key.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any, Final, Literal, cast, get_args
from urllib.parse import urlsplit

import attrs

from ._enums import AudioMode, InboundCallMode
from ._validate import check_bool, check_enum, check_type
from ._version import USER_AGENT, WIRE_SDK_VERSION
from .protocol.control import CONTROL_PATH, SAMPLE_RATES, CallFlowSetup, SampleRate, Setup

__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "PRODUCTION_BASE_URL",
    "TRANSPORTS",
    "AudioModeName",
    "CallAudioConfig",
    "CallFlowBuilder",
    "CallFlowConfig",
    "SampleRate",
    "SessionManagerConfig",
    "Transport",
]

PRODUCTION_BASE_URL: Final = "wss://wss-prod.agentao.com"
DEFAULT_BUFFER_SIZE: Final = 1024 * 1024
Transport = Literal["trio-websocket", "websockets"]
"""The WebSocket engine: trio-websocket (the default) or ``websockets``' sans-I/O protocol."""
TRANSPORTS: Final[tuple[Transport, ...]] = get_args(Transport)


AudioModeName = Literal["mixed", "isolated"]
"""An :class:`AudioMode` spelled as its wire value; ``CallAudioConfig`` accepts either."""


def _to_audio_mode(value: AudioMode | AudioModeName) -> AudioMode:
    # Typed narrowly so that type checkers refuse a wrong audio_mode at the call site (attrs
    # takes __init__'s parameter type from the converter); the runtime check stays for
    # untyped callers.
    return check_enum("audio_mode", value, AudioMode)


@attrs.frozen
class CallAudioConfig:
    """Audio format and outgoing buffering for every call of a session manager.

    ``sample_rate`` is 8000, 16000 or 24000 Hz (:data:`SampleRate`; 16-bit mono PCM, so
    24 kHz is 48,000 bytes a second); ``audio_mode`` an :class:`AudioMode` or its wire
    spelling (``AudioModeName``); ``buffer_size`` bounds the bytes queued to send and
    must be a positive power of two. Type checkers refuse other values; at run time they
    raise ``ValueError`` or ``TypeError`` naming the field.
    """

    sample_rate: SampleRate = 16000
    audio_mode: AudioMode = attrs.field(default=AudioMode.MIXED, converter=_to_audio_mode)
    buffer_size: int = DEFAULT_BUFFER_SIZE

    def __attrs_post_init__(self) -> None:
        check_type("sample_rate", self.sample_rate, int, "an int")
        if self.sample_rate not in SAMPLE_RATES:
            raise ValueError(f"sample_rate must be one of {SAMPLE_RATES}, got {self.sample_rate}")
        check_type("buffer_size", self.buffer_size, int, "an int")
        size = self.buffer_size
        if size <= 0 or size & (size - 1):
            raise ValueError(f"buffer_size must be a positive power of two, got {size}")

    @property
    def bytes_per_second(self) -> int:
        """PCM bytes per second of audio at this sample rate (2 bytes a sample)."""
        return self.sample_rate * 2

    def bytes_for(self, seconds: float) -> int:
        """Whole samples' worth of bytes for a duration (always even)."""
        return int(self.sample_rate * seconds) * 2

    def setup_frame(self) -> Setup:
        """The control plane's ``setup`` frame for these settings."""
        return Setup(self.sample_rate, self.audio_mode)


def _secret_repr(value: object) -> str:
    return "None" if value is None else "'***'"


def _optional_path(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)  # type: ignore[no-any-return]
    return value  # type: ignore[return-value]  # refused with a TypeError in post-init


_HEADER_UNSAFE = frozenset("\r\n\0")


@attrs.frozen
class SessionManagerConfig:
    """Where and how a :class:`SessionManager` connects. Build it with :meth:`create`.

    Exactly one way to authenticate: ``api_key`` + ``connector_uuid``, or a client
    certificate (``cert_path`` + ``key_path``, mTLS, ``wss://`` only). ``ca_bundle`` or
    ``ssl_context`` customise TLS verification, which is always on unless the context
    you pass turns it off; with mTLS the client certificate is loaded into that context.
    ``transport`` picks the WebSocket engine (one of ``TRANSPORTS``) for both planes.
    """

    api_key: str | None = attrs.field(default=None, repr=_secret_repr)
    connector_uuid: str | None = None
    cert_path: str | None = attrs.field(default=None, converter=_optional_path)
    key_path: str | None = attrs.field(default=None, converter=_optional_path)
    base_url: str = PRODUCTION_BASE_URL
    ca_bundle: str | None = attrs.field(default=None, converter=_optional_path)
    ssl_context: ssl.SSLContext | None = None
    call_audio: CallAudioConfig = attrs.field(factory=CallAudioConfig)
    transport: Transport = "trio-websocket"
    _tls_cache: dict[str, ssl.SSLContext] = attrs.field(
        factory=dict, init=False, repr=False, eq=False
    )

    @classmethod
    def create(
        cls,
        api_key: str | None = None,
        connector_uuid: str | None = None,
        cert_path: str | os.PathLike[str] | None = None,
        key_path: str | os.PathLike[str] | None = None,
        *,
        base_url: str | None = None,
        call_audio: CallAudioConfig | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        transport: Transport | None = None,
    ) -> SessionManagerConfig:
        """Build and validate a config; ``base_url`` defaults to the production endpoint,
        ``transport`` to ``"trio-websocket"``."""
        return cls(
            api_key=api_key,
            connector_uuid=connector_uuid,
            cert_path=cert_path,
            key_path=key_path,
            base_url=PRODUCTION_BASE_URL if base_url is None else base_url,
            ca_bundle=ca_bundle,
            ssl_context=ssl_context,
            call_audio=CallAudioConfig() if call_audio is None else call_audio,
            transport="trio-websocket" if transport is None else transport,
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        call_audio: CallAudioConfig | None = None,
    ) -> SessionManagerConfig:
        """A config from ``TELCOFLOW_API_KEY`` + ``TELCOFLOW_CONNECTOR_UUID`` (or
        ``TELCOFLOW_CERT_PATH`` + ``TELCOFLOW_KEY_PATH``), optional ``TELCOFLOW_BASE_URL``,
        ``TELCOFLOW_CA_BUNDLE`` and ``TELCOFLOW_TRANSPORT``; empty variables count as unset.
        ``ValueError`` names what is missing or wrong (never a secret)."""
        env = {
            k: v for k, v in (os.environ if environ is None else environ).items()
            if k.startswith("TELCOFLOW_") and v
        }  # fmt: skip
        key, connector = env.get("TELCOFLOW_API_KEY"), env.get("TELCOFLOW_CONNECTOR_UUID")
        cert, private = env.get("TELCOFLOW_CERT_PATH"), env.get("TELCOFLOW_KEY_PATH")
        if not (key and connector) and not (cert and private):
            raise ValueError(
                "set TELCOFLOW_API_KEY and TELCOFLOW_CONNECTOR_UUID (or TELCOFLOW_CERT_PATH "
                "and TELCOFLOW_KEY_PATH) to reach a Telcoflow server"
            )
        return cls.create(
            api_key=key,
            connector_uuid=connector,
            cert_path=cert,
            key_path=private,
            base_url=env.get("TELCOFLOW_BASE_URL"),
            call_audio=call_audio,
            ca_bundle=env.get("TELCOFLOW_CA_BUNDLE"),
            transport=cast("Transport | None", env.get("TELCOFLOW_TRANSPORT")),
        )

    def __attrs_post_init__(self) -> None:
        for name in ("api_key", "connector_uuid", "cert_path", "key_path", "ca_bundle"):
            value = getattr(self, name)
            if value is None:
                continue
            check_type(name, value, str, "a str")
            if not value:
                raise ValueError(f"{name} must not be empty (leave it out instead)")
        for name in ("api_key", "connector_uuid"):
            value = getattr(self, name)
            if value is not None and (_HEADER_UNSAFE & set(value) or not value.isprintable()):
                raise ValueError(f"{name} holds characters that cannot go in an HTTP header")
        if self.ssl_context is not None:
            check_type("ssl_context", self.ssl_context, ssl.SSLContext, "an ssl.SSLContext")
        check_type("call_audio", self.call_audio, CallAudioConfig, "a CallAudioConfig")
        check_type("transport", self.transport, str, "a str")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {list(TRANSPORTS)}, got {self.transport!r}")
        self._check_auth()
        scheme = self._check_base_url()
        self._check_tls(scheme)

    def _check_auth(self) -> None:
        pairs = (("api_key", "connector_uuid"), ("cert_path", "key_path"))
        for a, b in pairs:
            has_a, has_b = getattr(self, a) is not None, getattr(self, b) is not None
            if has_a != has_b:
                given, missing = (a, b) if has_a else (b, a)
                raise ValueError(f"{missing} is required together with {given}")
        key_auth = self.api_key is not None
        cert_auth = self.cert_path is not None
        if key_auth and cert_auth:
            raise ValueError(
                "give exactly one way to authenticate: api_key + connector_uuid, "
                "or cert_path + key_path, not both"
            )
        if not key_auth and not cert_auth:
            raise ValueError(
                "credentials are required: api_key + connector_uuid, or cert_path + key_path"
            )
        for name in ("cert_path", "key_path", "ca_bundle"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise ValueError(f"{name}: no such file: {path!r}")

    def _check_base_url(self) -> str:
        check_type("base_url", self.base_url, str, "a str")
        try:
            parts = urlsplit(self.base_url)
            parts.port  # noqa: B018  # raises ValueError on a bad port
        except ValueError:
            raise ValueError(f"base_url is not a valid URL: {self.base_url!r}") from None
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"base_url must start with ws:// or wss://, got {self.base_url!r}")
        if not parts.hostname:
            raise ValueError(f"base_url has no host: {self.base_url!r}")
        if parts.username is not None or parts.password is not None:
            # Credentials in a URL end up in logs; they belong in api_key.
            raise ValueError("base_url must not contain user info; use api_key instead")
        if parts.query or parts.fragment:
            raise ValueError(f"base_url must not have a query or fragment: {self.base_url!r}")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        return parts.scheme

    def _check_tls(self, scheme: str) -> None:
        if scheme == "wss":
            if self.ca_bundle is not None and self.ssl_context is not None:
                raise ValueError("give ca_bundle or ssl_context, not both")
            return
        for name in ("cert_path", "ca_bundle", "ssl_context"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name} needs a wss:// base_url (TLS); got a ws:// one")

    # ── derived values used by the connections ──────────────────────────────────────────

    @property
    def uses_tls(self) -> bool:
        return self.base_url.startswith("wss://")

    @property
    def control_url(self) -> str:
        """The control plane's WebSocket URL."""
        return self.base_url + CONTROL_PATH

    @property
    def rest_base_url(self) -> str:
        """The REST plane's base URL: same host, http(s) scheme."""
        return ("https://" if self.uses_tls else "http://") + self.base_url.split("://", 1)[1]

    def auth_headers(self) -> dict[str, str]:
        """Headers for the control and REST planes (credentials included: never log them)."""
        headers = {"x-sdk-version": WIRE_SDK_VERSION, "user-agent": USER_AGENT}
        if self.api_key is not None and self.connector_uuid is not None:
            headers["x-api-key"] = self.api_key
            headers["x-connector-uuid"] = self.connector_uuid
        return headers

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context for every ``wss``/``https`` connection, or None for ``ws://``.

        Built once (the system CA store is slow to load) and shared by all connections.
        """
        if not self.uses_tls:
            return None
        ctx = self._tls_cache.get("ctx")
        if ctx is None:
            ctx = self.ssl_context
            if ctx is None:
                ctx = ssl.create_default_context(cafile=self.ca_bundle)
            if self.cert_path is not None and self.key_path is not None:
                ctx.load_cert_chain(self.cert_path, self.key_path)
            self._tls_cache["ctx"] = ctx
        return ctx


def _to_inbound(value: object) -> InboundCallMode:
    return check_enum("inbound_call", value, InboundCallMode)


@attrs.frozen
class CallFlowConfig:
    """Which call and message flows a connector handles; everything is off by default."""

    inbound_call: InboundCallMode = attrs.field(default=InboundCallMode.NO, converter=_to_inbound)
    outbound_call: bool = False
    inbound_message: bool = False
    outbound_message: bool = False

    def __attrs_post_init__(self) -> None:
        for name in ("outbound_call", "inbound_message", "outbound_message"):
            check_bool(name, getattr(self, name))

    def to_frame(self) -> CallFlowSetup:
        """The ``call_flow.setup`` request for this config (with a fresh ``reqId``)."""
        return CallFlowSetup(
            self.inbound_call, self.outbound_call, self.inbound_message, self.outbound_message
        )


class CallFlowBuilder:
    """Fluent builder for :class:`CallFlowConfig`; each setter checks its argument at once.

    ``CallFlowBuilder().inbound_call(InboundCallMode.ALL).outbound_call(True).build()``
    """

    def __init__(self) -> None:
        self._fields: dict[str, Any] = {}

    def inbound_call(self, mode: InboundCallMode | str) -> CallFlowBuilder:
        self._fields["inbound_call"] = _to_inbound(mode)
        return self

    def outbound_call(self, enabled: bool) -> CallFlowBuilder:
        self._fields["outbound_call"] = check_bool("enabled", enabled)
        return self

    def inbound_message(self, enabled: bool) -> CallFlowBuilder:
        self._fields["inbound_message"] = check_bool("enabled", enabled)
        return self

    def outbound_message(self, enabled: bool) -> CallFlowBuilder:
        self._fields["outbound_message"] = check_bool("enabled", enabled)
        return self

    def build(self) -> CallFlowConfig:
        return CallFlowConfig(**self._fields)

    def __repr__(self) -> str:
        return f"CallFlowBuilder({self.build()!r})"
