from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from trustgate_core.models.base import Entity

Stage = Literal["pre_request", "post_request", "pre_response", "post_response"]
Mode = Literal["enforce", "throttle", "observe"]


class Policy(Entity):
    """A plugin instance (``slug`` is the plugin id) run at its stages.

    ``global_`` (``global`` on the wire) applies it to every consumer of the gateway
    unless the consumer has its own policy of the same plugin.
    """

    name: str
    description: str | None = None
    slug: str
    enabled: bool = True
    priority: int = 0
    parallel: bool = True
    settings: dict[str, Any] = {}
    stages: list[Stage] = []
    mode: Mode = "enforce"
    global_: bool = Field(False, alias="global")
