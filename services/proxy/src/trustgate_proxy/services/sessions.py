"""Conversations across calls: the session id a client sends, and the Responses API's
``previous_response_id`` served by the gateway whatever the provider (``Sessions``)."""

from __future__ import annotations

from trustgate_proxy.domain.exchange import Exchange
from trustgate_proxy.services.ports import Headers
from trustgate_proxy.settings import ProxySettings


class Sessions:
    @classmethod
    def from_settings(cls, settings: ProxySettings) -> Sessions:
        return cls()

    async def begin(self, exchange: Exchange, headers: Headers) -> None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
