"""``find`` as its callers see it: results in order and never overlapping (the longer
match wins), the ``entities`` filter, and ordinary prose and code left alone."""

from __future__ import annotations

import itertools

import pytest

from trustgate_core.pii import find


def test_a_card_is_one_match_not_a_card_a_phone_and_an_ssn() -> None:
    text = "pay with 4111-1111-1111-1111 please"
    assert [(m.entity, m.value) for m in find(text)] == [("credit_card", "4111-1111-1111-1111")]


def test_matches_come_in_order_and_never_overlap() -> None:
    text = (
        "SSN 536-22-1234, mail a.b@example.org, RRN 900101-1234568, "
        "IBAN DE89 3704 0044 0532 0130 00, call (415) 555-2671"
    )
    matches = find(text)
    assert [m.entity for m in matches] == ["us_ssn", "email", "kr_rrn", "iban", "us_phone"]
    for before, after in itertools.pairwise(matches):
        assert before.end <= after.start


def test_a_number_next_to_another_is_still_found() -> None:
    # The first candidate (``12 4111 …`` as a phone, ``1234 4111 …`` as a card) fails
    # its check; the valid number starting inside it is found all the same.
    assert [m.value for m in find("ids 12 4111 1111 1111 1111")] == ["4111 1111 1111 1111"]
    assert [m.value for m in find("PESEL 9 44051401359")] == ["44051401359"]


def test_the_longer_match_wins_an_overlap() -> None:
    # A Chinese resident ID holds a valid-looking 17-digit prefix and phone-like pieces.
    matches = find("证件 11010519491231002X")
    assert [(m.entity, m.value) for m in matches] == [("cn_resident_id", "11010519491231002X")]


def test_a_unionpay_card_after_its_bank_keyword_is_a_bank_account() -> None:
    number = "6222 0202 0000 1234 562"
    assert [m.entity for m in find(f"银行卡号 {number}")] == ["cn_bank_account"]
    assert [m.entity for m in find(f"card {number}")] == ["credit_card"]
    assert [m.entity for m in find(f"银行卡号 {number}", ["credit_card"])] == ["credit_card"]


def test_the_entities_filter_keeps_only_those_asked_for() -> None:
    text = "jane@example.com, SSN 536-22-1234, card 4111 1111 1111 1111"
    assert [m.entity for m in find(text, ["us_ssn"])] == ["us_ssn"]
    assert [m.entity for m in find(text, {"email", "credit_card"})] == ["email", "credit_card"]
    assert find(text, []) == []


def test_an_unknown_entity_is_an_error() -> None:
    with pytest.raises(ValueError, match="no_such_entity"):
        find("x", ["email", "no_such_entity"])


def test_a_filtered_out_entity_does_not_hide_another() -> None:
    # The card's digits are not reported as anything else when cards are not asked for.
    assert find("card 4111 1111 1111 1111", ["us_phone", "us_ssn"]) == []


def test_an_address_with_accents_is_masked_whole() -> None:
    assert [m.value for m in find("Contact: Jörg, jörg.müller@example.de.")] == [
        "jörg.müller@example.de"
    ]
    assert [m.value for m in find("联系jane@example.com")] == ["jane@example.com"]


def test_a_national_phone_is_named_by_its_country() -> None:
    text = "UK 07911 123456, KR 010-1234-5678, US (415) 555-2671"
    assert [m.entity for m in find(text)] == ["uk_phone", "kr_phone", "us_phone"]


def test_a_phone_without_separators_needs_a_keyword() -> None:
    assert [(m.entity, m.value) for m in find("手机13800138000")] == [("cn_phone", "13800138000")]
    assert find("order 13800138000") == []


@pytest.mark.parametrize(
    "text",
    [
        "The build 2026-12-07T10:22:33Z shipped v1.24.3 (commit 9f3c2ab) to 10.0.12.7:8080.",
        "request 550e8400-e29b-41d4-a716-446655440000 failed after 1733541234567 ms",
        "def retry(n: int = 3, delay_ms: int = 250) -> None:  # pid 48213, epoch 1733541234",
        "Invoice 2026/0042 totals 1,234,567.89 EUR; order 12345678, page 3 of 12.",
        "Table B12 and row A10.3 of the 2024 report; room E11, ISO 8601, RFC 9110.",
        "SHA 3f786850e387550fdab836ed7e6dc881de23001b, port 5432, 192.168.1.1/24",
        "Call sequence 123456789 and 1234567890123 are test fixtures, not people.",
        "Total $1,234,567.89 on 12/07/2026 at 10:22:33; ISBN 978-3-16-148410-0.",
        "np.array([1234567, 2345678, 3456789]); version 2024.10.15-1 build 20241015",
    ],
)
def test_ordinary_prose_and_code_hold_no_pii(text: str) -> None:
    assert find(text) == []
