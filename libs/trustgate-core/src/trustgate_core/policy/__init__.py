"""The policy engine (compiling and running a consumer's policies) and the exchange
policies see. The plugins' runners live in ``trustgate_core.policy.runners``."""

from trustgate_core.counters import CountersUnavailable
from trustgate_core.policy.engine import (
    Chain,
    Decision,
    GatewayRunner,
    PolicyDeps,
    PolicyEngine,
    PolicyInfo,
    PolicyRecord,
    Runner,
    RunnerType,
)
from trustgate_core.policy.exchange import Answer, Header, PolicyExchange, ResponseFilter
from trustgate_core.policy.mcp import McpExchange, call_target, rpc_error

__all__ = [
    "Answer",
    "Chain",
    "CountersUnavailable",
    "Decision",
    "GatewayRunner",
    "Header",
    "McpExchange",
    "PolicyDeps",
    "PolicyEngine",
    "PolicyExchange",
    "PolicyInfo",
    "PolicyRecord",
    "ResponseFilter",
    "Runner",
    "RunnerType",
    "call_target",
    "rpc_error",
]
