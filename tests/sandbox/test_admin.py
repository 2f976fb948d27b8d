"""The admin endpoints another process uses to drive a sandbox, and the CLI's text mode."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys

import httpx
import trio

from telcoflow_trio.testing import Sandbox, TestSignal

from .raw import control, voice


async def test_admin_drives_calls_and_faults(sandbox: Sandbox) -> None:
    with trio.fail_after(10):
        async with (
            httpx.AsyncClient(base_url=sandbox.rest_url, headers=sandbox.auth_headers) as admin,
            control(sandbox) as ctl,
        ):
            async with httpx.AsyncClient(base_url=sandbox.rest_url) as anonymous:
                assert (await anonymous.get("/admin/state")).status_code == 401
            pcm = TestSignal(seconds=0.1).render(16000)
            placed = await admin.post(
                "/admin/calls",
                json={"caller": "+1", "audio": {"pcm": base64.b64encode(pcm).decode()}},
            )
            assert placed.status_code == 201
            call_id = placed.json()["callId"]
            note = await ctl.wait_type("session.notify")
            assert note["sessionId"] == placed.json()["sessionId"]
            await ctl.claim(note["sessionId"])
            await ctl.ready(note["sessionId"])
            call_in = await ctl.wait_type("call.in")
            async with voice(call_in) as v:
                await v.command("call.answer")
                said = await admin.post(
                    f"/admin/calls/{call_id}/say", json={"audio": {"silence": 0.02}}
                )
                assert said.status_code == 200
                while len(v.audio()) < len(pcm) + 640:
                    await v._pump()
                assert v.audio() == pcm + bytes(640)
                error = await admin.post(
                    f"/admin/calls/{call_id}/error", json={"errorCode": "TTS_SESSION_ERROR"}
                )
                assert error.status_code == 200
                assert (await v.wait_type("call_event"))["data"]["event"] == "call.error"
                status = (await admin.get(f"/admin/calls/{call_id}?audio=1")).json()
                assert base64.b64decode(status["spoken"]) == pcm + bytes(640)
                assert status["answered"] is True and status["state"] == "LIVE"
                sessions = (await admin.get("/admin/sessions")).json()["items"]
                assert sessions[0]["boundSmWsId"] == ctl.sm_ws_id and sessions[0]["ready"]
                assert (await admin.post(f"/admin/calls/{call_id}/hangup")).json()["endedBy"] == (
                    "CALLER_HANGUP"
                )
            assert (await admin.get("/admin/calls/nope")).status_code == 404
            bad = await admin.post("/admin/calls", json={"audio": {"tone": {"pitch": 1}}})
            assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_REQUEST")

            faults = await admin.post(
                "/admin/faults", json={"refuse_control": 1, "withhold_responses": ["session.open"]}
            )
            assert faults.status_code == 200
            assert sandbox.faults.refuse_control == 1
            assert sandbox.faults.withhold_responses == {"session.open"}
            assert (await admin.post("/admin/faults", json={"nope": 1})).status_code == 400
            sandbox.faults.reset()
            assert sandbox.faults.refuse_control == 0

            wa = await admin.post(
                "/admin/wa/messages",
                json={"remoteAddress": "+9", "content": {"text": {"body": "x"}}},
            )
            assert wa.status_code == 201
            closed = await admin.post(f"/admin/sessions/{wa.json()['sessionId']}/close", json={})
            assert closed.json() == {"closed": True}
            assert (await admin.post("/admin/control/drop")).json() == {"dropped": 1}


def test_cli_prints_url_and_credentials_and_stops_on_sigint() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "telcoflow_trio", "sandbox", "--api-key", "key-1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(7)]
        text = "".join(lines)
        assert "base_url:        ws://127.0.0.1:" in text
        assert "api_key:         key-1" in text
        assert "connector_uuid:" in text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130  # stopped by Ctrl+C, as a shell reports it
    finally:
        proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()


def test_cli_refuses_half_a_tls_setup() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "telcoflow_trio", "sandbox", "--tls-cert", "x.pem"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "--tls-cert and --tls-key go together" in done.stderr
