"""The port itself: handshake, authentication at the upgrade, TLS and mTLS."""

from __future__ import annotations

import ssl

import httpx
import pytest
import trio
import trustme
from trio_websocket import ConnectionRejected, open_websocket_url

from telcoflow_trio.testing import Sandbox, open_sandbox

from .raw import control


async def test_setup_done_gives_each_connection_its_own_id(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as a, control(sandbox) as b:
            assert a.sm_ws_id.startswith("smws-")
            assert a.sm_ws_id != b.sm_ws_id
            await sandbox.wait_control_connections(2)
            assert {c.sm_ws_id for c in sandbox.control_connections} == {a.sm_ws_id, b.sm_ws_id}


async def test_setup_done_waits_for_setup(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox, setup=False) as ctl:
            with trio.move_on_after(0.2):
                await ctl.next_text()
                pytest.fail("the sandbox spoke before setup")
            await ctl.send(
                {"type": "setup", "data": {"sampleRate": 24000, "audioMode": "isolated"}}
            )
            done = await ctl.wait_type("setup.done")
            (conn,) = sandbox.control_connections
            assert conn.sm_ws_id == done["smWsId"]
            assert conn.setup is not None and conn.setup.sample_rate == 24000


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, b"missing credentials"),
        ({"x-api-key": "wrong", "x-connector-uuid": "wrong"}, b"invalid API key"),
        ({"x-api-key": "only-the-key"}, b"must be sent together"),
    ],
)
async def test_bad_credentials_are_refused_at_the_upgrade(
    sandbox: Sandbox, headers: dict[str, str], reason: bytes
) -> None:
    with trio.fail_after(5), pytest.raises(ConnectionRejected) as info:
        async with control(sandbox, headers=headers, setup=False):
            pass
    assert info.value.status_code == 401
    assert info.value.body is not None
    assert reason in info.value.body
    assert b"wrong" not in info.value.body and b"only-the-key" not in info.value.body


async def test_right_connector_wrong_key_is_refused(sandbox: Sandbox) -> None:
    headers = {"x-api-key": sandbox.api_key + "x", "x-connector-uuid": sandbox.connector_uuid}
    with trio.fail_after(5), pytest.raises(ConnectionRejected) as info:
        async with control(sandbox, headers=headers, setup=False):
            pass
    assert info.value.status_code == 401


async def test_unknown_websocket_path_is_404(sandbox: Sandbox) -> None:
    with trio.fail_after(5), pytest.raises(ConnectionRejected) as info:
        async with open_websocket_url(sandbox.url + "/v1/nowhere"):
            pass
    assert info.value.status_code == 404


async def test_pings_are_answered(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            await ctl.ws.ping(b"are you there")


async def test_malformed_http_gets_400(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", sandbox.port)
        async with stream:
            await stream.send_all(b"THIS IS NOT HTTP\r\n\r\n")
            reply = b""
            while chunk := await stream.receive_some():
                reply += chunk
    assert reply.startswith(b"HTTP/1.1 400")


async def test_given_credentials_are_used() -> None:
    with trio.fail_after(5):
        async with open_sandbox(api_key="k-123", connector_uuid="c-456") as sb:
            assert (sb.api_key, sb.connector_uuid) == ("k-123", "c-456")
            async with control(sb, headers={"x-api-key": "k-123", "x-connector-uuid": "c-456"}):
                pass
            assert "k-123" not in repr(sb.credentials)


# ── TLS ─────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ca.configure_trust(ctx)
    # Optional: API-key clients need no certificate; one that is sent must verify.
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def _client_context(ca: trustme.CA, with_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if with_cert:
        ca.issue_cert("agent@example.com").configure_cert(ctx)
    return ctx


@pytest.fixture
def files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    path = tmp_path_factory.mktemp("certs")
    cert = ca.issue_cert("agent.example.com")
    paths = {"ca": str(path / "ca.pem"), "cert": str(path / "c.pem"), "key": str(path / "k.pem")}
    ca.cert_pem.write_to_path(paths["ca"])
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["key"])
    return paths


async def test_wss_with_api_key(ca: trustme.CA, server_context: ssl.SSLContext) -> None:
    with trio.fail_after(10):
        async with open_sandbox(ssl_context=server_context) as sb:
            assert sb.url.startswith("wss://")
            async with control(sb, ssl_context=_client_context(ca, with_cert=False)) as ctl:
                assert ctl.sm_ws_id


async def test_mtls_client_certificate_authenticates(
    ca: trustme.CA, server_context: ssl.SSLContext
) -> None:
    with trio.fail_after(10):
        async with open_sandbox(ssl_context=server_context) as sb:
            async with control(sb, headers={}, ssl_context=_client_context(ca, True)) as ctl:
                assert ctl.sm_ws_id
            with pytest.raises(ConnectionRejected) as info:
                async with control(sb, headers={}, ssl_context=_client_context(ca, False)):
                    pass
            assert info.value.status_code == 401


async def test_mtls_certificate_from_another_ca_fails_the_handshake(
    ca: trustme.CA, server_context: ssl.SSLContext
) -> None:
    stranger = trustme.CA()
    with trio.fail_after(10):
        async with open_sandbox(ssl_context=server_context) as sb:
            ctx = _client_context(ca, with_cert=False)
            stranger.issue_cert("intruder@example.com").configure_cert(ctx)
            tcp = await trio.open_tcp_stream("127.0.0.1", sb.port)
            tls = trio.SSLStream(tcp, ctx, server_hostname="127.0.0.1")
            reply: bytes | bytearray | None
            try:
                await tls.do_handshake()
                await tls.send_all(b"GET /public/v1/sessions HTTP/1.1\r\nhost: x\r\n\r\n")
                reply = await tls.receive_some()
            except trio.BrokenResourceError:
                reply = None
            finally:
                await trio.aclose_forcefully(tls)
            assert not reply
            assert sb.control_connections == []


async def test_mtls_rest_with_certificate_files(
    server_context: ssl.SSLContext, files: dict[str, str]
) -> None:
    with trio.fail_after(10):
        async with open_sandbox(ssl_context=server_context) as sb:
            ctx = ssl.create_default_context(cafile=files["ca"])
            ctx.load_cert_chain(files["cert"], files["key"])
            async with httpx.AsyncClient(base_url=sb.rest_url, verify=ctx) as http:
                ok = await http.get("/public/v1/sessions")
                assert ok.status_code == 200
                assert ok.json() == {"items": []}
            plain = ssl.create_default_context(cafile=files["ca"])
            async with httpx.AsyncClient(base_url=sb.rest_url, verify=plain) as http:
                refused = await http.get("/public/v1/sessions")
                assert refused.status_code == 401
                assert refused.json()["code"] == "UNAUTHORIZED"
