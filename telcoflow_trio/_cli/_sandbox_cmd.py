"""``python -m telcoflow_trio sandbox``: run a sandbox until interrupted.

It prints its URLs and credentials under one set of names (``base_url``, ``rest_url``,
``api_key``, ``connector_uuid``, ``admin_url``: the text labels and the ``--json`` keys
alike), and the ``TELCOFLOW_*`` variables that
:meth:`~telcoflow_trio.SessionManagerConfig.from_env` and the dev phone read, as a shell
``export`` line to paste (``env`` in the JSON).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import signal
import ssl
import sys
from typing import Any, Final

import trio

from ..sandbox import Sandbox, open_sandbox

__all__ = ["ENV_NAMES", "announcement", "export_line", "register", "run"]

logger = logging.getLogger(__name__)

ENV_NAMES: Final = {
    "api_key": "TELCOFLOW_API_KEY",
    "connector_uuid": "TELCOFLOW_CONNECTOR_UUID",
    "base_url": "TELCOFLOW_BASE_URL",
}
"""The environment variable of each key that ``SessionManagerConfig.from_env`` reads."""


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


def announcement(sandbox: Sandbox) -> dict[str, Any]:
    """What the command prints, under the names of its text output and ``--json`` keys;
    ``env`` holds the ``TELCOFLOW_*`` variables of the ``export`` line."""
    info: dict[str, Any] = {
        "base_url": sandbox.url,
        "rest_url": sandbox.rest_url,
        "api_key": sandbox.api_key,
        "connector_uuid": sandbox.connector_uuid,
        "admin_url": sandbox.rest_url + "/admin",
    }
    info["env"] = {env: info[key] for key, env in ENV_NAMES.items()}
    return info


def export_line(env: dict[str, str]) -> str:
    """``export NAME=value ...``, each value quoted for a POSIX shell."""
    return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())


def _announce(sandbox: Sandbox, as_json: bool, tls: bool) -> None:
    info = announcement(sandbox)
    if as_json:
        print(json.dumps(info), flush=True)
        return
    # Printing the credentials is the point: they belong to this throwaway local server.
    labels = [f"  {key + ':':<17}{value}" for key, value in info.items() if key != "env"]
    ca_hint = "# and TELCOFLOW_CA_BUNDLE=<PEM> unless the certificate is publicly trusted"
    print(
        "\n".join(
            [
                "Telcoflow sandbox running",
                *labels,
                f"Place calls with POST {info['admin_url']}/calls (the same credential "
                "headers), or from another shell:",
                "",
                "# an agent's settings (SessionManagerConfig.from_env() reads them)",
                export_line(info["env"]),
                *([ca_hint] if tls else []),
                "# a call into it from a WAV file (the phone reads them too)",
                "python -m telcoflow_trio phone FILE.wav",
                "",
                "Press Ctrl+C to stop.",
            ]
        ),
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
            _announce(sandbox, args.json, tls=args.tls_cert is not None)
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
