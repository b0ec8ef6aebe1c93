from trustgate_core.bus.nats import (
    connect,
    connect_options,
    ensure_streams,
    keep_connecting,
    stream_config,
)

__all__ = ["connect", "connect_options", "ensure_streams", "keep_connecting", "stream_config"]
