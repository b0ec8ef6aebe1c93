"""Entities of every language group: email, payment card (Luhn), IBAN (mod 97), SWIFT/BIC
(structure and country) and ICD-10 codes.

BIC and ICD-10 codes have no checksum and look like ordinary uppercase words or grid
references (``DEUTDEFF`` vs ``ABSTRACT``, ``E11.9`` vs a seat number), so they count only
after a keyword (``SWIFT``, ``BIC``, ``bank``; ``ICD``, ``diagnosis``, ``dx``)."""

from __future__ import annotations

import re

from stdnum import bic, iban

from trustgate_core.pii.base import (
    NUM_L,
    NUM_R,
    WORD_L,
    WORD_R,
    Detector,
    checked,
    keywords,
    luhn,
    only_digits,
)
from trustgate_core.pii.model import Entity

EMAIL = Entity("email", "universal", "e-mail address")
CREDIT_CARD = Entity("credit_card", "universal", "payment card number (Luhn-valid)")
# A card is written as 13-19 digits, in groups of four (4-4-4-4, 4-4-4-4-3) or as Amex and
# Diners print it (4-6-5, 4-6-4), one separator throughout; its first digit names a
# network (2-6: Mastercard, Amex/Diners, Visa, Mastercard, Discover/UnionPay).
IBAN = Entity("iban", "universal", "international bank account number (mod 97)")
SWIFT_BIC = Entity("swift_bic", "universal", "SWIFT/BIC code (after a keyword)")
ICD10 = Entity("icd10", "universal", "ICD-10 diagnosis code (after a keyword)")


# Letters and digits of an address, accented Latin included (``jörg@…`` is one address,
# not ``rg@…``); other scripts end it, so ``联系jane@…`` yields ``jane@…``.
_LATIN = "A-Za-z0-9\u00c0-\u024f"


def _email(value: str) -> bool:
    local = value.split("@", 1)[0]
    return not (local.startswith(".") or local.endswith(".") or ".." in value)


def _card(value: str) -> bool:
    separators = {ch for ch in value if not ch.isdigit()}
    digits = only_digits(value)
    return (
        len(separators) <= 1 and 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn(digits)
    )


def _icd10(value: str) -> bool:
    return value[0] != "U"


DETECTORS: tuple[Detector, ...] = (
    Detector(
        (EMAIL,),
        re.compile(
            rf"(?<![{_LATIN}._%+\-])[{_LATIN}._%+\-]{{1,64}}@"
            rf"(?:[{_LATIN}](?:[{_LATIN}\-]{{0,61}}[{_LATIN}])?\.)+[A-Za-z]{{2,24}}"
            rf"(?![{_LATIN}\-])"
        ),
        lambda v: EMAIL.id if _email(v) else None,
        anchor="@",
    ),
    checked(
        CREDIT_CARD,
        NUM_L
        + r"(?:\d{4}([ \-])\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?|\d{4}([ \-])\d{6}\2\d{4,5}|\d{13,19})"
        + NUM_R,
        _card,
        min_digits=13,
    ),
    checked(
        IBAN,
        WORD_L
        + r"[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)"
        + WORD_R,
        iban.is_valid,
        min_digits=8,
    ),
    Detector(
        (SWIFT_BIC,),
        re.compile(WORD_L + r"[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?" + WORD_R),
        lambda v: SWIFT_BIC.id if bic.is_valid(v) else None,
        keywords("swift", "bic", "bank"),
        anchor="",
    ),
    checked(
        ICD10,
        WORD_L + r"[A-Z]\d[0-9AB](?:\.[0-9A-Z]{1,4})?" + WORD_R,
        _icd10,
        min_digits=2,
        context=keywords("icd", "diagnos", "dx", "condition", "診断", "诊断"),
    ),
)
