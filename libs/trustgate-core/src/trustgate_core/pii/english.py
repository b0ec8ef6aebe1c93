"""US and UK entities.

Checked without context: the SSN written ``123-45-6789`` or ``123 45 6789`` (the invalid
ranges are rejected: area 000, 666 and 900-999, group 00, serial 0000, and the numbers
known to be advertising samples) and the UK National Insurance number (its prefix rules:
no D, F, I, Q, U or V, no O second, no BG, GB, KN, NK, NT, TN or ZZ; suffix A-D).

Weak, so only after a keyword: a bare nine-digit SSN, the US passport (nine digits, or a
letter and eight digits), the driver's licence (each state has its own format, none with
a public check digit: a letter or two and 5-13 digits, or 7-12 digits) and the medical
record number (each provider numbers its own: up to three letters and 6-10 digits)."""

from __future__ import annotations

from stdnum.us import ssn

from trustgate_core.pii.base import (
    NUM_L,
    NUM_R,
    WORD_L,
    WORD_R,
    Detector,
    checked,
    keywords,
    structural,
)
from trustgate_core.pii.model import Entity

US_SSN = Entity("us_ssn", "us", "US social security number (valid ranges)")
US_PASSPORT = Entity("us_passport", "us", "US passport number (after a keyword)")
US_DRIVERS_LICENSE = Entity("us_drivers_license", "us", "US driver's licence (after a keyword)")
US_MRN = Entity("us_medical_record_number", "us", "medical record number (after a keyword)")
UK_NINO = Entity("uk_nino", "uk", "UK National Insurance number")


DETECTORS: tuple[Detector, ...] = (
    checked(US_SSN, NUM_L + r"\d{3}([\- ])\d{2}\1\d{4}" + NUM_R, ssn.is_valid, min_digits=9),
    checked(
        US_SSN,
        NUM_L + r"\d{9}" + NUM_R,
        ssn.is_valid,
        min_digits=9,
        context=keywords("ssn", "social security", "ss#", "social sec"),
    ),
    checked(
        UK_NINO,
        WORD_L
        + r"(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
        + r"( ?)\d{2}\1\d{2}\1\d{2}\1[A-D]"
        + WORD_R,
        structural,
        min_digits=6,
    ),
    checked(
        US_PASSPORT,
        WORD_L + r"(?:[A-Z]\d{8}|\d{9})" + WORD_R,
        structural,
        min_digits=8,
        context=keywords("passport"),
    ),
    checked(
        US_DRIVERS_LICENSE,
        WORD_L + r"(?:[A-Z]{1,2}[\- ]?\d{5,13}|\d{7,12})" + WORD_R,
        structural,
        min_digits=5,
        context=keywords("driver's licen", "drivers licen", "driver licen", "driving licen", "dl"),
    ),
    checked(
        US_MRN,
        WORD_L + r"[A-Z]{0,3}\d{6,10}" + WORD_R,
        structural,
        min_digits=6,
        context=keywords(
            "mrn", "medical record", "patient id", "patient number", "patient no", "chart no"
        ),
    ),
)
