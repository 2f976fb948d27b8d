"""An agent built on the official asyncio client, ``telcoflow==1.0.0``, for interop tests.

Run as ``python interop_client.py MODE`` with ``SANDBOX_URL``, ``SANDBOX_API_KEY`` and
``SANDBOX_CONNECTOR_UUID`` in the environment. It prints ``READY <smWsId>`` once connected
and one ``RESULT <json>`` line when done. Modes: ``echo``, ``wa``, ``connect``, ``race``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from telcoflow import SessionManager, SessionManagerConfig
from telcoflow.exceptions import WSSSessionBusy
from telcoflow.messages import SendWAMessage

ECHO_BYTES = 64_000  # 2 s at 16 kHz


def result(**fields: Any) -> None:
    print("RESULT " + json.dumps(fields), flush=True)


async def main(mode: str) -> None:
    config = SessionManagerConfig.create(
        api_key=os.environ["SANDBOX_API_KEY"],
        connector_uuid=os.environ["SANDBOX_CONNECTOR_UUID"],
        base_url=os.environ["SANDBOX_URL"],
    )
    done = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()
    async with SessionManager(config) as sm:

        async def echo(call: Any, session: Any) -> None:
            answered = await call.answer()
            echoed = 0
            async for chunk in call.audio_stream():
                await call.send_audio(chunk)
                echoed += len(chunk)
                if echoed >= ECHO_BYTES:
                    break
            while await call.get_send_audio_buffer_size() > 0:  # noqa: ASYNC110 - no event for it
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # the last pull is answered by now
            await session.close()
            result(answered=bool(answered), echoed=echoed, closed=session.is_closed)

        async def connect(call: Any) -> None:
            outcome = await call.connect(ring_time_seconds=1)
            whisper = await call.whisper()
            gone = await call.disconnect()
            result(
                success=outcome.success,
                error_code=outcome.error_code,
                whisper_error=whisper.error_code,
                disconnected=gone.success,
            )

        async def on_notify(noti: Any) -> None:
            try:
                session = await sm.open_session(noti.session_id)
            except WSSSessionBusy as exc:
                result(won=False, bound=exc.bound_sm_ws_id, message=str(exc))
                done.set()
                return
            if mode == "race":
                result(won=True, sm_ws_id=sm.id)

            async def on_call(call: Any) -> None:
                try:
                    if mode == "echo":
                        await echo(call, session)
                    elif mode == "connect":
                        await connect(call)
                    else:
                        await call.disconnect()
                finally:
                    done.set()

            async def on_message(message: Any) -> None:
                text = message.content.get("text", {}).get("body", "")
                sent = await session.send_message(
                    SendWAMessage(
                        api_version="v21.0",
                        data={"type": "text", "text": {"body": "echo: " + text}},
                    )
                )

                async def close() -> None:
                    # Not from inside this handler: session.closed is delivered on the same
                    # serial event bus, so waiting for it here would wait out its timeout.
                    loop = asyncio.get_running_loop()
                    started = loop.time()
                    await session.close()
                    result(
                        sender=message.sender,
                        text=text,
                        sent=sent.success,
                        message_id=sent.response_content["messages"][0]["id"],
                        closed=session.is_closed,
                        close_seconds=loop.time() - started,
                    )
                    done.set()

                tasks.add(asyncio.create_task(close()))

            session.on_incoming_call(on_call)
            session.on_incoming_message(on_message)
            await session.ready()

        sm.on_session_notification(on_notify)
        print(f"READY {sm.id}", flush=True)
        await asyncio.wait_for(done.wait(), timeout=30)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
