from trustgate_core.bus.nats import connect, ensure_streams, stream_config

__all__ = ["connect", "ensure_streams", "stream_config"]
