"""Forwarding a call to the chosen upstream: ``PassThrough`` when the client and the
provider speak the same wire format, ``Translator`` otherwise. ``Forwarder`` holds both
over one HTTP session."""

from __future__ import annotations

import aiohttp

from trustgate_proxy.services.forward.common import DisconnectGuard
from trustgate_proxy.services.forward.passthrough import PassThrough, prepare_body
from trustgate_proxy.services.forward.translate import Translator


class Forwarder:
    def __init__(
        self, session: aiohttp.ClientSession, disconnect_check_after: float = 0.25
    ) -> None:
        self.session = session
        self.passthrough = PassThrough(session, disconnect_check_after)
        self.translate = Translator(session, disconnect_check_after)


__all__ = ["DisconnectGuard", "Forwarder", "PassThrough", "Translator", "prepare_body"]
