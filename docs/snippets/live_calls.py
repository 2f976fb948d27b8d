"""List the live calls of a SessionManager, or of a CallServer, from another task."""

import trio

import telcoflow_trio as tf


def describe(calls: tuple[tf.Call, ...]) -> list[str]:
    """One line per live call: its id, who called, and its state."""
    return [f"{call.id} from {call.caller_number} ({call.state.name})" for call in calls]


async def report_every(
    source: tf.SessionManager | tf.CallServer, seconds: float, lines: list[str]
) -> None:
    """Every ``seconds``, note the live calls (a real app would log or export them)."""
    while True:
        lines.extend(describe(source.calls))  # a fresh tuple on every read
        await trio.sleep(seconds)


async def hold(call: tf.Call) -> None:
    """A handler that answers and stays on the line until the caller hangs up."""
    if await call.answer():
        await call.wait_terminated()


async def main() -> None:
    config = tf.SessionManagerConfig.from_env()
    async with tf.SessionManager(config) as sm, trio.open_nursery() as nursery:
        server = tf.CallServer(sm, hold, max_calls=8)
        lines: list[str] = []
        nursery.start_soon(report_every, server, 5.0, lines)  # or sm: every call of sm
        await server.run()


if __name__ == "__main__":
    trio.run(main)
