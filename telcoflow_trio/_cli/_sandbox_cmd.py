"""``python -m telcoflow_trio sandbox``: run a sandbox until interrupted."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import ssl
import sys
from typing import Any

import trio

from ..sandbox import Sandbox, open_sandbox

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sandbox`` subcommand."""
    p = subparsers.add_parser(
        "sandbox",
        help="run a local Telcoflow sandbox server",
        description=(
            "Run a local Telcoflow server (control, REST and voice planes on one port) and "
            "print its URL and credentials. Other processes place calls through its admin "
            "endpoints (POST /admin/calls, see the docs)."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    p.add_argument("--api-key", help="API key to accept (default: generated)")
    p.add_argument("--connector-uuid", help="connector UUID to accept (default: generated)")
    p.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per real one")
    p.add_argument("--pull-interval", type=float, default=0.1, help="seconds between pulls")
    p.add_argument("--prefer-audio-frame-bytes", type=int, default=None)
    p.add_argument("--tls-cert", help="server certificate chain (PEM): serve wss:// and https://")
    p.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    p.add_argument(
        "--client-ca", help="CA bundle (PEM) that client certificates (mTLS) must verify against"
    )
    p.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    p.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    p.set_defaults(func=run)


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.tls_cert is None and args.tls_key is None:
        if args.client_ca is not None:
            raise SystemExit("--client-ca needs --tls-cert and --tls-key")
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise SystemExit("--tls-cert and --tls-key go together")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    if args.client_ca is not None:
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def _announce(sandbox: Sandbox, as_json: bool) -> None:
    info: dict[str, Any] = {
        "url": sandbox.url,
        "restUrl": sandbox.rest_url,
        "apiKey": sandbox.api_key,
        "connectorUuid": sandbox.connector_uuid,
        "adminUrl": sandbox.rest_url + "/admin",
    }
    if as_json:
        print(json.dumps(info), flush=True)
        return
    # Printing the credentials is the point: they belong to this throwaway local server.
    print(
        "Telcoflow sandbox running\n"
        f"  base_url:        {info['url']}\n"
        f"  rest_url:        {info['restUrl']}\n"
        f"  api_key:         {info['apiKey']}\n"
        f"  connector_uuid:  {info['connectorUuid']}\n"
        f"  place a call:    POST {info['adminUrl']}/calls (same credential headers)\n"
        "  or from a WAV:   python -m telcoflow_trio phone FILE.wav --url URL --api-key KEY "
        "--connector-uuid UUID\n"
        "Press Ctrl+C to stop.",
        flush=True,
    )


async def _main(args: argparse.Namespace) -> None:
    signum: int | None = None
    async with open_sandbox(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        connector_uuid=args.connector_uuid,
        ssl_context=_ssl_context(args),
        time_scale=args.time_scale,
        pull_interval=args.pull_interval,
        prefer_audio_frame_bytes=args.prefer_audio_frame_bytes,
    ) as sandbox:
        # Only while serving: a signal then stops the sandbox cleanly; a Ctrl+C while it
        # starts or closes interrupts at once.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            _announce(sandbox, args.json)
            async for signum in signals:
                logger.info("signal %d: stopping the sandbox", signum)
                break
    if signum == signal.SIGINT:
        # Stopped cleanly, but reported as any interrupted command is (run_main: status 130).
        raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """Run the sandbox until SIGTERM (status 0) or Ctrl+C (``KeyboardInterrupt``)."""
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    trio.run(_main, args)
    return 0
