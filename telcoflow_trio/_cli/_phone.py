"""``python -m telcoflow_trio phone``: a dev phone for a running sandbox.

It places a call into a sandbox started elsewhere (``python -m telcoflow_trio sandbox``)
through the sandbox's admin endpoints, speaks a WAV file once an agent has the call
(converted to 16-bit mono at the call's sample rate), listens a little longer, hangs up,
and writes what the agent said to a WAV file. As on a phone line, the caller sends silence
whenever it is not speaking, from the answer to the hang-up: a turn-taking agent hears the
caller's turn end.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import ssl
import sys
from typing import Any, Final, TextIO

import attrs
import httpx
import trio

from .._scope import cleanup_within
from ..sandbox import WavFormatError, frame_bytes, inspect_wav, read_wav, write_wav
from ._progress import Progress, add_output_options, bar, start_output

__all__ = ["PhoneError", "PhoneResult", "register", "run", "run_phone"]

logger = logging.getLogger(__name__)

POLL_INTERVAL: Final = 0.1
FRAME_SECONDS: Final = 0.02
SAY_CHUNK_BYTES: Final = 1 << 20
"""PCM per admin request, well under the sandbox's request-body limit once in base64."""


class PhoneError(Exception):
    """Why a call could not be made or completed; the message is meant for the user."""


@attrs.frozen
class PhoneResult:
    """One call of the phone; ``spoken_seconds`` counts the file only, not the line's
    silence, ``heard_seconds`` everything the agent sent (silence included)."""

    call_id: str
    sample_rate: int
    spoken_seconds: float
    heard_seconds: float
    ended_by: str | None
    out_path: str | None


def rest_base(url: str) -> str:
    """The sandbox's HTTP base from whatever URL the user has (ws, wss, http, https)."""
    url = url.strip().rstrip("/")
    for ws, http in (("ws://", "http://"), ("wss://", "https://")):
        if url.startswith(ws):
            return http + url[len(ws) :]
    if url.startswith(("http://", "https://")):
        return url
    raise PhoneError(f"--url must start with ws://, wss://, http:// or https://, got {url!r}")


