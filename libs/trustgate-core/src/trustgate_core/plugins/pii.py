"""``pii``: finds personal data (``trustgate_core.pii``) in requests, and opt-in in
responses, and masks, redacts or blocks it before it leaves the gateway.

``actions`` picks an action per entity id (``email``), per language group
(``universal``, ``us``…) or ``default``; the most specific key wins. Actions: ``mask``
(a placeholder such as ``<EMAIL_1>``), ``mask_partial`` (``****1234``), ``redact`` (the
text is removed) and ``block`` (the request is refused with 422).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field, field_validator, model_validator

from trustgate_core.models.policy import Stage
from trustgate_core.plugins.base import OnError, PluginSettings, PluginSpec

Action = Literal["mask", "mask_partial", "redact", "block"]
Target = Literal["request", "response"]

#: The language groups an action may name (besides entity ids and ``default``).
GROUPS: Final = frozenset({"universal", "us", "uk", "eu", "cjk", "gcc_mena"})


def _known(name: str) -> bool:
    from trustgate_core.pii import ENTITIES  # the detectors load only with this plugin

    return name in ENTITIES or name in GROUPS


def _requests_only() -> list[Target]:
    return ["request"]


class PiiSettings(PluginSettings):
    entities: list[str] | None = Field(
        None, description="Entity ids or groups to look for; default every supported entity."
    )
    action: Action = Field("mask", description="The action of an entity without its own.")
    actions: dict[str, Action] = Field(
        default_factory=dict,
        description="Action per entity id or language group (the entity's own wins).",
    )
    apply_to: list[Target] = Field(
        default_factory=_requests_only,
        min_length=1,
        description='Where to look: "request" and/or "response" (streams included).',
    )
    restore: bool = Field(
        False,
        description="Placeholders go upstream; the originals come back in the client's answer.",
    )
    on_error: OnError = Field(
        "fail_closed",
        description="A detector error: refuse the request (503), or let it through unchanged.",
    )

    @field_validator("entities")
    @classmethod
    def _entities_known(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("must not be empty")
            unknown = [name for name in value if not _known(name)]
            if unknown:
                raise ValueError(f"unknown entities or groups: {', '.join(unknown)}")
        return value

    @field_validator("actions")
    @classmethod
    def _actions_known(cls, value: dict[str, Action]) -> dict[str, Action]:
        unknown = [name for name in value if name != "default" and not _known(name)]
        if unknown:
            raise ValueError(f"unknown entities or groups: {', '.join(unknown)}")
        return value

    @model_validator(mode="after")
    def _default_action(self) -> PiiSettings:
        if "default" in self.actions:
            self.action = self.actions.pop("default")
        return self


def _pii_stages(settings: PluginSettings) -> tuple[Stage, ...]:
    assert isinstance(settings, PiiSettings)
    if "response" in settings.apply_to or settings.restore:
        return ("pre_request", "pre_response")
    return ("pre_request",)


PII = PluginSpec(
    id="pii",
    name="PII guard",
    category="security",
    description=(
        "Masks, redacts or blocks personal data (emails, cards, national IDs, phones…) in "
        "requests and, opt-in, in responses; can restore the originals in the answer."
    ),
    stages=("pre_request", "pre_response"),
    mandatory_stages=("pre_request",),
    default_stages=("pre_request",),
    protocols=("LLM",),
    modes=("enforce", "observe"),
    settings_model=PiiSettings,
    mutates=frozenset({"request_body", "response_body"}),
    stages_for_settings=_pii_stages,
)
