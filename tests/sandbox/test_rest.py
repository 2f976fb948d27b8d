"""The REST plane: list and close sessions, auth, error bodies."""

from __future__ import annotations

import httpx
import trio

from telcoflow_trio.protocol import rest
from telcoflow_trio.testing import Sandbox

from .raw import claimed_call, control


def client(sandbox: Sandbox, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=sandbox.rest_url, headers=headers or {**sandbox.auth_headers, "x-sdk-version": "1"}
    )


async def test_list_sessions_with_filters(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        call = await sandbox.place_call(caller="+1001")
        wa = await sandbox.send_wa_message("+2002", {"text": {"body": "x"}})
        ended = await sandbox.place_call(caller="+3003")
        await ended.hang_up()
        async with client(sandbox) as http:
            everything = await http.get("/public/v1/sessions")
            assert everything.status_code == 200
            listed = rest.decode_session_list(everything.content)
            assert isinstance(listed, list)
            assert {s.id for s in listed} == {call.session_id, wa, ended.session_id}

            async def ids(**params: str) -> set[str]:
                response = await http.get("/public/v1/sessions", params=params)
                assert response.status_code == 200
                return {item["id"] for item in response.json()["items"]}

            assert await ids(state="OPEN") == {call.session_id, wa}
            assert await ids(state="CLOSED") == {ended.session_id}
            assert await ids(channel="WA") == {wa}
            assert await ids(channel="TELCO", state="OPEN") == {call.session_id}
            assert await ids(remoteAddress="+1001") == {call.session_id}
            assert await ids(remoteAddress="+nobody") == set()

            (item,) = (await http.get("/public/v1/sessions", params={"channel": "WA"})).json()[
                "items"
            ]
            assert item["initiator"] == "CONNECTOR"
            assert item["state"] == "OPEN"
            assert isinstance(item["openedAt"], int) and item["closedAt"] is None

            bad = await http.get("/public/v1/sessions", params={"channel": "FAX"})
            assert bad.status_code == 400
            assert bad.json()["code"] == "INVALID_REQUEST"


async def test_close_session_tells_the_agent(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl, client(sandbox) as http:
            sid = await sandbox.send_wa_message("+wa", {"text": {"body": "x"}})
            await ctl.claim(sid)
            response = await http.post(f"/public/v1/sessions/{sid}/close")
            assert response.status_code == 200
            result = rest.decode_close_result(response.content)
            assert isinstance(result, rest.CloseResult)
            assert result.reason == "SDK_REQUEST" and result.closed_at > 0
            closed = await ctl.wait_type("session.closed", sessionId=sid)
            assert closed["reason"] == "SDK_REQUEST"

            again = await http.post(f"/public/v1/sessions/{sid}/close")
            assert again.status_code == 404
            assert again.json()["code"] == "SESSION_CLOSED"
            unknown = await http.post("/public/v1/sessions/sess-nope/close")
            assert unknown.status_code == 404
            body = rest.decode_error_body(unknown.content)
            assert body == rest.ErrorBody("SESSION_NOT_FOUND", "no session has that id")


async def test_closing_a_telco_session_ends_its_call(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl, client(sandbox) as http:
            call, _ = await claimed_call(ctl, sandbox)
            response = await http.post(f"/public/v1/sessions/{call.session_id}/close")
            assert response.status_code == 200
            await call.wait_terminated()
            assert (await ctl.wait_type("session.closed"))["reason"] == "SDK_REQUEST"


async def test_rest_auth_and_unknown_routes(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with httpx.AsyncClient(base_url=sandbox.rest_url) as anon:
            refused = await anon.get("/public/v1/sessions")
            assert refused.status_code == 401
            assert refused.json()["code"] == "UNAUTHORIZED"
            assert refused.json()["message"]
        async with client(sandbox, **{"x-api-key": "nope", "x-connector-uuid": "x"}) as wrong:
            assert (await wrong.get("/public/v1/sessions")).status_code == 401
        async with client(sandbox) as http:
            assert (await http.get("/public/v1/nowhere")).json()["code"] == "NOT_FOUND"
            assert (await http.post("/public/v1/sessions")).status_code == 405
            assert (await http.get("/public/v1/sessions/x/close")).status_code == 405
            # Keep-alive: many requests, one connection.
            for _ in range(5):
                assert (await http.get("/public/v1/sessions")).status_code == 200
