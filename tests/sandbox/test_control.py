"""The control plane: the claim race, requests, ready gating and pushes."""

from __future__ import annotations

import pytest
import trio

from telcoflow_trio.testing import Sandbox, open_sandbox

from .raw import claimed_call, control


async def test_notify_is_broadcast_and_the_first_claim_wins(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as a, control(sandbox) as b, control(sandbox) as c:
            call = await sandbox.place_call(caller="+4411")
            notes = [await x.wait_type("session.notify") for x in (a, b, c)]
            assert {n["sessionId"] for n in notes} == {call.session_id}
            note = notes[0]
            assert note["channel"] == "TELCO"
            assert note["activity"] == "NEW_INCOMING_CALL"
            assert note["remoteAddress"] == "+4411"
            assert isinstance(note["createdAt"], int) and note["createdAt"] > 1_600_000_000
            # b claims first; then a and c lose, whatever order they ask in.
            won = await b.claim(call.session_id)
            assert won["ok"] is True
            session = won["content"]["session"]
            assert session["id"] == call.session_id
            assert session["channel"] == "TELCO"
            for loser in (a, c):
                lost = await loser.claim(call.session_id)
                assert lost["ok"] is False
                assert lost["errorCode"] == "SESSION_BUSY"
                assert lost["errorContent"] == {"boundSmWsId": b.sm_ws_id}
            # Claiming again from the winner is harmless.
            assert (await b.claim(call.session_id))["ok"] is True


async def test_concurrent_claims_have_exactly_one_winner(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as a, control(sandbox) as b:
            call = await sandbox.place_call()
            results: dict[str, bool] = {}

            async def claim(name: str, ctl: object) -> None:
                from .raw import RawControl

                assert isinstance(ctl, RawControl)
                await ctl.wait_type("session.notify")
                results[name] = (await ctl.claim(call.session_id))["ok"]

            async with trio.open_nursery() as nursery:
                nursery.start_soon(claim, "a", a)
                nursery.start_soon(claim, "b", b)
            assert sorted(results.values()) == [False, True]


async def test_open_errors(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            missing = await ctl.claim("sess-nope")
            assert (missing["ok"], missing["errorCode"]) == (False, "SESSION_NOT_FOUND")
            call = await sandbox.place_call()
            await call.hang_up()
            closed = await ctl.claim(call.session_id)
            assert (closed["ok"], closed["errorCode"]) == (False, "SESSION_CLOSED")


async def test_call_in_is_held_until_ready(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            call = await sandbox.place_call(caller="+100", callee="+200")
            await ctl.wait_type("session.notify")
            assert (await ctl.claim(call.session_id))["ok"]
            with trio.move_on_after(0.3):
                await ctl.wait_type("call.in")
                pytest.fail("call.in before session.ready")
            assert not call.delivered.is_set()
            await ctl.ready(call.session_id)
            call_in = await ctl.wait_type("call.in")
            assert call_in["sessionId"] == call.session_id
            assert call_in["callId"] == call.call_id
            assert (call_in["from"], call_in["to"]) == ("+100", "+200")
            assert call_in["url"] == f"{sandbox.url}/v1/voice/{call.call_id}"
            assert call_in["token"] == call.token
            assert call_in["orgUuid"]
            assert call.sample_rate == 16000


async def test_ready_from_a_non_holder_is_ignored(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as a, control(sandbox) as b:
            call = await sandbox.place_call()
            await a.wait_type("session.notify")
            assert (await a.claim(call.session_id))["ok"]
            await b.ready(call.session_id)
            with trio.move_on_after(0.2):
                await b.wait_type("call.in")
                pytest.fail("call.in went to a connection that does not hold the session")
            await a.ready(call.session_id)
            await a.wait_type("call.in")


async def test_wa_messages_are_held_until_ready_and_then_flow(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            sid = await sandbox.send_wa_message("+wa1", {"text": {"body": "hello"}})
            assert await sandbox.send_wa_message("+wa1", {"text": {"body": "again"}}) == sid
            note = await ctl.wait_type("session.notify")
            assert (note["channel"], note["activity"]) == ("WA", "NEW_INCOMING_MESSAGE")
            assert (await ctl.claim(sid))["content"]["session"]["channel"] == "WA"
            with trio.move_on_after(0.2):
                await ctl.wait_type("wa.msg.in")
                pytest.fail("wa.msg.in before session.ready")
            await ctl.ready(sid)
            first = await ctl.wait_type("wa.msg.in")
            second = await ctl.wait_type("wa.msg.in")
            assert [first["content"], second["content"]] == [
                {"text": {"body": "hello"}},
                {"text": {"body": "again"}},
            ]
            assert first["sender"] == "+wa1"
            await sandbox.send_wa_message("+wa1", {"text": {"body": "live"}}, sender="Ann")
            live = await ctl.wait_type("wa.msg.in")
            assert (live["sender"], live["content"]) == ("Ann", {"text": {"body": "live"}})


async def test_wa_msg_out_round_trip_and_errors(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl, control(sandbox) as other:
            sid = await sandbox.send_wa_message("+wa2", {"text": {"body": "hi"}})
            await ctl.claim(sid)
            await ctl.ready(sid)
            payload = {"messaging_product": "whatsapp", "type": "text", "text": {"body": "yo"}}

            def out(session_id: str, data: dict[str, object]) -> dict[str, object]:
                return {
                    "type": "wa.msg.out",
                    "data": {
                        "sessionId": session_id,
                        "clientMsgId": "m-1",
                        "apiVersion": "v21.0",
                        "data": data,
                    },
                }

            ok = await ctl.request(out(sid, payload))
            assert ok["ok"] is True
            assert ok["content"]["messages"][0]["id"].startswith("wamid.")
            (sent,) = await sandbox.wait_wa_out(1)
            assert (sent.session_id, sent.client_msg_id, sent.api_version) == (sid, "m-1", "v21.0")
            assert (sent.data, sent.remote_address, sent.sm_ws_id) == (
                payload,
                "+wa2",
                ctl.sm_ws_id,
            )

            assert (await ctl.request(out("sess-none", payload)))["errorCode"] == (
                "SESSION_NOT_FOUND"
            )
            assert (await other.request(out(sid, payload)))["errorCode"] == "SESSION_NOT_OPEN"
            assert (await ctl.request(out(sid, {})))["errorCode"] == "INVALID_PAYLOAD"
            call, _ = await claimed_call(ctl, sandbox)
            assert (await ctl.request(out(call.session_id, payload)))["errorCode"] == (
                "INVALID_CHANNEL"
            )
            bad = await ctl.request({"type": "wa.msg.out", "data": {"sessionId": sid}})
            assert (bad["ok"], bad["errorCode"]) == (False, "INVALID_PAYLOAD")
            assert len(sandbox.wa_outbox) == 1


async def test_session_create(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            first = await ctl.request(
                {"type": "session.create", "channel": "WA", "remoteAddress": "+77"}
            )
            assert first["ok"] is True and first["content"]["created"] is True
            again = await ctl.request(
                {"type": "session.create", "channel": "WA", "remoteAddress": "+77"}
            )
            assert again["content"] == {
                "sessionId": first["content"]["sessionId"],
                "created": False,
            }
            sid = first["content"]["sessionId"]
            opened = await ctl.claim(sid)
            assert opened["content"]["session"]["remoteAddress"] == "+77"
            assert sandbox.sessions[sid].initiator == "SDK"

            # A TELCO session made by the SDK is an outbound call, delivered after ready.
            tel = await ctl.request(
                {"type": "session.create", "channel": "TELCO", "remoteAddress": "+88"}
            )
            tsid = tel["content"]["sessionId"]
            await ctl.claim(tsid)
            await ctl.ready(tsid)
            call_in = await ctl.wait_type("call.in", sessionId=tsid)
            assert call_in["to"] == "+88"
            assert sandbox.calls[call_in["callId"]].direction == "outbound"


async def test_session_create_limits() -> None:
    with trio.fail_after(5):
        async with open_sandbox(channels=["WA"], max_open_sessions=1) as sb, control(sb) as ctl:
            tel = await ctl.request(
                {"type": "session.create", "channel": "TELCO", "remoteAddress": "+1"}
            )
            assert tel["errorCode"] == "CHANNEL_NOT_CONFIGURED"
            one = await ctl.request(
                {"type": "session.create", "channel": "WA", "remoteAddress": "+1"}
            )
            assert one["ok"]
            two = await ctl.request(
                {"type": "session.create", "channel": "WA", "remoteAddress": "+2"}
            )
            assert two["errorCode"] == "QUOTA_EXCEEDED"


async def test_call_flow_setup_is_recorded(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            data = {
                "inboundCall": "MISSED_ONLY",
                "outboundCall": True,
                "inboundMessage": True,
                "outboundMessage": False,
            }
            response = await ctl.request({"type": "call_flow.setup", "data": data})
            assert response["ok"] is True and response["content"] is None
            (flow,) = sandbox.switchboard.call_flows
            assert flow.inbound_call == "MISSED_ONLY" and flow.outbound_call is True
            bad = await ctl.request({"type": "call_flow.setup", "data": {"inboundCall": "SOME"}})
            assert (bad["ok"], bad["errorCode"]) == (False, "INVALID_REQUEST")


async def test_session_closed_reasons(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            call, _ = await claimed_call(ctl, sandbox)
            await call.hang_up()
            closed = await ctl.wait_type("session.closed", sessionId=call.session_id)
            assert closed["reason"] == "CALL_TERMINATED"

            sid = await sandbox.send_wa_message("+wa3", {"text": {"body": "x"}})
            await ctl.claim(sid)
            assert await sandbox.close_session(sid)
            forced = await ctl.wait_type("session.closed", sessionId=sid)
            assert forced["reason"] == "FORCE_CLOSE"
            assert not await sandbox.close_session(sid)


async def test_malformed_client_frames_are_ignored(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            for frame in (
                "nonsense",
                "[]",
                '{"no": "type"}',
                '{"type": "sandbox.unknown"}',
                '{"type": "session.ready"}',
                b"\x00\x01binary",
            ):
                await ctl.send(frame)
            bad = await ctl.request({"type": "session.open"})
            assert (bad["ok"], bad["errorCode"]) == (False, "INVALID_REQUEST")
            assert (await ctl.claim("sess-x"))["errorCode"] == "SESSION_NOT_FOUND"
            assert len(sandbox.control_connections) == 1


async def test_requests_before_setup_are_refused(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox, setup=False) as ctl:
            refused = await ctl.claim("sess-x")
            assert refused["errorCode"] == "INVALID_REQUEST"


async def test_new_connections_hear_about_waiting_sessions(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        call = await sandbox.place_call()
        sid = await sandbox.send_wa_message("+wa4", {"text": {"body": "x"}})
        async with control(sandbox) as ctl:
            first = await ctl.wait_type("session.notify")
            second = await ctl.wait_type("session.notify")
            assert {first["sessionId"], second["sessionId"]} == {call.session_id, sid}


async def test_a_lost_connection_frees_its_calls_for_others(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as survivor:
            async with control(sandbox) as doomed:
                call, _ = await claimed_call(doomed, sandbox)
                await survivor.wait_type("session.notify")
                assert await sandbox.drop_control_connections(doomed.sm_ws_id) == 1
            resumed = await survivor.wait_type("session.notify", activity="RESUME")
            assert resumed["sessionId"] == call.session_id
        async with control(sandbox) as late:
            again = await late.wait_type("session.notify")
            assert again["activity"] == "RESUME"
            assert (await late.claim(call.session_id))["ok"]
            await late.ready(call.session_id)
            redelivered = await late.wait_type("call.in")
            assert redelivered["callId"] == call.call_id
