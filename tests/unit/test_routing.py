"""Routing of the control plane's pushed frames, over the in-memory transport."""

from __future__ import annotations

import trio
import trio.testing

import telcoflow_trio as tf
from telcoflow_trio.protocol import control

from ._fake_server import fake_server


async def test_a_notification_reaches_session_notifications(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_server() as fs, fs.manager() as sm:
        assert fs.log == ["control#1 setup"]
        await fs.notify(
            "s-1",
            remote_address="+100",
            local_address="+200",
            activity=tf.SessionActivityType.RESUME,
            created_at=7,
        )
        note = await sm.session_notifications.receive()
        assert note == tf.SessionNotification(
            "s-1", tf.ChannelType.TELCO, "+100", "+200", tf.SessionActivityType.RESUME, 7
        )


async def test_call_in_goes_to_its_own_session(autojump_clock: trio.testing.MockClock) -> None:
    async with (
        fake_server() as fs,
        fs.manager() as sm,
        sm.open_session("s-1") as one,
        sm.open_session("s-2") as two,
    ):
        await one.ready()
        await two.ready()
        await fs.call_in("s-2", "c-2")
        await fs.call_in("s-1", "c-1")
        assert (await two.incoming_call()).id == "c-2"
        assert (await one.incoming_call()).id == "c-1"


async def test_frames_for_an_unknown_session_are_ignored(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_server() as fs, fs.manager() as sm, sm.open_session("s-1") as session:
        await session.ready()
        await fs.call_in("s-unknown", "c-x")
        await fs.push(control.SessionClosed("s-unknown", tf.CloseReason.FORCE_CLOSE))
        await fs.push(control.WaMsgIn("s-unknown", "+1", {"text": "hi"}))
        await trio.testing.wait_all_tasks_blocked()
        assert not session.is_closed
        assert sm.connection_state is tf.ConnectionState.CONNECTED
        await fs.call_in("s-1", "c-1")  # the connection still routes what is ours
        assert (await session.incoming_call()).id == "c-1"
        assert len(fs.controls) == 1


async def test_an_unknown_notification_channel_is_delivered_as_a_string(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_server() as fs, fs.manager() as sm:
        await fs.notify("s-1", channel="CARRIER_PIGEON", activity="MIGRATING")
        note = await sm.session_notifications.receive()
        assert (note.session_id, note.channel, note.activity) == (
            "s-1",
            "CARRIER_PIGEON",
            "MIGRATING",
        )
        assert not isinstance(note.channel, tf.ChannelType)
