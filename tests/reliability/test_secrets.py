"""Secrets (guarantee 7): the suite-wide scan works, reprs stay clean, and TLS verifies.

Every test of the suite runs under the DEBUG capture and secret scan of ``tests/conftest.py``;
the first test here proves that scan would catch a leak.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
import trio
import trustme

import telcoflow_trio as tf
from telcoflow_trio.protocol import control, handoff
from telcoflow_trio.testing import TestSignal, open_sandbox
from tests.conftest import SECRET_WATCH

from ._leaks import no_leaks


def test_the_scan_catches_a_token_in_a_log_record() -> None:
    config = tf.SessionManagerConfig.create(
        api_key="sk-meta-test-0123456789", connector_uuid="c", base_url="ws://127.0.0.1:1"
    )
    logging.getLogger("telcoflow_trio.meta").debug("oops: %s", config.auth_headers())
    leaks = SECRET_WATCH.leaks()
    SECRET_WATCH.texts.clear()  # the leak was planted: do not fail this test's teardown
    assert len(leaks) == 1
    assert "API key" in leaks[0]
    assert "sk-meta-test-0123456789" not in leaks[0]  # the report masks it


def test_the_scan_catches_key_material_in_an_exception_message() -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("x.example")
    body_line = leaf.private_key_pem.bytes().decode().splitlines()[1]
    try:
        raise tf.WSSError(f"bad key {body_line}")
    except tf.WSSError:
        pass
    leaks = SECRET_WATCH.leaks()
    SECRET_WATCH.texts.clear()
    assert leaks and "private key" in leaks[0]


def server_context(ca: trustme.CA, hostname: str = "127.0.0.1") -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(hostname).configure_cert(ctx)
    ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED  # mTLS only: no certificate, no connection
    return ctx


def client_files(ca: trustme.CA, tmp_path: Path) -> dict[str, str]:
    cert = ca.issue_cert("agent@example.com")
    paths = {k: str(tmp_path / f"{k}.pem") for k in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(paths["ca"])
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["key"])
    return paths


async def test_mtls_call_end_to_end_with_verification_on_and_clean_reprs(
    ca: trustme.CA, tmp_path: Path
) -> None:
    files = client_files(ca, tmp_path)
    async with no_leaks(), open_sandbox(ssl_context=server_context(ca), time_scale=10) as sb:
        config = tf.SessionManagerConfig.create(
            cert_path=files["cert"],
            key_path=files["key"],
            ca_bundle=files["ca"],
            base_url=sb.url,
        )
        assert config.tls_context() is not None
        assert config.tls_context().check_hostname  # type: ignore[union-attr]
        with trio.fail_after(20):
            async with tf.SessionManager(config) as sm:
                sim = await sb.place_call(audio=TestSignal(seconds=0.5))
                note = await sm.session_notifications.receive()
                async with sm.open_session(note.session_id) as session:
                    call = await session.incoming_call()
                    assert await call.answer()
                    await sim.wait_spoken()  # all of it: the comparison below is then exact
                    got = 0
                    async for chunk in call.audio_stream():
                        await call.send_audio(chunk)
                        got += len(chunk)
                        if got >= len(sim.spoken):
                            break
                    await call.wait_for_playout()
                    await sim.wait_heard(got)
                    assert sim.heard == sim.spoken
                    frame = control.CallIn(
                        session.id, call.id, "wss://x/v1/voice/1", sim.token, "a", "b", "o"
                    )
                    doc = handoff.HandoffDocument(call.id, "wss://x", sim.token, "a", "b")
                    # Everything a user might print goes through the scan at teardown.
                    for obj in (config, sm, session, call, sim, sb, sb.credentials, frame, doc):
                        SECRET_WATCH.note_text(repr(obj))
                        SECRET_WATCH.note_text(str(obj))
                    SECRET_WATCH.note_text(repr(call.events))
    assert sim.token in SECRET_WATCH.secrets()


@pytest.mark.parametrize(
    ("server_host", "trusted", "why"),
    [
        ("wrong.example.org", True, "mismatch, certificate is not valid"),
        ("127.0.0.1", False, "unable to get local issuer certificate"),
    ],
)
async def test_a_server_certificate_that_does_not_verify_is_an_authentication_error(
    ca: trustme.CA, server_host: str, trusted: bool, why: str
) -> None:
    server_ca = ca if trusted else trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert(server_host).configure_cert(ctx)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    async with no_leaks(), open_sandbox(ssl_context=ctx) as sb:
        config = sb.config(ssl_context=client)
        with trio.fail_after(10), pytest.raises(tf.WSSAuthenticationError) as info:
            async with tf.SessionManager(config):
                pass  # pragma: no cover
    message = str(info.value)
    assert "TLS handshake failed" in message
    assert why in message
