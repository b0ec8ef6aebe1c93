"""GCC and MENA national IDs (group ``gcc_mena``).

Counted without context: the Emirates ID (``784-YYYY-NNNNNNN-C``, Luhn over its 15
digits). Only after a keyword: the Saudi national ID (10 digits from 1) and Iqama
(residents, from 2), whose last digit is a Luhn check (one random number in ten passes);
the Qatar ID (11 digits: century, birth year, nationality; no public check digit); the
Moroccan CIN (one or two letters and digits, no check) and the Nigerian NIN (11 digits,
no public check)."""

from __future__ import annotations

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
    structural,
)
from trustgate_core.pii.model import Entity

AE_EMIRATES_ID = Entity("ae_emirates_id", "gcc_mena", "UAE Emirates ID (Luhn)")
SA_NATIONAL_ID = Entity("sa_national_id", "gcc_mena", "Saudi national ID (after a keyword)")
SA_IQAMA = Entity("sa_iqama", "gcc_mena", "Saudi Iqama residence number (after a keyword)")
QA_QID = Entity("qa_qid", "gcc_mena", "Qatar ID (after a keyword)")
MA_CIN = Entity("ma_cin", "gcc_mena", "Moroccan national identity card (after a keyword)")
NG_NIN = Entity("ng_nin", "gcc_mena", "Nigerian national identification number (after a keyword)")


def _luhn(value: str) -> bool:
    return luhn(only_digits(value))


_SAUDI = keywords("iqama", "national id", "nin", "هوية", "إقامة", "اقامة", "السجل المدني")

DETECTORS: tuple[Detector, ...] = (
    checked(AE_EMIRATES_ID, NUM_L + r"784([\- ]?)\d{4}\1\d{7}\1\d" + NUM_R, _luhn, min_digits=15),
    checked(SA_NATIONAL_ID, NUM_L + r"1\d{9}" + NUM_R, _luhn, context=_SAUDI, min_digits=10),
    checked(SA_IQAMA, NUM_L + r"2\d{9}" + NUM_R, _luhn, context=_SAUDI, min_digits=10),
    checked(
        QA_QID,
        NUM_L + r"[23]\d{10}" + NUM_R,
        structural,
        min_digits=11,
        context=keywords("qid", "qatar id", "qatari id", "البطاقة الشخصية"),
    ),
    checked(
        NG_NIN,
        NUM_L + r"\d{11}" + NUM_R,
        structural,
        min_digits=11,
        context=keywords("nin", "national identification"),
    ),
    checked(
        MA_CIN,
        WORD_L + r"[A-Z]{1,2}\d{5,6}" + WORD_R,
        structural,
        min_digits=5,
        context=keywords("cin", "carte nationale", "البطاقة الوطنية"),
    ),
)
