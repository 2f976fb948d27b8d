"""Every invalid configuration is refused with an error naming the field; no repr shows a secret."""

from __future__ import annotations

import pathlib
import ssl
from typing import Any

import pytest
import trustme

import telcoflow_trio as tf
from telcoflow_trio.protocol import control

SECRET = "sk-live-DO-NOT-LEAK-0123456789"


@pytest.fixture
def tls_files(tmp_path: pathlib.Path) -> dict[str, str]:
    ca = trustme.CA()
    cert = ca.issue_cert("agent.example")
    cert_path, key_path, ca_path = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(ca_path))
    return {"cert_path": str(cert_path), "key_path": str(key_path), "ca_bundle": str(ca_path)}


# ── CallAudioConfig ─────────────────────────────────────────────────────────────────────


def test_audio_defaults() -> None:
    audio = tf.CallAudioConfig()
    assert (audio.sample_rate, audio.audio_mode, audio.buffer_size) == (16000, "mixed", 1 << 20)
    assert tf.CallAudioConfig(24000).bytes_per_second == 48_000
    assert tf.CallAudioConfig(8000).bytes_for(0.02) == 320
    assert tf.CallAudioConfig(16000, "isolated").setup_frame() == control.Setup(16000, "isolated")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "exc", "field"),
    [
        ({"sample_rate": 44100}, ValueError, "sample_rate"),
        ({"sample_rate": 0}, ValueError, "sample_rate"),
        ({"sample_rate": "16000"}, TypeError, "sample_rate"),
        ({"sample_rate": 16000.0}, TypeError, "sample_rate"),
        ({"sample_rate": True}, TypeError, "sample_rate"),
        ({"audio_mode": "stereo"}, ValueError, "audio_mode"),
        ({"audio_mode": 1}, TypeError, "audio_mode"),
        ({"buffer_size": 0}, ValueError, "buffer_size"),
        ({"buffer_size": -1024}, ValueError, "buffer_size"),
        ({"buffer_size": 1000}, ValueError, "buffer_size"),
        ({"buffer_size": 1024.0}, TypeError, "buffer_size"),
    ],
)
def test_audio_invalid(kwargs: dict[str, Any], exc: type[Exception], field: str) -> None:
    with pytest.raises(exc, match=field):
        tf.CallAudioConfig(**kwargs)


def test_audio_accepts_enum_and_string_modes() -> None:
    assert tf.CallAudioConfig(audio_mode="isolated").audio_mode is tf.AudioMode.ISOLATED  # type: ignore[arg-type]
    assert tf.CallAudioConfig(buffer_size=1).buffer_size == 1


# ── SessionManagerConfig ────────────────────────────────────────────────────────────────


def test_api_key_config_and_derived_urls() -> None:
    cfg = tf.SessionManagerConfig.create(api_key=SECRET, connector_uuid="conn-1")
    assert cfg.base_url == "wss://wss-prod.agentao.com"
    assert cfg.control_url == "wss://wss-prod.agentao.com/v1/agent/session-manager"
    assert cfg.rest_base_url == "https://wss-prod.agentao.com"
    headers = cfg.auth_headers()
    assert headers["x-api-key"] == SECRET
    assert headers["x-connector-uuid"] == "conn-1"
    assert headers["x-sdk-version"] == "1.0.0"
    local = tf.SessionManagerConfig.create(
        api_key=SECRET, connector_uuid="c", base_url="ws://127.0.0.1:8080/"
    )
    assert local.control_url == "ws://127.0.0.1:8080/v1/agent/session-manager"
    assert local.rest_base_url == "http://127.0.0.1:8080"
    assert local.tls_context() is None


def test_mtls_config(tls_files: dict[str, str]) -> None:
    cfg = tf.SessionManagerConfig.create(
        cert_path=pathlib.Path(tls_files["cert_path"]),
        key_path=tls_files["key_path"],
        ca_bundle=tls_files["ca_bundle"],
        base_url="wss://127.0.0.1:9443",
    )
    assert "x-api-key" not in cfg.auth_headers()
    ctx = cfg.tls_context()
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert cfg.tls_context() is ctx  # built once


