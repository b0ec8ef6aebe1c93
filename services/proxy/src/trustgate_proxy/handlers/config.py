"""Config events → the proxy: every applied change drops the compiled view at once."""

from __future__ import annotations

from trustgate_core.replica.replica import Listener
from trustgate_proxy.services.config_view import ConfigView


def config_listeners(view: ConfigView) -> list[Listener]:
    """What the proxy does after each applied config event (the replica consumes the
    ``TRUSTGATE_CONFIG`` stream; this is the proxy's only source of configuration)."""
    return [view.invalidate]
