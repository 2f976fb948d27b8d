"""WhatsApp messages: answer every conversation, and start one of our own.

    python examples/messages.py --sandbox      # a simulated user writes; the agent replies
    TELCOFLOW_API_KEY=... TELCOFLOW_CONNECTOR_UUID=... python examples/messages.py

Each WA session notified to this agent is claimed in its own task; ``session.messages`` is a
trio channel of ``IncomingMessage``s, and ``session.send_message(SendWAMessage(...))``
returns a falsy ``SendMessageResult`` when the connector refuses it. "bye" ends the
conversation: leaving the ``async with`` closes the session (REST) and waits for the
server's confirmation. ``sm.create_session(ChannelType.WA, number)`` starts a conversation
from our side. The environment variables are those of echo_agent.py, plus
TELCOFLOW_WA_NOTIFY: a number to greet once at start-up.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from typing import Any, Final

import trio

import telcoflow_trio as tf
from telcoflow_trio import run_main

log = logging.getLogger("messages")

API_VERSION: Final = "v1"
"""Your connector's message API version; ``data`` is passed to it as is."""


def text_message(to: str, body: str) -> tf.SendWAMessage:
    return tf.SendWAMessage(API_VERSION, {"to": to, "type": "text", "text": {"body": body}})


def text_of(content: dict[str, Any]) -> str:
    text = content.get("text")
    body = text.get("body") if isinstance(text, dict) else None
    return body if isinstance(body, str) else ""


async def handle_conversation(session: tf.Session) -> None:
    """Reply to each message until the user says bye or the session closes."""
    await session.ready()  # the server holds the session's messages until now
    async for message in session.messages:
        said = text_of(message.content)
        # Message content is personal data: log that a message came, not what it said.
        log.info("session %s: a message of %d characters", session.id, len(said))
        reply = "Goodbye!" if said.strip().lower() == "bye" else f"You said: {said}"
        result = await session.send_message(text_message(message.sender, reply))
        if not result:
            log.warning("session %s: reply refused (%s)", session.id, result.error_code)
        if said.strip().lower() == "bye":
            return  # leaving the session's scope closes it


async def serve_conversations(sm: tf.SessionManager) -> None:
    """Claim every WA session notified to us, one task each; runs until cancelled."""

    async def claim(session_id: str) -> None:
        try:
            async with sm.open_session(session_id) as session:
                await handle_conversation(session)
        except tf.WSSSessionBusy:
            log.debug("session %s: another agent has it", session_id)
        except tf.WSSError as exc:
            log.warning("session %s: %s", session_id, exc)

    async with trio.open_nursery() as nursery:
        async for note in sm.session_notifications:
            if note.channel is tf.ChannelType.WA:
                nursery.start_soon(claim, note.session_id)


async def greet(sm: tf.SessionManager, number: str) -> tf.SendMessageResult:
    """Start a conversation from our side and send the first message."""
    try:
        async with sm.create_session(tf.ChannelType.WA, number) as session:
            return await session.send_message(text_message(number, "Hello from the agent!"))
    except tf.WSSSessionAlreadyExists as exc:
        log.info("a conversation with %s is already open (%s)", number, exc)
        return tf.SendMessageResult(False, error_code="SESSION_ALREADY_EXISTS")


def config_from_env() -> tf.SessionManagerConfig:
    """Credentials from the environment (see ``SessionManagerConfig.from_env``)."""
    try:
        return tf.SessionManagerConfig.from_env()
    except (TypeError, ValueError) as exc:
        message = f"bad Telcoflow settings in the environment: {exc}, or pass --sandbox"
        raise SystemExit(message) from None


async def run_against_sandbox() -> int:
    from telcoflow_trio.sandbox import open_sandbox

    user = "+15551230000"
    async with (
        open_sandbox() as sandbox,
        tf.SessionManager(sandbox.config()) as sm,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(serve_conversations, sm)
        with trio.fail_after(20):
            session_id = await sandbox.send_wa_message(
                user, {"type": "text", "text": {"body": "hi"}}
            )
            await sandbox.wait_wa_out(1)
            await sandbox.send_wa_message(user, {"type": "text", "text": {"body": "bye"}})
            await sandbox.wait_wa_out(2)
            await sandbox.wait_for(lambda: sandbox.sessions[session_id].state == "CLOSED")
            greeted = await greet(sm, "+15559990000")
        nursery.cancel_scope.cancel()
    replies = [text_of(m.data) for m in sandbox.wa_outbox]
    for message in sandbox.wa_outbox:
        print(f"agent -> {message.remote_address}: {text_of(message.data)}")
    ok = replies == ["You said: hi", "Goodbye!", "Hello from the agent!"] and bool(greeted)
    print("conversation closed by the agent; " + ("as expected" if ok else "NOT as expected"))
    return 0 if ok else 1


async def run_for_real(config: tf.SessionManagerConfig, notify: str | None) -> int:
    async with tf.SessionManager(config) as sm:
        if notify:
            result = await greet(sm, notify)
            log.info("greeting %s: %s", notify, "sent" if result else result.error_code)
        await serve_conversations(sm)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sandbox", action="store_true", help="run against a local sandbox")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.sandbox:
        return trio.run(run_against_sandbox)
    return trio.run(run_for_real, config_from_env(), os.environ.get("TELCOFLOW_WA_NOTIFY"))


if __name__ == "__main__":
    raise SystemExit(run_main(main))  # Ctrl+C: one line, status 130
