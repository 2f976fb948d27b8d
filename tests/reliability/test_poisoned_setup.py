"""A server that drops the control connection right after every setup (here: a frame over
1 MiB, which the WebSocket layer itself refuses by closing, as RFC 6455 allows) is retried
ever more slowly, not at the first delay forever; a connection that stayed up resets it.

The delays are observed where they are chosen (the backoff the manager is given), never
timed with a wall clock.
"""

from __future__ import annotations

import attrs
import pytest
import trio

import telcoflow_trio as tf
from telcoflow_trio._config import TRANSPORTS, Transport
from telcoflow_trio._sansio_websocket import MAX_MESSAGE_SIZE
from telcoflow_trio.protocol import Backoff
from telcoflow_trio.testing import open_sandbox

from ._leaks import no_leaks

POISON = "x" * (MAX_MESSAGE_SIZE + 1)
"""One character over the message size limit: the client's WebSocket layer closes (1009)."""
ROUNDS = 6


@attrs.define
class RecordingBackoff(Backoff):
    """The manager's backoff, noting every delay it hands out."""

    delays: list[float] = attrs.field(factory=list)

    def next_delay(self) -> float:
        delay = super().next_delay()
        self.delays.append(delay)
        return delay


async def poison_every_setup(transport: Transport, backoff: RecordingBackoff) -> None:
    async with no_leaks(), open_sandbox() as sandbox:
        config = sandbox.config(transport=transport)
        with trio.fail_after(30):
            async with tf.SessionManager(config, backoff=backoff) as sm:
                first_id = sm.sm_ws_id
                for n in range(1, ROUNDS + 1):
                    await sandbox.send_control_raw(POISON)
                    await sm.wait_connection_state(tf.ConnectionState.RECONNECTING)
                    await sm.wait_connection_state(tf.ConnectionState.CONNECTED)
                    assert sm.reconnects == n
                assert sm.sm_ws_id != first_id
                # Still a working connection after all that.
                assert await sm.list_sessions() == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_repeated_poisoned_setups_back_off(transport: Transport) -> None:
    backoff = RecordingBackoff(first=0.004, factor=2.0, maximum=0.064, jitter=0.0)
    await poison_every_setup(transport, backoff)
    # Each connection lived far less than stable_after (30 s): no reset, the delays double
    # up to the cap. Resetting on setup.done would have given six times 0.004.
    assert backoff.delays == [0.004, 0.008, 0.016, 0.032, 0.064, 0.064]


async def test_connections_that_stayed_up_reset_the_backoff() -> None:
    # With stable_after=0 every established connection counts as one that stayed up.
    backoff = RecordingBackoff(first=0.004, factor=2.0, maximum=0.064, jitter=0.0)
    backoff.stable_after = 0.0
    await poison_every_setup("trio-websocket", backoff)
    assert backoff.delays == [0.004] * ROUNDS


async def test_jittered_delays_still_grow() -> None:
    backoff = RecordingBackoff(first=0.004, factor=2.0, maximum=0.064, jitter=0.2)
    await poison_every_setup("trio-websocket", backoff)
    bases = [min(0.004 * 2**n, 0.064) for n in range(ROUNDS)]
    for delay, base in zip(backoff.delays, bases, strict=True):
        assert base <= delay <= base * 1.2 + 1e-12
