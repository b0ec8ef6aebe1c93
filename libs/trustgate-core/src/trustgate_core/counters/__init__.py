"""Limit counters: sliding-window logs and fixed-window budgets.

`RedisCounters` shares them between the proxy's replicas (every check one atomic Lua
script, so a limit holds exactly across processes); `LocalCounters` keeps them in one
process, for `trustgate run` without Redis and for tests. `counters_from` picks one from
the settings.
"""

from trustgate_core.counters.base import Counters, CountersUnavailable, Reservation, WindowHit
from trustgate_core.counters.local import LocalCounters
from trustgate_core.counters.redis_store import RedisCounters
from trustgate_core.counters.settings import RedisSettings, counters_from

__all__ = [
    "Counters",
    "CountersUnavailable",
    "LocalCounters",
    "RedisCounters",
    "RedisSettings",
    "Reservation",
    "WindowHit",
    "counters_from",
]
