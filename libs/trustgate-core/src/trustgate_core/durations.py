"""Durations: one parser for settings, policies and exporter options.

A duration is Go-style (``250ms``, ``1.5s``, ``5m``, ``1h30m``; units ``ns us µs ms s m h``
plus ``d`` for days) or a bare number. What a bare number means differs by setting, so
the caller always names it: ``bare="s"`` (``SERVER_IDLE_TIMEOUT=120``), ``bare="ms"``
(``OTEL_EXPORTER_OTLP_TIMEOUT=10000``), or ``bare=None`` when a unit is required (a
policy's ``window: "1m"``; only ``"0"`` may go without one).
"""

from __future__ import annotations

import re
from typing import Final, Literal

BareUnit = Literal["s", "ms"]

UNITS: Final[dict[str, float]] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
#: The JSON-schema pattern of a duration with units (what policies accept).
DURATION_PATTERN: Final[str] = r"^((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d))+$"
DURATION_HINT: Final[str] = 'must be a duration such as "30s", "1m", "1h" or "1d"'

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_BARE_SECONDS: Final[dict[BareUnit, float]] = {"s": 1.0, "ms": 1e-3}


def parse_duration(
    value: str | int | float, *, bare: BareUnit | None, signed: bool = False
) -> float:
    """The length of ``value`` in seconds.

    ``value`` is a Go-style duration string or a number; a number, or a string of one,
    counts ``bare`` units (``None``: refused, a unit is required; ``"0"`` is always zero).
    A leading ``-`` or ``+`` is read only when ``signed`` (Go's rule; the caller then
    checks the range); otherwise a sign or a negative number is refused.
    Raises ``ValueError`` with a message that names no field (the caller does).
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(DURATION_HINT)
    if not isinstance(value, str):
        if value < 0 and not signed:
            raise ValueError("must not be negative")
        return _bare(float(value), bare)
    text = value.strip()
    sign = 1.0
    if signed and text[:1] in ("-", "+"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if _NUMBER.fullmatch(text):
        return sign * _bare(float(text), bare)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            raise ValueError(DURATION_HINT)
        total += float(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ValueError(DURATION_HINT)
    return sign * total


def _bare(number: float, bare: BareUnit | None) -> float:
    if bare is None:
        raise ValueError(DURATION_HINT)
    return number * _BARE_SECONDS[bare]
