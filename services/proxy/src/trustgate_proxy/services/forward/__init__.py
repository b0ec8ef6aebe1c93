"""Forwarding an attempt to its upstream, in two steps: ``open`` (send, read the status
and headers, classify; nothing written to the client) and ``relay`` (write the reply).
``PassThrough`` when the client and the provider speak the same wire format,
``Translator`` otherwise; ``Forwarders`` holds both over one HTTP session."""

from __future__ import annotations

import aiohttp

from trustgate_proxy.services.forward.common import (
    Attempt,
    DisconnectGuard,
    Forwarder,
    TimeoutBook,
    Timeouts,
    UpstreamReply,
    client_left,
    retry_after_seconds,
)
from trustgate_proxy.services.forward.passthrough import PassThrough, prepare_body
from trustgate_proxy.services.forward.translate import Translator


class Forwarders:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.timeouts = TimeoutBook.of_session(session)
        self.passthrough = PassThrough(session)
        self.translate = Translator(session)


__all__ = [
    "Attempt",
    "DisconnectGuard",
    "Forwarder",
    "Forwarders",
    "PassThrough",
    "TimeoutBook",
    "Timeouts",
    "Translator",
    "UpstreamReply",
    "client_left",
    "prepare_body",
    "retry_after_seconds",
]
