"""Phone numbers of every group, validated against the country's numbering plan by
``phonenumbers`` (a run of digits that no country allocates is not a phone).

A number written with its ``+`` country code is classified by that country. A national
number (no ``+``) counts only when written with separators (``(555) 123-4567``,
``010-1234-5678``) or, as one run of digits (``13800138000``), after a keyword (``tel``,
``phone``, ``手机``, ``전화``…), so ordinary digit runs (amounts, ids, timestamps) are not
phones.
Starting with the trunk prefix 0 it is tried as a number of Korea, Japan, China and the
UK, in that order, and the first plan it fits names it (a national number valid in two of
them is ambiguous without a country: the first wins); eleven digits from 1 as a Chinese
mobile; anything else as a US number. ISO dates (``2026-12-07``) are not candidates."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException

from trustgate_core.pii.base import NUM_L, NUM_R, Detector, keywords
from trustgate_core.pii.model import Entity

US_PHONE = Entity("us_phone", "us", "US/Canada phone number")
UK_PHONE = Entity("uk_phone", "uk", "UK phone number")
EU_PHONE = Entity("eu_phone", "eu", "EU/EFTA phone number")
CN_PHONE = Entity("cn_phone", "cjk", "Chinese phone number")
JP_PHONE = Entity("jp_phone", "cjk", "Japanese phone number")
KR_PHONE = Entity("kr_phone", "cjk", "Korean phone number")
GCC_MENA_PHONE = Entity("gcc_mena_phone", "gcc_mena", "GCC/MENA phone number")
INTL_PHONE = Entity("intl_phone", "universal", "phone number of another country (with +)")

_BY_REGION: dict[str, Entity] = {
    **dict.fromkeys("US CA PR VI GU AS MP".split(), US_PHONE),
    **dict.fromkeys("GB GG JE IM".split(), UK_PHONE),
    "CN": CN_PHONE,
    "JP": JP_PHONE,
    "KR": KR_PHONE,
    **dict.fromkeys(
        "AT BE BG CH CY CZ DE DK EE ES FI FR GR HR HU IE IS IT LI LT LU LV MT NL NO PL PT RO SE SI SK".split(),
        EU_PHONE,
    ),
    **dict.fromkeys(
        "AE SA QA KW BH OM YE IQ JO LB SY PS IL EG LY TN DZ MA SD NG IR".split(),
        GCC_MENA_PHONE,
    ),
}
_TRUNK_REGIONS = ("KR", "JP", "CN", "GB")

_PATTERN = re.compile(
    r"(?<![0-9A-Za-z_+\-./])"
    r"(?:\+\d{1,3}(?:[ \-.]?\(?\d{1,4}\)?)?(?:[ \-.]?\d{2,6}){1,5}"
    r"|\(\d{2,5}\) ?\d{2,6}(?:[ \-.]\d{2,6}){0,3}"
    r"|\d{2,6}(?:[ \-.]\d{2,6}){1,4})"
    r"(?![0-9A-Za-z_\-/]|[.,]\d)"
)
_DATE = re.compile(r"\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{2,4}")


def _classify(value: str) -> str | None:
    digits = sum(ch.isdigit() for ch in value)
    if not 7 <= digits <= 15:
        return None
    if value.startswith("+"):
        return _region_entity(value, None)
    if _DATE.fullmatch(value):
        return None
    first = value.lstrip("(")[0]
    if first == "0":
        regions: tuple[str, ...] = _TRUNK_REGIONS
    elif first == "1" and digits == 11:
        regions = ("CN",)
    else:
        regions = ("US",)
    for region in regions:
        entity = _region_entity(value, region)
        if entity is not None:
            return entity
    return None


def _region_entity(value: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(value, region)
    except NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    entity = _BY_REGION.get(phonenumbers.region_code_for_number(number) or "", INTL_PHONE)
    if region is not None and entity is not _BY_REGION[region]:
        return None
    return entity.id


_ALL = (US_PHONE, UK_PHONE, EU_PHONE, CN_PHONE, JP_PHONE, KR_PHONE, GCC_MENA_PHONE, INTL_PHONE)

DETECTORS: tuple[Detector, ...] = (
    Detector(_ALL, _PATTERN, _classify, min_digits=7),
    Detector(
        _ALL,
        re.compile(NUM_L + r"\d{7,15}" + NUM_R),
        _classify,
        keywords(
            "tel",
            "phone",
            "mobile",
            "cell",
            "call",
            "fax",
            "whatsapp",
            "电话",
            "電話",
            "手机",
            "携帯",
            "전화",
            "휴대폰",
            "هاتف",
            "جوال",
        ),
        min_digits=7,
    ),
)