def _check(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code == 401:
        raise PhoneError(f"the sandbox refused the credentials ({what}): check --api-key")
    if response.status_code >= 400:
        try:
            detail = response.json().get("message", "")
        except ValueError:
            detail = ""
        raise PhoneError(f"{what} failed: HTTP {response.status_code} {detail}".rstrip())
    try:
        body = response.json()
    except ValueError:
        raise PhoneError(f"{what}: the answer is not JSON; is this a Telcoflow sandbox?") from None
    if not isinstance(body, dict):
        raise PhoneError(f"{what}: unexpected answer; is this a Telcoflow sandbox?")
    return body


async def run_phone(
    wav_path: str,
    *,
    url: str,
    api_key: str,
    connector_uuid: str,
    out_path: str | None = "agent_said.wav",
    caller: str = "+15550100000",
    callee: str | None = None,
    answer_timeout: float = 15.0,
    listen_after: float = 3.0,
    max_seconds: float = 600.0,
    ca_bundle: str | None = None,
    progress: Progress | None = None,
) -> PhoneResult:
    """Place the call, speak the file, record the agent; raises :class:`PhoneError` or
    :class:`~telcoflow_trio.sandbox.WavFormatError` with a message for the user."""
    show = progress if progress is not None else Progress(sys.stdout, "none")
    inspect_wav(wav_path)  # refuse an unreadable file before any call is placed
    base = rest_base(url)
    headers = {"x-api-key": api_key, "x-connector-uuid": connector_uuid}
    verify: ssl.SSLContext | bool = True
    if ca_bundle is not None:
        verify = ssl.create_default_context(cafile=ca_bundle)
    async with httpx.AsyncClient(base_url=base, headers=headers, verify=verify, timeout=30) as http:
        # An open line: the sandbox's caller sends silence in every pause until the call
        # ends, so an agent that takes turns hears the end of the caller's.
        body: dict[str, Any] = {"caller": caller, "audio": {"silence": "inf"}}
        if callee is not None:
            body["callee"] = callee
        try:
            placed = _check(await http.post("/admin/calls", json=body), "placing the call")
        except httpx.HTTPError as exc:
            raise PhoneError(
                f"cannot reach a sandbox at {base} ({type(exc).__name__}); "
                "start one with `python -m telcoflow_trio sandbox`"
            ) from None
        call_id = str(placed["callId"])
        path = f"/admin/calls/{call_id}"
        show.line(f"calling     call {call_id} from {caller}")
        ended = False
        said_from: int | None = None  # where the file starts in what the caller sent
        size = 0
        try:
            with trio.fail_after(max_seconds):
                status = await _wait_answered(http, path, answer_timeout, show)
                rate = int(status["sampleRate"])
                pcm, _ = read_wav(wav_path, sample_rate=rate)
                # Whole 20 ms frames, as a phone network sends: an agent that waits for a
                # full frame (the pull protocol's floor) would otherwise hold a short tail.
                pcm += bytes(-len(pcm) % frame_bytes(rate, FRAME_SECONDS))
                size = len(pcm)
                for start in range(0, size, SAY_CHUNK_BYTES):
                    chunk = base64.b64encode(pcm[start : start + SAY_CHUNK_BYTES]).decode()
                    reply = _check(
                        await http.post(path + "/say", json={"audio": {"pcm": chunk}}), "say"
                    )
                    if said_from is None:
                        # The line sent whole frames of silence until now; the file comes next.
                        said_from = int(reply["spokenBytes"])
                if said_from is None:  # too short to leave a sample at the call's rate
                    said_from = int(status["spokenBytes"])
                status = await _wait_spoken(http, path, said_from, size, rate, listen_after, show)
                ended = status["state"] == "ENDED"
        finally:
            if not ended:
                await cleanup_within(5, http.post, path + "/hangup")
            show.clear()
        final = _check(await http.get(path, params={"audio": "1"}), "fetching the recording")
    heard = base64.b64decode(final.get("heard", ""))
    rate = int(final.get("sampleRate") or 16000)
    spoken = 0
    if said_from is not None:
        spoken = min(max(int(final.get("spokenBytes", 0)) - said_from, 0), size)
    if out_path is not None:
        write_wav(out_path, heard, rate)
    return PhoneResult(
        call_id=call_id,
        sample_rate=rate,
        spoken_seconds=spoken / (2 * rate),
        heard_seconds=len(heard) / (2 * rate),
        ended_by=final.get("endedBy"),
        out_path=out_path,
    )


async def _wait_answered(
    http: httpx.AsyncClient, path: str, answer_timeout: float, show: Progress
) -> dict[str, Any]:
    with trio.move_on_after(answer_timeout):
        while True:
            status = _check(await http.get(path), "reading the call")
            if status["state"] == "LIVE" and status.get("sampleRate"):
                return status
            if status["state"] == "ENDED":
                raise PhoneError(f"the call ended before it was answered ({status['endedBy']})")
            show.update(f"ringing     {status['state'].lower()}")
            await trio.sleep(POLL_INTERVAL)
    raise PhoneError(
        f"no agent answered within {answer_timeout:g} s: is an agent connected to this sandbox?"
    )


async def _wait_spoken(
    http: httpx.AsyncClient,
    path: str,
    said_from: int,
    total: int,
    rate: int,
    listen_after: float,
    show: Progress,
) -> dict[str, Any]:
    """Until the whole file (from byte ``said_from`` of what the caller sent) was spoken and
    ``listen_after`` seconds passed, or the call ended."""
    done_at: float | None = None
    seconds = total / (2 * rate)
    while True:
        status = _check(await http.get(path), "reading the call")
        if status["state"] == "ENDED":
            return status
        said = min(max(int(status["spokenBytes"]) - said_from, 0), total)
        spoken = said / (2 * rate)
        heard = int(status["heardBytes"]) / (2 * rate)
        show.update(
            f"{bar(spoken / seconds if seconds else 1.0)} you said {spoken:4.1f}/{seconds:.1f} s"
            f"  agent said {heard:4.1f} s"
        )
        now = trio.current_time()
        if done_at is None and said >= total:
            done_at = now
        if done_at is not None and now - done_at >= listen_after:
            return status
        await trio.sleep(POLL_INTERVAL)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``phone`` subcommand."""
    p = subparsers.add_parser(
        "phone",
        help="call a running sandbox from a WAV file and record what the agent says",
        description=(
            "Place a call into a running sandbox (python -m telcoflow_trio sandbox), speak a "
            "WAV file once an agent answers, listen a little longer, hang up, and write what "
            "the agent said to a WAV file. The caller sends silence whenever it is not "
            "speaking, from the answer to the hang-up, as a phone line does. Any PCM WAV "
            "(8/16/24/32-bit, float, any channel count and rate) is converted to the call's "
            "format and padded with silence to whole 20 ms frames; compressed ones are refused. "
            "URL and credentials come from the options or from TELCOFLOW_SANDBOX_URL (or "
            "TELCOFLOW_BASE_URL), TELCOFLOW_API_KEY, TELCOFLOW_CONNECTOR_UUID and "
            "TELCOFLOW_CA_BUNDLE."
        ),
    )
    p.add_argument("wav", help="what the caller says (a WAV file)")
    p.add_argument("--out", default="agent_said.wav", help="where to write what the agent said")
    p.add_argument("--url", help="the sandbox's base_url or rest_url")
    p.add_argument("--api-key", help="the sandbox's API key")
    p.add_argument("--connector-uuid", help="the sandbox's connector UUID")
    p.add_argument("--caller", default="+15550100000", help="the caller's number")
    p.add_argument("--callee", help="the number called")
    p.add_argument(
        "--answer-timeout", type=float, default=15.0, help="seconds to wait for an agent"
    )
    p.add_argument(
        "--listen-after", type=float, default=3.0, help="seconds to keep listening after the file"
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole call")
    p.add_argument(
        "--ca-bundle", help="CA bundle (PEM) for an https sandbox (or TELCOFLOW_CA_BUNDLE)"
    )
    add_output_options(p, "the result")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """0: done; 2: bad arguments or WAV file; 3: no sandbox, refused, or no agent."""
    out, progress = start_output(args, stream)
    env = os.environ
    url = args.url or env.get("TELCOFLOW_SANDBOX_URL") or env.get("TELCOFLOW_BASE_URL")
    api_key = args.api_key or env.get("TELCOFLOW_API_KEY")
    connector = args.connector_uuid or env.get("TELCOFLOW_CONNECTOR_UUID")
    missing = [
        name
        for name, value in (
            ("--url (or TELCOFLOW_SANDBOX_URL)", url),
            ("--api-key (or TELCOFLOW_API_KEY)", api_key),
            ("--connector-uuid (or TELCOFLOW_CONNECTOR_UUID)", connector),
        )
        if not value
    ]
    if missing:
        print(
            "phone: missing " + ", ".join(missing) + "; `python -m telcoflow_trio sandbox` "
            "prints all three",
            file=sys.stderr,
        )
        return 2
    assert url is not None and api_key is not None and connector is not None
    try:
        result = trio.run(
            lambda: run_phone(
                args.wav,
                url=url,
                api_key=api_key,
                connector_uuid=connector,
                out_path=args.out or None,
                caller=args.caller,
                callee=args.callee,
                answer_timeout=args.answer_timeout,
                listen_after=args.listen_after,
                max_seconds=args.timeout,
                ca_bundle=args.ca_bundle or env.get("TELCOFLOW_CA_BUNDLE"),
                progress=progress,
            )
        )
    except WavFormatError as exc:
        print(f"phone: {exc}", file=sys.stderr)
        return 2
    except PhoneError as exc:
        print(f"phone: {exc}", file=sys.stderr)
        return 3
    except trio.TooSlowError:
        print(f"phone: the call did not finish within {args.timeout:g} s", file=sys.stderr)
        return 3
    finally:
        progress.clear()  # whatever ends the run (Ctrl+C too), no half status line is left
    if args.json:
        print(json.dumps(attrs.asdict(result)), file=out, flush=True)
        return 0
    print(
        f"call {result.call_id} ({result.sample_rate} Hz): you said {result.spoken_seconds:.2f} s, "
        f"the agent said {result.heard_seconds:.2f} s"
        + (f" -> {result.out_path}" if result.out_path else "")
        + (f"; ended by {result.ended_by}" if result.ended_by else ""),
        file=out,
        flush=True,
    )
    return 0
