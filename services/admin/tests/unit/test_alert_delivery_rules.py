"""Delivery's backoff and the channel URL rule, without I/O."""

from __future__ import annotations

import pytest

from trustgate_admin.governance.alert_schemas import checked_url
from trustgate_admin.governance.webhooks import FIRST_BACKOFF, backoff


def test_the_backoff_doubles_is_jittered_down_by_at_most_half_and_capped() -> None:
    for attempts in range(1, 8):
        full = FIRST_BACKOFF * 2 ** (attempts - 1)
        delays = [backoff(attempts, cap=600) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1  # replicas do not retry in step
    assert all(backoff(40, cap=10) <= 10 for _ in range(100))
    assert backoff(10**6, cap=600) <= 600  # no overflow however many attempts


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T/B/x",
        "http://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "http://192.168.1.20/hook",
        "http://localhost/hook",
    ],
)
def test_https_anywhere_and_http_to_local_receivers_are_accepted(url: str) -> None:
    assert checked_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/x", "https"),
        ("http://8.8.8.8/x", "https"),
        ("ftp://hooks.example.com/x", "https"),
        ("https:///x", "host"),
        ("https://user:secret-pw@hooks.example.com/x", "credentials"),
    ],
)
def test_other_urls_are_refused_without_repeating_them(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as refused:
        checked_url(url)
    assert url not in str(refused.value) and "secret-pw" not in str(refused.value)
