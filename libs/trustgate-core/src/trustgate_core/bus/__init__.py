from trustgate_core.bus.nats import (
    connect,
    connect_options,
    ensure_streams,
    keep_connecting,
    stream_config,
)
from trustgate_core.bus.publisher import RequestEventPublisher
from trustgate_core.bus.work import WorkConsumer, work_consumer_config

__all__ = [
    "RequestEventPublisher",
    "WorkConsumer",
    "connect",
    "connect_options",
    "ensure_streams",
    "keep_connecting",
    "stream_config",
    "work_consumer_config",
]