def test_given_ssl_context_is_used(tls_files: dict[str, str]) -> None:
    mine = ssl.create_default_context(cafile=tls_files["ca_bundle"])
    cfg = tf.SessionManagerConfig.create(
        cert_path=tls_files["cert_path"], key_path=tls_files["key_path"], ssl_context=mine
    )
    assert cfg.tls_context() is mine


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "credentials are required"),
        ({"api_key": SECRET}, "connector_uuid is required together with api_key"),
        ({"connector_uuid": "c"}, "api_key is required together with connector_uuid"),
        ({"api_key": "", "connector_uuid": "c"}, "api_key must not be empty"),
        ({"api_key": SECRET, "connector_uuid": ""}, "connector_uuid must not be empty"),
        ({"api_key": 42, "connector_uuid": "c"}, "api_key must be a str"),
        ({"api_key": SECRET + "\r\nx-evil: 1", "connector_uuid": "c"}, "api_key holds characters"),
        ({"api_key": SECRET, "connector_uuid": "c", "base_url": "http://h"}, "ws:// or wss://"),
        ({"api_key": SECRET, "connector_uuid": "c", "base_url": "h:80"}, "ws:// or wss://"),
        ({"api_key": SECRET, "connector_uuid": "c", "base_url": "ws://"}, "no host"),
        ({"api_key": SECRET, "connector_uuid": "c", "base_url": "ws://h:99999"}, "not a valid URL"),
        ({"api_key": SECRET, "connector_uuid": "c", "base_url": "ws://u:p@h"}, "user info"),
        ({"api_key": SECRET, "connector_uuid": "c", "base_url": "ws://h/?a=1"}, "query"),
        ({"api_key": SECRET, "connector_uuid": "c", "base_url": 5}, "base_url must be a str"),
        ({"api_key": SECRET, "connector_uuid": "c", "call_audio": {}}, "call_audio must be"),
        ({"api_key": SECRET, "connector_uuid": "c", "ssl_context": "yes"}, "ssl_context must be"),
        (
            {"api_key": SECRET, "connector_uuid": "c", "ca_bundle": "/nonexistent/ca.pem"},
            "ca_bundle: no such file",
        ),
    ],
)
def test_session_manager_config_invalid(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message) as info:
        tf.SessionManagerConfig.create(**kwargs)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"key_path": None}, "key_path is required together with cert_path"),
        ({"cert_path": None}, "cert_path is required together with key_path"),
        ({"api_key": SECRET, "connector_uuid": "c"}, "exactly one way to authenticate"),
        ({"base_url": "ws://127.0.0.1:1"}, "cert_path needs a wss:// base_url"),
        ({"ssl_context": ssl.create_default_context()}, "ca_bundle or ssl_context, not both"),
        ({"cert_path": "/nonexistent/cert.pem"}, "cert_path: no such file"),
    ],
)
def test_mtls_config_invalid(
    tls_files: dict[str, str], extra: dict[str, Any], message: str
) -> None:
    kwargs: dict[str, Any] = {**tls_files, "base_url": "wss://h", **extra}
    with pytest.raises(ValueError, match=message) as info:
        tf.SessionManagerConfig.create(**kwargs)
    assert SECRET not in str(info.value)


def test_repr_and_str_hold_no_secret() -> None:
    cfg = tf.SessionManagerConfig.create(api_key=SECRET, connector_uuid="conn-1")
    for text in (repr(cfg), str(cfg), f"{cfg}", repr([cfg]), repr(cfg.call_audio)):
        assert SECRET not in text
    assert "api_key='***'" in repr(cfg)
    assert "conn-1" in repr(cfg)


def test_configs_are_frozen() -> None:
    cfg = tf.SessionManagerConfig.create(api_key=SECRET, connector_uuid="c")
    with pytest.raises(AttributeError):
        cfg.api_key = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        tf.CallAudioConfig().sample_rate = 8000  # type: ignore[misc]


# ── CallFlowConfig / CallFlowBuilder ────────────────────────────────────────────────────


def test_call_flow_builder() -> None:
    flow = (
        tf.CallFlowBuilder()
        .inbound_call(tf.InboundCallMode.ALL)
        .outbound_call(True)
        .inbound_message(True)
        .build()
    )
    assert flow == tf.CallFlowConfig(tf.InboundCallMode.ALL, True, True, False)
    frame = flow.to_frame()
    assert (frame.inbound_call, frame.outbound_call, frame.inbound_message) == ("ALL", True, True)
    assert tf.CallFlowBuilder().build() == tf.CallFlowConfig()
    assert tf.CallFlowBuilder().inbound_call("MISSED_ONLY").build().inbound_call is (
        tf.InboundCallMode.MISSED_ONLY
    )


@pytest.mark.parametrize(
    ("build", "exc", "field"),
    [
        (lambda: tf.CallFlowBuilder().inbound_call("SOME"), ValueError, "inbound_call"),
        (lambda: tf.CallFlowBuilder().inbound_call(3), TypeError, "inbound_call"),
        (lambda: tf.CallFlowBuilder().outbound_call(1), TypeError, "enabled"),
        (lambda: tf.CallFlowBuilder().inbound_message("yes"), TypeError, "enabled"),
        (lambda: tf.CallFlowConfig(outbound_message=None), TypeError, "outbound_message"),
        (lambda: tf.CallFlowConfig(inbound_call="all"), ValueError, "inbound_call"),
    ],
)
def test_call_flow_invalid(build: Any, exc: type[Exception], field: str) -> None:
    with pytest.raises(exc, match=field):
        build()


def test_from_env_reads_the_telcoflow_variables() -> None:
    config = tf.SessionManagerConfig.from_env(
        {
            "TELCOFLOW_API_KEY": "sk-from-env",
            "TELCOFLOW_CONNECTOR_UUID": "conn-1",
            "TELCOFLOW_BASE_URL": "ws://127.0.0.1:9",
            "TELCOFLOW_CERT_PATH": "",  # empty counts as unset
            "OTHER": "ignored",
        }
    )
    assert config.api_key == "sk-from-env"
    assert config.connector_uuid == "conn-1"
    assert config.base_url == "ws://127.0.0.1:9"
    assert config.cert_path is None


@pytest.mark.parametrize(
    "environ",
    [{}, {"TELCOFLOW_API_KEY": "sk-secret-value"}, {"TELCOFLOW_CERT_PATH": "/c.pem"}],
)
def test_from_env_names_what_is_missing(environ: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="TELCOFLOW_API_KEY and TELCOFLOW_CONNECTOR_UUID") as info:
        tf.SessionManagerConfig.from_env(environ)
    assert "sk-secret-value" not in str(info.value)


def test_from_env_bad_values_are_named_without_the_key() -> None:
    environ = {
        "TELCOFLOW_API_KEY": "sk-secret-value",
        "TELCOFLOW_CONNECTOR_UUID": "conn-1",
        "TELCOFLOW_BASE_URL": "ftp://example.invalid",
    }
    with pytest.raises(ValueError, match="base_url") as info:
        tf.SessionManagerConfig.from_env(environ)
    assert "sk-secret-value" not in str(info.value)
