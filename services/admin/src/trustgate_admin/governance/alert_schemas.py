"""Alert rules as the API takes them: a rule's kind and its settings, its thresholds and its
channel, checked strictly (docs/governance-alerts.md). Pure: no I/O."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trustgate_admin.governance.webhook_guard import host_refusal, literal_address
from trustgate_core.errors import ValidationFailed

Kind = Literal["spend", "budget", "anomaly"]
Period = Literal["day", "month"]
DEFAULT_THRESHOLDS: Final = (50, 80, 100)
DEFAULT_FACTOR: Final = 3.0
DEFAULT_BASELINE_HOURS: Final = 24
DEFAULT_MIN_SPEND: Final = Decimal(1)
#: The fields of each kind: a rule may set only its own kind's.
KIND_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "spend": ("amount_usd", "period"),
    "budget": ("policy_id",),
    "anomaly": ("factor", "baseline_hours", "min_spend_usd"),
}
MAX_USD: Final = Decimal(10) ** 11
UrlText = Annotated[str, Field(min_length=1, max_length=2048)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def checked_url(value: str) -> str:
    """An ``https`` URL, or ``http`` to a loopback or private address (a receiver on the
    same host or network). The messages never repeat the URL: it may be a credential."""
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise ValueError("must be an https URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (user:password@)")
    if parts.scheme == "http" and not _is_local(parts.hostname):
        raise ValueError("must be https (http is allowed only to a loopback or private IP address)")
    reason = host_refusal(parts.hostname, allow_private=True)
    if reason is not None:  # (private ranges: refused by the use case, per the setting)
        raise ValueError(f"must not name {reason}")
    return url


def _is_local(host: str) -> bool:
    """``localhost``, or a loopback or private address however it is written (the guard's
    reading of a host, legacy IPv4 forms included)."""
    if host == "localhost":
        return True
    address = literal_address(host)
    return address is not None and (address.is_loopback or address.is_private)


class SlackChannel(_Body):
    """A Slack incoming webhook (the URL is itself the credential)."""

    type: Literal["slack"]
    url: UrlText

    _url = field_validator("url")(checked_url)


class WebhookChannel(_Body):
    """A generic JSON receiver; each message is signed with ``secret`` (HMAC-SHA256)."""

    type: Literal["webhook"]
    url: UrlText
    secret: str = Field(min_length=16, max_length=512)

    _url = field_validator("url")(checked_url)


Channel = Annotated[SlackChannel | WebhookChannel, Field(discriminator="type")]


class AlertRule(_Body):
    """A whole rule (the POST body; a PUT's changes merged into the stored rule are checked
    as one too). Defaults are filled per kind: thresholds ``[50, 80, 100]`` (spend, budget),
    ``factor`` 3, ``baseline_hours`` 24, ``min_spend_usd`` 1 (anomaly)."""

    name: str = Field(min_length=1, max_length=255)
    consumer_id: UUID | None = None
    enabled: bool = True
    kind: Kind
    amount_usd: Decimal | None = Field(None, gt=0, lt=MAX_USD, description="spend: USD per period")
    period: Period | None = Field(None, description="spend: a UTC calendar day or month")
    policy_id: UUID | None = Field(None, description="budget: a token_rate_limiter policy")
    factor: float | None = Field(None, gt=1, le=1000, description="anomaly: N times the average")
    baseline_hours: int | None = Field(
        None, ge=1, le=24 * 31, description="anomaly: hours averaged"
    )
    min_spend_usd: Decimal | None = Field(
        None, ge=0, lt=MAX_USD, description="anomaly: the least spend in the hour that fires"
    )
    thresholds: list[int] | None = Field(
        None, min_length=1, max_length=20, description="percent, each 1..1000 (spend, budget)"
    )
    channel: Channel

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if any(t < 1 or t > 1000 for t in value):
            raise ValueError("each threshold must be a percent from 1 to 1000")
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a threshold")
        return sorted(value)

    @model_validator(mode="after")
    def _kind_fields(self) -> AlertRule:
        for kind, fields in KIND_FIELDS.items():
            if kind == self.kind:
                continue
            for name in fields:
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: applies to {kind} rules only")
        if self.kind == "spend":
            if self.amount_usd is None or self.period is None:
                raise ValueError("a spend rule needs amount_usd and period (day or month)")
        elif self.kind == "budget":
            if self.policy_id is None:
                raise ValueError("a budget rule needs policy_id (a token_rate_limiter policy)")
        else:
            if self.thresholds is not None:
                raise ValueError("thresholds: apply to spend and budget rules only")
            self.factor = DEFAULT_FACTOR if self.factor is None else self.factor
            if self.baseline_hours is None:
                self.baseline_hours = DEFAULT_BASELINE_HOURS
            if self.min_spend_usd is None:
                self.min_spend_usd = DEFAULT_MIN_SPEND
        if self.kind != "anomaly" and self.thresholds is None:
            self.thresholds = list(DEFAULT_THRESHOLDS)
        return self

    def settings(self) -> dict[str, Any]:
        """The kind's own settings, as stored (amounts as exact strings)."""
        values = {name: getattr(self, name) for name in KIND_FIELDS[self.kind]}
        values.pop("policy_id", None)  # a column of its own (a foreign key)
        return {k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()}


class AlertRuleIn(_Body):
    """A PUT's changes: any field of a rule; a channel holding masked values (as answered)
    keeps the stored URL and secret."""

    name: str | None = Field(None, min_length=1, max_length=255)
    consumer_id: UUID | None = None
    enabled: bool | None = None
    kind: Kind | None = None
    amount_usd: Decimal | None = None
    period: Period | None = None
    policy_id: UUID | None = None
    factor: float | None = None
    baseline_hours: int | None = None
    min_spend_usd: Decimal | None = None
    thresholds: list[int] | None = None
    channel: dict[str, Any] | None = None


def checked_rule(fields: dict[str, Any]) -> AlertRule:
    """``fields`` as a whole rule, or a 422 naming the first problem (never its value)."""
    try:
        return AlertRule.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        raise ValidationFailed(f"{where}: {message}" if where else message) from None
