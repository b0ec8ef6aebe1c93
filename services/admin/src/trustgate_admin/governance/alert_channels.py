"""An alert channel at rest and in answers: its ``url`` (a Slack URL is itself a
credential) and ``secret`` sealed with the admin's box, masked in every answer. Neither
field name is one ``trustgate_core.crypto`` knows as secret, so they are named here."""

from __future__ import annotations

from typing import Any, Final

from trustgate_core.crypto import SecretBox, is_sealed, mask

SECRET_FIELDS: Final = ("url", "secret")


def sealed(box: SecretBox, channel: dict[str, Any]) -> dict[str, Any]:
    return {
        k: box.seal(v) if k in SECRET_FIELDS and not is_sealed(v) else v for k, v in channel.items()
    }


def opened(box: SecretBox, channel: dict[str, Any]) -> dict[str, Any]:
    return {
        k: box.open(v) if k in SECRET_FIELDS and is_sealed(v) else v for k, v in channel.items()
    }


def masked(box: SecretBox, channel: dict[str, Any]) -> dict[str, Any]:
    """For display: ``***`` and the last four characters of each secret field."""
    return {k: mask(v) if k in SECRET_FIELDS else v for k, v in opened(box, channel).items()}
