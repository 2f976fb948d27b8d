"""Suite-wide secret scan: every log record at DEBUG and every SDK exception message is kept
for the running test, and checked at its teardown against every secret the test used.

Secrets are collected where they are made, so no test has to declare them:

- API keys: of every sandbox (``Sandbox.issued_secrets()`` also gives the voice bearer tokens
  it handed out) and of every ``SessionManagerConfig`` built (keys of 8 characters or more;
  shorter ones are placeholders such as ``"k"`` that would match any text);
- key material: every private key trustme generates (CA and leaf), by the lines of its PEM body.

The cost stays small: records are formatted once, kept as strings, and scanned once per test
by substring search.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trustme

import telcoflow_trio as tf
from telcoflow_trio.testing import Sandbox

__all__ = ["SecretWatch"]

MIN_SECRET_LENGTH = 8


def _pem_lines(pem: bytes) -> list[str]:
    """The base64 body lines of a PEM block: any one of them in a log is a leak."""
    lines = pem.decode("ascii", "replace").splitlines()
    return [line for line in lines if line and not line.startswith("-----") and len(line) >= 20]


class SecretWatch(logging.Handler):
    """A logging handler on the root logger plus hooks that record secrets as they are made."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.records = 0
        self._secrets: dict[str, str] = {}  # secret -> kind (the kind is what a report shows)
        self._sandboxes: list[Sandbox] = []  # made during the running test
        self._undo: list[Callable[[], None]] = []

    # ── collecting text ─────────────────────────────────────────────────────────────────

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        try:
            self.texts.append(record.getMessage())
        except Exception:  # a bad format string is the logging call's bug, not a leak
            self.texts.append(f"{record.msg!r} {record.args!r}")
        if record.exc_info and record.exc_info[1] is not None:
            self.texts.append("".join(traceback.format_exception(record.exc_info[1])))
        if record.exc_text:
            self.texts.append(record.exc_text)
        if record.stack_info:
            self.texts.append(record.stack_info)

    def note_text(self, text: str) -> None:
        """Add any text (an exception message, a repr) to what the scan covers."""
        self.texts.append(text)

    # ── collecting secrets ──────────────────────────────────────────────────────────────

    def add_secret(self, secret: str | None, kind: str) -> None:
        if isinstance(secret, str) and len(secret) >= MIN_SECRET_LENGTH:
            self._secrets.setdefault(secret, kind)

    def _patch(self, owner: Any, name: str, wrapper: Callable[[Any], Any]) -> None:
        original = owner.__dict__[name]
        setattr(owner, name, wrapper(original))
        self._undo.append(lambda: setattr(owner, name, original))

    def install(self) -> None:
        watch = self

        def sandbox_init(original: Any) -> Any:
            def __init__(self: Sandbox, *args: Any, **kwargs: Any) -> None:
                original(self, *args, **kwargs)
                watch._sandboxes.append(self)

            return __init__

        def config_post_init(original: Any) -> Any:
            def __attrs_post_init__(self: tf.SessionManagerConfig) -> None:
                watch.add_secret(self.api_key, "API key")
                original(self)

            return __attrs_post_init__

        def error_init(original: Any) -> Any:
            def __init__(self: tf.WSSError, *args: Any, **kwargs: Any) -> None:
                original(self, *args, **kwargs)
                watch.note_text(str(self))

            return __init__

        def leaf_init(original: Any) -> Any:
            def __init__(self: trustme.LeafCert, private_key_pem: bytes, *a: Any) -> None:
                original(self, private_key_pem, *a)
                for line in _pem_lines(private_key_pem):
                    watch.add_secret(line, "private key (trustme leaf)")

            return __init__

        def ca_init(original: Any) -> Any:
            def __init__(self: trustme.CA, *args: Any, **kwargs: Any) -> None:
                original(self, *args, **kwargs)
                for line in _pem_lines(self.private_key_pem.bytes()):
                    watch.add_secret(line, "private key (trustme CA)")

            return __init__

        self._patch(Sandbox, "__init__", sandbox_init)
        self._patch(tf.SessionManagerConfig, "__attrs_post_init__", config_post_init)
        self._patch(tf.WSSError, "__init__", error_init)
        self._patch(trustme.LeafCert, "__init__", leaf_init)
        self._patch(trustme.CA, "__init__", ca_init)
        root = logging.getLogger()
        self._old_level = root.level
        root.setLevel(logging.DEBUG)
        root.addHandler(self)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self)
        logging.getLogger().setLevel(self._old_level)
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    # ── per test ────────────────────────────────────────────────────────────────────────

    def secrets(self) -> dict[str, str]:
        """Every secret known so far, by kind (sandbox keys and tokens included)."""
        found = dict(self._secrets)
        for sandbox in self._sandboxes:
            for secret, kind in sandbox.issued_secrets().items():
                if len(secret) >= MIN_SECRET_LENGTH:
                    found.setdefault(secret, kind)
        return found

    def leaks(self) -> list[str]:
        """Descriptions (never the secret itself) of every secret found in the kept text."""
        if not self.texts:
            return []
        text = "\n".join(self.texts)
        found = []
        for secret, kind in self.secrets().items():
            at = text.find(secret)
            if at >= 0:
                # Show the context with the secret masked, so the report does not leak it.
                context = text[max(0, at - 120) : at + len(secret) + 60].replace(secret, "<SECRET>")
                found.append(f"{kind} found in captured output: ...{context}...")
        return found

    @contextmanager
    def test_scope(self) -> Iterator[None]:
        """Keep text for one test; the caller checks :meth:`leaks` before leaving."""
        self.texts.clear()
        try:
            yield
        finally:
            self.texts.clear()
            # Keys from configs and trustme stay watched (module fixtures reuse them);
            # a sandbox's key and tokens belong to the test that made it.
            self._sandboxes.clear()
