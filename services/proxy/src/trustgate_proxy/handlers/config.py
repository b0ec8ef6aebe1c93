"""Config events → the proxy: every applied change drops the compiled view at once."""

from __future__ import annotations

from trustgate_core.replica import ConfigReplica
from trustgate_proxy.services.config_view import ConfigView


def follow_config(replica: ConfigReplica, view: ConfigView) -> None:
    """Subscribe ``view`` to the replica's changes (the replica consumes the
    ``TRUSTGATE_CONFIG`` stream; this is the proxy's only source of configuration)."""
    replica.on_change(view.invalidate)
