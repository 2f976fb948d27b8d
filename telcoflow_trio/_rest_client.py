"""The REST plane (list and close sessions) over httpx, which runs on trio through anyio."""

from __future__ import annotations

import logging
from typing import Final

import httpx

from ._config import SessionManagerConfig
from ._enums import ChannelType
from ._errors import WSSConnectionError, WSSError, error_from_code
from .protocol import Unrecognised, rest

__all__ = ["RestClient"]

logger = logging.getLogger(__name__)

_TIMEOUT: Final = 30.0


class RestClient:
    """REST calls of one session manager; credentials and TLS come from its config.
    ``transport`` replaces the network for tests (an ``httpx.MockTransport``)."""

    def __init__(
        self, config: SessionManagerConfig, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        tls = config.tls_context()
        self._client = httpx.AsyncClient(
            base_url=config.rest_base_url,
            headers=config.auth_headers(),
            verify=tls if tls is not None else True,
            timeout=_TIMEOUT,
            follow_redirects=False,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(
        self, method: str, path: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        try:
            return await self._client.request(method, path, params=params)
        except httpx.HTTPError as exc:
            # The exception text may hold the URL, never headers; still, name only its kind.
            raise WSSConnectionError(
                f"REST {method} {path} failed ({type(exc).__name__})"
            ) from None

    @staticmethod
    def _raise_for(response: httpx.Response) -> None:
        body = rest.decode_error_body(response.content)
        if isinstance(body, Unrecognised):
            raise WSSError(f"[HTTP {response.status_code}] unexpected REST error body")
        raise error_from_code(body.code, body.message or f"HTTP {response.status_code}")

    async def list_sessions(
        self,
        channel: ChannelType | str | None = None,
        remote_address: str | None = None,
        state: str | None = "OPEN",
    ) -> list[rest.SessionInfo]:
        """``GET /public/v1/sessions`` with the given filters."""
        params = rest.session_list_params(channel, remote_address, state)
        response = await self._call("GET", rest.SESSIONS_PATH, params)
        if not response.is_success:
            self._raise_for(response)
        items = rest.decode_session_list(response.content)
        if isinstance(items, Unrecognised):
            raise WSSError(f"unexpected session list from the server: {items.reason}")
        return items

    async def close_session(self, session_id: str) -> rest.CloseResult | None:
        """``POST /public/v1/sessions/{id}/close``; ``None`` when it was already gone (404)."""
        response = await self._call("POST", rest.close_path(session_id))
        if response.status_code == 404:
            return None
        if not response.is_success:
            self._raise_for(response)
        result = rest.decode_close_result(response.content)
        if isinstance(result, Unrecognised):
            logger.debug("close result not understood: %s", result.reason)
            return None
        return result
