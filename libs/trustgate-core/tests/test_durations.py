"""One duration parser: Go-style strings, and bare numbers in the unit the caller names."""

from __future__ import annotations

import pytest

from trustgate_core.durations import DURATION_HINT, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("2m30s500ms", 150.5),
        ("100us", 1e-4),
        ("100µs", 1e-4),
        ("100ns", 1e-7),
        (".5s", 0.5),
        ("  10s ", 10),
        ("0", 0),
    ],
)
@pytest.mark.parametrize("bare", ["s", "ms", None])
def test_a_duration_with_units_reads_the_same_whatever_the_bare_unit(
    text: str, seconds: float, bare: str | None
) -> None:
    assert parse_duration(text, bare=bare) == pytest.approx(seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "bare", "seconds"),
    [
        (120, "s", 120.0),
        ("120", "s", 120.0),
        (" 1.5 ", "s", 1.5),
        (2.5, "s", 2.5),
        (10000, "ms", 10.0),
        ("10000", "ms", 10.0),
        ("250", "ms", 0.25),
        (0, "ms", 0.0),
    ],
)
def test_a_bare_number_counts_the_unit_the_caller_names(
    value: str | float, bare: str, seconds: float
) -> None:
    assert parse_duration(value, bare=bare) == pytest.approx(seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["1", "90", "1.5", 90, 1.5])
def test_a_bare_number_is_refused_when_a_unit_is_required(value: str | float) -> None:
    with pytest.raises(ValueError, match="must be a duration"):
        parse_duration(value, bare=None)


@pytest.mark.parametrize(
    "text", ["", " ", "m", "1x", "1w", "1m 30s", "1 s", "s1", "1s-", "ten seconds", "1e3"]
)
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration(text, bare="s")
    assert str(raised.value) == DURATION_HINT


@pytest.mark.parametrize("value", [True, False, None, [1], {"s": 1}])
def test_values_that_are_not_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="must be a duration"):
        parse_duration(value, bare="s")  # type: ignore[arg-type]


def test_a_sign_is_refused_unless_the_caller_reads_one() -> None:
    with pytest.raises(ValueError, match="must be a duration"):
        parse_duration("-1s", bare="s")
    with pytest.raises(ValueError, match="must be a duration"):
        parse_duration("+1s", bare="s")
    with pytest.raises(ValueError, match="must not be negative"):
        parse_duration(-1, bare="s")
    assert parse_duration("-1s", bare="s", signed=True) == -1.0
    assert parse_duration("+1m", bare="s", signed=True) == 60.0
    assert parse_duration("-500", bare="ms", signed=True) == -0.5
    assert parse_duration(-5, bare="ms", signed=True) == -0.005
