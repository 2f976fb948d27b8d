"""Choosing the WebSocket engine: ``SessionManagerConfig.transport`` (and
``TELCOFLOW_TRANSPORT``), validated, and used by the session manager for both planes when no
``connect=`` is given; end to end on the sandbox over TLS with the ``websockets`` engine.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme

import telcoflow_trio as tf
from telcoflow_trio import _sansio_websocket, _websocket
from telcoflow_trio._config import TRANSPORTS, Transport
from telcoflow_trio._connectors import connector_for
from telcoflow_trio._readhub import ReadHub
from telcoflow_trio._transport import Connector, MessageSocket
from telcoflow_trio.sandbox import Sandbox, TestSignal, open_sandbox
from tests.transport_choice import TRANSPORT

KEY = {"api_key": "sk-transport-option", "connector_uuid": "conn-1"}


def test_the_default_is_trio_websocket_and_both_names_are_accepted() -> None:
    assert tf.SessionManagerConfig(**KEY).transport == "trio-websocket"  # type: ignore[arg-type]
    assert TRANSPORTS == ("trio-websocket", "websockets")
    for name in TRANSPORTS:
        assert tf.SessionManagerConfig.create(**KEY, transport=name).transport == name


def test_a_bad_transport_is_refused_naming_the_field_and_the_value() -> None:
    with pytest.raises(ValueError, match="transport") as info:
        tf.SessionManagerConfig.create(**KEY, transport="wsproto")  # type: ignore[arg-type]
    assert str(info.value) == (
        "transport must be one of ['trio-websocket', 'websockets'], got 'wsproto'"
    )
    with pytest.raises(TypeError, match="transport must be a str, got int"):
        tf.SessionManagerConfig.create(**KEY, transport=1)  # type: ignore[arg-type]


def test_from_env_reads_telcoflow_transport() -> None:
    env = {"TELCOFLOW_API_KEY": "sk-from-env-key", "TELCOFLOW_CONNECTOR_UUID": "c"}
    config = tf.SessionManagerConfig.from_env({**env, "TELCOFLOW_TRANSPORT": "websockets"})
    assert config.transport == "websockets"
    with pytest.raises(ValueError, match="got 'fast'") as info:
        tf.SessionManagerConfig.from_env({**env, "TELCOFLOW_TRANSPORT": "fast"})
    assert "sk-from-env-key" not in str(info.value)


def test_connector_for_each_name() -> None:
    assert connector_for("trio-websocket") is _websocket.open_websocket
    assert connector_for("websockets") is _sansio_websocket.open_websocket
    with pytest.raises(ValueError, match="got 'h2'"):
        connector_for("h2")


async def test_the_suite_hands_out_configs_on_the_transport_under_test(sandbox: Sandbox) -> None:
    # TELCOFLOW_TEST_TRANSPORT reaches every config a test builds without its own choice.
    assert sandbox.config().transport == TRANSPORT
    assert tf.SessionManagerConfig.create(**KEY).transport == TRANSPORT
    assert sandbox.config(transport="websockets").transport == "websockets"


def counting_engine(engine: Any, opened: list[str], hubs: list[object]) -> Connector:
    """``engine``'s ``open_websocket``, noting each plane it opens and the hub it was given."""

    def counting(
        url: str,
        headers: Mapping[str, str],
        tls: ssl.SSLContext | None,
        *,
        what: str,
        secrets: tuple[str, ...] = (),
        message_queue_size: int = 1,
        **hub: Any,
    ) -> AbstractAsyncContextManager[MessageSocket]:
        opened.append(what)
        hubs.append(hub.get("hub"))
        return engine(  # type: ignore[no-any-return]
            url,
            headers,
            tls,
            what=what,
            secrets=secrets,
            message_queue_size=message_queue_size,
            **hub,
        )

    return counting


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_manager_opens_both_planes_with_the_configured_engine(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    hubs: list[object] = []
    module = _websocket if transport == "trio-websocket" else _sansio_websocket
    counting = counting_engine(module.open_websocket, opened, hubs)

    monkeypatch.setattr(module, "open_websocket", counting)
    async with open_sandbox(time_scale=10) as sb:
        with trio.fail_after(10):
            async with tf.SessionManager(sb.config(transport=transport)) as sm:  # type: ignore[arg-type]
                await sb.place_call()
                note = await sm.session_notifications.receive()
                async with sm.open_session(note.session_id) as session:
                    call = await session.incoming_call()
                    assert await call.answer()
                    assert await call.close()
    assert opened == ["control plane", "voice plane"]
    if transport == "websockets":
        # Both planes' sockets were handed the manager's hub (one reader task for all).
        assert len(hubs) == 2 and hubs[0] is hubs[1] and isinstance(hubs[0], ReadHub)
    else:
        assert hubs == [None, None]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_mtls_call_echoes_byte_exact_on_each_engine(
    transport: Transport, tmp_path: Path
) -> None:
    # Over TLS the pulls are answered by each socket's reader (see test_message_path).
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    ca.configure_trust(server)
    server.verify_mode = ssl.CERT_REQUIRED
    cert = ca.issue_cert("agent@example.com")
    paths = {k: str(tmp_path / f"{k}.pem") for k in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(paths["ca"])
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["key"])
    async with open_sandbox(ssl_context=server, time_scale=10) as sb:
        config = tf.SessionManagerConfig.create(
            cert_path=paths["cert"],
            key_path=paths["key"],
            ca_bundle=paths["ca"],
            base_url=sb.url,
            transport=transport,
        )
        with trio.fail_after(20):
            async with tf.SessionManager(config) as sm:
                sim = await sb.place_call(audio=TestSignal(seconds=0.3))
                note = await sm.session_notifications.receive()
                async with sm.open_session(note.session_id) as session:
                    call = await session.incoming_call()
                    assert await call.answer()
                    await sim.wait_spoken()
                    got = 0
                    async for chunk in call.audio_stream():
                        await call.send_audio(chunk)
                        got += len(chunk)
                        if got >= len(sim.spoken):
                            break
                    await call.wait_for_playout()
                    await sim.wait_heard(got)
                    assert sim.heard == sim.spoken


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_handed_off_call_opens_its_voice_plane_with_the_engine_asked_for(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    hubs: list[object] = []
    module = _websocket if transport == "trio-websocket" else _sansio_websocket
    counting = counting_engine(module.open_websocket, opened, hubs)

    async with open_sandbox(time_scale=10) as sb:
        with trio.fail_after(10):
            async with tf.SessionManager(sb.config()) as sm:
                await sb.place_call()
                note = await sm.session_notifications.receive()
                async with sm.open_session(note.session_id) as session:
                    document = (await session.incoming_call()).to_json()
            monkeypatch.setattr(module, "open_websocket", counting)
            async with tf.Call.from_json(document, transport=transport) as call:  # type: ignore[arg-type]
                assert await call.answer()
                assert await call.close()
    assert opened == ["voice plane"]
    assert hubs == [None]  # no manager, no hub: the socket reads itself


def test_a_handed_off_call_refuses_an_unknown_transport() -> None:
    document = (
        '{"id": "c-1", "url": "ws://127.0.0.1:1/v", "token": "t", "caller": "", "callee": ""}'
    )
    with pytest.raises(ValueError, match=r"transport must be .*got 'carrier-pigeon'"):
        tf.Call.from_json(document, transport="carrier-pigeon")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="transport must be a str, got int"):
        tf.Call.from_json(document, transport=3)  # type: ignore[arg-type]
